"""Tests for validated loading of datasets and evalsets."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.spec.data import (
    DataError,
    EvalItem,
    Trace,
    dataset_file,
    evalset_file,
    file_sha256,
    load_evalset,
    load_traces,
)

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "datasets" / "dev-reasoning-v2"
EVALSET = ROOT / "evalsets" / "eval_v2.jsonl"
CATEGORIES = {"arithmetic", "percentages", "rates_units", "string_transforms", "edge_cases"}

GOOD_TRACE = {
    "trace_version": "2",
    "prompt": "What is 2 + 3?",
    "final_answer": "5",
    "steps": [{"i": 0, "type": "compute", "content": "2 + 3 = 5"}],
    "meta": {"dataset": "t", "category": "arithmetic", "task_type": "add", "index": 0},
}
GOOD_ITEM = {
    "id": "e-1",
    "prompt": "What is 2 + 3?",
    "expected_answer": "5",
    "category": "arithmetic",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
item_like = st.fixed_dictionaries(
    {key: st.one_of(st.text(), json_values) for key in GOOD_ITEM},
    optional={"extra": json_values},
)


def _line(record: object) -> str:
    return json.dumps(record)


def _with_step(**step: object) -> str:
    return _line({**GOOD_TRACE, "steps": [{"i": 0, "type": "compute", "content": "x", **step}]})


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _error_for(path: Path, loader: Callable[[Path], object] = load_traces) -> str:
    with pytest.raises(DataError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_committed_dataset_loads() -> None:
    traces = load_traces(DATASET)
    assert len(traces) == 550
    assert all(isinstance(trace, Trace) for trace in traces)
    counts = Counter(trace.meta.category for trace in traces)
    assert set(counts) == CATEGORIES
    assert max(counts.values()) - min(counts.values()) <= 1
    assert [trace.meta.index for trace in traces] == list(range(550))


def test_committed_evalset_loads() -> None:
    items = load_evalset(EVALSET)
    assert len(items) == 100
    assert all(isinstance(item, EvalItem) for item in items)
    assert {item.category for item in items} == CATEGORIES
    assert items[0].id == "eval_v2-0001"


def test_loads_a_jsonl_file_directly(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [_line(GOOD_TRACE), _line(GOOD_TRACE)])
    traces = load_traces(path)
    assert len(traces) == 2
    assert traces[0].steps[0].content == "2 + 3 = 5"


def test_strings_are_kept_verbatim(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_line({**GOOD_ITEM, "expected_answer": " 5 "})])
    assert load_evalset(path)[0].expected_answer == " 5 "


def test_meta_accepts_extra_keys(tmp_path: Path) -> None:
    record = {**GOOD_TRACE, "meta": {**GOOD_TRACE["meta"], "source": "x"}}
    path = _write(tmp_path / "t.jsonl", [_line(record)])
    assert load_traces(path)[0].meta.model_extra == {"source": "x"}


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"prompt": "x",', "invalid JSON"),
        ("", "blank line"),
        ("   ", "blank line"),
        (
            _line({k: v for k, v in GOOD_TRACE.items() if k != "final_answer"}),
            "missing key 'final_answer'",
        ),
        (_with_step(i="0"), "key 'steps.0.i' must be an integer, got string"),
        (_with_step(i=True), "key 'steps.0.i' must be an integer, got boolean"),
        (_with_step(i=1.5), "key 'steps.0.i' must be an integer, got number"),
        (_with_step(type="guess"), "key 'steps.0.type' must be 'compute', 'explain' or 'check'"),
        (_with_step(content=""), "key 'steps.0.content' must not be empty"),
        (_line({**GOOD_TRACE, "steps": []}), "key 'steps' must not be empty"),
        (_line({**GOOD_TRACE, "prompt": 3}), "key 'prompt' must be a string"),
        (_line({**GOOD_TRACE, "meta": "x"}), "key 'meta' must be an object"),
        (_with_step(by="me"), "unknown key 'steps.0.by'"),
        (_line([1, 2]), "record must be an object"),
        ('{"prompt": "a", "prompt": "b"}', "duplicate key 'prompt'"),
    ],
)
def test_malformed_trace_line_names_file_and_line(
    tmp_path: Path, bad_line: str, expected: str
) -> None:
    good = _line(GOOD_TRACE)
    path = _write(tmp_path / "traces.jsonl", [good, good, bad_line, good])
    message = _error_for(tmp_path)
    assert message.startswith(f"{path}:3: ")
    assert expected in message


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(_line(GOOD_ITEM).encode() + b"\n\xff\xfe\n")
    assert _error_for(path, load_evalset) == f"{path}:2: not valid UTF-8"


def test_duplicate_eval_id_names_line(tmp_path: Path) -> None:
    other = {**GOOD_ITEM, "id": "e-2"}
    path = _write(tmp_path / "e.jsonl", [_line(GOOD_ITEM), _line(other), _line(GOOD_ITEM)])
    message = _error_for(path, load_evalset)
    assert message == f"{path}:3: duplicate id 'e-1' (first on line 1)"


def test_wrong_eval_type_names_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_line({**GOOD_ITEM, "expected_answer": 5})])
    expected = f"{path}:1: key 'expected_answer' must be a string, got number"
    assert _error_for(path, load_evalset) == expected


def test_message_stays_on_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_line(GOOD_ITEM)])
    message = _error_for(path, lambda file: load_evalset(file, ["bad\nkey"]))
    named = "(named in the spec's evaluation.breakdown)"
    assert message == f"{path}:1: missing key 'bad\\nkey' {named}"


# --- the data's own keys: kept, and the evalset's grouped by the spec's breakdown ----------------

NOT_A_GROUP = "key 'section' must be a string, number or boolean to break down by"


def test_own_keys_are_kept_on_traces_and_items(tmp_path: Path) -> None:
    trace = _write(tmp_path / "t.jsonl", [_line({**GOOD_TRACE, "source": "forum", "tags": ["a"]})])
    assert load_traces(trace)[0].extra == {"source": "forum", "tags": ["a"]}
    item = {**GOOD_ITEM, "section": "algebra", "difficulty": 3, "notes": None}
    evalset = _write(tmp_path / "e.jsonl", [_line(item)])
    assert load_evalset(evalset)[0].extra == {"section": "algebra", "difficulty": 3, "notes": None}


def test_known_keys_stay_strictly_typed_beside_own_keys(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_line({**GOOD_ITEM, "section": "a", "category": 4})])
    expected = f"{path}:1: key 'category' must be a string, got number"
    assert _error_for(path, load_evalset) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, f"{NOT_A_GROUP}, got null"),
        (["a"], f"{NOT_A_GROUP}, got array"),
        ({"a": 1}, f"{NOT_A_GROUP}, got object"),
    ],
)
def test_a_breakdown_key_needs_a_value_to_group_by(
    tmp_path: Path, value: object, expected: str
) -> None:
    other = {**GOOD_ITEM, "id": "e-2", "section": "b"}
    path = _write(tmp_path / "e.jsonl", [_line(other), _line({**GOOD_ITEM, "section": value})])
    assert _error_for(path, lambda file: load_evalset(file, ["section"])) == f"{path}:2: {expected}"


def test_a_breakdown_key_missing_from_an_item_names_its_line(tmp_path: Path) -> None:
    other = {**GOOD_ITEM, "id": "e-2"}
    path = _write(tmp_path / "e.jsonl", [_line({**GOOD_ITEM, "section": "a"}), _line(other)])
    message = _error_for(path, lambda file: load_evalset(file, ["section"]))
    assert message == f"{path}:2: missing key 'section' (named in the spec's evaluation.breakdown)"


@pytest.mark.parametrize("loader", [load_traces, load_evalset])
def test_missing_file(tmp_path: Path, loader: Callable[[Path], object]) -> None:
    path = tmp_path / "absent.jsonl"
    assert _error_for(path, loader) == f"{path}: no such file"


def test_folder_without_traces(tmp_path: Path) -> None:
    assert _error_for(tmp_path) == f"{tmp_path / 'traces.jsonl'}: no such file"


# --- inputs named by path: a file of any name, or a folder ---------------------------------------


@pytest.mark.parametrize("locate", [dataset_file, evalset_file])
def test_an_absolute_file_of_any_name_is_read_where_it_is(
    tmp_path: Path, locate: Callable[[Path, str], Path]
) -> None:
    path = _write(tmp_path / "mount" / "my data.json-lines", [_line(GOOD_ITEM)])
    assert locate(tmp_path / "project", str(path)) == path.resolve()


@pytest.mark.parametrize("locate", [dataset_file, evalset_file])
def test_a_folder_with_one_jsonl_file_names_it(
    tmp_path: Path, locate: Callable[[Path, str], Path]
) -> None:
    path = _write(tmp_path / "my-data" / "dataset.jsonl", [_line(GOOD_TRACE)])
    (tmp_path / "my-data" / "README.md").write_text("about the data\n")
    assert locate(tmp_path, str(tmp_path / "my-data")) == path


def test_a_dataset_folder_reads_its_traces_jsonl_first(tmp_path: Path) -> None:
    traces = _write(tmp_path / "data" / "traces.jsonl", [_line(GOOD_TRACE)])
    _write(tmp_path / "data" / "other.jsonl", [_line(GOOD_TRACE)])
    assert dataset_file(tmp_path, str(tmp_path / "data")) == traces


@pytest.mark.parametrize(("locate", "kind"), [(dataset_file, "dataset"), (evalset_file, "evalset")])
def test_an_ambiguous_folder_is_refused_in_one_line_naming_it(
    tmp_path: Path, locate: Callable[[Path, str], Path], kind: str
) -> None:
    folder = tmp_path / "my-data"
    _write(folder / "dataset.jsonl", [_line(GOOD_TRACE)])
    _write(folder / "evalset.jsonl", [_line(GOOD_ITEM)])
    with pytest.raises(DataError) as info:
        locate(tmp_path, str(folder))
    assert str(info.value) == (
        f"the {kind} folder {folder} holds 2 .jsonl files (dataset.jsonl, evalset.jsonl): name one"
    )


@pytest.mark.parametrize(("locate", "kind"), [(dataset_file, "dataset"), (evalset_file, "evalset")])
def test_a_folder_without_jsonl_files_is_refused(
    tmp_path: Path, locate: Callable[[Path, str], Path], kind: str
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        locate(tmp_path, str(tmp_path / "empty"))
    assert str(info.value) == f"no .jsonl file in the {kind} folder {tmp_path / 'empty'}"


def test_project_names_keep_their_folders(tmp_path: Path) -> None:
    traces = _write(tmp_path / "datasets" / "notes" / "traces.jsonl", [_line(GOOD_TRACE)])
    evalset = _write(tmp_path / "evalsets" / "held-out.jsonl", [_line(GOOD_ITEM)])
    assert dataset_file(tmp_path, "notes") == traces
    assert evalset_file(tmp_path, "held-out") == evalset


@pytest.mark.parametrize("loader", [load_traces, load_evalset])
def test_empty_file(tmp_path: Path, loader: Callable[[Path], object]) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert _error_for(path, loader) == f"{path}: no records"


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(json_values, item_like), ascii_only=st.booleans())
def test_any_json_line_loads_or_raises_data_error(
    tmp_path_factory: pytest.TempPathFactory, value: object, ascii_only: bool
) -> None:
    path = tmp_path_factory.mktemp("prop") / "e.jsonl"
    path.write_text(json.dumps(value, ensure_ascii=ascii_only) + "\n", encoding="utf-8")
    try:
        items = load_evalset(path)
    except DataError as err:
        assert str(err).startswith(f"{path}:1: ")
        assert len(str(err).splitlines()) == 1
    else:
        assert len(items) == 1


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_load_or_raise_data_error(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "t.jsonl"
    path.write_bytes(raw)
    try:
        load_traces(path)
    except DataError as err:
        assert str(err).startswith(str(path))
