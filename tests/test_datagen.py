"""Tests for the deterministic dataset and evalset generator."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from harness.spec.data import file_sha256, load_evalset, load_traces
from tools.datagen import generate as datagen
from tools.datagen import tasks

ROOT = Path(__file__).resolve().parent.parent
TRACES = "datasets/dev-reasoning-v2/traces.jsonl"
EVALS = "evalsets/eval_v2.jsonl"
FILES = (
    "datasets/dev-reasoning-v2/traces.jsonl",
    "datasets/dev-reasoning-v2/manifest.json",
    "evalsets/eval_v2.jsonl",
    "evalsets/eval_v2.manifest.json",
)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_root = tmp_path_factory.mktemp("regen")
    assert datagen.main(["--out-root", str(out_root)]) == 0
    return out_root


@pytest.mark.parametrize("relative", FILES)
def test_regeneration_is_byte_identical(regenerated: Path, relative: str) -> None:
    assert (regenerated / relative).read_bytes() == (ROOT / relative).read_bytes()


@pytest.mark.parametrize(
    ("manifest", "data", "name", "count"),
    [
        ("datasets/dev-reasoning-v2/manifest.json", TRACES, "dev-reasoning-v2", 550),
        ("evalsets/eval_v2.manifest.json", EVALS, "eval_v2", 100),
    ],
)
def test_manifest_describes_its_file(manifest: str, data: str, name: str, count: int) -> None:
    content = json.loads((ROOT / manifest).read_text(encoding="ascii"))
    assert content["sha256"] == file_sha256(ROOT / data)
    assert content["name"] == name
    assert content["generator"] == "tools.datagen"
    assert content["seed"] == datagen.SEED
    assert content["count"] == count == sum(content["categories"].values())
    assert set(content["categories"]) == set(datagen.CATEGORIES)


def test_files_use_sorted_ascii_lines() -> None:
    raw = (ROOT / FILES[0]).read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    for line in raw.decode("ascii").splitlines():
        assert json.dumps(json.loads(line), sort_keys=True, ensure_ascii=True) == line


def test_train_and_eval_prompts_are_disjoint() -> None:
    train = {trace.prompt for trace in load_traces(ROOT / "datasets" / "dev-reasoning-v2")}
    evals = {item.prompt for item in load_evalset(ROOT / "evalsets" / "eval_v2.jsonl")}
    assert len(train) == 550 and len(evals) == 100
    assert not train & evals


def test_split_seeds_differ() -> None:
    assert datagen.split_seed("train") != datagen.split_seed("eval")


def test_every_trace_fits_the_length_limits() -> None:
    for trace in load_traces(ROOT / "datasets" / "dev-reasoning-v2"):
        datagen.check_trace(trace)
        assert datagen.example_chars(trace) < datagen.MAX_EXAMPLE_CHARS
        assert len(trace.prompt) <= datagen.MAX_PROMPT_CHARS
        assert 1 <= len(trace.steps) <= datagen.MAX_STEPS
        assert all(32 <= ord(ch) < 127 for ch in trace.prompt + trace.final_answer)


def test_every_eval_prompt_is_short() -> None:
    for item in load_evalset(ROOT / "evalsets" / "eval_v2.jsonl"):
        assert len(item.prompt) <= datagen.MAX_PROMPT_CHARS


def test_check_trace_rejects_an_overlong_trace() -> None:
    trace = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[0]
    long_step = trace.steps[0].model_copy(update={"content": "x" * 200})
    with pytest.raises(ValueError, match="chars"):
        datagen.check_trace(trace.model_copy(update={"steps": [long_step]}))


@pytest.mark.parametrize(
    ("value", "text"),
    [(92, "92"), (Fraction(7, 2), "3.5"), (Fraction(-1, 4), "-0.25"), (0, "0")],
)
def test_num_formats_without_trailing_zeros(value: Fraction | int, text: str) -> None:
    assert tasks.num(value) == text


def test_num_refuses_more_than_two_decimals() -> None:
    with pytest.raises(ValueError):
        tasks.num(Fraction(1, 3))
