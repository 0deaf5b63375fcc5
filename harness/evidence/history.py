"""A milestone's runs on this machine: which run a new one follows, what other live sessions may
write, symlinks no session writes through, and marking a run whose session never finished."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from harness.evidence import bundle
from harness.evidence.verify import write_checksums
from harness.evidence.writers import cell
from harness.record.failures import WHAT_TO_LOOK_AT, Cause
from harness.record.outcomes import Status
from harness.spec.phase_order import TRAIN, phases_of

LOCK_SUFFIX = ".lock"
# How long a session waits for its milestone's lock: another session may be probing it (_held).
LOCK_WAIT_S = 1.0


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        return bundle.read_json(run_dir / bundle.RUN_MANIFEST)
    except (OSError, json.JSONDecodeError):
        return None


def session_finished(run_dir: Path) -> bool:
    """Whether the session that wrote ``run_dir`` ended normally (even with failed phases)."""
    manifest = read_manifest(run_dir)
    return bool(manifest and manifest.get("session_finished"))


def lock_path(runs_root: Path, series: str) -> Path:
    """``.<series>.lock``, held by the session of that series; the OS releases it if it dies."""
    return runs_root / f".{series}{LOCK_SUFFIX}"


def series_of(path: Path) -> str | None:
    """The series whose lock file ``path`` is, None for any other path."""
    name = path.name
    if name.startswith(".") and name.endswith(LOCK_SUFFIX) and len(name) > len(LOCK_SUFFIX) + 1:
        return name[1 : -len(LOCK_SUFFIX)]
    return None


def symlink_refusal(
    root: Path, runs_dir: str, runs_root: Path, series: Iterable[str]
) -> str | None:
    """Why a session must not start, in one line: a symlink it would write through. That is the
    runs folder (``runs_dir`` as the ini spells it) or a folder above it, a milestone's lock file,
    one of its run folders, or anything inside the unfinished run it would mark interrupted."""
    given, folder = root / runs_dir, root
    for part in given.relative_to(root).parts if given.is_relative_to(root) else ():
        folder = folder / part
        if folder.is_symlink():
            return f"runs_dir = {runs_dir}: {_linked(folder, root)}; make it a real folder"
    for name in series:
        if (found := _symlinked(runs_root, name)) is not None:
            return f"--milestone {name}: {_linked(found, root)}; replace the link by its target"
    return None


def _linked(path: Path, root: Path) -> str:
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return (
        f"{shown} is a symlink (to {os.readlink(path)}) and no session writes through one, "
        "so nothing was written"
    )


def _symlinked(runs_root: Path, series: str) -> Path | None:
    """A symlink a session of ``series`` would write through."""
    folders = bundle.run_dirs(runs_root, series)
    paths = [lock_path(runs_root, series), *folders]
    if folders and not folders[-1].is_symlink() and not session_finished(folders[-1]):
        for current, dirnames, filenames in os.walk(folders[-1]):  # never enters a linked folder
            paths += [Path(current, name) for name in dirnames + filenames]
    return next((path for path in paths if path.is_symlink()), None)


@dataclass(frozen=True)
class Neighbour:
    """Another milestone's sessions as one session saw them at one moment."""

    live: bool  # some session held its lock
    newest: int  # its highest run number, 0 before its first run
    open_from: int  # its first run number a session may still write: after its newest finished one


def neighbours(runs_root: Path, own: Iterable[str]) -> dict[str, Neighbour]:
    """Every other series with a lock file in ``runs_root``; ``own`` are this session's series."""
    found = {}
    for series, lock in _locks(runs_root, own):
        folders = bundle.run_dirs(runs_root, series)
        finished = next((_number(f) for f in reversed(folders) if session_finished(f)), 0)
        found[series] = Neighbour(_held(lock), _newest(folders), finished + 1)
    return found


def written_by_others(
    runs_root: Path, start: dict[str, Neighbour], own: Iterable[str]
) -> list[Path]:
    """What other milestones' sessions may have written since ``start``: for each series whose
    lock was held then, or that opened a run folder since, its lock file and its run folders from
    the first one still open at the start. Every other series' folders stay this session's to
    keep clean."""
    paths = []
    for series, lock in _locks(runs_root, own):
        then = start.get(series, Neighbour(live=False, newest=0, open_from=1))
        folders = bundle.run_dirs(runs_root, series)
        if then.live or _newest(folders) > then.newest:
            paths += [lock, *(f for f in folders if _number(f) >= then.open_from)]
    return paths


def _locks(runs_root: Path, own: Iterable[str]) -> list[tuple[str, Path]]:
    skip = set(own)
    found = ((series_of(path), path) for path in sorted(runs_root.glob(f".*{LOCK_SUFFIX}")))
    return [(series, path) for series, path in found if series is not None and series not in skip]


def _held(lock: Path) -> bool:
    """Whether a session holds ``lock``: taking it for an instant tells. A session that starts
    in that instant waits for it (``LOCK_WAIT_S``) instead of being refused."""
    probe = FileLock(lock)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return False  # unreadable: counted as not live, so that series' folders stay checked
    probe.release()
    return False


def _number(run_dir: Path) -> int:
    return int(run_dir.name.rpartition("_v")[2])


def _newest(folders: list[Path]) -> int:
    return _number(folders[-1]) if folders else 0


