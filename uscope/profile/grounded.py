"""Grounded profile generation: y_u (eq. 23) whose checkable facts cannot leave H_u.

A profile has checkable fields, whose allowed values come from the user's own features, and
free text for what the statistics do not state:

- decoded under a per-user JSON Schema (``choice_schema``, constrained decoding): the main
  categories (app categories; place categories for a location-only user), main apps, main
  places and the busiest parts of the day, each an ``enum`` of what the user actually did;
  the top category, app and place lead their lists as ``const`` values (the features fix
  them); the model adds at least one more where the user has another main one (a share of at
  least ``MIN_MAIN_SHARE``);
- fixed by the features (no choice left, so not decoded): which days (weekdays, weekends or
  all week) and the regularity class of sigma_u;
- free text, written in the same pass right after the fields (so with the chosen values in
  view) and started for the model (``PERSONA_PREFIX``): a persona sentence, then likely
  interests and routine, at most three sentences. One regex per user covers both parts
  (``profile_regex``), so the answer stops at a sentence end.

The free text is checked against the fields and the features (``uscope.profile.faithfulness``):
a sentence holding a refuted claim is dropped; a user left without free text is regenerated
once by sampling; every drop and regeneration is counted in ``GroundedStats``. The rendered
text (fields, then free text) is y_u, what the encoder embeds (eq. 24).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from uscope.profile.backends.base import Generation
from uscope.profile.backends.heuristic import heuristic_profile, join_list
from uscope.profile.faithfulness import (
    MIN_SHARE,
    daypart_shares,
    drop_contradicting,
    end_at_sentence,
    split_sentences,
    vocabulary,
    weekend_share,
)
from uscope.profile.features import UserFeatures

MIN_DAYPART_SHARE = 0.2  # a part of the day is offered when it holds this share of events
MIN_MAIN_SHARE = 0.1  # a category, app or place is a "main" one from this share (the top always)
PERSONA_PREFIX = "This user is"
MAX_NEW_TOKENS = 160  # fields and free text together (GenerationConfig's default)
FREE_SENTENCES = 3  # the persona sentence and two more


@dataclass(frozen=True)
class FieldSpec:
    """One decoded field: its JSON key, how the rendered text labels it, its allowed values
    (ranked, the user's most used first). With ``lead_key`` the first option is a fact the
    features fix (the top category, app or place): the answer states it under ``lead_key``
    and the model chooses only the others, under ``key``."""

    key: str
    label: str
    options: tuple[str, ...]
    max_items: int = 3
    lead_key: str | None = None

    @property
    def choices(self) -> tuple[str, ...]:
        """The values the model chooses among: the options after a fixed lead, none when the
        lead already fills ``max_items``."""
        if not self.lead_key:
            return self.options
        return self.options[1:] if self.max_items > 1 else ()


def _main(ranked: Sequence[tuple[str, float]]) -> tuple[str, ...]:
    """The top name, and the others holding at least ``MIN_MAIN_SHARE`` of the events."""
    return tuple(c for i, (c, share) in enumerate(ranked) if i == 0 or share >= MIN_MAIN_SHARE)


def field_specs(f: UserFeatures) -> list[FieldSpec]:
    """The fields the model chooses, each restricted to the user's own values."""
    specs = []
    if f.uses_apps:
        if f.top_categories:
            specs.append(FieldSpec("categories", "Main app categories", _main(f.top_categories),
                                   lead_key="top_category"))
        app_shares = [(a, count / f.n_app_uses) for a, count in f.top_apps]  # top_apps: counts
        specs.append(FieldSpec("apps", "Main apps", _main(app_shares), lead_key="top_app"))
        places = _main(f.top_places)
    else:
        if f.top_place_categories:
            specs.append(FieldSpec("categories", "Main kinds of place",
                                   _main(f.top_place_categories), lead_key="top_category"))
        places = _main([(v, share) for v, share, _ in f.top_venues] or f.top_places)
    if places:  # the first is f.main_place
        specs.append(FieldSpec("places", "Main places", places, max_items=2,
                               lead_key="top_place"))
    if f.timed and f.n_used:
        ranked = daypart_shares(f)
        parts = [name for name, share in ranked if share >= MIN_DAYPART_SHARE] or [ranked[0][0]]
        specs.append(FieldSpec("active_time", "Most active", tuple(parts), max_items=2))
    return [s for s in specs if s.options]


def fixed_facts(f: UserFeatures) -> dict[str, str]:
    """Fields the features fix outright: the days of activity (only from a week of active
    days on) and the regularity class. "on weekdays" needs a weekend share under
    ``MIN_SHARE``, the share below which the faithfulness check refutes a weekend claim."""
    if not f.timed or not f.n_used:
        return {}
    facts = {}
    if f.sigma.active_days >= 7:
        weekend = weekend_share(f)
        facts["days"] = ("on weekdays" if weekend < MIN_SHARE else "mostly at weekends"
                         if weekend > 0.5 else "all week")
    consistency = f.sigma.routine_consistency
    if consistency is not None:
        facts["regularity"] = ("regular" if consistency > 0.7 else "varied" if consistency < 0.4
                               else "fairly regular")
    return facts


def choice_schema(specs: Sequence[FieldSpec]) -> dict:
    """The JSON Schema of the decoded fields (arrays of enums, at least one item; every field
    required). A field with a fixed lead is a ``const`` under its ``lead_key``, then an array
    of the other choices, left out when there are none (an optional array let the model stop
    at the lead and name fewer of the user's main categories)."""
    properties: dict[str, dict] = {}
    for s in specs:
        if s.lead_key:
            properties[s.lead_key] = {"const": s.options[0]}
        if s.choices:
            properties[s.key] = {"type": "array", "items": {"enum": list(s.choices)},
                                 "minItems": 1,
                                 "maxItems": min(s.max_items - bool(s.lead_key), len(s.choices))}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def profile_schema(f: UserFeatures) -> dict:
    """The whole profile's JSON Schema: decoded fields, fixed facts (a one-value enum each)
    and the free-text fields."""
    schema = choice_schema(field_specs(f))
    for key, value in fixed_facts(f).items():
        schema["properties"][key] = {"enum": [value]}
    for key in ("persona", "text"):
        schema["properties"][key] = {"type": "string"}
    schema["required"] = list(schema["properties"])
    return schema


def parse_fields(text: str, specs: Sequence[FieldSpec]) -> tuple[dict[str, list[str]], bool]:
    """The decoded fields (a fixed lead first, duplicates removed, order kept), and whether the
    JSON was whole; a field that is missing or broken takes its first option (counted by the
    caller)."""
    try:
        raw = json.loads(text)
    except ValueError:
        raw = {}
    keys = choice_schema(specs)["required"]
    whole = isinstance(raw, dict) and all(k in raw for k in keys)
    fields = {}
    for s in specs:
        values = raw.get(s.key) if isinstance(raw, dict) else None
        chosen = [v for v in (values if isinstance(values, list) else []) if v in s.choices]
        lead = [s.options[0]] if s.lead_key else []
        fields[s.key] = list(dict.fromkeys(lead + chosen)) or [s.options[0]]
    return fields, whole


def render_fields(fields: dict[str, list[str]], specs: Sequence[FieldSpec],
                  fixed: dict[str, str]) -> str:
    """The checkable part of y_u as sentences (names as the data spells them, no numbers)."""
    sentences = [f"{s.label}: {', '.join(fields[s.key])}." for s in specs
                 if s.key != "active_time"]
    if "active_time" in fields:
        when = f"Most active in the {join_list(fields['active_time'])}"
        if "days" in fixed:
            when += f", {fixed['days']}"
        if "regularity" in fixed:
            when += f", with a {fixed['regularity']} daily routine"
        sentences.append(when + ".")
    return " ".join(sentences)


def persona_of(text: str | None) -> str | None:
    """The persona of a grounded profile: its first sentence that starts with
    ``PERSONA_PREFIX``, without the prefix (None when the check dropped it)."""
    for sentence in split_sentences(text):
        if sentence.startswith(PERSONA_PREFIX):
            return sentence[len(PERSONA_PREFIX):].strip(" .") or None
    return None


@dataclass
class GroundedStats:
    """What the checks did, summed over users."""

    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass(frozen=True)
class GroundedProfile:
    """One user's grounded profile: the fields, the kept free text and the rendered y_u."""

    fields: dict[str, list[str]]
    fixed: dict[str, str]
    free_text: str
    text: str
    dropped_sentences: int
    regenerated: bool


class GroundingDecoder(Protocol):
    """What a backend offers grounded generation (the transformers, vLLM and OpenAI-compatible
    backends do)."""

    def decode_constrained(self, conversations: Sequence[list[dict]], regexes: Sequence[str],
                           max_new_tokens: int, temperature: float) -> list[tuple[str, bool]]:
        """Each conversation's answer under its regex, and whether the regex completed."""


def profile_regex(fields_regex: str) -> str:
    """The whole answer: the fields' JSON, a newline, then the free text after the prefix, at
    most ``FREE_SENTENCES`` sentences, each ending in . ! or ? (a period followed by a
    letter, as in "JD.com", stays inside the sentence), then only the end of text."""
    sentence = r"([^\n.!?]|\.[^ \n.!?])*[.!?]"
    return (fields_regex + r"\n" + PERSONA_PREFIX + sentence
            + rf"( {sentence}){{0,{FREE_SENTENCES - 1}}}")


def split_answer(answer: str) -> tuple[str, str]:
    """(fields JSON, free text) of one grounded answer."""
    head, _, tail = answer.partition("\n")
    return head, tail.strip()


def grounded_messages(r) -> list[dict]:
    """The chat a grounded request sends: the prompt with its fields and text instructions."""
    user = f"{r.prompt.user}\n\n{r.prompt.fields_instruction}\n{r.prompt.text_instruction}"
    return [{"role": "system", "content": r.prompt.system}, {"role": "user", "content": user}]


def write_grounded(requests: Sequence, decoder: GroundingDecoder, regex_of: Callable[[dict], str],
                   names: set[str], stats: GroundedStats, *, max_new_tokens: int = MAX_NEW_TOKENS,
                   retry_temperature: float = 0.7) -> list[GroundedProfile | None]:
    """Grounded profiles of ``ProfileRequest``s whose prompts come from a grounded template,
    in request order; None for a user with no events (nothing to ground: the caller writes a
    cold-start text)."""
    live = [i for i, r in enumerate(requests) if r.features.n_used > 0]
    specs = {i: field_specs(requests[i].features) for i in live}
    conversations = {i: grounded_messages(requests[i]) for i in live}
    regexes = {i: profile_regex(regex_of(choice_schema(specs[i]))) for i in live}

    def decode(rows: list[int], temperature: float) -> dict[int, tuple]:
        answers = decoder.decode_constrained([conversations[i] for i in rows],
                                             [regexes[i] for i in rows], max_new_tokens,
                                             temperature)
        return {i: _parse(a, requests[i], specs[i], names, stats)
                for i, (a, _) in zip(rows, answers)}

    parsed = decode(live, 0.0)
    empty = [i for i in live if not parsed[i][4]]
    if empty:  # one sampled retry, whole answer, for users left without free text
        stats.counts["regenerated"] += len(empty)
        retried = decode(empty, retry_temperature)
        for i in empty:
            if retried[i][4]:
                parsed[i] = retried[i]
    out: list[GroundedProfile | None] = [None] * len(requests)
    for i in live:
        fields, fixed, facts_text, whole, kept, dropped = parsed[i]
        stats.counts["users"] += 1
        stats.counts["fields_incomplete"] += not whole
        stats.counts["empty_free_text"] += not kept
        out[i] = GroundedProfile(fields, fixed, kept, f"{facts_text} {kept}".strip(), dropped,
                                 i in empty)
    return out


def _parse(answer: str, r, specs: Sequence[FieldSpec], names: set[str], stats: GroundedStats):
    """(fields, fixed facts, rendered fields, whole JSON?, kept free text, dropped sentences)
    of one answer."""
    head, free = split_answer(answer)
    fields, whole = parse_fields(head, specs)
    fixed = fixed_facts(r.features)
    kept, dropped = _check(free, r, names, stats)
    return fields, fixed, render_fields(fields, specs, fixed), whole, kept, dropped


def _check(text: str, request, names: set[str], stats: GroundedStats) -> tuple[str, int]:
    """The free text cut at its last sentence end, its contradicting sentences dropped."""
    whole = end_at_sentence(text) or ""
    kept, dropped = drop_contradicting(whole, request.features, names)
    stats.counts["free_sentences"] += len(split_sentences(whole))
    stats.counts["dropped_sentences"] += dropped
    return kept, dropped


def grounded_generations(decoder: GroundingDecoder, requests: Sequence, names: set[str],
                         stats: GroundedStats, max_new_tokens: int = MAX_NEW_TOKENS
                         ) -> list[Generation] | None:
    """A backend's answers when its requests come from a grounded template (None when they
    do not): the grounded y_u of each user with events, the heuristic cold-start text of the
    others. ``names`` (the population's) are checked besides the batch's own."""
    from uscope.profile.constrained import regex_of_schema

    modes = {r.prompt.mode for r in requests}
    if len(modes) > 1:
        raise ValueError(f"one batch mixes prompt modes {sorted(modes)}")
    if modes != {"grounded"}:
        return None
    names = set(names) | vocabulary(r.features for r in requests)
    profiles = write_grounded(requests, decoder, regex_of_schema, names, stats,
                              max_new_tokens=max_new_tokens)
    return [Generation(p.text if p is not None else heuristic_profile(r.features))
            for p, r in zip(profiles, requests)]


class GroundedOrFree:
    """``generate`` for an LLM backend: grounded profiles when the requests come from a
    grounded template, else the backend's own ``generate_free``. The backend holds ``names``
    (the population's, checked besides each batch's own), ``grounded_stats`` and
    ``generation`` (its ``GenerationConfig``)."""

    def generate(self, requests: Sequence) -> list[Generation]:
        if not requests:
            return []
        grounded = grounded_generations(self, requests, self.names, self.grounded_stats,
                                        self.generation.max_new_tokens)
        return grounded if grounded is not None else self.generate_free(requests)
