"""`uscope demo`: every stage of the main job prints its result, in whole sentences, never as
an empty list."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

from uscope.cli.demo import no_novel_reason, printable_profile

SENTENCE_END = re.compile(r"""[.!?]["')\]]*$""")


def test_printable_profile_cuts_a_truncated_profile_at_its_last_sentence():
    assert printable_profile("Uses Social apps at night. Often streams Video on the") == (
        "Uses Social apps at night.")
    assert printable_profile("  Active on weekdays, e.g. at work!  ") == (
        "Active on weekdays, e.g. at work!")
    whole = "Top categories: Social, Video. Most active in the evening."
    assert printable_profile(whole) == whole


def test_printable_profile_names_what_is_missing_instead_of_a_fragment():
    for text, error in (("About 7.5 sessions a day, e.g. at home", None), (None, "timed out"),
                        ("", None), (float("nan"), float("nan"))):
        shown = printable_profile(text, error)
        assert SENTENCE_END.search(shown), shown
    assert "timed out" in printable_profile(None, "timed out")
    assert "no complete sentence" in printable_profile("Uses Social apps at", None)


def test_no_novel_reason_is_derived_from_the_data():
    every = no_novel_reason({"Social", "Video", "Games"}, ["Games", "Social", "Video"], "intent")
    assert every.startswith("none:") and "every one of the 3 app categories" in every
    rest = no_novel_reason({"Social"}, ["Games", "Social", "Video"], "app")
    assert "2 apps this user has not used (Games, Video)" in rest


@pytest.mark.slow   # loads the first SmolLM2 blocks (the PITuning teacher)
def test_demo_runs_every_stage_on_the_heuristic_backend(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "uscope", "demo", "--out", str(tmp_path / "demo"), "--users", "6",
         "--days", "2", "--show", "3", "--backend", "heuristic", "--complete-steps", "20",
         "--intent-steps", "10"], check=False, cwd=REPO, capture_output=True, text=True,
        timeout=900)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for stage in range(1, 7):
        assert f"[{stage}/6]" in out, stage
    assert "SIMULATED" in out
    lines = out.splitlines()

    def grab(pattern: str) -> list[tuple[str, ...]]:
        return [m.groups() for line in lines if (m := re.fullmatch(pattern, line))]

    profiles = [text for (text,) in grab(r"  profile: (.*)")]
    assert len(profiles) == 3
    assert all(SENTENCE_END.search(p.strip()) for p in profiles), profiles
    rmse = grab(r"  user \S+: U-MASK \+ DiT (\d\.\d+), historical average (\d\.\d+)")
    assert len(rmse) == 3, out
    intents = grab(r"  user \S+: next (.+); last used: (.+)")
    assert len(intents) == 3 and all(re.search(r"\(\d\.\d\d\)", n) for n, _ in intents), out
    recommended = grab(r"    new (app categories|apps) to try:(.*)")
    assert len(recommended) == 6
    assert all(items.strip() for _, items in recommended), recommended   # never an empty list
    assert "[]" not in out
    for name in ("tensors.npz", "profiles.parquet", "events.parquet"):
        assert (tmp_path / "demo" / name).exists()
