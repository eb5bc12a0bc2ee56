"""The ``llm`` recommendation task: what training and inference must agree on.

The chain-of-thought examples (``uscope.tuning.tasks``) and the ``llm`` strategy of
``uscope.recommend`` (which loads the adapters trained on those examples) share two things,
defined once here so an adapter is scored on the prompt it learned:

- the candidate shortlist: the catalogue items most used across users (share of distinct
  users, ``UsageMatrix.popularity``) that this user has not used, in that order;
- the user message: ``prompts/recommend_v1.j2`` over the profile y_u, up to ``MAX_USED`` of
  the user's items (sorted), the kind's noun and the candidates.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from uscope.data.items import UsageMatrix
from uscope.profile.prompting import load_template

TEMPLATE = "recommend_v1"
NOUNS = {"app": "app", "place": "place", "location": "kind of place", "intent": "kind of app"}
MAX_USED = 20  # items the user already uses, listed in the prompt (the first, sorted)
NO_PROFILE = "(no profile)"


def candidate_shortlist(usage: UsageMatrix, used: Collection[str], limit: int) -> list[int]:
    """Column indices of ``usage``: the most popular items not in ``used``, at most ``limit``."""
    catalogue = usage.items
    popularity = usage.popularity()
    order = [i for i in np.argsort(-popularity, kind="stable") if catalogue[i] not in used]
    return order[:limit]


def item_noun(kind: str, column: str | None = None) -> str:
    """How prompts name an item of `kind`; intents held by place categories (the Mobile
    setting, ``uscope.data.items.intent_column``) are kinds of place, not of app."""
    if kind == "intent" and column == "location_category":
        return NOUNS["location"]
    return NOUNS[kind]


def recommendation_prompt(profile: str, used: Collection[str], kind: str,
                          candidates: Sequence[str], column: str | None = None) -> str:
    """The user message for one (user, kind): the template rendered, ending in a newline.
    `column`: the event column of `kind`'s items (decided on the population)."""
    context = {"profile": profile.strip() or NO_PROFILE, "used": sorted(used)[:MAX_USED],
               "noun": item_noun(kind, column), "candidates": list(candidates)}
    return load_template(TEMPLATE).render_context(context).user + "\n"
