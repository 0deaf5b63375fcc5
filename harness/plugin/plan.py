"""What a session would do, without doing it: the milestone list and the per-phase plan."""

from __future__ import annotations

from pathlib import Path

from harness.evidence import bundle
from harness.evidence.bundle import read_manifest
from harness.probes.hardware import missing_devices, wrong_platform
from harness.spec.milestones import FreezeMilestone, Milestone
from harness.spec.phase_order import NEEDS
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError


def latest_outcome(runs_root: Path, milestone_id: str) -> str:
    """``<run id>: <verdict>`` of the newest bundle of a milestone, or that there is none."""
    runs = bundle.run_dirs(runs_root, milestone_id) if runs_root.is_dir() else []
    if not runs:
        return "no bundle yet"
    manifest = read_manifest(runs[-1]) or {}
    return f"{runs[-1].name}: {manifest.get('verdict', 'no manifest (interrupted?)')}"


def milestone_lines(registry: MilestoneRegistry, runs_root: Path) -> list[str]:
    """One line per known milestone: id, title, backend, hardware, latest outcome."""
    lines = []
    for milestone_id in registry.ids():
        try:
            milestone = registry.load(milestone_id)
        except SpecError as error:
            lines.append(f"{milestone_id}: invalid spec: {error}")
            continue
        if isinstance(milestone, FreezeMilestone):
            what = f"freeze of {milestone.spec.source}"
        else:
            what = f"{milestone.spec.backend}, {milestone.spec.hardware.label}"
        lines.append(
            f"{milestone_id}: {milestone.spec.title} [{what}] -- latest: {latest_outcome(runs_root, milestone_id)}"
        )
    return lines


def blocked_here(milestone: Milestone | FreezeMilestone) -> str | None:
    """Why pre-flight would skip this milestone on this machine (read-only probes), else None."""
    if isinstance(milestone, FreezeMilestone):
        return None
    spec = milestone.spec
    return wrong_platform(spec.hardware, spec.backend) or missing_devices(spec.hardware, spec.backend)


def plan_lines(milestone: Milestone | FreezeMilestone) -> list[str]:
    """The phases in order, what each needs, and what would be skipped here and why."""
    needs_hardware = "any machine" if isinstance(milestone, FreezeMilestone) else milestone.spec.hardware.label
    blocked = blocked_here(milestone)
    lines = [f"milestone {milestone.id}: needs {needs_hardware}"]
    for phase in milestone.spec.phases:
        after = f" (after {NEEDS[phase]})" if phase in NEEDS else " (always runs)"
        if blocked and phase == "preflight":
            fate = f"would skip: {blocked}"
        elif blocked and phase in NEEDS:
            fate = "would skip: preflight skipped"
        else:
            fate = "would run"
        lines.append(f"  {phase}{after}: {fate}")
    return lines
