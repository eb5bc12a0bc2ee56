"""Chain-of-thought traces from a teacher, kept by rejection sampling (seed paper 000, Sec. 7.5).

For each ``TaskCase`` the teacher (any profile backend: transformers, vLLM, an OpenAI-compatible
endpoint) gets ``prompts/cot_v1.j2`` and must reply "Reasoning: ..." then "Answer: <candidate>".
Every reply gets one outcome:

- ``accepted``: parsed, and the answer is one of the user's new items (the novelty split);
- ``unparseable``: no "Answer:" line, or no reasoning before it;
- ``off_list``: the answer is not one of the candidates;
- ``wrong``: a candidate the user did not adopt (rejected by rejection sampling);
- ``hint_leak``: a hinted reasoning that refers to having been told the answer;
- ``failed``: the backend gave no text after its retries.

Only accepted traces become training examples; the rest are counted. Modes:
``sample`` draws ``samples`` replies per case and keeps the first correct one (pure rejection
sampling); ``rationalize`` tells the teacher the answer and asks for the reasoning
(answer-hinted rationalisation, as in STaR), and the reply is still parsed and checked;
``star`` samples first and rationalises the cases that got no correct sample. The hint is never
part of a training example: its prompt is the student's (``TaskCase.student_prompt``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from uscope.profile.backends import Backend, generate_with_retries
from uscope.profile.prompting import PromptTemplate, load_template
from uscope.tuning.joblog import JobLog
from uscope.tuning.tasks import TaskCase, teacher_context
from uscope.tuning.teacher import TeacherRequest

COT_TEMPLATE = "cot_v1"
MODES = ("sample", "rationalize", "star")
OUTCOMES = ("accepted", "unparseable", "off_list", "wrong", "hint_leak", "failed")
MIN_REASONING_WORDS = 3

_ANSWER = re.compile(r"^[ \t*#>-]*answer[ \t*]*[:：][ \t]*(?P<answer>.*)$",
                     re.IGNORECASE | re.MULTILINE)
_REASONING_LABEL = re.compile(r"^[\s*#>-]*(reasoning|reason|thoughts?)[\s*]*[:：]\s*",
                              re.IGNORECASE)
# A hinted reasoning must read as the teacher's own: no reference to being told the answer.
# Conservative: a reasoning that merely says a user "started using" something is dropped too.
_LEAKS = re.compile(r"\b(hints?|hinted|told|in fact|start(ed|s)? using|given answer|as stated)\b",
                    re.IGNORECASE)


class AnswerParseError(ValueError):
    """A teacher reply that cannot become a training example; ``outcome`` says why."""

    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class ParsedAnswer:
    reasoning: str  # one line, the label ("Reasoning:") removed
    answer: str  # a candidate, spelled as in the candidate list


def _clean_answer(raw: str) -> str:
    text = raw.strip().strip("*_`").strip()
    text = re.sub(r"[.!;,]+$", "", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”«»":
        text = text[1:-1].strip()
    return text.strip("\"'“”«» ")


def _match_candidate(raw: str, candidates: Sequence[str]) -> str | None:
    wanted = _clean_answer(raw).casefold()
    for candidate in candidates:
        if candidate.casefold() == wanted:
            return candidate
    # "Games, because ...": the answer starts with a candidate and names no other one
    named = [c for c in candidates
             if re.search(rf"(?<!\w){re.escape(c.casefold())}(?!\w)", wanted)]
    if len(named) == 1 and re.match(rf"{re.escape(named[0].casefold())}(\s|,|\(|:|$)", wanted):
        return named[0]
    return None


def parse_teacher_answer(text: str, candidates: Sequence[str]) -> ParsedAnswer:
    """Reasoning and answer of a reply; ``AnswerParseError`` when it does not parse or the
    answer is not a candidate."""
    matches = list(_ANSWER.finditer(text or ""))
    if not matches:
        raise AnswerParseError("unparseable", "no 'Answer:' line")
    last = matches[-1]
    reasoning = " ".join(_REASONING_LABEL.sub("", text[: last.start()].strip()).split())
    if len(reasoning.split()) < MIN_REASONING_WORDS:
        raise AnswerParseError("unparseable", "no reasoning before the answer")
    raw = last.group("answer")
    answer = _match_candidate(raw, candidates)
    if answer is None:
        raise AnswerParseError("off_list", f"answer {raw.strip()[:60]!r} is not a candidate")
    return ParsedAnswer(reasoning=reasoning, answer=answer)


def judge(case: TaskCase, text: str | None, hinted: bool) -> tuple[str, ParsedAnswer | None, str]:
    """(outcome, parsed answer when accepted, detail) of one teacher reply for ``case``."""
    if text is None:
        return "failed", None, "no text from the teacher"
    try:
        parsed = parse_teacher_answer(text, case.candidates)
    except AnswerParseError as exc:
        return exc.outcome, None, str(exc)
    if parsed.answer not in case.targets:
        return "wrong", None, f"{parsed.answer!r} is not a new item of this user"
    if hinted and _LEAKS.search(parsed.reasoning):
        return "hint_leak", None, "the reasoning refers to the hint"
    return "accepted", parsed, ""


def student_completion(parsed: ParsedAnswer) -> str:
    """The assistant turn the student learns: the format the ``llm`` strategy scores
    ("Answer: <item>") after a one-line reason, as its ``explain`` mode writes it."""
    return f"Reason: {parsed.reasoning}\nAnswer: {parsed.answer}"


def training_example(case: TaskCase, parsed: ParsedAnswer, mode: str, teacher: str) -> dict:
    """One ``messages`` row (plus provenance columns that are not trained on)."""
    return {
        "messages": [{"role": "user", "content": case.student_prompt},
                     {"role": "assistant", "content": student_completion(parsed)}],
        "user_id": case.user_id, "task": case.kind, "answer": parsed.answer,
        "mode": mode, "teacher": teacher,
    }


@dataclass
class TraceSummary:
    """What the teacher produced: every reply has exactly one outcome."""

    cases: int = 0
    replies: Counter = field(default_factory=Counter)  # outcome -> replies
    accepted_by_mode: Counter = field(default_factory=Counter)  # "sample"/"rationalize" -> cases
    accepted_by_task: Counter = field(default_factory=Counter)
    dropped_examples: list[dict] = field(default_factory=list)  # a few, with reasons

    @property
    def accepted(self) -> int:
        return sum(self.accepted_by_mode.values())

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "accepted": self.accepted,
                "replies": {o: self.replies.get(o, 0) for o in OUTCOMES},
                "accepted_by_mode": dict(self.accepted_by_mode),
                "accepted_by_task": dict(self.accepted_by_task)}


def _ask(backend: Backend, template: PromptTemplate, cases: Sequence[TaskCase], hinted: bool,
         samples: int, retries: int) -> list[list[tuple[str | None, str | None]]]:
    requests = [TeacherRequest(f"{c.key}#{s}", template.render_context(teacher_context(c, hinted)),
                               c.features, c.candidates) for c in cases for s in range(samples)]
    outcomes = generate_with_retries(backend, requests, retries=retries, backoff_s=0.0)
    replies = [(o.text, o.error) for o in outcomes]
    return [replies[i * samples:(i + 1) * samples] for i in range(len(cases))]


def _stage(case_replies: list[tuple[str | None, str | None]], case: TaskCase, hinted: bool,
           mode: str, attempts: list[dict]) -> ParsedAnswer | None:
    for text, error in case_replies:
        outcome, parsed, detail = judge(case, text, hinted)
        attempts.append({"mode": mode, "outcome": outcome, "detail": error or detail,
                         "text": text})
        if parsed is not None:
            return parsed
    return None


def generate_traces(cases: Sequence[TaskCase], teacher: Backend, log: JobLog, *,
                    mode: str = "star", samples: int = 1, batch_size: int = 8, retries: int = 1,
                    template: str = COT_TEMPLATE,
                    progress: Callable[[int], Any] | None = None) -> TraceSummary:
    """Ask the teacher about every case not yet in ``log``; log each case's replies and, when
    accepted, its training example. Returns the summary over the whole log (resumed runs too).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    prompt_template = load_template(template)
    pending = [c for c in cases if c.key not in log]
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        attempts: list[list[dict]] = [[] for _ in batch]
        found: list[tuple[str, ParsedAnswer] | None] = [None] * len(batch)
        if mode in ("sample", "star"):
            replies = _ask(teacher, prompt_template, batch, False, samples, retries)
            for i, case in enumerate(batch):
                parsed = _stage(replies[i], case, False, "sample", attempts[i])
                found[i] = ("sample", parsed) if parsed else None
        todo = [i for i in range(len(batch)) if found[i] is None]
        if mode in ("rationalize", "star") and todo:
            replies = _ask(teacher, prompt_template, [batch[i] for i in todo], True, 1, retries)
            for i, reply in zip(todo, replies):
                parsed = _stage(reply, batch[i], True, "rationalize", attempts[i])
                found[i] = ("rationalize", parsed) if parsed else None
        log.append({"key": case.key, "task": case.kind, "attempts": attempts[i],
                    "example": (training_example(case, found[i][1], found[i][0], teacher.model)
                                if found[i] else None)}
                   for i, case in enumerate(batch))
        if progress is not None:
            progress(len(batch))
    return summarise_log(log, [c.key for c in cases])


def summarise_log(log: JobLog, keys: Sequence[str]) -> TraceSummary:
    summary = TraceSummary(cases=len(keys))
    for key in keys:
        record = log.records[key]
        for attempt in record["attempts"]:
            summary.replies[attempt["outcome"]] += 1
            if attempt["outcome"] != "accepted" and len(summary.dropped_examples) < 5:
                summary.dropped_examples.append({"key": key, **attempt})
        if record["example"] is not None:
            summary.accepted_by_mode[record["example"]["mode"]] += 1
            summary.accepted_by_task[record["task"]] += 1
    return summary


def accepted_examples(log: JobLog, keys: Sequence[str]) -> list[dict]:
    """The training examples of the listed cases, in case order."""
    return [log.records[k]["example"] for k in keys if log.records[k]["example"] is not None]
