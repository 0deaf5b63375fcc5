"""`python -m harness score` scores a predictions file again, ours or a foreign model's, with the
shared scorer: accuracy from the answer wherever it stands, format compliance from the tags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.evidence.writers import prediction_rows
from harness.record.evaluation import score_items
from harness.record.statistics import wilson
from harness.spec.data import load_evalset

ROOT = Path(__file__).resolve().parents[1]
EVALSET = ROOT / "evalsets" / "eval_v2.jsonl"
# A foreign model's free text for items 1-4 of eval_v2, and one id the evalset does not hold.
FOREIGN = [
    {"meta": {"eval_id": "eval_v2-0001"}, "final_answer": "7 + 24 = 31, so the answer is 31."},
    {"meta": {"eval_id": "eval_v2-0002"}, "final_answer": "80% of 167 is 0.8 * 167 = 133.6"},
    {"meta": {"eval_id": "eval_v2-0003"},
     "final_answer": "<reasoning>15 * 7</reasoning><answer>100</answer>"},
    {"meta": {"eval_id": "eval_v2-0004"}, "final_answer": "rettel"},
    {"meta": {"eval_id": "other-0001"}, "final_answer": "12"},
]


def write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def score(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["score", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path``, so that messages name files as a user typed them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


FOREIGN_KEYS = ("--evalset", str(EVALSET), "--id-key", "meta.eval_id", "--answer-key",
                "final_answer")


def test_a_foreign_file_with_nested_keys_gets_the_hand_computed_scores(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(here / "preds.jsonl", FOREIGN)
    code, out, err = score(capsys, "preds.jsonl", *FOREIGN_KEYS, "--out", "scores.json")
    assert (code, err) == (0, "")
    # Right: 31 after the marker, 133.6 as the last number, "rettel" as the whole line;
    # wrong: 100 in the tags, the only tagged (format compliant) completion.
    accuracy, compliance = wilson(3, 4), wilson(1, 4)
    written = json.loads((here / "scores.json").read_text())
    assert (written["count"], written["accuracy"], written["format_compliance"]) == (4, 0.75, 0.25)
    assert written["accuracy_interval"] == {"low": accuracy.low, "high": accuracy.high}
    assert written["format_compliance_interval"] == {"low": compliance.low, "high": compliance.high}
    assert written["answers_found"] == {"marker": 1, "last number": 1, "tag": 1, "whole text": 1}
    missing = written["evalset_items_without_prediction"]
    assert missing["count"] == 96 and missing["first_ids"][0] == "eval_v2-0005"
    assert written["predictions_without_evalset_item"] == {"count": 1, "first_ids": ["other-0001"]}
    assert f"| all | 4 | 75.0% [{accuracy.low:.1%}, {accuracy.high:.1%}] | 25.0% [" in out
    assert "- evalset items with no prediction: 96 (first: eval_v2-0005, " in out
    assert "- predictions with no evalset item: 1 (first: other-0001)" in out


def test_our_own_predictions_score_as_the_evaluate_phase_scored_them(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = load_evalset(EVALSET)[:5]
    completions = ["<reasoning>r</reasoning><answer>31</answer>", "133.6", "no idea", "", "0"]
    result = score_items(items, completions, runtime_s=1.0)
    rows = prediction_rows(result)
    rows[1]["correct"] = False  # what the file claims is not read: the scorer decides again
    write_lines(here / "predictions.jsonl", rows)
    code, out, _ = score(capsys, "predictions.jsonl", "--evalset", str(EVALSET), "--out", "s.json")
    written = json.loads((here / "s.json").read_text())
    assert code == 0 and written["accuracy"] == result.accuracy == 0.6
    assert written["per_category"]["arithmetic"]["accuracy"] == 1.0
    assert "(id key 'id', answer key 'completion')" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"meta": {"id": "eval_v2-0005"}, "final_answer": "0"}, "no key 'meta.eval_id'"),
        ({"meta": "eval_v2-0005", "final_answer": "0"}, "no key 'meta.eval_id'"),
        ({"meta": {"eval_id": "eval_v2-0005"}, "final_answer": None},
         "key 'final_answer' must be a string or a number, got null"),
        (["eval_v2-0005", "0"], "expected a JSON object, got array"),
        ({"meta": {"eval_id": "eval_v2-0001"}, "final_answer": "31"},
         "duplicate id 'eval_v2-0001' (first on line 1)"),
    ],
)
def test_a_malformed_line_is_one_line_naming_the_file_line_and_key(
    here: Path, capsys: pytest.CaptureFixture[str], line: object, message: str
) -> None:
    write_lines(here / "preds.jsonl", [*FOREIGN[:4], line])
    code, out, err = score(capsys, "preds.jsonl", *FOREIGN_KEYS, "--out", "scores.json")
    assert (code, out, err) == (2, "", f"preds.jsonl:5: {message}\n")
    assert not (here / "scores.json").exists()


def test_bad_json_and_unmatched_ids_from_the_command_line_without_a_traceback(
    here: Path,
) -> None:
    (here / "preds.jsonl").write_text(json.dumps(FOREIGN[0]) + "\n{not json\n")
    (here / "other.jsonl").write_text('{"id": 1, "completion": "31"}\n')
    command = [sys.executable, "-m", "harness", "score", "--evalset", str(EVALSET)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = subprocess.run([*command, "preds.jsonl"], capture_output=True, text=True, env=env)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith("preds.jsonl:2: invalid JSON (") and bad.stderr.count("\n") == 1
    unmatched = subprocess.run([*command, "other.jsonl"], capture_output=True, text=True, env=env)
    assert (unmatched.returncode, unmatched.stderr) == (
        2, "other.jsonl: no prediction names an evalset item (ids: 1)\n")
