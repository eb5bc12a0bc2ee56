"""A seeded simulator of smartphone users: the package's embedded default data (SIMULATED).

No public trace with both app usage and location exists here, so the simulator writes one in
the Tsinghua App Usage format (``App_Usage_Trace.txt``, ``App2Category.txt``, ``Categorys.txt``,
``base_poi.txt``) and reads it back with the real reader. It is calibrated on real data (see
``calibration.py``): the Tsinghua app categories, base-station POI mixes from ``base_poi.txt``,
and hour-of-day usage shapes from ``netfp``. Users follow archetypes (commuter, student, night
gamer, shopper, ...) that set where they are at each hour and which app categories they favour.
Same arguments, same files, byte for byte. ``events_per_day`` sets the density (the real
trace's is ``TSINGHUA_EVENTS_PER_DAY``) through a vectorised generator of the same model.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.calibration import (
    ALL_APPS,
    APP_CATEGORIES,
    HOURLY_SHAPE,
    POI_TYPES,
    STATION_PROTOTYPES,
)
from uscope.data.locations import LocationMap
from uscope.data.tsinghua import read_tsinghua


@dataclass(frozen=True)
class Archetype:
    """Where a kind of user is during the day and which app categories they favour."""

    name: str
    places: dict[str, str]  # part of day -> station prototype ("home" = the user's home)
    favourite_categories: dict[str, float]  # category -> weight multiplier
    uses_per_day: float
    night_owl: bool = False  # shifts usage towards late evening and night


# Parts of the day on weekdays; weekends use "weekend" for the day parts.
DAY_PARTS = {"night": range(7), "morning": range(7, 9), "day": range(9, 18),
             "evening": range(18, 22), "late": range(22, 24)}

ARCHETYPES = {
    "commuter": Archetype(
        "commuter",
        {"morning": "transit", "day": "business", "evening": "transit", "weekend": "home"},
        {"Business": 4, "News": 3, "Navigation": 4, "Finance": 2, "Music": 2, "Weather": 2},
        uses_per_day=40),
    "student": Archetype(
        "student",
        {"morning": "home", "day": "civic", "evening": "shopping_dining", "weekend": "home"},
        {"Education": 6, "Social_Networking": 3, "Books": 4, "References": 4, "Music": 3,
         "Games": 2},
        uses_per_day=55),
    "night_gamer": Archetype(
        "night_gamer",
        {"morning": "home", "day": "home", "evening": "home", "weekend": "home"},
        {"Games": 10, "Entertainment": 4, "Social_Networking": 2, "Music": 2},
        uses_per_day=70, night_owl=True),
    "shopper": Archetype(
        "shopper",
        {"morning": "home", "day": "shopping_dining", "evening": "shopping_dining",
         "weekend": "shopping_dining"},
        {"Shopping": 8, "Lifestyle": 4, "Finance": 3, "Photo&Video": 3, "infant&mom": 2},
        uses_per_day=45),
    "business_traveller": Archetype(
        "business_traveller",
        {"morning": "landmark", "day": "business_mixed", "evening": "landmark",
         "weekend": "scenic"},
        {"Travel": 8, "Navigation": 5, "Business": 4, "Weather": 3, "Finance": 2},
        uses_per_day=35),
    "homebody": Archetype(
        "homebody",
        {"morning": "home", "day": "home", "evening": "home", "weekend": "home"},
        {"Entertainment": 5, "News": 3, "Lifestyle": 3, "Health&Fitness": 3, "Books": 2},
        uses_per_day=30),
    "fitness_fan": Archetype(
        "fitness_fan",
        {"morning": "scenic", "day": "business", "evening": "scenic", "weekend": "scenic"},
        {"Health&Fitness": 8, "sports": 6, "Music": 4, "Weather": 2},
        uses_per_day=35),
}

START_DATE = "2016-04-20"  # the Tsinghua dataset's first day
# Traffic per use: log-normal with these medians (bytes); heavy categories move more.
HEAVY_TRAFFIC = {"Entertainment": 400_000, "Games": 120_000, "Music": 200_000,
                 "Photo&Video": 300_000, "Navigation": 60_000}
DEFAULT_TRAFFIC = 20_000
# Density of the real Tsinghua trace: 4.17 M rows for 1,000 users over 7 days.
TSINGHUA_EVENTS_PER_DAY = 596


@dataclass
class SimulatedPopulation:
    """A simulated population (not real data): its files, events and ground-truth archetypes."""

    directory: Path
    events: pd.DataFrame
    archetypes: dict[str, str]  # user id -> archetype name
    locations: LocationMap
    simulated: bool = True


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _stations(rng: np.random.Generator, per_kind: int) -> pd.DataFrame:
    """Base stations: `per_kind` of each prototype (plus transit hubs), POI counts sampled."""
    kinds = list(STATION_PROTOTYPES) + ["transit"]
    rows, kind_of = [], []
    transit = np.zeros(len(POI_TYPES))
    transit[POI_TYPES.index("Transportation hub")] = 0.6
    transit[POI_TYPES.index("Restaurant")] = 0.2
    transit[POI_TYPES.index("Shopping")] = 0.2
    for kind in kinds:
        median, shares = STATION_PROTOTYPES.get(kind, (12, transit.tolist()))
        shares = np.asarray(shares) / np.sum(shares)
        for _ in range(per_kind):
            total = max(1, int(rng.poisson(median)))
            rows.append(rng.multinomial(total, shares))
            kind_of.append(kind)
    frame = pd.DataFrame(rows, columns=POI_TYPES)
    frame.insert(0, "BaseID", np.arange(len(frame)))
    frame["_kind"] = kind_of
    return frame


def _category_weights(archetype: Archetype, hour: int) -> np.ndarray:
    weights = np.array([
        HOURLY_SHAPE.get(c, ALL_APPS)[hour] * archetype.favourite_categories.get(c, 0.3)
        for c in APP_CATEGORIES], dtype=float) + 1e-3
    return weights / weights.sum()


def _hour_weights(archetype: Archetype) -> np.ndarray:
    shape = np.asarray(ALL_APPS, dtype=float)
    if archetype.night_owl:
        shape = np.roll(shape, 5)  # the real daytime curve moved to 14:00-05:00
    return shape / shape.sum()


def _place_kind(archetype: Archetype, hour: int, weekend: bool) -> str:
    part = next(p for p, hours in DAY_PARTS.items() if hour in hours)
    return "home" if part in ("night", "late") else archetype.places[
        "weekend" if weekend else part]


def _check_events_per_day(events_per_day: float | None) -> float | None:
    if events_per_day is None:
        return None
    try:
        value = float(events_per_day)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(events_per_day, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError("events_per_day must be a positive, finite number of app uses per "
                         f"user per day (the real Tsinghua trace has about "
                         f"{TSINGHUA_EVENTS_PER_DAY}), got {events_per_day!r}")
    return value


@dataclass
class _User:
    """One simulated user's fixed choices: their stations and their apps."""

    archetype: Archetype
    anchor: dict[str, int]  # place kind -> base station ("home" included)
    own_apps: dict[str, np.ndarray]  # category -> the 3 apps the user uses in it
    spread: float  # the user's activity relative to the archetype's (log-normal, median 1)


