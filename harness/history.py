"""Earlier runs of a milestone: which one a new run follows, and marking one that never finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import bundle
from harness.failures import WHAT_TO_LOOK_AT, Cause


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        return bundle.read_json(run_dir / bundle.RUN_MANIFEST)
    except (OSError, json.JSONDecodeError):
        return None


def session_finished(run_dir: Path) -> bool:
    """Whether the session that wrote ``run_dir`` ended normally (even with failed phases)."""
    manifest = read_manifest(run_dir)
    return bool(manifest and manifest.get("session_finished"))


def last_log_line(run_dir: Path) -> str:
    try:
        lines = (run_dir / bundle.TRAINING_LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        return "no training_log.txt: training had not started"
    steps = [line for line in lines if line.startswith("step ")]
    return steps[-1] if steps else "no optimizer step was logged"


def mark_interrupted(run_dir: Path, noticed_by: str, noticed_at: str) -> None:
    """Record that ``run_dir``'s session never finished; add to the bundle, remove nothing."""
    manifest = read_manifest(run_dir) or {"run_id": run_dir.name}
    manifest.update(
        session_finished=False,
        complete=False,
        interrupted=True,
        verdict="interrupted",
        interrupted_noticed_by=noticed_by,
    )
    bundle.write_json(run_dir / bundle.RUN_MANIFEST, manifest)
    analysis = run_dir / bundle.FAILURE_ANALYSIS
    earlier = analysis.read_text(encoding="utf-8") if analysis.is_file() else ""
    section = "\n".join(
        [
            f"## session: {Cause.INTERRUPTED}",
            "",
            f"- cause class: {Cause.INTERRUPTED}",
            f"- reason: the session that wrote this bundle ended without finishing (killed?); "
            f"noticed by {noticed_by} at {noticed_at}",
            f"- last good state: {last_log_line(run_dir)}",
            f"- what to look at: {WHAT_TO_LOOK_AT[Cause.INTERRUPTED]}",
            "",
        ]
    )
    header = "" if earlier else f"# Failure analysis: {run_dir.name}\n\n"
    bundle.write_text(analysis, header + earlier + ("\n" if earlier else "") + section)
