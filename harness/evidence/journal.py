"""``journal.md``: one timestamped entry per phase: its purpose, how it ended, what it wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.evidence import bundle
from harness.record.journal import JournalEntry, Listing
from harness.record.outcomes import PhaseOutcome
from harness.record.run import MilestoneRun, PhaseInProgress, utc_now
from harness.spec.phase_order import (
    BUILD,
    EVALUATE,
    EVALUATE_BASE,
    EVIDENCE,
    GUARDRAILS_AFTER,
    GUARDRAILS_BEFORE,
    LOCK,
    PREFLIGHT,
    SUMMARY,
    TRAIN,
    VALIDATE,
)

PURPOSES = {
    PREFLIGHT: "Snapshot the machine and check hardware, backend dependencies, credentials "
    "and data before anything runs.",
    GUARDRAILS_BEFORE: "Check the run's rules (clean tree, dependency lock, frozen artifacts) "
    "and take the fingerprints the end of the run is compared with.",
    TRAIN: "Train the spec's model with its training config, logging every step and stopping "
    "at a non-finite or diverging loss.",
    EVALUATE_BASE: "Score the untuned model with the same prompts and decoding, before any "
    "training step, for the before/after comparison.",
    EVALUATE: "Generate greedily from the saved checkpoint for every eval item and score the "
    "answers.",
    BUILD: "Build the submission ZIP from the source bundle and compare it with the frozen one.",
    VALIDATE: "Check that the frozen ZIP opens, matches its manifest, holds no secrets and fits "
    "its budget.",
    LOCK: "Hold the frozen ZIP's sha256 and sizes to the committed lock.",
    GUARDRAILS_AFTER: "Check that code, dependencies and CI are unchanged and nothing was "
    "written outside the run folder.",
    EVIDENCE: "Render the manifest, failure analysis and summary, and verify the bundle as a "
    "reviewer would.",
    SUMMARY: "Close the run and write its summary with the spec's closing statement.",
}

def listing(run_dir: Path) -> Listing:
    """Every file of the bundle with its size and modification time; temp files left out."""
    found: Listing = {}
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            found[path.relative_to(run_dir).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def written_since(before: Listing, after: Listing) -> tuple[str, ...]:
    """The files that are new or changed in ``after``, sorted."""
    return tuple(sorted(name for name, stamp in after.items() if before.get(name) != stamp))


def shown_files(written: tuple[str, ...]) -> list[str]:
    """Files by name; the model folders (checkpoint, rehearsal model) as one item each, with
    their file counts."""
    folded = (bundle.CHECKPOINT_DIR, bundle.CHECKPOINTS_DIR, bundle.REHEARSAL_MODEL)
    folders = Counter(name.partition("/")[0] for name in written if name.partition("/")[0] in folded)
    files = [f"`{name}`" for name in written if name.partition("/")[0] not in folded]
    return files + [f"`{folder}/` ({count} files)" for folder, count in sorted(folders.items())]


def render_entry(entry: JournalEntry) -> list[str]:
    outcome = entry.outcome
    files = shown_files(entry.written)
    checkpoint = any(name.startswith(f"{bundle.CHECKPOINT_DIR}/") for name in entry.written)
    checkpoint_line = f"`{bundle.CHECKPOINT_DIR}/`" if checkpoint else "none written in this phase"
    if entry.checkpoints:
        steps = ", ".join(str(step) for step in entry.checkpoints)
        checkpoint_line += f"; resumable, in `{bundle.CHECKPOINTS_DIR}/`, after steps {steps}"
    return [
        f"## {entry.at} {outcome.phase}: {outcome.status}",
        "",
        f"- purpose: {PURPOSES[outcome.phase]}",
        f"- status: {outcome.status} ({outcome.cause})",
        f"- reason: {outcome.reason}",
        f"- duration: {outcome.duration_s:.1f} s",
        f"- files written: {', '.join(files) if files else 'none'}",
        f"- checkpoint: {checkpoint_line}",
        "",
    ]


def render(run_id: str, entries: list[JournalEntry]) -> str:
    """The whole journal, oldest entry first."""
    lines = [f"# Journal of {run_id}", "", "One entry per phase, written as the phase ended.", ""]
    for entry in entries:
        lines += render_entry(entry)
    return "\n".join(lines)


def begin_phase(run: MilestoneRun, phase: str) -> None:
    """Mark ``phase`` as running, with the bundle's files as it starts, to tell later what it
    wrote."""
    run.in_progress = PhaseInProgress(phase, listing(run.run_dir))


def end_phase(run: MilestoneRun, outcome: PhaseOutcome) -> None:
    """Add the phase's entry, stamped now, rewrite ``journal.md``; no phase is running then."""
    before = run.in_progress.files_before if run.in_progress else {}
    written = written_since(before, listing(run.run_dir))
    run.in_progress = None
    checkpoints = tuple(run.record.checkpoints) if outcome.phase == TRAIN else ()
    run.record.journal.append(JournalEntry(utc_now(), outcome, written, checkpoints))
    bundle.write_text(run.run_dir / bundle.JOURNAL, render(run.run_id, run.record.journal))
