"""Runs as tests: criteria fail exactly their phase, baselines add deltas, goldens catch drift."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("torch")


def with_criteria(mini: MiniProject, milestone_id: str, criteria: dict[str, str]) -> None:
    spec = mini.path / "configs" / "milestones" / f"{milestone_id}.yaml"
    lines = "".join(f'  {name}: "{text}"\n' for name, text in criteria.items())
    spec.write_text(spec.read_text().replace("acceptance:\n", "acceptance:\n" + lines))


@pytest.mark.slow
def test_an_impossible_criterion_fails_its_phase_in_one_line_and_later_phases_still_run(
    mini: MiniProject,
) -> None:
    with_criteria(mini, "mini", {"train.loss_ratio": "<= 0.0001"})
    mini.commit("an impossible criterion")
    result = mini.run("--milestone", "mini", "-rf")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*_ test_train[[]mini[]] _*", "train.loss_ratio = *, needs <= 0.0001"])
    result.stdout.no_fnmatch_line("*def test_train*")  # one line, no traceback
    manifest = mini.manifest("mini_v1")
    assert manifest["phases"]["train"]["cause"] == "acceptance criterion not met"
    assert manifest["phases"]["evaluate"]["status"] == "passed"
    verdicts = {c["metric"]: c["verdict"] for c in manifest["criteria"]}
    assert verdicts == {"train.loss_ratio": "failed", "train.nonfinite_steps": "passed", "eval.count": "passed"}
    summary = (mini.bundle("mini_v1") / "mini_summary.md").read_text()
    assert "| train | train.loss_ratio | <= 0.0001 |" in summary


@pytest.mark.slow
def test_a_baseline_adds_a_delta_table_and_resolves_baseline_in_criteria(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    with_criteria(mini, "mini", {"eval.format_compliance": ">= baseline - 0.1"})
    mini.commit("a criterion against the baseline")
    result = mini.run("--milestone", "mini", "--baseline", "submission_runs/mini_v1")
    result.assert_outcomes(passed=7)
    manifest = mini.manifest("mini_v2")
    assert manifest["baseline"]["run_id"] == "mini_v1"
    assert manifest["baseline"]["deltas"]["train.final_loss"]["delta"] == 0.0  # same seed, same CPU
    judged = [c for c in manifest["criteria"] if c["metric"] == "eval.format_compliance"]
    assert judged[0]["verdict"] == "passed" and judged[0]["comparison"] == ">= baseline - 0.1"
    summary = (mini.bundle("mini_v2") / "mini_summary.md").read_text()
    assert "## Compared with baseline `mini_v1`" in summary
    assert "| train.final_loss |" in summary
    # The same seed on the same CPU answers every item the same way: nothing flips, p = 1.
    paired = manifest["comparisons"]["baseline"]
    assert (paired["against"], paired["items"], paired["p_value"]) == ("mini_v1", 5, 1.0)
    assert paired["wrong_to_right_ids"] == paired["right_to_wrong_ids"] == ["none found"]
    assert "## Compared with mini_v1" in summary and "0 wrong to right, 0 right to wrong" in summary


@pytest.mark.slow
def test_a_metric_the_baseline_lacks_is_recorded_as_not_judged(mini: MiniProject) -> None:
    mini.run("--milestone", "mini-broken").assert_outcomes(passed=5, failed=1, skipped=1)
    with_criteria(mini, "mini", {"eval.accuracy": ">= baseline - 0.1"})
    mini.commit("a criterion against a baseline without evaluation")
    result = mini.run("--milestone", "mini", "--baseline", "submission_runs/mini-broken_v1")
    result.assert_outcomes(passed=7)
    judged = [c for c in mini.manifest("mini_v1")["criteria"] if c["metric"] == "eval.accuracy"]
    assert judged[0]["verdict"] == "not judged"
    assert judged[0]["reason"] == "no baseline value"


@pytest.mark.slow
def test_a_moved_loss_curve_fails_the_golden_comparison_naming_the_step(mini: MiniProject) -> None:
    mini.run("--milestone", "mini", "--update-goldens").assert_outcomes(passed=7)
    golden_file = mini.path / "configs" / "goldens" / "mini.torch.json"
    golden = json.loads(golden_file.read_text())
    golden["losses"][2] += 0.5
    golden_file.write_text(json.dumps(golden))
    mini.commit("a golden curve that the trainer no longer reproduces")
    result = mini.run("--milestone", "mini", "-rf")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*_ test_train[[]mini[]] _*", "golden curve mismatch: loss at step 3 is *"])
    reason = mini.manifest("mini_v2")["phases"]["train"]["reason"]
    assert "loss at step 3" in reason and "off by 0.5" in reason


@pytest.mark.slow
def test_same_seed_same_cpu_gives_identical_losses_and_predictions(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    first, second = mini.bundle("mini_v1"), mini.bundle("mini_v2")
    losses = [
        [s["loss"] for s in json.loads((b / "training_metrics.json").read_text())["per_step"]]
        for b in (first, second)
    ]
    assert losses[0] == losses[1]
    assert (first / "predictions.jsonl").read_bytes() == (second / "predictions.jsonl").read_bytes()


def test_a_baseline_criterion_without_a_baseline_is_a_spec_error(mini: MiniProject) -> None:
    with_criteria(mini, "mini", {"eval.accuracy": ">= baseline - 0.02"})
    result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*mini.yaml: key 'acceptance.eval.accuracy' compares with the baseline, but none is given*"]
    )


def test_an_unknown_metric_is_a_spec_error_with_the_nearest_name(mini: MiniProject) -> None:
    with_criteria(mini, "mini", {"eval.acuracy": ">= 0.3"})
    result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mini.yaml: key 'acceptance': unknown metric 'eval.acuracy' (did you mean 'eval.accuracy'?)*"])


def test_a_baseline_that_fails_verification_is_refused(mini: MiniProject) -> None:
    fake = mini.path / "submission_runs" / "mini_v9"
    fake.mkdir(parents=True)
    (fake / "run_manifest.json").write_text('{"milestone": "mini", "phases": {}}')
    result = mini.run_in_process("--milestone", "mini", "--baseline", "submission_runs/mini_v9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--baseline: *mini_v9: fails verification: *"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["-n", "2"], "*--update-goldens: refused under xdist*"), ([], "*--update-goldens: refused on a dirty tree*")],
)
def test_golden_updates_are_refused_under_xdist_or_on_a_dirty_tree(
    mini: MiniProject, extra: list[str], message: str
) -> None:
    training = mini.path / "configs" / "training" / "mini.yaml"
    training.write_text(training.read_text() + "# an uncommitted edit\n")
    result = mini.run_in_process("--milestone", "mini", "--update-goldens", *extra)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
