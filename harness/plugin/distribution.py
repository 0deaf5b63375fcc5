"""pytest-xdist support: a milestone's phases stay together, in order, on one worker."""

from __future__ import annotations

import re
from typing import Any

import pytest

WORKER_INPUT_KEY = "tunix_rt_runs"
_PARAM = re.compile(r"\[([^\[\]]+)\]$")


def param_of(nodeid: str) -> str | None:
    """The parametrization id of a node id (``...::test_train[smoke]`` -> ``smoke``)."""
    match = _PARAM.search(nodeid)
    return match.group(1) if match else None


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """An xdist controller: it starts workers and collects their reports, it runs no test.

    Read from the options (as xdist decides), since its session plugin registers after ours.
    """
    option = config.option
    return (
        not is_worker(config)
        and bool(getattr(option, "numprocesses", None))
        and getattr(option, "dist", "no") != "no"
        and not option.collectonly
    )


def milestone_scheduling(config: pytest.Config, log: Any, milestone_ids: set[str]) -> Any:
    """xdist's scope scheduling with one scope per milestone: its phases go, in collection
    order, to a single worker; other tests are scheduled one by one."""
    from xdist.scheduler import LoadScopeScheduling

    class MilestoneScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            milestone = param_of(nodeid)
            return f"milestone {milestone}" if milestone in milestone_ids else nodeid

    return MilestoneScheduling(config, log)
