"""Tests for placeholder detection and the bundle problems the evidence phase reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.evidence import bundle
from harness.evidence.verify import SCHEMA_FILES, placeholder_paths, problems


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "TODO", "todo", "tbd", "TBD", "<fill me>", "<>", "null", "None", "n/a"]
    + [{}, []],
    ids=repr,
)
def test_placeholder_at_the_root(value: Any) -> None:
    assert placeholder_paths(value) == ["$"]


@pytest.mark.parametrize(
    "value",
    [0, 0.0, False, True, "0", "none (CPU build)", "passed", "TODO: see notes", "a <b>", 1e-8],
    ids=repr,
)
def test_real_values_are_accepted(value: Any) -> None:
    assert placeholder_paths(value) == []


def test_placeholders_are_found_at_their_json_paths() -> None:
    data = {
        "a": {"b": [1, {}, "ok"], "c": "TODO"},
        "d": [[], None],
        "e": {"f": {"g": "<fill me>"}},
        "h": "null",
        "i": {"j": False, "k": 0, "l": "none (CPU build)"},
    }
    assert sorted(placeholder_paths(data)) == sorted(
        ["$.a.b[1]", "$.a.c", "$.d[0]", "$.d[1]", "$.e.f.g", "$.h"]
    )


def test_a_filled_document_has_no_placeholders() -> None:
    data = {"milestone": "smoke", "steps": [{"loss": 2.5, "lr": 0.0}], "dirty": False, "n": 0}
    assert placeholder_paths(data) == []


def _write(run_dir: Path, name: str, text: str) -> None:
    path = run_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_problems_reports_missing_empty_and_placeholders(tmp_path: Path) -> None:
    _write(tmp_path, bundle.ENV_SNAPSHOT, "python  3.12\n")
    _write(tmp_path, bundle.GPU_SNAPSHOT, "")
    _write(tmp_path, bundle.RUN_MANIFEST, json.dumps({"milestone": "smoke", "commit": "TODO"}))
    _write(tmp_path, bundle.TRAINING_METRICS, json.dumps({"per_step": [], "final_loss": 1.5}))
    _write(tmp_path, bundle.EVALUATION_RESULTS, json.dumps({"accuracy": None}))
    files = [
        bundle.ENV_SNAPSHOT,
        bundle.GPU_SNAPSHOT,
        bundle.RUN_MANIFEST,
        bundle.TRAINING_METRICS,
        bundle.EVALUATION_RESULTS,
        bundle.TRAINING_LOG,
        f"{bundle.CHECKPOINT_DIR}/model.safetensors",
    ]
    found = problems(tmp_path, files)
    assert sorted(found) == sorted(
        [
            f"{bundle.GPU_SNAPSHOT}: empty",
            f"{bundle.RUN_MANIFEST}: $.commit is empty or a placeholder",
            f"{bundle.TRAINING_METRICS}: $.per_step is empty or a placeholder",
            f"{bundle.EVALUATION_RESULTS}: $.accuracy is empty or a placeholder",
            f"{bundle.TRAINING_LOG}: missing",
            f"{bundle.CHECKPOINT_DIR}/model.safetensors: missing",
        ]
    )


def test_complete_bundle_has_no_problems(tmp_path: Path) -> None:
    _write(tmp_path, bundle.ENV_SNAPSHOT, "python  3.12\n")
    _write(tmp_path, bundle.RUN_MANIFEST, json.dumps({"milestone": "smoke", "dirty": False}))
    _write(tmp_path, f"{bundle.CHECKPOINT_DIR}/config.json", "{}")
    files = [bundle.ENV_SNAPSHOT, bundle.RUN_MANIFEST, f"{bundle.CHECKPOINT_DIR}/config.json"]
    assert problems(tmp_path, files) == []


def test_only_evidence_json_is_scanned_for_placeholders(tmp_path: Path) -> None:
    assert set(SCHEMA_FILES) == {
        bundle.RUN_MANIFEST,
        bundle.TRAINING_METRICS,
        bundle.EVALUATION_RESULTS,
        bundle.BASE_EVALUATION_RESULTS,
    }
    _write(tmp_path, bundle.ENV_SNAPSHOT, "TODO\n")
    _write(tmp_path, bundle.EVALUATION_SUMMARY, "TBD\n")
    _write(tmp_path, f"{bundle.CHECKPOINT_DIR}/config.json", json.dumps({"x": None}))
    files = [bundle.ENV_SNAPSHOT, bundle.EVALUATION_SUMMARY, f"{bundle.CHECKPOINT_DIR}/config.json"]
    assert problems(tmp_path, files) == []


def test_a_directory_is_not_an_evidence_file(tmp_path: Path) -> None:
    (tmp_path / bundle.RUN_MANIFEST).mkdir()
    assert problems(tmp_path, [bundle.RUN_MANIFEST]) == [f"{bundle.RUN_MANIFEST}: missing"]
