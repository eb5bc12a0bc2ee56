"""Data flows one way (architecture.md, "One direction of flow"): a module of the packages
imports from its own stage and from upstream stages only, never from a downstream one.

The stages, upstream first:

    uscope.data -> uscope.profile -> uscope.synth -> uscope.tuning (the library side of
    recipes/) -> generative.umask -> generative.dit -> generative.intent -> uscope.recommend

Modules outside that list are placed explicitly (``PLACED``):
- ``uscope.models`` (loading the two offline models by path or hub id) is a shared utility
  below every stage: any stage may import it, and it imports no stage.
- ``generative.config``, ``generative.tasks``, ``generative.standin`` and
  ``generative.conditioning`` (the shared configs, the task masks, the stand-in embedding and
  h_u aligned from a ``ProfileSet``) belong to the ``generative.umask`` stage;
  ``generative.completion``, ``.train``, ``.evaluate``, ``.baselines`` and ``.figures`` (mask +
  DiT completion, its training, baselines and evaluation) to the ``generative.dit`` stage.
- ``uscope.cli`` and ``uscope.__main__`` are the entry points, after every stage: they may
  import anything and nothing imports them. ``recipes/``, ``benchmarks/``, ``notebooks/`` and
  ``tests/`` are scripts outside the packages and are not checked here.
- The package roots ``uscope/__init__.py`` and ``generative/__init__.py`` run before any of
  their submodules, so at module level they import no stage at all; imports inside functions
  (the lazy ``uscope.profile_users``) are their public facade and are allowed.

Every import counts, including those inside functions: a lazy import is a dependency too.
A new module must fall under a stage here, or the last test says which one is unplaced.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("uscope", "generative")
ROOTS = frozenset(PACKAGES)

STAGES = ["uscope.data", "uscope.profile", "uscope.synth", "uscope.tuning", "generative.umask",
          "generative.dit", "generative.intent", "uscope.recommend"]
RANK = {stage: i for i, stage in enumerate(STAGES)}
ENTRY = len(STAGES)  # after every stage
PLACED = {
    "uscope.models": -1,  # below every stage
    "generative.config": RANK["generative.umask"],
    "generative.tasks": RANK["generative.umask"],
    "generative.standin": RANK["generative.umask"],
    "generative.conditioning": RANK["generative.umask"],
    "generative.completion": RANK["generative.dit"],
    "generative.train": RANK["generative.dit"],
    "generative.evaluate": RANK["generative.dit"],
    "generative.uncertainty": RANK["generative.dit"],
    "generative.baselines": RANK["generative.dit"],
    "generative.figures": RANK["generative.dit"],
    "uscope.cli": ENTRY,
    "uscope.__main__": ENTRY,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for package in PACKAGES
           for p in sorted((REPO / package).rglob("*.py"))}


def rank_of(name: str) -> int | None:
    """The stage rank of a module, by its longest placed prefix; None if unplaced."""
    table = {**RANK, **PLACED}
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in table:
            return table[prefix]
    return None


def imported_modules(source: str, name: str, is_package: bool,
                     top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every import of a module of the packages in ``source``."""
    tree = ast.parse(source)
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from uscope import data` imports the submodule uscope.data
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        found += [(node.lineno, t) for t in targets if t.split(".")[0] in ROOTS]
    return list(dict.fromkeys(found))  # one entry per (line, module)


def violations(name: str, source: str, is_package: bool) -> list[str]:
    """Imports of ``name`` that go against the flow, one line each."""
    if name in ROOTS:  # a package root: no stage import at module level
        return [f"{name}:{line} imports {target} at module level (package roots are facades)"
                for line, target in imported_modules(source, name, is_package, True)
                if target not in ROOTS]
    own = rank_of(name)
    bad = []
    for line, target in imported_modules(source, name, is_package):
        theirs = rank_of(target)
        if theirs is not None and theirs > own:
            bad.append(f"{name}:{line} imports {target}, which is downstream "
                       f"({_stage_name(theirs)} after {_stage_name(own)})")
    return bad


def _stage_name(rank: int) -> str:
    return {-1: "shared utilities", ENTRY: "entry points"}.get(rank) or STAGES[rank]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_downstream_stage(name):
    path = MODULES[name]
    assert violations(name, path.read_text(encoding="utf-8"), path.name == "__init__.py") == []


def test_every_module_has_a_stage():
    unplaced = [n for n in MODULES if n not in ROOTS and rank_of(n) is None]
    assert not unplaced, f"place these modules in a stage (STAGES or PLACED): {unplaced}"


@pytest.mark.parametrize("name, source, expected", [
    # the defect this test was written for: the tuning stage reaching into uscope.recommend
    ("uscope.tuning.tasks", "from uscope.recommend.llm import NOUNS\n", "uscope.recommend.llm"),
    ("uscope.data.items", "def f():\n    import uscope.profile.features\n",
     "uscope.profile.features"),  # a lazy import counts
    ("uscope.synth.guard", "from uscope import recommend\n", "uscope.recommend"),
    ("generative.umask.model", "from ..dit import model\n", "generative.dit.model"),
    ("generative.dit.model", "from uscope.cli import app\n", "uscope.cli"),
    ("uscope.models", "from uscope.data.schema import DataError\n", "uscope.data.schema"),
    ("uscope", "from uscope.profile import profile_users\n", "uscope.profile"),
])
def test_the_checker_catches_downstream_imports(name, source, expected):
    (problem,) = violations(name, source, is_package=name in ROOTS)
    assert expected in problem and name in problem


@pytest.mark.parametrize("name, source", [
    ("uscope.recommend.llm", "from uscope.tuning.llm_task import NOUNS\n"),
    ("generative.intent.protocol", "from uscope.synth.guard import require_real\n"),
    ("uscope.cli.recommend", "from uscope.recommend import Recommender\n"),
    ("uscope", "def f():\n    from uscope.profile import profile_users\n"),
    ("uscope.profile.encoder", "from uscope.models import load_sentence_encoder\n"),
])
def test_the_checker_allows_upstream_imports(name, source):
    assert violations(name, source, is_package=name in ROOTS) == []


# Names that moved upstream still resolve where callers used to import them from.
MOVED = [
    ("uscope.recommend.items", "KIND_COLUMNS", "uscope.data.items"),
    ("uscope.recommend.items", "UsageMatrix", "uscope.data.items"),
    ("uscope.recommend.items", "item_column", "uscope.data.items"),
    ("uscope.recommend.items", "known_items", "uscope.data.items"),
    ("uscope.recommend.items", "used_items", "uscope.data.items"),
    ("uscope.recommend", "KIND_COLUMNS", "uscope.data"),
    ("uscope.recommend", "UsageMatrix", "uscope.data"),
    ("uscope.recommend.evaluate", "cutoff_time", "uscope.data.splits"),
    ("uscope.recommend.evaluate", "novelty_split", "uscope.data.splits"),
    ("uscope.recommend.llm", "NOUNS", "uscope.tuning.llm_task"),
    ("uscope.synth.guard", "require_real", "uscope.data.splits"),
    ("uscope.synth.guard", "SyntheticInEvaluation", "uscope.data.splits"),
    ("uscope.synth", "SyntheticInEvaluation", "uscope.data"),
]


@pytest.mark.parametrize("old, attribute, new", MOVED)
def test_moved_names_are_re_exported(old, attribute, new):
    assert getattr(importlib.import_module(old), attribute) is \
        getattr(importlib.import_module(new), attribute)
