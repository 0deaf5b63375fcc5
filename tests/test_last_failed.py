"""--lf after a failed phase reruns the whole milestone in a new run folder, and nothing else."""

from __future__ import annotations

import pytest

from harness.spec.phase_order import PHASES

pytestmark = pytest.mark.slow


def test_last_failed_reruns_the_failed_milestone_whole_in_a_new_folder(mini) -> None:
    spec = mini.path / "configs" / "milestones" / "mini-bad.yaml"
    mini.milestone("mini-bad")
    spec.write_text(spec.read_text().replace('eval.count: "== 5"', 'eval.count: "== 6"'))
    mini.commit("a milestone whose evaluation criterion cannot hold")
    first = mini.run("--milestone", "mini", "--milestone", "mini-bad")
    assert first.ret == 1
    first.assert_outcomes(passed=13, failed=1)
    before = (mini.bundle("mini-bad_v1") / "run_manifest.json").read_bytes()

    rerun = mini.run("--milestone", "mini", "--milestone", "mini-bad", "--lf")
    # Every phase of mini-bad runs again (not only evaluate, which would then lack its
    # predecessors); mini passed and is left alone.
    outcomes = rerun.parseoutcomes()
    assert (outcomes["passed"], outcomes["failed"]) == (len(PHASES) - 1, 1)
    assert "mini-bad_v2: evaluate failed -> submission_runs/mini-bad_v2/" in rerun.outlines
    assert mini.manifest("mini-bad_v2")["phases"]["train"]["status"] == "passed"  # trained again
    assert (mini.bundle("mini-bad_v1") / "run_manifest.json").read_bytes() == before
    assert not mini.bundle("mini_v2").exists()
    # The report was to go into mini_v2, the session's first run, which ran nothing: the line
    # pytest-html ends with names the copy in the run that did.
    report_line = next(line for line in rerun.outlines if "Generated html report" in line)
    assert f"{mini.bundle('mini-bad_v2').as_uri()}/report.html" in report_line
    assert "test_evaluate[mini-bad]" in (mini.bundle("mini-bad_v2") / "report.html").read_text()
