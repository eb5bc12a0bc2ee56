"""Places and their categories.

The paper (Sec. 4, eq. 15) represents a user's location by "the clustered label of the surrounding
POIs" of the serving base station. ``fit_location_categories`` clusters places by their POI mix
(share of each POI type) and names each cluster by its dominant POI types; ``LocationMap`` holds
the place -> category mapping and is saved beside the data. GPS fixes first become places with
``cluster_gps_places``; ``poi_mix_near_places`` then counts POIs around each place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from uscope.data.schema import DataError

NO_POI_CATEGORY = "No POI data"
EARTH_RADIUS_M = 6_371_000.0


@dataclass
class LocationMap:
    """Place id -> location category, with each category's mean POI mix."""

    categories: dict[str, str]  # place id -> category name
    category_mix: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> POI shares

    @property
    def category_names(self) -> list[str]:
        return sorted(set(self.categories.values()))

    def assign(self, events: pd.DataFrame) -> pd.DataFrame:
        """Fill `location_category` from `location_id`; unknown places raise with their id."""
        events = events.copy()
        ids = events["location_id"]
        mapped = ids.map(self.categories)
        unknown = ids.notna() & mapped.isna()
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(f"location {ids.iloc[row]!r} is not in the location map",
                            line=row, field="location_id")
        events["location_category"] = mapped.astype("string")
        return events

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"categories": self.categories, "category_mix": self.category_mix}
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LocationMap:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(categories=payload["categories"], category_mix=payload["category_mix"])


def _category_name(mix: np.ndarray, poi_types: list[str], second_share: float = 0.1) -> str:
    """Name a cluster by its dominant POI type, plus the runner-up when it holds a real share."""
    first, second = np.argsort(-mix)[:2]
    if mix[second] >= second_share:
        return f"{poi_types[first]} & {poi_types[second]}"
    return poi_types[first]


def fit_location_categories(poi_counts: pd.DataFrame, n_categories: int = 10,
                            seed: int = 0) -> LocationMap:
    """Cluster places by POI mix into named categories (k-means on POI shares).

    `poi_counts`: index = place id, one column per POI type, non-negative counts. Places with
    no POI at all get the category ``NO_POI_CATEGORY``.
    """
    from sklearn.cluster import KMeans

    counts = poi_counts.to_numpy(dtype=float)
    if (counts < 0).any():
        raise DataError("POI counts must be non-negative", field=poi_counts.columns[0])
    poi_types = [str(c) for c in poi_counts.columns]
    ids = [str(i) for i in poi_counts.index]
    totals = counts.sum(axis=1)
    has_poi = totals > 0
    categories = {pid: NO_POI_CATEGORY for pid, ok in zip(ids, has_poi) if not ok}
    mixes: dict[str, dict[str, float]] = {}
    shares = counts[has_poi] / totals[has_poi, None]
    k = min(n_categories, len(np.unique(shares, axis=0))) if len(shares) else 0
    if k:
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(shares)
        names = [_category_name(c, poi_types) for c in km.cluster_centers_]
        # Two clusters dominated by the same types: the purer keeps the name, the others are
        # "mixed" (ordered by how much of their mix the dominant type holds).
        for name in set(names):
            same = [i for i, n in enumerate(names) if n == name]
            same.sort(key=lambda i: -km.cluster_centers_[i].max())
            for rank, i in enumerate(same[1:], start=1):
                names[i] = f"{name} (mixed)" if rank == 1 else f"{name} (mixed {rank})"
        for name, centre in zip(names, km.cluster_centers_):
            mixes[name] = {t: round(float(v), 4) for t, v in zip(poi_types, centre)}
        for pid, label in zip(np.asarray(ids)[has_poi], km.labels_):
            categories[str(pid)] = names[label]
    if not has_poi.all():
        mixes[NO_POI_CATEGORY] = {t: 0.0 for t in poi_types}
    return LocationMap(categories=categories, category_mix=mixes)


def _to_radians(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return np.radians(np.stack([lat, lon], axis=1))


def cluster_gps_places(events: pd.DataFrame, radius_m: float = 150.0,
                       min_fixes: int = 1, round_decimals: int | None = None) -> pd.DataFrame:
    """Group GPS fixes into places with DBSCAN (haversine distance, `radius_m` neighbourhood).

    Sets `location_id` to ``place_<n>`` for rows with coordinates; rows without coordinates keep
    their `location_id`. Returns a copy of the events and never drops rows. Identical
    coordinates are clustered once (weighted by how many fixes share them);
    ``round_decimals`` (4 = about 11 m) first rounds them for grouping only, which keeps
    DBSCAN's neighbourhoods small on months of fixes; the rows keep their exact coordinates.
    """
    from sklearn.cluster import DBSCAN

    events = events.copy()
    has_fix = events["latitude"].notna().to_numpy()
    if not has_fix.any():
        return events
    lat = events.loc[has_fix, "latitude"].to_numpy()
    lon = events.loc[has_fix, "longitude"].to_numpy()
    if round_decimals is not None:
        lat, lon = np.round(lat, round_decimals), np.round(lon, round_decimals)
    unique, inverse, weight = np.unique(np.stack([lat, lon], axis=1), axis=0,
                                        return_inverse=True, return_counts=True)
    unique_labels = DBSCAN(eps=radius_m / EARTH_RADIUS_M, min_samples=min_fixes,
                           metric="haversine", algorithm="ball_tree").fit_predict(
        _to_radians(unique[:, 0], unique[:, 1]), sample_weight=weight)
    labels = unique_labels[inverse.ravel()]
    # DBSCAN noise (-1, possible when min_fixes > 1) becomes a place of its own per fix
    next_label = labels.max() + 1
    for i in np.flatnonzero(labels < 0):
        labels[i], next_label = next_label, next_label + 1
    location = events["location_id"].astype("object").to_numpy().copy()
    location[has_fix] = [f"place_{label}" for label in labels]
    events["location_id"] = pd.array(location, dtype="string")
    return events


def place_centres(events: pd.DataFrame) -> pd.DataFrame:
    """Mean latitude/longitude of every place that has GPS fixes."""
    fixes = events.dropna(subset=["latitude", "location_id"])
    return fixes.groupby("location_id")[["latitude", "longitude"]].mean()


def poi_mix_near_places(centres: pd.DataFrame, pois: pd.DataFrame,
                        radius_m: float = 500.0) -> pd.DataFrame:
    """Count POIs of each type within `radius_m` of each place centre.

    `centres`: index = place id, columns latitude/longitude. `pois`: columns latitude, longitude,
    poi_type. Returns place id x POI type counts, ready for ``fit_location_categories``.
    """
    from sklearn.neighbors import BallTree

    for column in ("latitude", "longitude", "poi_type"):
        if column not in pois.columns:
            raise DataError("POI table needs columns latitude, longitude, poi_type",
                            field=column)
    types = sorted(pois["poi_type"].astype(str).unique())
    tree = BallTree(_to_radians(pois["latitude"].to_numpy(), pois["longitude"].to_numpy()),
                    metric="haversine")
    hits = tree.query_radius(_to_radians(centres["latitude"].to_numpy(),
                                                 centres["longitude"].to_numpy()),
                             r=radius_m / EARTH_RADIUS_M)
    poi_type = pois["poi_type"].astype(str).to_numpy()
    counts = np.zeros((len(centres), len(types)), dtype=np.int64)
    column_of = {t: j for j, t in enumerate(types)}
    for i, idx in enumerate(hits):
        for t in poi_type[idx]:
            counts[i, column_of[t]] += 1
    return pd.DataFrame(counts, index=centres.index, columns=types)
