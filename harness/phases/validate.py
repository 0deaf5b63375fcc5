"""The validate phase of a freeze milestone: the frozen ZIP (or the candidate to freeze) opens,
matches its manifest, holds no secrets and fits its budget."""

from __future__ import annotations

import shutil

from harness.evidence.submission_zip import SUBMISSION_ZIP, frozen_zip, validate_zip
from harness.record.run import MilestoneRun
from harness.spec.milestones import FreezeSpec


def validate(run: MilestoneRun) -> list[str]:
    """Problems with the frozen ZIP: it opens, matches its manifest, has no secrets or unsafe
    paths, fits its budget.

    With --snapshot-update the candidate that build wrote is validated instead, and only a valid
    one replaces the frozen ZIP; lock (which needs validate) then records it.
    """
    spec = run.milestone.spec
    assert isinstance(spec, FreezeSpec)
    frozen = frozen_zip(run.run_dir.parent, spec.id)
    if not run.options.update_snapshots:
        return validate_zip(frozen, spec.size_budget_mb)
    candidate = run.run_dir / SUBMISSION_ZIP
    if not candidate.is_file():
        return [f"build wrote no {SUBMISSION_ZIP} in {run.run_id}: nothing to freeze"]
    problems = validate_zip(candidate, spec.size_budget_mb)
    if not problems:
        frozen.parent.mkdir(parents=True, exist_ok=True)
        temporary = frozen.with_name(f".{frozen.name}.tmp")
        shutil.copyfile(candidate, temporary)
        temporary.replace(frozen)
    return problems
