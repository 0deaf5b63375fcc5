"""``--lf`` for milestones: a milestone with a failed phase is rerun whole, in a new run folder,
never a phase without its predecessors."""

from __future__ import annotations

from collections.abc import Container

import pytest

from harness.plugin.distribution import param_of


class WholeMilestoneRerun:
    """Notes the phase node ids of the session's milestones (``milestone_ids``, a live view) and
    which of them failed; at the end it marks every phase of a failed one as failed."""

    def __init__(self, milestone_ids: Container[str]) -> None:
        self.milestone_ids = milestone_ids
        self.phase_nodeids: dict[str, set[str]] = {}
        self.failed: set[str] = set()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        milestone_id = param_of(report.nodeid)
        if milestone_id is not None and milestone_id in self.milestone_ids:
            self.phase_nodeids.setdefault(milestone_id, set()).add(report.nodeid)
            if report.failed:
                self.failed.add(milestone_id)

    def mark_failed(self, config: pytest.Config) -> None:
        """Before the cache plugin saves: a failed milestone counts as failed in every phase."""
        last_failed = config.pluginmanager.get_plugin("lfplugin")
        if last_failed is None:
            return
        for milestone_id in self.failed:
            for nodeid in self.phase_nodeids[milestone_id]:
                last_failed.lastfailed[nodeid] = True
