"""Dataset formats of the recipes: validation names file, line, field and the expected format;
jsonl writing is atomic; SFT conversations split at the final assistant turn; the job log
resumes after a kill."""

from __future__ import annotations

import json

import pytest

from uscope.data import DataError
from uscope.tuning.formats import (
    MESSAGES_FORMAT,
    PREFERENCE_FORMAT,
    dataset_file,
    load_preference_dataset,
    load_sft_dataset,
    read_jsonl,
    split_last_assistant,
    validate_messages,
    validate_preferences,
    write_jsonl,
)
from uscope.tuning.joblog import JobLog

CHAT = [{"role": "user", "content": "Which app next? Choose from: A, B."},
        {"role": "assistant", "content": "Reason: they like A-things.\nAnswer: A"}]
PAIR = {"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "x_u"}],
        "chosen": [{"role": "assistant", "content": "Uses Games at Residence."}],
        "rejected": [{"role": "assistant", "content": "Uses Finance at Business affairs."}]}


def test_messages_roundtrip_and_prompt_completion_split(tmp_path):
    rows = [{"messages": CHAT, "user_id": "7", "task": "app"}] * 3
    write_jsonl(tmp_path / "train.jsonl", rows)
    assert not list(tmp_path.glob(".*.tmp"))  # written through a renamed temporary file
    assert read_jsonl(dataset_file(tmp_path)) == rows
    dataset = load_sft_dataset(tmp_path)
    assert dataset.column_names == ["prompt", "completion"]  # provenance columns not trained
    assert dataset[0]["prompt"] == CHAT[:1] and dataset[0]["completion"] == CHAT[1:]
    assert load_sft_dataset(tmp_path, keep_messages=True).column_names == ["messages"]
    assert split_last_assistant(CHAT) == (CHAT[:1], CHAT[1:])


def test_wrong_columns_fail_naming_the_expected_format(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, [{"messages": CHAT}, {"prompt": "p", "completion": "c"}])
    with pytest.raises(DataError) as info:
        load_sft_dataset(path)
    message = str(info.value)
    assert "line 2" in message and str(path) in message and "'messages'" in message
    assert MESSAGES_FORMAT in message and "['completion', 'prompt']" in message
    with pytest.raises(DataError, match="preference dataset"):
        load_preference_dataset(path)  # a messages file is not a preference dataset
    assert PREFERENCE_FORMAT.startswith("a preference dataset")


@pytest.mark.parametrize("turns, fragment", [
    ([{"role": "user", "content": "q"}], "last turn must be the assistant's"),
    ([{"role": "robot", "content": "q"}, CHAT[1]], "role 'robot'"),
    ([{"role": "user", "content": "  "}, CHAT[1]], "no text content"),
    ([CHAT[1]], "no user turn"),
    ("a string", "non-empty list of turns"),
])
def test_malformed_conversations_are_rejected_with_the_reason(turns, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        validate_messages([{"messages": CHAT}, {"messages": turns}], "mine.jsonl")
    assert info.value.line == 2 and info.value.field == "messages"


def test_preference_rows_are_checked():
    assert validate_preferences([PAIR]) == [PAIR]
    same = {**PAIR, "rejected": PAIR["chosen"]}
    with pytest.raises(DataError, match="same text"):
        validate_preferences([same])
    two_turns = {**PAIR, "chosen": PAIR["chosen"] * 2}
    with pytest.raises(DataError, match="exactly one assistant turn"):
        validate_preferences([two_turns])
    ends_with_assistant = {**PAIR, "prompt": CHAT}
    with pytest.raises(DataError, match="end with a user turn"):
        validate_preferences([ends_with_assistant])


def test_bad_json_and_empty_dataset(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": CHAT}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2.*not valid JSON"):
        read_jsonl(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_sft_dataset(empty)
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        dataset_file(tmp_path / "nowhere")


def test_job_log_resumes_after_a_kill_mid_line(tmp_path):
    path = tmp_path / "log.jsonl"
    log = JobLog(path, resume=False)
    log.append([{"key": "a", "v": 1}, {"key": "b", "v": 2}])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "c", "v"')  # the process died while writing
    with pytest.raises(FileExistsError, match="resume"):
        JobLog(path, resume=False)
    again = JobLog(path, resume=True)
    assert set(again.records) == {"a", "b"} and "c" not in again
    again.append([{"key": "c", "v": 3}])
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