def _draw_user(rng: np.random.Generator, archetype: Archetype, by_kind: dict[str, list[int]],
               homes: list[int], app_ids: dict[str, list[int]],
               popularity: np.ndarray) -> _User:
    home = int(rng.choice(homes))
    # each user settles on one station per place kind, and on a few apps per category
    anchor = {kind: int(rng.choice(ids)) for kind, ids in by_kind.items()}
    anchor["home"] = home
    own_apps = {c: rng.choice(ids, size=3, replace=False, p=popularity / popularity.sum())
                for c, ids in app_ids.items()}
    return _User(archetype, anchor, own_apps, float(rng.lognormal(0.0, 0.3)))


def _hourly_lines(rng: np.random.Generator, user_id: int, user: _User, days: int,
                  start: pd.Timestamp) -> list[str]:
    """The default generator: hour by hour, use by use (kept so that outputs never change)."""
    archetype, lines = user.archetype, []
    hour_weights = _hour_weights(archetype)
    activity = archetype.uses_per_day * user.spread
    for day in range(days):
        weekend = (start + pd.Timedelta(days=day)).dayofweek >= 5
        for hour in range(24):
            station = user.anchor[_place_kind(archetype, hour, weekend)]
            n_uses = rng.poisson(activity * hour_weights[hour])
            if n_uses == 0:
                continue
            cats = rng.choice(len(APP_CATEGORIES), size=n_uses,
                              p=_category_weights(archetype, hour))
            seconds = np.sort(rng.integers(0, 3600, size=n_uses))
            for cat, second in zip(cats, seconds):
                category = APP_CATEGORIES[cat]
                app = int(rng.choice(user.own_apps[category]))
                median = HEAVY_TRAFFIC.get(category, DEFAULT_TRAFFIC)
                traffic = int(rng.lognormal(np.log(median), 1.0))
                when = start + pd.Timedelta(days=day, hours=hour, seconds=int(second))
                lines.append(f"{user_id} {when:%Y%m%d%H%M%S} {station} {app} {traffic}")
    return lines


