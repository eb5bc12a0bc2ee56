"""The two dataset formats the training recipes read, their validation, and jsonl files.

- ``messages`` (``recipes/sft.py``): one JSON object per line with a ``messages`` list of
  ``{"role", "content"}`` turns (system / user / assistant) ending with an assistant turn.
- preference (``recipes/dpo.py``, eq. 27): ``prompt`` (turns ending with a user turn),
  ``chosen`` (y_w) and ``rejected`` (y_l), each a list holding one assistant turn.

Other keys on a line are provenance (user, task, scores) and are not trained on. A dataset is
a ``.jsonl`` file or a folder holding ``train.jsonl``. Every problem is a ``DataError`` naming
the file, the line and the field, and the expected format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from uscope.data.schema import DataError

MESSAGES_FORMAT = ("a `messages` dataset: one JSON object per line with a 'messages' list of "
                   "{'role', 'content'} turns (roles system/user/assistant) ending with an "
                   "assistant turn")
PREFERENCE_FORMAT = ("a preference dataset: one JSON object per line with 'prompt' (a list of "
                     "{'role', 'content'} turns ending with a user turn), 'chosen' and "
                     "'rejected' (each a list holding one assistant turn)")
ROLES = ("system", "user", "assistant")
TRAIN_FILE = "train.jsonl"


def dataset_file(path: str | os.PathLike) -> Path:
    """The jsonl file of a dataset given as a file or as a folder holding ``train.jsonl``."""
    path = Path(path)
    if path.is_dir():
        path = path / TRAIN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no dataset at {path} (expected a .jsonl file or a folder "
                                f"holding {TRAIN_FILE})")
    return path


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a jsonl file, one per non-empty line."""
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg})", source=str(path),
                                line=number) from exc
            if not isinstance(row, dict):
                raise DataError(f"expected a JSON object, got {type(row).__name__}",
                                source=str(path), line=number)
            rows.append(row)
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows atomically (a temporary sibling renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _turns(value: Any, field: str, where: dict, expected: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{field!r} must be a non-empty list of turns; expected {expected}",
                        field=field, **where)
    for i, turn in enumerate(value):
        if not isinstance(turn, dict) or set(turn) - {"role", "content"} or "role" not in turn:
            raise DataError(f"turn {i} must be an object with 'role' and 'content' only; "
                            f"expected {expected}", field=field, **where)
        if turn["role"] not in ROLES:
            raise DataError(f"turn {i} has role {turn['role']!r}, not one of {ROLES}",
                            field=field, **where)
        if not isinstance(turn.get("content"), str) or not turn["content"].strip():
            raise DataError(f"turn {i} has no text content", field=field, **where)
    return value


def _columns(rows: list[dict], required: tuple[str, ...], source: str, expected: str) -> None:
    if not rows:
        raise DataError(f"the dataset is empty; expected {expected}", source=source)
    for number, row in enumerate(rows, start=1):
        missing = [c for c in required if c not in row]
        if missing:
            raise DataError(f"missing column(s) {missing}, got columns {sorted(row)}; expected "
                            f"{expected}", source=source, line=number, field=missing[0])


def validate_messages(rows: list[dict], source: str = "<rows>") -> list[dict]:
    """Check ``messages`` rows (see ``MESSAGES_FORMAT``); returns them unchanged."""
    _columns(rows, ("messages",), source, MESSAGES_FORMAT)
    for number, row in enumerate(rows, start=1):
        where = {"source": source, "line": number}
        turns = _turns(row["messages"], "messages", where, MESSAGES_FORMAT)
        if turns[-1]["role"] != "assistant":
            raise DataError(f"the last turn must be the assistant's; expected {MESSAGES_FORMAT}",
                            field="messages", **where)
        if not any(t["role"] == "user" for t in turns):
            raise DataError("no user turn", field="messages", **where)
    return rows


def validate_preferences(rows: list[dict], source: str = "<rows>") -> list[dict]:
    """Check preference rows (see ``PREFERENCE_FORMAT``); returns them unchanged."""
    _columns(rows, ("prompt", "chosen", "rejected"), source, PREFERENCE_FORMAT)
    for number, row in enumerate(rows, start=1):
        where = {"source": source, "line": number}
        prompt = _turns(row["prompt"], "prompt", where, PREFERENCE_FORMAT)
        if prompt[-1]["role"] != "user":
            raise DataError(f"the prompt must end with a user turn; expected {PREFERENCE_FORMAT}",
                            field="prompt", **where)
        for field in ("chosen", "rejected"):
            answer = _turns(row[field], field, where, PREFERENCE_FORMAT)
            if len(answer) != 1 or answer[0]["role"] != "assistant":
                raise DataError(f"{field!r} must hold exactly one assistant turn; expected "
                                f"{PREFERENCE_FORMAT}", field=field, **where)
        if row["chosen"][0]["content"].strip() == row["rejected"][0]["content"].strip():
            raise DataError("chosen and rejected are the same text", field="rejected", **where)
    return rows


def split_last_assistant(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(prompt turns, [final assistant turn]): the conversational prompt-completion form."""
    return messages[:-1], messages[-1:]


def load_sft_dataset(path: str | os.PathLike, *, keep_messages: bool = False):
    """A validated ``messages`` dataset as a ``datasets.Dataset`` for ``SFTTrainer``.

    By default each conversation becomes ``prompt`` (every turn before the last) and
    ``completion`` (the final assistant turn), so TRL's ``completion_only_loss`` puts the loss
    on the assistant turn only, whatever the chat template. ``keep_messages=True`` keeps the
    ``messages`` column for ``assistant_only_loss`` (needs a template with generation markers).
    """
    from datasets import Dataset

    file = dataset_file(path)
    rows = validate_messages(read_jsonl(file), str(file))
    if keep_messages:
        return Dataset.from_list([{"messages": r["messages"]} for r in rows])
    pairs = [split_last_assistant(r["messages"]) for r in rows]
    return Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])


def load_preference_dataset(path: str | os.PathLike):
    """A validated preference dataset as a ``datasets.Dataset`` for ``DPOTrainer``."""
    from datasets import Dataset

    file = dataset_file(path)
    rows = validate_preferences(read_jsonl(file), str(file))
    return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
