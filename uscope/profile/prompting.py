"""The structured prompt x_u (eq. 23) from a user's features, via versioned Jinja2 templates.

Templates live in ``prompts/<name>.j2`` and render in a ``SandboxedEnvironment``. User-derived
strings (app, category and place names) enter the context as ``UserText``; the environment's
``finalize`` hook prints every ``UserText`` as a JSON string literal with control and
line-separator characters replaced, so a name holding template syntax, quotes, newlines or
instructions is data and cannot change the prompt's structure. The template's version is its
name plus a hash of its source, recorded with every profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sysconfig
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from uscope.profile.features import UserFeatures

DEFAULT_TEMPLATE = "profile_v2"  # the free-form prompt x_u (also the recipes' prompt)
GROUNDED_TEMPLATE = "grounded_v1"  # the profiling default: grounded generation
MAX_NAME_CHARS = 64


class UserText(str):
    """A string that came from user data; templates print it quoted (see ``quote_user_text``)."""


def quote_user_text(text: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``text`` as a one-line JSON string literal, at most ``max_chars`` characters inside."""
    text = str(text)
    # str.isprintable() is False exactly when some character is in Unicode class C or Z other
    # than the ASCII space: the common case skips the per-character pass
    clean = text if text.isprintable() else "".join(
        " " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in text)
    if len(clean) > max_chars:
        clean = clean[: max_chars - 1] + "…"
    return json.dumps(clean, ensure_ascii=False)


def _finalize(value: Any) -> Any:
    return quote_user_text(value) if isinstance(value, UserText) else value


PROMPTS_DATA_DIR = ("share", "uscope", "prompts")  # where a wheel install puts prompts/*.j2


def prompts_dir() -> Path:
    """Folder of the prompt templates: ``$USCOPE_PROMPTS``, else the source checkout's
    ``prompts/`` (editable installs), else ``<prefix>/share/uscope/prompts`` (wheel installs)."""
    override = os.environ.get("USCOPE_PROMPTS")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "prompts"
    if checkout.is_dir():
        return checkout
    return Path(sysconfig.get_path("data")).joinpath(*PROMPTS_DATA_DIR)


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: system and user message. A grounded template (``mode ==
    "grounded"``, see ``uscope.profile.grounded``) adds the instructions of its two stages:
    the checkable fields (``fields_instruction``) and the free text (``text_instruction``)."""

    system: str
    user: str
    mode: str = "free"
    fields_instruction: str = ""
    text_instruction: str = ""

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class PromptTemplate:
    """One versioned template file."""

    name: str
    source: str
    base: PromptTemplate | None = None  # the facts template a grounded one builds on

    @property
    def version(self) -> str:
        sources = self.source + (self.base.source if self.base is not None else "")
        digest = hashlib.sha256(sources.encode("utf-8")).hexdigest()[:10]
        return f"{self.name}@{digest}"

    @property
    def grounded(self) -> bool:
        return self.base is not None

    def render(self, features: UserFeatures) -> Prompt:
        return self.render_context(prompt_context(features))

    def render_context(self, context: dict[str, Any]) -> Prompt:
        """Render with any context (wrap user-derived strings in ``UserText``). A grounded
        template receives its base template's rendered facts as ``facts``."""
        if self.base is not None:
            facts = self.base.render_context({**context, "facts_only": True})
            context = {**context, "facts": facts.user}
        module = _compile(self.source).make_module(context)
        system = str(getattr(module, "system", "")).strip()
        if self.base is None:
            return Prompt(system=system, user=str(module).strip())
        return Prompt(system=system or facts.system, user=str(module).strip(), mode="grounded",
                      fields_instruction=str(module.fields_instruction).strip(),
                      text_instruction=str(module.text_instruction).strip())


@lru_cache(maxsize=16)
def _compile(source: str):
    env = SandboxedEnvironment(undefined=StrictUndefined, finalize=_finalize,
                               autoescape=False, keep_trailing_newline=False)
    return env.from_string(source)


