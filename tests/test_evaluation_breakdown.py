"""The evalset's own keys: kept in predictions.jsonl, and the scores broken down by the ones the
spec's ``evaluation.breakdown`` names, beside the unchanged per-category figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.evidence import bundle
from harness.evidence.verify import placeholder_paths, schema
from harness.evidence.writers import evaluation_results, evaluation_summary, prediction_rows
from harness.record.evaluation import score_items
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.data import EvalItem
from harness.spec.milestones import EvaluationSpec, Milestone
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError

ROOT = Path(__file__).resolve().parent.parent
RIGHT = "<reasoning>a</reasoning><answer>4</answer>"
WRONG = "<reasoning>a</reasoning><answer>5</answer>"


def item(index: int, **own: object) -> EvalItem:
    return EvalItem.model_validate(
        {"id": f"e-{index}", "prompt": "2 + 2?", "expected_answer": "4", "category": "sums", **own}
    )


ITEMS = [
    item(1, section="algebra", difficulty=1),
    item(2, section="algebra", difficulty=2),
    item(3, section="geometry", difficulty=2),
    item(4, section="geometry", difficulty=True),
]
COMPLETIONS = [RIGHT, WRONG, RIGHT, "no tags"]


def test_scores_break_down_by_each_named_key() -> None:
    result = score_items(ITEMS, COMPLETIONS, 1.0, ["section", "difficulty"])
    sections = result.breakdown["section"]
    assert list(sections) == ["algebra", "geometry"]
    assert (sections["algebra"].count, sections["algebra"].accuracy) == (2, 0.5)
    assert (sections["geometry"].accuracy, sections["geometry"].format_compliance) == (0.5, 0.5)
    # Numbers and booleans are grouped under the text JSON writes for them.
    assert {value: s.count for value, s in result.breakdown["difficulty"].items()} == {
        "1": 1,
        "2": 2,
        "true": 1,
    }
    assert result.per_category["sums"].count == 4


def test_no_named_key_no_breakdown() -> None:
    assert score_items(ITEMS, COMPLETIONS, 1.0).breakdown == {}


@pytest.fixture
def run(tmp_path: Path) -> MilestoneRun:
    smoke = MilestoneRegistry(ROOT).load("smoke")
    assert isinstance(smoke, Milestone)
    spec = smoke.spec.model_copy(update={"evaluation": EvaluationSpec(breakdown=("section",))})
    run_dir = bundle.allocate_run_dir(tmp_path / "runs", "smoke")
    run = MilestoneRun(dataclasses.replace(smoke, spec=spec), ROOT, run_dir, RunOptions())
    run.record.eval_result = score_items(ITEMS, COMPLETIONS, 2.0, ["section"])
    return run


def test_evaluation_results_carry_the_breakdown_beside_per_category(run: MilestoneRun) -> None:
    results = evaluation_results(run, run.record.eval_result)
    jsonschema.validate(results, schema(bundle.EVALUATION_RESULTS))
    assert placeholder_paths(results) == []

    def rates(scores: dict) -> dict:
        return {key: scores[key] for key in ("count", "accuracy", "format_compliance")}

    assert rates(results["per_category"]["sums"]) == rates(
        {"count": 4, "accuracy": 0.5, "format_compliance": 0.75}
    )
    by_section = results["breakdown"]["section"]
    assert {value: rates(scores) for value, scores in by_section.items()} == {
        "algebra": {"count": 2, "accuracy": 0.5, "format_compliance": 1.0},
        "geometry": {"count": 2, "accuracy": 0.5, "format_compliance": 0.5},
    }
    # Each value's rates carry their intervals, as the overall and per-category ones do.
    assert by_section["algebra"]["accuracy_interval"]["low"] == pytest.approx(0.0945, abs=1e-4)


def test_the_schema_refuses_an_empty_breakdown(run: MilestoneRun) -> None:
    results = evaluation_results(run, run.record.eval_result) | {"breakdown": {"section": {}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(results, schema(bundle.EVALUATION_RESULTS))


def test_the_summary_has_a_table_per_breakdown_key(run: MilestoneRun) -> None:
    assert run.record.eval_result is not None
    summary = evaluation_summary(run, run.record.eval_result)
    table = summary[summary.index("## By section") :].splitlines()
    assert table[2:6] == [
        "| section | items | accuracy | format compliance |",
        "| --- | ---: | ---: | ---: |",
        "| algebra | 2 | 50.0% [9.5%, 90.5%] | 100.0% [34.2%, 100.0%] |",
        "| geometry | 2 | 50.0% [9.5%, 90.5%] | 50.0% [9.5%, 90.5%] |",
    ]


def test_predictions_keep_the_items_own_keys(run: MilestoneRun, tmp_path: Path) -> None:
    assert run.record.eval_result is not None
    path = bundle.write_jsonl(
        tmp_path / "predictions.jsonl", prediction_rows(run.record.eval_result)
    )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["extra"] == {"section": "algebra", "difficulty": 1}
    assert rows[3]["extra"] == {"section": "geometry", "difficulty": True}
    assert rows[0]["correct"] is True
    plain = score_items([item(9)], [RIGHT], 1.0)
    assert "extra" not in prediction_rows(plain)[0]


# --- the spec's evaluation block ------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for folder in ("configs", "datasets", "evalsets"):
        (root / folder).symlink_to(ROOT / folder)
    return root


def spec_with(project: Path, evaluation: object) -> Path:
    """The project's smoke spec, copied into its own milestone folder with ``evaluation``."""
    folder = project / "milestones"
    folder.mkdir(exist_ok=True)
    data = yaml.safe_load((ROOT / "configs" / "milestones" / "smoke.yaml").read_text())
    path = folder / "smoke.yaml"
    data |= {"evaluation": evaluation, "frozen": []}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load(project: Path) -> Milestone:
    milestone = MilestoneRegistry(project, [Path("milestones")]).load("smoke")
    assert isinstance(milestone, Milestone)
    return milestone


def test_a_spec_names_its_breakdown_keys(project: Path) -> None:
    spec_with(project, {"breakdown": ["section", "difficulty"]})
    assert load(project).spec.evaluation.breakdown == ("section", "difficulty")


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        (
            {"breakdown": ["category"]},
            "key 'evaluation.breakdown': 'category' is a key the harness reads",
        ),
        ({"breakdown": ["a", "a"]}, "key 'evaluation.breakdown': 'a' is named twice"),
        (
            {"breakdown": [""]},
            "key 'evaluation.breakdown.0': String should have at least 1 character",
        ),
        ({"breakdown": "section"}, "key 'evaluation.breakdown': Input should be a valid tuple"),
        ({"brekdown": ["a"]}, "unknown key 'evaluation.brekdown' (did you mean 'breakdown'?)"),
    ],
)
def test_a_bad_evaluation_block_is_one_line_naming_file_and_key(
    project: Path, evaluation: object, expected: str
) -> None:
    path = spec_with(project, evaluation)
    with pytest.raises(SpecError) as info:
        load(project)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
