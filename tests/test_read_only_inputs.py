"""A run whose data lies outside the project on a read-only mount, as Kaggle mounts
/kaggle/input: read where it lies, recorded resolved, its own keys kept and broken down, the
mount left as it was."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.spec.data import file_sha256
from tests.mounts import read_only, tree_state

if TYPE_CHECKING:
    from tests.conftest import MiniProject

# Found, not imported: torch cannot be imported twice into one process, and pytester drops the
# modules a test imported. The mini run trains in its own process.
NEEDS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.slow
@NEEDS_TORCH
def test_a_run_reading_its_data_from_a_read_only_mount_documents_it_and_leaves_it_untouched(
    mini: MiniProject,
) -> None:
    mount = mini.pytester.path / "kaggle" / "input" / "my-data"
    dataset = mount / "dataset.jsonl"
    traces = mini.path / "datasets" / "mini" / "traces.jsonl"
    write_lines(dataset, traces.read_text(encoding="utf-8").splitlines())
    items = (mini.path / "evalsets" / "mini.jsonl").read_text(encoding="utf-8").splitlines()
    own = [
        json.dumps(json.loads(line) | {"section": "ab"[i % 2], "difficulty": i})
        for i, line in enumerate(items)
    ]
    evalset = write_lines(mount / "held-out" / "questions.jsonl", own)
    spec = mini.path / "configs" / "milestones" / "mini.yaml"
    text = spec.read_text(encoding="utf-8").replace("dataset: mini", f"dataset: {dataset}")
    text = text.replace("evalset: mini", f"evalset: {evalset.parent}")
    spec.write_text(text + "evaluation: {breakdown: [section]}\n", encoding="utf-8")
    mini.commit("data read from a read-only mount")
    with read_only(mount) as before:
        mini.run("--milestone", "mini").assert_outcomes(passed=7)
        assert tree_state(mount) == before
    manifest = mini.manifest("mini_v1")
    assert manifest["dataset"]["resolved_path"] == str(dataset.resolve())
    assert manifest["dataset"]["sha256"] == file_sha256(dataset)
    assert manifest["evalset"]["as_written"] == str(evalset.parent)
    assert manifest["evalset"]["resolved_path"] == str(evalset.resolve())
    assert manifest["evalset"]["records"] == 5
    run_dir = mini.bundle("mini_v1")
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    predictions = [json.loads(line) for line in lines]
    assert [row["extra"] for row in predictions[:2]] == [
        {"section": "a", "difficulty": 0},
        {"section": "b", "difficulty": 1},
    ]
    results = json.loads((run_dir / "evaluation_results.json").read_text())
    sections = results["breakdown"]["section"]
    assert {value: scores["count"] for value, scores in sections.items()} == {"a": 3, "b": 2}
    assert "## By section" in (run_dir / "evaluation_summary.md").read_text()
