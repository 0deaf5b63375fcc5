"""--reevaluate: an earlier bundle's checkpoint evaluated anew into a new bundle that names its
source, without training and without touching the earlier bundle."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from harness.evidence.verify import verify_bundle

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("torch")


@pytest.mark.slow
def test_a_checkpoint_is_evaluated_anew_into_a_bundle_that_names_its_source(
    mini: MiniProject,
) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    earlier = mini.bundle("mini_v1")
    sums = (earlier / "SHA256SUMS").read_text()

    mini.run("--milestone", "mini", "--reevaluate", "submission_runs/mini_v1").assert_outcomes(
        passed=7
    )

    again = mini.bundle("mini_v2")
    manifest = mini.manifest("mini_v2")
    assert manifest["reevaluates"]["run_id"] == "mini_v1"
    assert verify_bundle(again) == [] and verify_bundle(earlier) == []
    assert (earlier / "SHA256SUMS").read_text() == sums  # the earlier bundle is untouched
    weights = "checkpoint/model.safetensors"
    assert (again / weights).stat().st_ino == (earlier / weights).stat().st_ino  # linked, not copied
    # The same checkpoint, greedy decoding: the same completions, scored the same way.
    first, second = (
        [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
        for run in (earlier, again)
    )
    assert first == second
    metrics = [json.loads((run / "training_metrics.json").read_text()) for run in (earlier, again)]
    assert [s["loss"] for s in metrics[0]["per_step"]] == [s["loss"] for s in metrics[1]["per_step"]]
    assert "no training" in (again / "training_log.txt").read_text()
    assert "**Re-evaluation**: no training in this run" in (again / "mini_summary.md").read_text()


def test_a_bundle_of_another_milestone_or_one_that_does_not_verify_is_refused(
    mini: MiniProject,
) -> None:
    result = mini.run_in_process("--milestone", "mini", "--reevaluate", "nowhere")
    result.stderr.fnmatch_lines(["*--reevaluate: */nowhere: not an evidence bundle*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result = mini.run_in_process("--milestone", "mini", "--milestone", "mini-gpu", "--reevaluate", "x")
    result.stderr.fnmatch_lines(["*--reevaluate: select exactly one training milestone*"])