def last_log_line(run_dir: Path) -> str:
    try:
        lines = (run_dir / bundle.TRAINING_LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        return "no training_log.txt: training had not started"
    steps = [line for line in lines if line.startswith("step ")]
    return steps[-1] if steps else "no optimizer step was logged"


def mark_interrupted(run_dir: Path, noticed_by: str, noticed_at: str) -> None:
    """Record that ``run_dir``'s session never finished and where it stopped, in its manifest and
    failure analysis; every other file stays, and SHA256SUMS is written so the bundle verifies."""
    manifest = read_manifest(run_dir) or {"run_id": run_dir.name}
    steps = _logged_steps(run_dir)
    phases = _phases_in_order(manifest)
    ended = [i for i, (_, outcome) in enumerate(phases) if outcome.get("status") != Status.NOT_RUN]
    left = phases[ended[-1] + 1 :] if ended else phases
    where = _where(left[0][0] if left else None, bool(phases), steps)
    reason = (
        f"{where}: the session that wrote this bundle ended without finishing (killed?); "
        f"noticed by {noticed_by} at {noticed_at}"
    )
    for index, (_, outcome) in enumerate(left):
        # The phase in progress failed; the ones after it were never reached, not left out.
        outcome.update(
            status=str(Status.FAILED if index == 0 else Status.NOT_RUN),
            cause=str(Cause.INTERRUPTED),
            reason=reason if index == 0 else f"not reached: interrupted during {left[0][0]}",
        )
    if steps:
        manifest["steps_completed"] = steps[-1]["step"]
    manifest.update(
        session_finished=False,
        complete=False,
        interrupted=True,
        interrupted_at=where,
        verdict="interrupted",
        interrupted_noticed_by=noticed_by,
    )
    bundle.write_json(run_dir / bundle.RUN_MANIFEST, manifest)
    analysis = _failure_analysis(run_dir, phases, reason, steps)
    bundle.write_text(run_dir / bundle.FAILURE_ANALYSIS, analysis)
    summary = run_dir / bundle.summary_name(str(manifest.get("milestone")))
    if summary.is_file():  # its phase table was written before the kill: say what became of it
        text = summary.read_text(encoding="utf-8")
        bundle.write_text(summary, text + _interrupted_section(reason, phases))
    write_checksums(run_dir)


def _interrupted_section(reason: str, phases: list[tuple[str, dict[str, Any]]]) -> str:
    """The summary's closing section on a marked run: the phase outcomes as corrected."""
    lines = ["", "## Interrupted", "", f"Verdict: **interrupted**. {reason}.", "",
             "The outcomes as corrected by the session that noticed it:", "",
             "| phase | outcome | cause | reason |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {phase} | {outcome.get('status')} | {outcome.get('cause')} | "
        f"{cell(str(outcome.get('reason')))} |"
        for phase, outcome in phases
    ]
    return "\n".join(lines) + "\n"


def _phases_in_order(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The manifest's phase outcomes (its own dicts, to correct in place), in phase order."""
    phases = manifest.get("phases")
    if not isinstance(phases, dict):
        return []
    order = phases_of(str(manifest.get("kind")))
    return [(phase, phases[phase]) for phase in order if isinstance(phases.get(phase), dict)]


def _logged_steps(run_dir: Path) -> list[dict[str, Any]]:
    """The per-step records of ``training_metrics.json``, rewritten at every logged step."""
    try:
        steps = bundle.read_json(run_dir / bundle.TRAINING_METRICS).get("per_step")
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    if not isinstance(steps, list):
        return []
    return [step for step in steps if isinstance(step, dict) and isinstance(step.get("step"), int)]


def _where(phase: str | None, any_phase: bool, steps: list[dict[str, Any]]) -> str:
    if phase == TRAIN:
        if steps:
            return f"interrupted at step {steps[-1]['step']}"
        return "interrupted during train, before its first step was logged"
    if phase is not None:
        return f"interrupted during {phase}"
    if any_phase:
        return "interrupted after its last phase, before the session closed"
    return "interrupted before its first phase ended"


def _failure_analysis(
    run_dir: Path,
    phases: list[tuple[str, dict[str, Any]]],
    reason: str,
    steps: list[dict[str, Any]],
) -> str:
    """``failure_analysis.md`` of a marked run, from its manifest's phases as corrected."""
    lines = [f"# Failure analysis: {run_dir.name}", "", "Verdict: interrupted.", ""]
    for phase, outcome in phases:
        if outcome.get("status") == Status.PASSED:
            continue
        cause = str(outcome.get("cause"))
        lines += [
            f"## {phase}: {outcome.get('status')}",
            "",
            f"- cause class: {cause}",
            f"- reason: {outcome.get('reason')}",
        ]
        if phase == TRAIN and outcome.get("status") == Status.FAILED:
            lines.append(f"- last good state: {_last_good_state(run_dir, steps)}")
        lines += [f"- what to look at: {WHAT_TO_LOOK_AT.get(cause, 'the reason above')}", ""]
    if not phases:  # killed before any phase ended: no manifest to correct
        lines += [
            f"## session: {Cause.INTERRUPTED}",
            "",
            f"- cause class: {Cause.INTERRUPTED}",
            f"- reason: {reason}",
            f"- last good state: {_last_good_state(run_dir, steps)}",
            f"- what to look at: {WHAT_TO_LOOK_AT[Cause.INTERRUPTED]}",
            "",
        ]
    return "\n".join(lines)


def _last_good_state(run_dir: Path, steps: list[dict[str, Any]]) -> str:
    if not steps:
        return last_log_line(run_dir)
    last = steps[-1]
    loss, lr = last.get("loss"), last.get("lr")
    loss_text = f"{loss:.4f}" if isinstance(loss, int | float) else str(loss)
    lr_text = f"{lr:.2e}" if isinstance(lr, int | float) else str(lr)
    return f"step {last.get('step')}, loss {loss_text}, lr {lr_text} ({bundle.TRAINING_METRICS})"
