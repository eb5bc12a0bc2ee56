"""Event sequences for next-intent prediction (PITuning eq. 1).

A behaviour is x_i = (l_i, w_i, t_i, e_i): location, weekday, time slot and event; its intent
y_i is the category of the event. ``build_sequences`` turns the validated event table into one
ordered sequence per user; ``build_samples`` cuts every target position into a window of the
last ``input_length`` events (eq. 1: y_t = f(x_{t-I}, ..., x_{t-1})).

Settings: "Honor" (event = app, intent = app category; the default) and "Mobile" (event = place,
intent = place category); ``intent_setting`` picks the one the events support by the intent
rule of ``uscope.data.items.intent_column``. A row without the setting's event and intent
(a place observation under Honor, an app use without a place under Mobile) is not a behaviour
of that setting and is left out; a row with the event but no intent raises. Events are collapsed to one per (user, calendar slot, event): the
first use of each event in each slot. Data without a location field gets one constant location.
Windows are right-padded (real events first, pad id 0 after), so a causal backbone never lets a
real position attend to padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch

from uscope.data.items import intent_column
from uscope.data.schema import DataError, require_times

PAD, UNK, MASK = 0, 1, 2  # event ids; locations use PAD and UNK only
NO_LOCATION = "<none>"
WITHIN_SLOT_BINS = 6      # ages inside the query's own slot, in sixths of a slot


def n_age_buckets(n_slots: int) -> int:
    """Size of the age vocabulary: pad, the within-slot bins, 1 .. n_slots slots ago, older."""
    return 1 + WITHIN_SLOT_BINS + n_slots + 1


def age_bucket(query_start_s: np.ndarray, event_s: np.ndarray, slot_minutes: int) -> np.ndarray:
    """Bucket ids (>= 1) of each event's age relative to the start of the query's slot.

    An event inside the query's slot (at or after its start) falls in one of
    ``WITHIN_SLOT_BINS`` bins by how far into the slot it happened; an earlier one by how many
    slots before the query it happened (ceil), capped at one day.
    """
    slot_s = 60.0 * slot_minutes
    n_slots = 24 * 60 // slot_minutes
    delta = query_start_s - event_s
    within = 1 + np.clip(np.floor(-delta / (slot_s / WITHIN_SLOT_BINS)), 0, WITHIN_SLOT_BINS - 1)
    before = WITHIN_SLOT_BINS + np.clip(np.ceil(delta / slot_s), 1, n_slots + 1)
    return np.where(delta <= 0, within, before).astype(np.int64)


@dataclass
class IntentDataConfig:
    """Which event-table columns form (l, w, t, e) and the intent, and the window length I."""

    event_field: str = "app"              # e: "app" (Honor setting) or "location_id" (Mobile)
    intent_field: str = "app_category"    # y: category of the event
    location_field: str | None = "location_id"  # l; null values become NO_LOCATION
    input_length: int = 30                # I of eq. 1
    slot_minutes: int = 60                # t: time-of-day slot width
    min_history: int = 1                  # a target needs at least this many past events


HONOR = IntentDataConfig()
MOBILE = IntentDataConfig(event_field="location_id", intent_field="location_category",
                          location_field="location_id", slot_minutes=60)


def intent_setting(events: pd.DataFrame, **overrides) -> IntentDataConfig:
    """HONOR when any event is an app use, else MOBILE (event = place, intent = place
    category), with `overrides` (e.g. ``input_length``) applied."""
    return replace(HONOR if intent_column(events) == "app_category" else MOBILE, **overrides)


@dataclass
class IntentVocab:
    """Index maps for events, intents and locations (a fixed label space, saved with models)."""

    events: list[str]
    intents: list[str]
    locations: list[str]
    n_slots: int

    @classmethod
    def fit(cls, events: pd.DataFrame, config: IntentDataConfig) -> IntentVocab:
        table = _columns(events, config, source="events")
        return cls(events=sorted(table["event"].unique().tolist()),
                   intents=sorted(table["intent"].unique().tolist()),
                   locations=sorted(table["location"].unique().tolist()),
                   n_slots=24 * 60 // config.slot_minutes)

    @property
    def n_events(self) -> int:    # with PAD, UNK, MASK
        return len(self.events) + 3

    @property
    def n_locations(self) -> int:  # with PAD, UNK
        return len(self.locations) + 2

    @property
    def n_intents(self) -> int:
        return len(self.intents)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IntentSequences:
    """Per-user ordered behaviours in CSR layout: user k owns rows offsets[k]:offsets[k+1]."""

    user_ids: list[str]
    offsets: np.ndarray   # (U + 1,) int64
    event: np.ndarray     # (M,) int64 event id
    intent: np.ndarray    # (M,) int64 intent id
    location: np.ndarray  # (M,) int64 location id
    slot: np.ndarray      # (M,) int64 slot of day, 0-based
    weekday: np.ndarray   # (M,) int64 Monday = 0
    time_s: np.ndarray    # (M,) float64 seconds since the epoch (local wall clock)

    def user_slice(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))


def _columns(events: pd.DataFrame, config: IntentDataConfig, source: str) -> pd.DataFrame:
    """The (user, time, event, intent, location) columns, with a clear error for gaps."""
    needed = ["user_id", "timestamp", config.event_field, config.intent_field]
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise DataError(f"event table lacks column(s) {missing} needed for intents",
                        source=source, field=missing[0])
    require_times(events, "intent sequences (slots and weekdays of eq. 1)")
    # a row with neither the event nor the intent is no behaviour of this setting
    absent = (events[config.event_field].isna() & events[config.intent_field].isna()).to_numpy()
    if len(events) and absent.all():
        raise DataError(f"no row has {config.event_field!r}: this intent setting needs it "
                        "(intent_setting(events) picks the setting the data supports)",
                        source=source, field=config.event_field)
    for name in (config.event_field, config.intent_field):
        bad = events[name].isna().to_numpy() & ~absent
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{int(bad.sum())} row(s) have no {name}; the intent setting "
                            f"needs it on every row", source=source, line=row, field=name)
    events = events[~absent]
    if config.location_field is not None and config.location_field in events.columns:
        location = events[config.location_field].astype("string").fillna(NO_LOCATION)
    else:
        location = pd.Series(NO_LOCATION, index=events.index, dtype="string")
    return pd.DataFrame({
        "user_id": events["user_id"].astype("string").to_numpy(),
        "timestamp": events["timestamp"].to_numpy(),
        "event": events[config.event_field].astype("string").to_numpy(),
        "intent": events[config.intent_field].astype("string").to_numpy(),
        "location": location.to_numpy(),
    })


def _index(values: np.ndarray, vocab: list[str], offset: int, unknown: int | None,
           name: str, source: str) -> np.ndarray:
    lookup = {v: i + offset for i, v in enumerate(vocab)}
    ids = np.array([lookup.get(v, -1) for v in values], dtype=np.int64)
    if unknown is not None:
        return np.where(ids < 0, unknown, ids)
    if (ids < 0).any():
        row = int(np.flatnonzero(ids < 0)[0])
        raise DataError(f"{name} {values[row]!r} is not in the model's vocabulary "
                        f"({len(vocab)} known)", source=source, line=row, field=name)
    return ids


def build_sequences(events: pd.DataFrame, config: IntentDataConfig, vocab: IntentVocab,
                    source: str = "events") -> IntentSequences:
    """One ordered behaviour sequence per user: first use of each event per calendar slot."""
    table = _columns(events, config, source)
    stamps = pd.to_datetime(table["timestamp"])
    minutes = stamps.dt.hour * 60 + stamps.dt.minute
    table["slot"] = (minutes // config.slot_minutes).astype(np.int64)
    table["day"] = stamps.dt.normalize()
    table = table.sort_values(["user_id", "timestamp"], kind="stable")
    table = table.drop_duplicates(["user_id", "day", "slot", "event"], keep="first")
    users, starts = np.unique(table["user_id"].to_numpy(), return_index=True)
    order = np.argsort(starts)
    users, starts = users[order], starts[order]
    stamps = pd.to_datetime(table["timestamp"])
    return IntentSequences(
        user_ids=[str(u) for u in users],
        offsets=np.append(starts, len(table)).astype(np.int64),
        event=_index(table["event"].to_numpy(), vocab.events, 3, UNK, "event", source),
        intent=_index(table["intent"].to_numpy(), vocab.intents, 0, None, "intent", source),
        location=_index(table["location"].to_numpy(), vocab.locations, 2, UNK, "location",
                        source),
        slot=table["slot"].to_numpy(np.int64),
        weekday=stamps.dt.weekday.to_numpy(np.int64),
        time_s=(stamps - pd.Timestamp(0)).dt.total_seconds().to_numpy(np.float64),
    )


@dataclass
class IntentSamples:
    """Windows of the last I behaviours before each target (eq. 1), right-padded with 0."""

    location: torch.Tensor  # (N, I) long
    weekday: torch.Tensor   # (N, I) long, 1..7 (0 = pad)
    slot: torch.Tensor      # (N, I) long, 1..n_slots (0 = pad)
    event: torch.Tensor     # (N, I) long
    intent_history: torch.Tensor  # (N, I) long intents of the window, -1 = pad
    length: torch.Tensor    # (N,) long number of real events in the window
    target: torch.Tensor    # (N,) long intent id of the next behaviour
    user: torch.Tensor      # (N,) long index into IntentSequences.user_ids
    position: torch.Tensor  # (N,) long row of the target in the CSR arrays
    # the time of the prediction: the target's weekday and slot (1-based like the window's)
    # and each event's age relative to the start of that slot (``age_bucket``, 0 = pad);
    # read by models with ``query_time`` (the baselines' "current time t" of Appendix E)
    query_weekday: torch.Tensor  # (N,) long
    query_slot: torch.Tensor     # (N,) long
    age: torch.Tensor            # (N, I) long

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> IntentSamples:
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = torch.nonzero(index).squeeze(1)
        return IntentSamples(**{name: getattr(self, name)[index] for name in _TENSORS})

    def inputs(self) -> dict[str, torch.Tensor]:
        """The model's keyword inputs (window tensors, length and the query time)."""
        return {name: getattr(self, name) for name in _INPUTS}

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """Yield sub-samples of ``batch_size``: shuffled when a generator is given."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, batch_size):
            yield self.subset(order[start:start + batch_size])


_INPUTS = ("location", "weekday", "slot", "event", "length", "query_weekday", "query_slot",
           "age")
_TENSORS = _INPUTS + ("intent_history", "target", "user", "position")


def _windows(seqs: IntentSequences, pos: np.ndarray, owner: np.ndarray, size: int,
             target: np.ndarray, query_s: np.ndarray, slot_minutes: int) -> IntentSamples:
    """Right-padded windows of the (up to) ``size`` behaviours before each row ``pos``;
    ``query_s`` (seconds, local clock) are the times the predictions are for."""
    start = np.maximum(pos - size, seqs.offsets[owner])
    length = pos - start
    steps = np.arange(size)[None, :]                         # (1, I)
    real = steps < length[:, None]                           # (N, I)
    rows = np.where(real, start[:, None] + steps, 0)         # (N, I)

    def window(values: np.ndarray, shift: int, pad: int) -> torch.Tensor:
        return torch.from_numpy(np.where(real, values[rows] + shift, pad))

    slot_s = 60.0 * slot_minutes
    query_start = np.floor(np.asarray(query_s, dtype=np.float64) / slot_s) * slot_s  # (N,)
    query_stamp = np.asarray(query_start, dtype="datetime64[s]")
    query_weekday = (query_stamp.astype("datetime64[D]").view("int64") - 4) % 7  # Monday = 0
    query_slot = (query_start % 86400.0) // slot_s
    ages = age_bucket(query_start[:, None], seqs.time_s[rows], slot_minutes)
    return IntentSamples(
        location=window(seqs.location, 0, PAD), weekday=window(seqs.weekday, 1, 0),
        slot=window(seqs.slot, 1, 0), event=window(seqs.event, 0, PAD),
        intent_history=window(seqs.intent, 0, -1), length=torch.from_numpy(length),
        target=torch.from_numpy(target), user=torch.from_numpy(owner),
        position=torch.from_numpy(pos),
        query_weekday=torch.from_numpy(query_weekday.astype(np.int64) + 1),
        query_slot=torch.from_numpy(query_slot.astype(np.int64) + 1),
        age=torch.from_numpy(np.where(real, ages, 0)))


def build_samples(seqs: IntentSequences, config: IntentDataConfig,
                  users: list[int] | None = None) -> IntentSamples:
    """Every position with >= min_history past behaviours becomes one sample (eq. 1)."""
    users = range(len(seqs.user_ids)) if users is None else users
    targets, owners = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for k in users:
        part = seqs.user_slice(k)
        first = part.start + max(config.min_history, 1)
        targets.append(np.arange(first, part.stop, dtype=np.int64))
        owners.append(np.full(max(part.stop - first, 0), k, dtype=np.int64))
    pos, owner = np.concatenate(targets), np.concatenate(owners)
    return _windows(seqs, pos, owner, config.input_length, seqs.intent[pos], seqs.time_s[pos],
                    config.slot_minutes)


def latest_windows(seqs: IntentSequences, config: IntentDataConfig,
                   at: pd.Timestamp | str | None = None) -> IntentSamples:
    """One window per user: the last I behaviours, for predicting the next, unseen intent
    (target = -1, position = one past the user's last row).

    ``at`` is the time the prediction is for (its weekday and slot are the query time); by
    default each user's last recorded slot, i.e. "what comes next, right now".
    """
    owner = np.arange(len(seqs.user_ids), dtype=np.int64)
    pos = seqs.offsets[1:].astype(np.int64)
    if at is None:
        query_s = seqs.time_s[np.maximum(pos - 1, 0)]
    else:
        query_s = np.full(len(owner), (pd.Timestamp(at) - pd.Timestamp(0)).total_seconds())
    return _windows(seqs, pos, owner, config.input_length, np.full(len(owner), -1, np.int64),
                    query_s, config.slot_minutes)


def split_users(n_users: int, n_individual: int, seed: int = 0,
                fold: int = 0) -> tuple[list[int], list[int]]:
    """(population users, held-out individual users), drawn with an explicit generator.

    ``fold`` picks the held-out block of one seeded permutation: folds 0, 1, ... hold out
    disjoint sets of ``n_individual`` users (device-level cross-validation); fold 0 is the
    default split.
    """
    if not 0 < n_individual < n_users:
        raise ValueError(f"n_individual must be in 1..{n_users - 1}, got {n_individual}")
    n_folds = n_users // n_individual
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1} for {n_users} users in blocks of "
                         f"{n_individual}, got {fold}")
    order = torch.randperm(n_users, generator=torch.Generator().manual_seed(seed)).tolist()
    held = order[fold * n_individual:(fold + 1) * n_individual]
    return sorted(set(order) - set(held)), sorted(held)


SPLIT_UNITS = {"hour": 3600, "day": 86400, "week": 7 * 86400}
_MONDAY_S = 3 * 86400  # 1970-01-01 was a Thursday: shifting by 3 days starts weeks on Monday


def split_earlier_later(samples: IntentSamples, seqs: IntentSequences,
                        tune_fraction: float = 0.5,
                        unit: str = "hour") -> tuple[IntentSamples, IntentSamples]:
    """Per user: targets in the earlier periods tune, the later periods test.

    A period is one ``unit`` of ``SPLIT_UNITS`` (weeks run Monday to Sunday); periods are
    ordered in time and a user's first ceil(tune_fraction * n_periods) distinct target periods
    are tuning periods, so no period is in both. Users with a single period keep it for tuning.
    """
    if unit not in SPLIT_UNITS:
        raise ValueError(f"unit must be one of {', '.join(SPLIT_UNITS)}, got {unit!r}")
    period = np.floor((seqs.time_s[samples.position.numpy()] + _MONDAY_S) / SPLIT_UNITS[unit])
    user = samples.user.numpy()
    tune = np.zeros(len(samples), dtype=bool)
    for k in np.unique(user):
        mine = user == k
        periods = np.unique(period[mine])
        n_tune = len(periods) if len(periods) < 2 else min(
            len(periods) - 1, int(np.ceil(tune_fraction * len(periods))))
        tune[mine] = period[mine] <= periods[n_tune - 1]
    mask = torch.from_numpy(tune)
    return samples.subset(mask), samples.subset(~mask)
