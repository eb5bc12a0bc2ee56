"""The recommendation protocols a dataset supports, shared by ``bench_recommend.py`` (test
users) and ``validate_recommend.py`` (validation users), so both measure the same cases.

- untimed data (Frappe): leave-20%-out, and cold users keeping 1, 3 or 5 known items;
- timed data spanning three weeks or more (Foursquare NYC, StudentLife): each user's later
  weeks, new items only;
- shorter timed data (netfp's day, the simulated week): one global cut-off at 0.6 of the span;
- data with apps and places: apps recommended from location history only.
"""

from __future__ import annotations

import pandas as pd

from uscope.data.schema import has_apps, has_places, has_times

WEEKS_NEEDED = pd.Timedelta(days=21)  # shorter spans use one global cut-off
KINDS = ("app", "place", "location")  # the item kinds benchmarked where the data has them
COLD_KNOWN = (1, 3, 5)


def recommend_cases(events: pd.DataFrame, kinds: tuple[str, ...] | list[str],
                    quick: bool = False) -> dict[str, tuple[str, str, dict]]:
    """label -> (protocol, kind, EvalConfig options) for `events` and the item `kinds`."""
    cases: dict[str, tuple[str, str, dict]] = {}
    if not has_times(events):
        for kind in kinds:
            cases[f"leave-20%-out, kind={kind}"] = ("leave-out", kind, {})
            for known in COLD_KNOWN[:1] if quick else COLD_KNOWN:
                cases[f"cold users with {known} known, kind={kind}"] = (
                    "cold", kind, {"max_known": known})
        return cases
    span = events["timestamp"].max() - events["timestamp"].min()
    for kind in kinds:
        if span >= WEEKS_NEEDED:
            cases[f"later weeks, kind={kind}"] = ("later-weeks", kind, {})
        else:
            cases[f"novelty after 0.6 of the span, kind={kind}"] = ("novelty", kind, {})
    if has_apps(events) and has_places(events) and not quick:
        cases["apps from location history only"] = ("apps-from-locations", "app", {})
    return cases


def dataset_kinds(spec_kinds: tuple[str, ...], chosen: list[str] | None) -> list[str]:
    """The benchmarked kinds: `chosen`, or those of ``KINDS`` the dataset has."""
    return list(chosen) if chosen else [k for k in KINDS if k in spec_kinds]
