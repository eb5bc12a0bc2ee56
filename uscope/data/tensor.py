"""The behaviour tensor X_u in R^{C x T x H x W} (seed paper 000, eq. 1) and its observed mask.

Channels (C), each group present only when the data has it (``channel_groups``):
- ``app``: one channel ``app:<category>`` per app category (uses in the slot and cell), when
  any event is an app use; events without an app never enter these channels;
- ``visit``: for location-only data (no event has an app), one channel ``visit:<category>``
  per place category (visits in the slot and cell): the intents of PITuning's Mobile setting
  (``uscope.data.items.intent_column``), e.g. Foursquare's 10 top-level categories;
- ``traffic``: bytes, when the data records traffic;
- ``location``: ``presence`` (1 when the user was seen in the cell), when it records places
  (with no place categories and spatial="categories", one cell: seen at a recorded place).
Counts respect ``uses`` (a row may stand for several uses). Time (T): ``n_slots`` slots of
``slot_minutes`` from ``start`` (15 min x 192 slots = two days, as in the paper); an untimed
table raises naming ``timestamp``. Space (H x W): location categories laid out row-major on a
near-square grid, or a latitude/longitude grid when the events carry coordinates.

Values are normalised per channel, v = log1p(x) / scale_c with scale_c = max log1p(x) over the
batch, so every entry lies in [0, 1]; ``denormalize`` maps back exactly. The observed mask
(T x H x W, broadcast over channels as the masks of eq. 28 are) marks the slots where the
data holds evidence about the user.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from uscope.data.schema import (
    DataError,
    has_apps,
    recorded_place,
    require_times,
    use_counts,
    validate_events,
)

UNKNOWN_PLACE = "Unknown place"
ANYWHERE = "anywhere"


@dataclass
class TensorConfig:
    slot_minutes: int = 15  # length of one time slot
    n_slots: int = 192  # T: 192 x 15 min = two days, as in the paper's datasets
    start: str | None = None  # first slot; None = midnight of the earliest event
    spatial: Literal["categories", "latlon", "clusters"] = "categories"
    grid: tuple[int, int] | None = None  # (H, W); None = near-square fit (categories), 8x8 latlon
    # spatial="clusters": the H*W centres (lat, lon); None = k-means fitted on the events' places
    cluster_centres: list[tuple[float, float]] | None = None
    observed: Literal["active_slots", "all"] = "active_slots"
    app_categories: list[str] | None = None  # fixed channel order; None = sorted from the data
    location_categories: list[str] | None = None  # fixed cell (and visit channel) order

    def __post_init__(self) -> None:
        if self.slot_minutes <= 0 or self.n_slots <= 0:
            raise ValueError("slot_minutes and n_slots must be positive")
        if self.spatial not in ("categories", "latlon", "clusters"):
            raise ValueError("spatial must be 'categories', 'latlon' or 'clusters', got "
                             f"{self.spatial!r}")
        if self.observed not in ("active_slots", "all"):
            raise ValueError(f"observed must be 'active_slots' or 'all', got {self.observed!r}")


@dataclass
class BehaviourTensors:
    """A batch of behaviour tensors with everything needed to read them back."""

    values: np.ndarray  # (N, C, T, H, W) float32 in [0, 1]
    observed_mask: np.ndarray  # (N, T, H, W) float32 in {0, 1}
    user_ids: list[str]
    channel_names: list[str]
    cell_names: list[str]  # length H * W, row-major; "" for padding cells
    scale: np.ndarray  # (C,) per-channel normalisation, v = log1p(x) / scale
    start: str  # ISO time of slot 0
    config: TensorConfig
    channel_groups: dict[str, list[int]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    def denormalize(self, values: np.ndarray) -> np.ndarray:
        """Map normalised values (..., C, T, H, W) back to counts, bytes and presence."""
        scale = self.scale.reshape(-1, 1, 1, 1)
        return np.expm1(np.asarray(values, dtype=np.float64) * scale)

    def user(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """One user's (values (C, T, H, W), observed_mask (T, H, W))."""
        try:
            i = self.user_ids.index(str(user_id))
        except ValueError:
            raise KeyError(f"user {user_id!r} is not in this tensor batch") from None
        return self.values[i], self.observed_mask[i]

    def as_torch(self):
        """(values, observed_mask) as float32 torch tensors."""
        import torch

        return torch.from_numpy(self.values), torch.from_numpy(self.observed_mask)

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz arrays) and ``path`` + ``.json`` (names, scale, config)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, values=self.values, observed_mask=self.observed_mask,
                            scale=self.scale)
        meta = {"user_ids": self.user_ids, "channel_names": self.channel_names,
                "cell_names": self.cell_names, "start": self.start,
                "channel_groups": self.channel_groups, "config": asdict(self.config)}
        Path(str(path) + ".json").write_text(json.dumps(meta, ensure_ascii=False),
                                             encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BehaviourTensors:
        path = Path(path)
        arrays = np.load(path)
        meta = json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
        config = meta["config"]
        if config.get("grid") is not None:
            config["grid"] = tuple(config["grid"])
        return cls(values=arrays["values"], observed_mask=arrays["observed_mask"],
                   user_ids=meta["user_ids"], channel_names=meta["channel_names"],
                   cell_names=meta["cell_names"], scale=arrays["scale"], start=meta["start"],
                   config=TensorConfig(**config), channel_groups=meta["channel_groups"])


def near_square_grid(n_cells: int) -> tuple[int, int]:
    """Smallest (H, W) with H <= W, H * W >= n_cells and W - H <= 1."""
    height = max(1, math.isqrt(max(n_cells, 1)))
    width = math.ceil(max(n_cells, 1) / height)
    while height * width < n_cells:
        width += 1
    return height, width


def _factorize(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(code of each row, -1 when missing; the distinct values as str) without a Python
    string per row: the table's own string array is hashed once."""
    codes, uniques = pd.factorize(column)
    return codes, [str(value) for value in uniques]


def _recode(codes: np.ndarray, present: list[str], names: list[str],
            missing: int = -1) -> np.ndarray:
    """Codes into `present` -> int32 positions in `names` (which holds every present value);
    code -1 (a missing value) -> `missing`."""
    position = {name: i for i, name in enumerate(names)}
    lookup = np.array([position[value] for value in present] + [missing], dtype=np.int32)
    return lookup[codes]  # code -1 picks the trailing entry


def _cells_from_categories(events: pd.DataFrame, config: TensorConfig
                           ) -> tuple[np.ndarray, list[str], tuple[int, int]]:
    has_places = events["location_category"].notna().any()
    if not has_places:
        names = [ANYWHERE]
        index = np.zeros(len(events), dtype=np.int32)
    else:
        codes, present = _factorize(events["location_category"])
        if (codes < 0).any() and UNKNOWN_PLACE not in present:
            present.append(UNKNOWN_PLACE)  # events without a place get a cell of their own
        names = list(config.location_categories or sorted(present))
        missing = sorted(set(present) - set(names))
        if missing and missing != [UNKNOWN_PLACE]:
            raise DataError(f"location categories {missing} are not in "
                            f"TensorConfig.location_categories", field="location_category")
        names += missing
        index = _recode(codes, present, names, missing=names.index(UNKNOWN_PLACE)
                        if UNKNOWN_PLACE in names else -1)
    grid = config.grid or near_square_grid(len(names))
    if grid[0] * grid[1] < len(names):
        raise ValueError(f"grid {grid} has fewer cells than the {len(names)} location categories")
    return index, names + [""] * (grid[0] * grid[1] - len(names)), grid


def _cells_from_latlon(events: pd.DataFrame, config: TensorConfig
                       ) -> tuple[np.ndarray, list[str], tuple[int, int]]:
    lat, lon = _coordinates(events, "latlon")
    height, width = config.grid or (8, 8)

    def bins(x: np.ndarray, n: int) -> np.ndarray:
        low, high = x.min(), x.max()
        span = high - low if high > low else 1.0
        return np.clip(((x - low) / span * n).astype(np.int64), 0, n - 1)

    row, col = height - 1 - bins(lat, height), bins(lon, width)  # north at the top
    names = [f"r{r}c{c}" for r in range(height) for c in range(width)]
    return row * width + col, names, (height, width)


def _coordinates(events: pd.DataFrame, spatial: str) -> tuple[np.ndarray, np.ndarray]:
    for column in ("latitude", "longitude"):
        if events[column].isna().any():
            row = int(np.flatnonzero(events[column].isna().to_numpy())[0])
            raise DataError(f"spatial={spatial!r} needs coordinates on every event", line=row,
                            field=column)
    return events["latitude"].to_numpy(), events["longitude"].to_numpy()


def fit_place_clusters(lat: np.ndarray, lon: np.ndarray, n_clusters: int,
                       seed: int = 0) -> list[tuple[float, float]]:
    """k-means centres of the distinct (lat, lon) places, north to south then west to east.

    Distances are taken with longitude scaled by cos(mean latitude), so a cluster is round on
    the ground; every distinct place counts once, however often it is visited. Events are then
    assigned to the nearest stored centre (longitude scaled by the centres' mean latitude):
    the cells are the Voronoi cells of the centres, whatever table they are applied to.
    """
    from sklearn.cluster import KMeans

    places = np.unique(np.column_stack([lat, lon]), axis=0)
    if len(places) < n_clusters:
        raise DataError(f"{n_clusters} place clusters need at least as many distinct places; "
                        f"the events have {len(places)}", field="latitude")
    squash = math.cos(math.radians(float(places[:, 0].mean())))
    km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
    km.fit(places * [1.0, squash])
    centres = km.cluster_centers_ / [1.0, squash]
    order = np.lexsort((centres[:, 1].round(6), -centres[:, 0].round(6)))
    return [(float(a), float(b)) for a, b in centres[order]]


def _cells_from_clusters(events: pd.DataFrame, config: TensorConfig
                         ) -> tuple[np.ndarray, list[str], tuple[int, int]]:
    lat, lon = _coordinates(events, "clusters")
    height, width = config.grid or (3, 3)
    if config.cluster_centres is None:
        config.cluster_centres = fit_place_clusters(lat, lon, height * width)
    centres = np.asarray(config.cluster_centres, dtype=np.float64)
    if len(centres) != height * width:
        raise ValueError(f"{len(centres)} cluster centres for a {height}x{width} grid")
    squash = math.cos(math.radians(float(centres[:, 0].mean())))
    cell = np.empty(len(lat), dtype=np.int64)
    for lo in range(0, len(lat), 65536):   # nearest centre, in blocks: (block, k) distances
        d_lat = lat[lo:lo + 65536, None] - centres[None, :, 0]
        d_lon = (lon[lo:lo + 65536, None] - centres[None, :, 1]) * squash
        cell[lo:lo + 65536] = np.argmin(d_lat ** 2 + d_lon ** 2, axis=1)
    return cell, [f"k{i}" for i in range(height * width)], (height, width)


def _category_channels(events: pd.DataFrame, config: TensorConfig
                       ) -> tuple[str, list[str], np.ndarray]:
    """(group, category names, channel of each event or -1) of the event-kind channels:
    app categories when any event is an app use, else place categories (visits)."""
    if has_apps(events):
        group, column, fixed, field_name = "app", "app_category", config.app_categories, \
            "app_categories"
    else:
        group, column, fixed, field_name = "visit", "location_category", \
            config.location_categories, "location_categories"
    codes, present = _factorize(events[column])
    names = list(fixed or sorted(present))
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise DataError(f"{column.replace('_', ' ')} values {unknown} are not in "
                        f"TensorConfig.{field_name}", field=column)
    return group, names, _recode(codes, present, names)  # -1: no app (or category) on the event


SPATIAL_CELLS = {"categories": _cells_from_categories, "latlon": _cells_from_latlon,
                 "clusters": _cells_from_clusters}


def build_tensors(events: pd.DataFrame, config: TensorConfig | None = None) -> BehaviourTensors:
    """Build X_u (eq. 1) and the observed mask for every user in the event table."""
    config = config or TensorConfig()
    # row order does not matter here (sums of whole counts and bytes are exact in any order)
    events = validate_events(events, sort=False)
    if events.empty:
        raise DataError("cannot build tensors from an empty event table")
    require_times(events, "build_tensors (the time axis T of X_u)")
    slot = pd.Timedelta(minutes=config.slot_minutes)
    start = (pd.Timestamp(config.start) if config.start is not None
             else events["timestamp"].min().normalize())
    slot_index = ((events["timestamp"] - start) // slot).to_numpy(dtype=np.int64)
    inside = (slot_index >= 0) & (slot_index < config.n_slots)

    config = replace(config)   # a copy: fitted cluster centres go into the result's config
    cells, cell_names, (height, width) = SPATIAL_CELLS[config.spatial](events, config)
    group, category_names, category_channel = _category_channels(events, config)
    channels = [f"{group}:{name}" for name in category_names]
    groups = {group: list(range(len(category_names)))} if category_names else {}
    has_traffic = events["traffic_bytes"].notna().any()
    if has_traffic:
        groups["traffic"] = [len(channels)]
        channels.append("traffic")
    placed_cells = config.spatial != "categories" or cell_names[0] != ANYWHERE
    placed = recorded_place(events)  # (n,) bool
    has_places = placed_cells or bool(placed.any())
    if has_places:
        groups["location"] = [len(channels)]
        channels.append("presence")

    codes, present = _factorize(events["user_id"])
    user_ids = sorted(present)
    user_index = _recode(codes, present, user_ids)
    del codes
    n_users, n_cells, n_slots = len(user_ids), height * width, config.n_slots
    # Memory: the float32 result is filled in place, one channel at a time from a float64
    # (N, T, cells) slab (exact sums, then the same float64 log1p and scaling as ever); the
    # events only need a few integer arrays: the dense float64 (N, C, T, cells) is never made.
    flat = user_index.astype(np.int64) * n_slots  # becomes (user, slot, cell), in place
    del user_index
    flat += slot_index
    del slot_index
    all_inside = bool(inside.all())
    observed = np.full(n_users * n_slots, float(config.observed == "all"), dtype=np.float32)
    observed[flat if all_inside else flat[inside]] = 1.0
    flat *= n_cells
    flat += cells
    del cells

    def keep(array: np.ndarray) -> np.ndarray:
        return array if all_inside else array[inside]

    slab = keep(flat)
    del flat
    values = np.zeros((n_users, len(channels), n_slots, n_cells), dtype=np.float32)
    scale = np.ones(len(channels))
    slab_size = n_users * n_slots * n_cells

    def fill(c: int, counts: np.ndarray) -> None:
        """Normalise one channel's raw counts (N * T * cells) into ``values`` in place."""
        logs = np.log1p(counts, out=counts) if counts.dtype == np.float64 else np.log1p(counts)
        top = logs.max()
        if top > 0:
            scale[c] = top
        values[:, c] = np.divide(logs, scale[c], out=logs).reshape(n_users, n_slots, n_cells)

    uses = keep(use_counts(events)) if events["uses"].notna().any() else None
    channel = keep(category_channel)  # -1: no app (or category): enters no category channel
    del category_channel
    for c in range(len(category_names)):
        pick = channel == c
        fill(c, np.bincount(slab[pick], weights=None if uses is None else uses[pick],
                            minlength=slab_size))
    del uses, channel
    if has_traffic:
        traffic = keep(events["traffic_bytes"].fillna(0).to_numpy(dtype=np.float64))
        fill(groups["traffic"][0], np.bincount(slab, weights=traffic, minlength=slab_size))
        del traffic
    if has_places:  # without place cells ("anywhere"), only events that record a place
        seen = np.zeros(slab_size)
        seen[slab if placed_cells else slab[keep(placed)]] = 1.0
        fill(groups["location"][0], seen)
    observed_mask = np.repeat(observed.reshape(n_users, n_slots, 1), n_cells, axis=2)
    shape = (n_users, len(channels), config.n_slots, height, width)
    return BehaviourTensors(
        values=values.reshape(shape),  # (N, C, T, H, W), a view: no copy
        observed_mask=observed_mask.reshape(n_users, n_slots, height, width),
        user_ids=[str(x) for x in user_ids], channel_names=channels, cell_names=cell_names,
        scale=scale, start=start.isoformat(), config=config,
        channel_groups=groups,
    )
