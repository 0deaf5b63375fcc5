"""pytest-xdist: each milestone's phases run in order on one worker, milestones side by side."""

from __future__ import annotations

import json
import re

import pytest

from harness.evidence import bundle
from harness.evidence.verify import verify_bundle
from harness.spec.phase_order import PHASES

pytestmark = pytest.mark.slow


def journal_phases(run_dir) -> list[str]:
    """The phases in the order the journal recorded them."""
    text = (run_dir / bundle.JOURNAL).read_text()
    return re.findall(r"^## \S+ (\S+): ", text, flags=re.MULTILINE)


def test_two_milestones_run_side_by_side_each_on_one_worker(mini) -> None:
    mini.milestone("mini-jax", backend="jax")
    mini.commit("a jax milestone")
    result = mini.run("-n", "2", "--milestone", "mini", "--milestone", "mini-jax", "-v")
    assert result.ret == 0, result.stdout.str()
    workers: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        # -v lines under xdist: "[gw0] [ 50%] PASSED project/acceptance/...::test_train[mini]"
        found = re.search(r"^\[(gw\d)\].*\[(mini(?:-jax)?)\]\s*$", line)
        if found:
            workers.setdefault(found.group(2), set()).add(found.group(1))
    for run_id, milestone in (("mini_v1", "mini"), ("mini-jax_v1", "mini-jax")):
        run_dir = mini.bundle(run_id)
        assert journal_phases(run_dir) == list(PHASES), run_id
        assert mini.manifest(run_id)["verdict"] == "passed", run_id
        assert verify_bundle(run_dir) == [], run_id
        # Sampled where the phases ran, in the worker: every phase is on the timeline.
        samples = (run_dir / bundle.RESOURCES).read_text().splitlines()
        assert list(dict.fromkeys(json.loads(line)["phase"] for line in samples)) == list(PHASES)
        assert len(workers[milestone]) == 1, f"{milestone} was split over workers {workers[milestone]}"
    assert workers["mini"] != workers["mini-jax"], "the milestones did not run side by side"
    # One report for the session, with the rows of both milestones, copied into each bundle.
    report = (mini.bundle("mini_v1") / bundle.REPORT).read_text()
    assert "test_train[mini]" in report and "test_train[mini-jax]" in report
    assert (mini.bundle("mini-jax_v1") / bundle.REPORT).read_text() == report
    assert "mini_v1: passed" in result.stdout.str() and "mini-jax_v1: passed" in result.stdout.str()
