"""Fidelity of synthetic data, eq. 26 and Fig. 5 of seed paper 000 (RQ3).

E_{H_u^aug}[Corr(a, l)] ~= Corr_real(a, l)   (eq. 26)

measured on the app-category x location-category usage distribution: for every location
category, the share of each app category among the events there (``normalise="location"``,
each row sums to 1: "usage across location contexts", Fig. 5a), or the joint shares of all cells
(``"joint"``). Generated and real distributions are compared cell by cell with MAE, RMSE, R^2
(real as the reference) and Pearson r with its two-sided p-value (Fig. 5b). The association
itself, Corr(a, l), is also reported on both sides as Cramer's V of the contingency table.

Place check-ins without apps (Foursquare) have no app axis: ``against="hour"`` puts the hour of
day, in bins of ``hour_bin`` hours, in its place (the place-category x hour distribution).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uscope.data.schema import DataError

NORMALISATIONS = ("location", "joint")
AXES = ("app_category", "hour")


def hour_labels(stamps: pd.Series, hour_bin: int) -> pd.Series:
    """Hour of day in bins of ``hour_bin`` hours, as ``"06-09h"`` labels (sortable)."""
    if not 1 <= hour_bin <= 24 or 24 % hour_bin:
        raise ValueError(f"hour_bin must divide 24, got {hour_bin}")
    if stamps.isna().any():
        raise DataError("the hour axis needs event times, and some events have none",
                        field="timestamp")
    start = pd.to_datetime(stamps).dt.hour // hour_bin * hour_bin
    return start.map(lambda h: f"{h:02d}-{h + hour_bin:02d}h")


def contingency(events: pd.DataFrame, source: str = "events", against: str = "app_category",
                hour_bin: int = 3) -> pd.DataFrame:
    """Event counts, rows = location categories, columns = app categories or hour bins.
    Rows without a place are left out, and so are place observations without an app when the
    table has app uses (synthesis generates app uses there, never bare place fixes)."""
    if against not in AXES:
        raise ValueError(f"against must be one of {AXES}, got {against!r}")
    if against == "app_category" and not events["app"].notna().any():
        raise DataError("no event has an app; eq. 26 needs app-location pairs (place "
                        "check-ins: against='hour')", source=source, field="app")
    if events["app"].notna().any():
        events = events[events["app"].notna()]
    placed = events[events["location_category"].notna()]
    if placed.empty:
        raise DataError("no event has a location_category; eq. 26 needs places",
                        source=source, field="location_category")
    columns = placed["app_category"].astype(str) if against == "app_category" else \
        hour_labels(placed["timestamp"], hour_bin)
    table = pd.crosstab(placed["location_category"].astype(str), columns)
    table.index.name, table.columns.name = "location_category", against
    return table


def usage_distribution(events: pd.DataFrame, normalise: str = "location",
                       source: str = "events", against: str = "app_category",
                       hour_bin: int = 3) -> pd.DataFrame:
    """Shares of app categories (or hour bins) per location category (rows sum to 1) or
    joint shares."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    table = contingency(events, source, against, hour_bin).astype(float)
    if normalise == "location":
        return table.div(table.sum(axis=1), axis=0)
    return table / table.to_numpy().sum()


def cramers_v(events: pd.DataFrame, source: str = "events", against: str = "app_category",
              hour_bin: int = 3) -> float:
    """Cramer's V of (app category or hour, location category): Corr(a, l) of eq. 26, in
    [0, 1]."""
    from scipy.stats import chi2_contingency

    table = contingency(events, source, against, hour_bin).to_numpy()
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    k = min(table.shape) - 1
    if k < 1:
        return 0.0
    chi2 = chi2_contingency(table, correction=False)[0]
    return float(np.sqrt(chi2 / (table.sum() * k)))


@dataclass
class Fidelity:
    """Cell-wise agreement of generated and real usage distributions (eq. 26, Fig. 5)."""

    real: pd.DataFrame        # aligned distributions (rows x columns)
    generated: pd.DataFrame
    mae: float
    rmse: float
    r2: float
    pearson_r: float
    p_value: float
    association_real: float
    association_generated: float
    normalise: str
    against: str = "app_category"
    rows_missing: list[str] = field(default_factory=list)  # real places never generated

    @property
    def n_cells(self) -> int:
        return int(self.real.size)

    def difference(self) -> pd.DataFrame:
        """Generated - real, cell by cell (Fig. 5a)."""
        return self.generated - self.real

    def as_dict(self) -> dict[str, float | int | str]:
        return {"MAE": self.mae, "RMSE": self.rmse, "R2": self.r2, "pearson_r": self.pearson_r,
                "p_value": self.p_value, "cells": self.n_cells,
                "cramers_v_real": self.association_real,
                "cramers_v_generated": self.association_generated,
                "normalise": self.normalise, "against": self.against,
                "rows_missing": len(self.rows_missing)}


def agreement(real: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R^2 (real = reference) and Pearson r with p-value over matching cells."""
    from scipy.stats import pearsonr

    real, generated = np.asarray(real, float).ravel(), np.asarray(generated, float).ravel()
    if real.shape != generated.shape or real.size < 2:
        raise ValueError(f"need two equal-length vectors of >= 2 cells, got {real.size} and "
                         f"{generated.size}")
    error = generated - real
    total = float(np.sum((real - real.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error ** 2)) / total if total > 0 else float("nan")
    if np.ptp(real) == 0 or np.ptp(generated) == 0:
        r, p = float("nan"), float("nan")
    else:
        result = pearsonr(real, generated)
        r, p = float(result.statistic), float(result.pvalue)
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "r2": r2, "pearson_r": r, "p_value": p}


def fidelity(real: pd.DataFrame, generated: pd.DataFrame, normalise: str = "location",
             against: str = "app_category", hour_bin: int = 3) -> Fidelity:
    """Eq. 26 on the usage distributions of ``real`` and ``generated`` event tables.

    Columns are the union of app categories or hour bins (absent = 0). With
    ``normalise="location"`` a row
    is only defined where the place category has events, so rows are the location categories
    present on both sides; real ones never generated are listed in ``rows_missing``.
    """
    axis = {"against": against, "hour_bin": hour_bin}
    real_dist = usage_distribution(real, normalise, "real events", **axis)
    gen_dist = usage_distribution(generated, normalise, "generated events", **axis)
    columns = sorted(set(real_dist.columns) | set(gen_dist.columns))
    if normalise == "location":
        rows = [r for r in real_dist.index if r in gen_dist.index]
        missing = [r for r in real_dist.index if r not in gen_dist.index]
    else:
        rows, missing = sorted(set(real_dist.index) | set(gen_dist.index)), []
    if not rows:
        raise DataError("generated and real events share no location category",
                        field="location_category")
    real_aligned = real_dist.reindex(index=rows, columns=columns, fill_value=0.0)
    gen_aligned = gen_dist.reindex(index=rows, columns=columns, fill_value=0.0)
    scores = agreement(real_aligned.to_numpy(), gen_aligned.to_numpy())
    return Fidelity(real_aligned, gen_aligned, normalise=normalise, against=against,
                    rows_missing=missing, association_real=cramers_v(real, "real events", **axis),
                    association_generated=cramers_v(generated, "generated events", **axis),
                    **scores)
