"""What ``bench_synth_real`` writes: its rows' names, the bars checked on its numbers and the
BENCHMARKS.md section (Markdown) built from its measurements."""

from __future__ import annotations

from pathlib import Path

from _data import quick_banner
from _report import markdown_table
from bench_synth import REPO, fmt, training_text

from uscope.data.schema import has_apps

TUNED, BASE = "tuned SmolLM2 + outlines", "untuned SmolLM2 + outlines"
UNIFORM, OWN = "no LM: uniform over allowed pairs", "no LM: the user's pair frequencies"


def closer(mae: float, rival_mae: float, r: float, rival_r: float) -> bool:
    """The bar's test: closer to the real distribution on both MAE (lower) and r (higher)."""
    return mae < rival_mae and r > rival_r


def lead_table(leads: list[dict], n_users: int) -> str:
    """With few test users (StudentLife: 2) the interval says little: the header counts them."""
    return markdown_table([{"tuned LM vs": row["rival"],
                            "MAE lead (rival - tuned)": f"{row['lead']:+.4f}",
                            f"95% interval ({n_users} test users resampled)":
                                f"[{row['low']:+.4f}, {row['high']:+.4f}]",
                            "draws skipped": row["skipped"]} for row in leads])


def seed_verdict(rows: list[dict]) -> str:
    """In how many generation seeds the tuned LM beats uniform choice on both MAE and r."""
    by = {r["source"]: r for r in rows}
    tuned, uniform = by[TUNED], by[UNIFORM]
    wins = sum(closer(*scores) for scores in
               zip(tuned["_maes"], uniform["_maes"], tuned["_rs"], uniform["_rs"]))
    n = len(tuned["_maes"])
    return f"tuned LM closer than uniform (MAE and r) in **{wins} of {n}** generation seeds"


AXIS_TEXT = {"app_category": "app-category x place-category (each place category's app shares)",
             "hour": "place-category x hour of day (each place category's shares of {bin}-hour "
                     "bins)"}


def verdict(rows: list[dict], leads: list[dict]) -> str:
    """Bar of issue 19: the tuned LM closer to the real distribution than uniform choice."""
    by = {r["source"]: r for r in rows}
    tuned, uniform = by[TUNED], by[UNIFORM]
    low = next(row["low"] for row in leads if row["rival"] == UNIFORM)
    met = "**not met**" if not closer(tuned["MAE"], uniform["MAE"], tuned["pearson_r"],
                                      uniform["pearson_r"]) else (
        "**met**" if low > 0 else "**met** on the point estimates; the MAE interval includes 0")
    return (f"tuned LM vs uniform among allowed pairs: MAE {tuned['MAE']:.4f} vs "
            f"{uniform['MAE']:.4f}, r {tuned['pearson_r']:.3f} vs {uniform['pearson_r']:.3f}: "
            f"{met}")


def body(args, loaded, events, split, own_categories, training, valid_rows, tables, audits,
         figures, minutes) -> str:
    columns = ["source", "events", "seconds", "MAE", "RMSE", "R2", "pearson_r", "p_value",
               "cramers_v_real", "cramers_v_generated", "rows_missing"]
    sections = []
    for axis, (rows, leads, seeds) in tables.items():
        shown_seeds = [{k: v for k, v in row.items() if not k.startswith("_")} for row in seeds]
        sections.append(f"**Fidelity (eq. 26), {AXIS_TEXT[axis].format(bin=args.hour_bin)}**, "
                        f"test users, generation seed {args.seed}:\n\n"
                        f"{markdown_table(fmt(rows), columns)}\n\n"
                        f"{lead_table(leads, len(split.test_users))}\n\nBar: "
                        f"{verdict(rows, leads)}.\n\nThe same rows over "
                        f"{args.generation_seeds} generation seeds (same LM, split and test "
                        f"users; each seed draws new times and new samples; sd over "
                        f"seeds):\n\n{markdown_table(fmt(shown_seeds))}\n\n"
                        f"Bar over seeds: {seed_verdict(seeds)}.")
    audit = all(a["not an offered candidate"] == 0 and a["users over K x budget"] == 0
                for a in audits)
    shown = ", ".join(f"`{Path(f).relative_to(REPO)}`" for f in figures) or "(none: quick run)"
    n_events = events.groupby("user_id").size()
    kind = "app uses" if has_apps(events) else 'place check-ins: the app is "-"'
    places = " Places have no category in this data: each place is its own category (the " \
        "place axis is the place)." if own_categories else ""
    return quick_banner(args) + f"""
Data: {loaded.label}, {len(n_events)} users with {int(n_events.sum()):,} events that make a
pair ({kind}).{places} Split: {split.text}. The LM trained once; test generations repeated
over {args.generation_seeds} generation seed(s).

**Sequence LM** (`recipes/synth_lm.py`, TRL SFT + LoRA r=16 on SmolLM2-135M-Instruct,
heuristic profiles as P_u, {args.threads} CPU threads): {training_text(training)}.

**Validation** ({len(split.valid_users)} users, {len(split.valid_real):,} real events, K =
{args.per_user} x T' = {args.length}): the checkpoint with the lowest mean fidelity MAE is
used on the test users.

{markdown_table(fmt(valid_rows))}

**Generation**: K = {args.per_user} sequences x T' = {args.length} events per test user, times
drawn from the user's own (day, hour) cells, profile-driven exploration; every row decodes the
same plans. The user-frequency row draws each offered pair by its count in the user's own
history (what a user of the library would do without an LM).

{chr(10).join(s + chr(10) for s in sections)}
**Constraint audit** (recounted from the real histories, not from the generator's own
counts): a generated pair outside the user's H_u must be one of the user's exploration
candidates (real population pairs), and a user holds at most K x its exploratory budget of them
(the bound per sequence is the decoder's `BudgetCounter`, tested in `test_synth_constraint.py`).

{markdown_table(audits)}

Bar: every generated pair allowed or within the exploration budget: {'**met**' if audit
else '**not met**'}.

Figures: {shown}. Whole benchmark: {minutes:.1f} min.
"""


