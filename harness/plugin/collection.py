"""Collection of the phase tests: one per phase and selected milestone, parametrized with the
milestone's hardware markers, run milestone by milestone in phase order."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from harness.spec.milestones import FreezeMilestone, Milestone

AnyMilestone = Milestone | FreezeMilestone


def phase_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("phase")
    return str(marker.args[0]) if marker else None


def milestone_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("milestone_id") if callspec else None


def parametrize(metafunc: pytest.Metafunc, milestones: Sequence[AnyMilestone]) -> None:
    """A phase test runs once per selected milestone whose kind has that phase, with the
    milestone's hardware markers."""
    if "milestone_id" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("phase")
    params = [
        pytest.param(m.id, id=m.id, marks=[getattr(pytest.mark, name) for name in m.spec.markers])
        for m in milestones
        if marker is None or marker.args[0] in m.spec.phases
    ]
    metafunc.parametrize("milestone_id", params, scope="session")


def idle_items(items: Sequence[pytest.Item], milestone_ids: set[str]) -> list[pytest.Item]:
    """Phase items with nothing to run: a phase no selected milestone has (train for a freeze),
    or a phase collected twice (from a test module and a spec file), whose first copy runs."""
    seen: set[tuple[str | None, str | None]] = set()
    idle = []
    for item in items:
        if "milestone_id" not in getattr(item, "fixturenames", ()):
            continue
        phase = (milestone_of(item), phase_of(item))
        if phase[0] not in milestone_ids or phase in seen:
            idle.append(item)
        seen.add(phase)
    return idle


def sort_phases(items: list[pytest.Item], milestones: Sequence[AnyMilestone]) -> None:
    """Phases run milestone by milestone, in phase order, whatever order they were collected in;
    other tests first."""
    order = {m.id: (index, m.spec.phases) for index, m in enumerate(milestones)}

    def key(item: pytest.Item) -> tuple[int, int]:
        phase, milestone_id = phase_of(item), milestone_of(item)
        if phase is None or milestone_id not in order:
            return (-1, -1)
        index, phases = order[milestone_id]
        return index, phases.index(phase)

    items.sort(key=key)
