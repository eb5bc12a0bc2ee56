"""The resumable synthesis job and `uscope synthesize`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from uscope.data import save_events
from uscope.synth import OutlinesDecoder, SynthConfig, load_synthetic, run_synthesis_job
from uscope.synth.job import parts_dir, report_path

pytestmark = pytest.mark.slow


class Crash(RuntimeError):
    pass


class CrashingDecoder:
    """Delegates to a real decoder, then fails like a killed process after `calls` calls."""

    def __init__(self, inner, calls: int):
        self.inner, self.calls, self.constrained = inner, calls, inner.constrained

    def reseed(self, seed):
        self.inner.reseed(seed)

    def choose(self, prompts, options):
        if self.calls == 0:
            raise Crash("killed")
        self.calls -= 1
        return self.inner.choose(prompts, options)


@pytest.fixture(scope="module")
def profile_set(simulated):
    from uscope.profile import profile_users

    return profile_users(simulated.events, backend="heuristic", users=["0", "1", "2"])


def test_interrupted_job_resumes_with_every_user_once(tmp_path, simulated, profile_set,
                                                      smollm2, torch_one_thread):
    decoder = OutlinesDecoder(*smollm2)
    out = tmp_path / "synthetic.parquet"
    config = SynthConfig(sequences_per_user=1, events_per_sequence=2)
    with pytest.raises(Crash):  # dies during the second user
        run_synthesis_job(simulated.events, profile_set, CrashingDecoder(decoder, 3), out, config)
    assert len(list(parts_dir(out).glob("*.parquet"))) == 1 and not out.exists()
    with pytest.raises(FileExistsError, match="--resume"):
        run_synthesis_job(simulated.events, profile_set, decoder, out, config)
    summary = run_synthesis_job(simulated.events, profile_set, decoder, out, config, resume=True)
    assert summary.skipped == 1 and summary.users == 3
    events = load_synthetic(out)
    assert events.groupby("user_id").size().to_dict() == {"0": 2, "1": 2, "2": 2}
    assert not parts_dir(out).exists()
    assert sorted(summary.report["user_id"].astype(str)) == ["0", "1", "2"]
    assert report_path(out).exists()
    again = run_synthesis_job(simulated.events, profile_set, decoder, out, config, resume=True)
    assert again.skipped == 3 and again.events == len(events)  # finished: nothing redone


def test_cli_synthesize_writes_a_separate_synthetic_file(tmp_path, simulated, profile_set,
                                                         torch_one_thread):
    from uscope.cli import app

    events_path = save_events(simulated.events, tmp_path / "events.parquet")
    profiles_path = profile_set.save(tmp_path / "profiles.parquet")
    out = tmp_path / "synthetic.parquet"
    args = ["synthesize", "--profiles", str(profiles_path), "--events", str(events_path),
            "--per-user", "2", "--length", "1", "--out", str(out), "--users", "0,1",
            "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 synthetic events for 2 users" in result.output
    assert load_synthetic(out)["synthetic"].all()
    clash = CliRunner().invoke(app, args[:-5] + ["--out", str(events_path), "--no-progress"])
    assert clash.exit_code == 2 and "separate file" in clash.output