class _DenseWriter:
    """The vectorised generator behind ``events_per_day``: a user's whole history in a few
    array draws, written straight to the trace file as integers (no list of lines)."""

    def __init__(self, handle, days: int, start: pd.Timestamp):
        self.handle, self.days = handle, days
        dates = [start + pd.Timedelta(days=d) for d in range(days)]
        self.date_number = np.array([int(f"{d:%Y%m%d}") for d in dates], dtype=np.int64)
        self.weekend = np.array([d.dayofweek >= 5 for d in dates])
        self.log_median = np.log([HEAVY_TRAFFIC.get(c, DEFAULT_TRAFFIC)
                                  for c in APP_CATEGORIES])
        self.cdf: dict[str, np.ndarray] = {}  # archetype -> (24, categories) cumulative

    def _category_cdf(self, archetype: Archetype) -> np.ndarray:
        if archetype.name not in self.cdf:
            cdf = np.cumsum([_category_weights(archetype, h) for h in range(24)], axis=1)
            cdf[:, -1] = 1.0
            self.cdf[archetype.name] = cdf
        return self.cdf[archetype.name]

    def write_user(self, rng: np.random.Generator, user_id: int, user: _User,
                   activity: float) -> None:
        archetype = user.archetype
        per_hour = rng.poisson(np.broadcast_to(activity * _hour_weights(archetype),
                                               (self.days, 24)))
        hour_of_history = np.repeat(np.arange(self.days * 24), per_hour.ravel())
        n = len(hour_of_history)
        if n == 0:
            return
        hour = hour_of_history % 24
        cats = (rng.random(n)[:, None] >= self._category_cdf(archetype)[hour]).sum(axis=1)
        # sorting keeps every use inside its hour, in time order as the default generator does
        second = np.sort(hour_of_history * 3600 + rng.integers(0, 3600, size=n))
        places = np.array([[user.anchor[_place_kind(archetype, h, w)] for h in range(24)]
                           for w in (False, True)], dtype=np.int64)
        day = hour_of_history // 24
        station = places[self.weekend[day].astype(np.int64), hour]
        apps = np.stack([user.own_apps[c] for c in APP_CATEGORIES]).astype(np.int64)
        app = apps[cats, rng.integers(0, apps.shape[1], size=n)]
        traffic = rng.lognormal(self.log_median[cats], 1.0).astype(np.int64)
        of_day = second % 86400
        stamp = (self.date_number[day] * 1_000_000 + of_day // 3600 * 10_000
                 + of_day % 3600 // 60 * 100 + of_day % 60)
        table = np.column_stack([np.full(n, user_id), stamp, station, app, traffic])
        np.savetxt(self.handle, table, fmt="%d", delimiter=" ")


def simulate(n_users: int = 60, days: int = 7, seed: int = 0, out_dir: str | Path | None = None,
             apps_per_category: int = 6, stations_per_kind: int = 4,
             n_location_categories: int = 8,
             events_per_day: float | None = None) -> SimulatedPopulation:
    """Write a SIMULATED population in the Tsinghua format and read it back.

    Users cycle through ``ARCHETYPES`` (user i gets archetype i mod 7). Everything random comes
    from one ``numpy.random.Generator(seed)``.

    ``events_per_day`` sets the density: the expected number of app uses (trace rows) per user
    per day, averaged over the population. Archetypes keep their relative activity (a night
    gamer still uses 70/44 as much as the average) and users their log-normal spread; only the
    overall rate is scaled. ``None`` (the default) keeps the archetypes' own rates, about 45 a
    day, and the original hour-by-hour generator, so default outputs never change;
    ``TSINGHUA_EVENTS_PER_DAY`` (596) is the real trace's density, 4.17 M rows for 1,000 users
    over 7 days. A number selects a vectorised generator of the same model (its own random
    stream: same arguments, same files) that writes millions of rows in seconds.
    """
    if n_users < 1 or days < 1:
        raise ValueError("n_users and days must be at least 1")
    events_per_day = _check_events_per_day(events_per_day)
    rng = np.random.default_rng(seed)
    directory = Path(out_dir) if out_dir is not None else Path(
        tempfile.mkdtemp(prefix="uscope-sim-"))
    directory.mkdir(parents=True, exist_ok=True)

    # App catalogue: ids 1.., `apps_per_category` per category, Zipf popularity inside each.
    app_ids = {c: list(range(1 + i * apps_per_category, 1 + (i + 1) * apps_per_category))
               for i, c in enumerate(APP_CATEGORIES)}
    popularity = 1.0 / np.arange(1, apps_per_category + 1)
    stations = _stations(rng, stations_per_kind)
    by_kind = stations.groupby("_kind")["BaseID"].apply(list).to_dict()
    homes = by_kind["residential"] + by_kind["residential_mixed"]

    names = list(ARCHETYPES)
    kinds = [ARCHETYPES[names[user % len(names)]] for user in range(n_users)]
    archetypes = {str(user): archetype.name for user, archetype in enumerate(kinds)}
    start = pd.Timestamp(START_DATE)
    trace = directory / "App_Usage_Trace.txt"
    if events_per_day is None:
        lines: list[str] = []
        for user, archetype in enumerate(kinds):
            drawn = _draw_user(rng, archetype, by_kind, homes, app_ids, popularity)
            lines += _hourly_lines(rng, user, drawn, days, start)
        _write_lines(trace, lines)
        del lines
    else:
        # scale every archetype's rate so that the population's expected mean is the target
        # (the log-normal spread has mean exp(0.3^2 / 2))
        mean_rate = np.mean([a.uses_per_day for a in kinds]) * math.exp(0.3 ** 2 / 2)
        with trace.open("w", encoding="utf-8", newline="\n") as handle:
            writer = _DenseWriter(handle, days, start)
            for user, archetype in enumerate(kinds):
                drawn = _draw_user(rng, archetype, by_kind, homes, app_ids, popularity)
                writer.write_user(rng, user, drawn, archetype.uses_per_day * drawn.spread
                                  * events_per_day / mean_rate)
    _write_lines(directory / "App2Category.txt",
                 [f"{a}\t{i}" for i, c in enumerate(APP_CATEGORIES) for a in app_ids[c]])
    _write_lines(directory / "Categorys.txt",
                 [f"{i}\t'{c}'" for i, c in enumerate(APP_CATEGORIES)])
    poi = stations.drop(columns="_kind")
    _write_lines(directory / "base_poi.txt",
                 ["\t".join(poi.columns)] + ["\t".join(map(str, r)) for r in poi.to_numpy()])

    data = read_tsinghua(directory, n_location_categories=n_location_categories, seed=seed)
    data.locations.save(directory / "locations.json")
    return SimulatedPopulation(directory, data.events, archetypes, data.locations)
