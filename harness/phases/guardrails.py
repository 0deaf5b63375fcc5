"""The guardrails-before and guardrails-after phases: the run's rules as checks, fingerprints
taken before training and compared again at the end.

No code, dependency or CI change during a run, and no output outside the run folder; what
sessions of other milestones write beside it (``neighbours.written_by_others``) is theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.probes.fingerprints import (
    ci_fingerprint,
    code_fingerprint,
    dependency_fingerprint,
    outputs_snapshot,
    outside,
)
from harness.probes.git import dirty_paths, git_top
from harness.probes.neighbours import neighbours, written_by_others
from harness.record.fingerprints import Fingerprint, Fingerprints
from harness.record.run import MilestoneRun
from harness.spec.dependency_lock import read_lock


def take_fingerprints(top: Path, run: MilestoneRun) -> Fingerprints:
    """Everything the rules compare, now. Other sessions are looked at before the outputs:
    whatever they write after this look is still told apart as theirs at the end."""
    others = neighbours(run.run_dir.parent, own_series(run))
    return Fingerprints(
        code_fingerprint(top),
        dependency_fingerprint(),
        ci_fingerprint(top),
        outputs_snapshot(top),
        others,
    )


def own_series(run: MilestoneRun) -> set[str]:
    """The series whose locks this session holds: they are among its allowed outputs."""
    allowed = run.options.allowed_outputs
    return {series for path in allowed if (series := bundle.series_of(path))}


def check_before(run: MilestoneRun) -> list[str]:
    """Take the start fingerprints; problems if the tree is dirty (if required) or off the lock."""
    top = git_top(run.root)
    rules = run.milestone.spec.guardrails
    problems = []
    if rules.clean_tree:
        problems += [f"uncommitted change at start: {path}" for path in dirty_paths(top)]
    start = take_fingerprints(top, run)
    if rules.dependency_lock is not None:
        lock = Fingerprint(read_lock(run.root / rules.dependency_lock))
        problems += [
            f"dependency differs from {rules.dependency_lock}: {line}"
            for line in lock.diff(start.dependencies)
        ]
    run.record.start_fingerprints = start
    _write(run, "before", start, problems)
    return problems


def check_after(run: MilestoneRun) -> list[str]:
    """Compare with the start: code, dependencies and CI unchanged; outputs only where allowed."""
    start = run.record.start_fingerprints
    if start is None:
        return ["no start fingerprints: the guardrails-before phase did not run"]
    top = git_top(run.root)
    end = take_fingerprints(top, run)
    theirs = written_by_others(run.run_dir.parent, start.neighbours, own_series(run))
    code, outputs = start.code.diff(end.code), start.outputs.diff(end.outputs)
    for allowed in run.options.allowed_outputs:
        code, outputs = outside(code, allowed, top), outside(outputs, allowed, top)
    for path in theirs:
        outputs = outside(outputs, path, top)
    problems = [f"code {line}" for line in code]
    problems += [f"dependency {line}" for line in start.dependencies.diff(end.dependencies)]
    problems += [f"CI {line}" for line in start.ci.diff(end.ci)]
    problems += [f"output outside the run folder {line}" for line in outputs]
    _write(run, "after", end, problems, [str(path.relative_to(run.root)) for path in theirs])
    return problems


def _write(
    run: MilestoneRun,
    moment: str,
    prints: Fingerprints,
    problems: list[str],
    theirs: list[str] | None = None,
) -> None:
    """Keep what was compared in the bundle: commit, dependency versions, CI digests, problems,
    the other milestones' live sessions and the paths left to them."""
    path = run.run_dir / bundle.GUARDRAILS
    data: dict[str, Any] = bundle.read_json(path) if path.is_file() else {}
    data[moment] = {
        "head": prints.code.entries.get("HEAD", "no commit"),
        "tracked_files": len(prints.code.entries) - 1,
        "dependencies": prints.dependencies.to_json(),
        "ci": prints.ci.to_json(),
        "outputs_seen": len(prints.outputs.entries),
        "other_sessions_live": sorted(s for s, seen in prints.neighbours.items() if seen.live)
        or ["none"],
        "problems": problems or ["none"],
    }
    if theirs is not None:
        data[moment]["left_to_other_sessions"] = theirs or ["none"]
    bundle.write_json(path, data)