_BASE = re.compile(r"""\{%-?\s*set\s+base\s*=\s*["']([\w.-]+)["']\s*-?%\}""")


def load_template(name_or_path: str | os.PathLike = DEFAULT_TEMPLATE) -> PromptTemplate:
    """A template by name (``prompts/<name>.j2``) or by path to a ``.j2`` file."""
    path = Path(name_or_path)
    if path.suffix != ".j2":
        path = prompts_dir() / f"{name_or_path}.j2"
    if not path.is_file():
        available = sorted(p.stem for p in prompts_dir().glob("*.j2"))
        raise FileNotFoundError(f"prompt template {path} not found; available: {available}")
    source = path.read_text(encoding="utf-8")
    base = _BASE.search(source)  # a grounded template names the facts template it builds on
    return PromptTemplate(name=path.stem, source=source,
                          base=load_template(base.group(1)) if base else None)


def _hour_range(hour: int) -> str:
    return f"{hour:02d}:00-{(hour + 1) % 24:02d}:00"


def _level(value: float | None, low: float, high: float) -> str | None:
    if value is None:
        return None
    word = "low" if value < low else "high" if value > high else "medium"
    return f"{word} ({value:.2f})"


def _places(f: UserFeatures) -> list[dict[str, Any]]:
    """The places a prompt lists: for an app user the top places with the app categories used
    there (rows of C_u); for a location-only user the top venues with their category."""
    if not f.uses_apps and f.top_venues:
        return [{"name": UserText(v), "pct": round(100 * share),
                 "categories": [UserText(c)] if c else []} for v, share, c in f.top_venues]
    places = []
    for place, share in f.top_places:
        categories = []
        if place in f.locations:  # a place seen only without app use has no row of C_u
            row = f.C_u[f.locations.index(place)]  # (A,) counts at this place
            order = sorted(range(len(row)), key=lambda j: (-int(row[j]), f.app_categories[j]))
            categories = [UserText(f.app_categories[j]) for j in order[:2] if row[j] > 0]
        places.append({"name": UserText(place), "pct": round(100 * share),
                       "categories": categories})
    return places


def prompt_context(f: UserFeatures) -> dict[str, Any]:
    """Template variables for one user; names are ``UserText``, numbers are pre-formatted.

    ``uses_apps`` False (a location-only user) and ``timed`` False (an untimed source) tell a
    template to leave out the app and the time facts: they are not known, not zero."""
    weekend = float(f.pi_time[5:].sum()) if f.n_used else 0.0
    gap = f.sigma.median_gap_minutes
    return {
        "n_used": f.n_used,
        "n_events": f.n_events,
        "n_uses": f.n_app_uses if f.uses_apps else f.n_visits,
        "uses_apps": f.uses_apps,
        "timed": f.timed,
        "budget": f.budget,
        "truncated": f.truncated,
        "cold_start": f.cold_start,
        "active_days": f.sigma.active_days,
        "first_day": f.first_seen.strftime("%a %Y-%m-%d") if f.first_seen is not None else "",
        "last_day": f.last_seen.strftime("%a %Y-%m-%d") if f.last_seen is not None else "",
        "categories": [{"name": UserText(c), "pct": round(100 * s)} for c, s in f.top_categories],
        "place_categories": [{"name": UserText(c), "pct": round(100 * s)}
                             for c, s in f.top_place_categories],
        "unknown_pct": round(100 * f.unknown_share),
        "apps": [{"name": UserText(a), "count": n} for a, n in f.top_apps],
        "peak_hours": [_hour_range(h) for h in f.peak_hours(3)],
        "weekend_pct": round(100 * weekend),
        "places": _places(f),
        "sessions_per_day": f"{f.sigma.sessions_per_day:.1f}",
        "median_gap": None if gap is None else f"{gap / 60:.1f} h" if gap >= 90 else f"{gap:.0f} min",
        "spread": _level(f.sigma.hour_entropy, 0.5, 0.8),
        "routine": _level(f.sigma.routine_consistency, 0.4, 0.7),
    }
