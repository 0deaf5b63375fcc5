"""The run's rules as checks: fingerprints taken before training, compared again at the end.

No code, dependency or CI change during a run, and no output outside the run folder; what
sessions of other milestones write beside it (``history.written_by_others``) is theirs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.evidence import bundle, history
from harness.probes.fingerprints import (
    Fingerprint,
    GuardrailError,
    ci_fingerprint,
    code_fingerprint,
    dependency_fingerprint,
    outputs_snapshot,
    outside,
    read_lock,
    tree_is_clean,
)
from harness.record.run import MilestoneRun

GUARDRAILS_FILE = "guardrails.json"


@dataclass(frozen=True)
class Fingerprints:
    """Everything the rules compare, taken at one moment."""

    code: Fingerprint
    dependencies: Fingerprint
    ci: Fingerprint
    outputs: Fingerprint
    neighbours: dict[str, history.Neighbour]

    @classmethod
    def take(cls, top: Path, run: MilestoneRun) -> Fingerprints:
        # Other sessions are looked at before the outputs: whatever they write after this look
        # is still told apart as theirs at the end.
        neighbours = history.neighbours(run.run_dir.parent, own_series(run))
        return cls(
            code_fingerprint(top),
            dependency_fingerprint(),
            ci_fingerprint(top),
            outputs_snapshot(top),
            neighbours,
        )


def own_series(run: MilestoneRun) -> set[str]:
    """The series whose locks this session holds: they are among its allowed outputs."""
    return {series for path in run.allowed_outputs if (series := history.series_of(path))}


def git_top(root: Path) -> Path:
    """The top level of the git repository holding ``root``; the rules need one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as error:
        raise GuardrailError(f"{root}: git is not available ({error})") from None
    if done.returncode != 0:
        raise GuardrailError(f"{root}: not a git repository, so code changes cannot be ruled out")
    return Path(done.stdout.strip())


def check_before(run: MilestoneRun) -> list[str]:
    """Take the start fingerprints; problems if the tree is dirty (if required) or off the lock."""
    top = git_top(run.root)
    rules = run.milestone.spec.guardrails
    problems = []
    if rules.clean_tree:
        problems += [f"uncommitted change at start: {path}" for path in tree_is_clean(top)]
    start = Fingerprints.take(top, run)
    if rules.dependency_lock is not None:
        lock = read_lock(run.root / rules.dependency_lock)
        problems += [
            f"dependency differs from {rules.dependency_lock}: {line}"
            for line in lock.diff(start.dependencies)
        ]
    run.rules_start = start
    _record(run, "before", start, problems)
    return problems


def check_after(run: MilestoneRun) -> list[str]:
    """Compare with the start: code, dependencies and CI unchanged; outputs only where allowed."""
    start = run.rules_start
    if start is None:
        return ["no start fingerprints: the guardrails-before phase did not run"]
    top = git_top(run.root)
    end = Fingerprints.take(top, run)
    theirs = history.written_by_others(run.run_dir.parent, start.neighbours, own_series(run))
    code, outputs = start.code.diff(end.code), start.outputs.diff(end.outputs)
    for allowed in run.allowed_outputs:
        code, outputs = outside(code, allowed, top), outside(outputs, allowed, top)
    for path in theirs:
        outputs = outside(outputs, path, top)
    problems = [f"code {line}" for line in code]
    problems += [f"dependency {line}" for line in start.dependencies.diff(end.dependencies)]
    problems += [f"CI {line}" for line in start.ci.diff(end.ci)]
    problems += [f"output outside the run folder {line}" for line in outputs]
    _record(run, "after", end, problems, [str(path.relative_to(run.root)) for path in theirs])
    return problems


def _record(
    run: MilestoneRun,
    moment: str,
    prints: Fingerprints,
    problems: list[str],
    theirs: list[str] | None = None,
) -> None:
    """Keep what was compared in the bundle: commit, dependency versions, CI digests, problems,
    the other milestones' live sessions and the paths left to them."""
    path = run.run_dir / GUARDRAILS_FILE
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
