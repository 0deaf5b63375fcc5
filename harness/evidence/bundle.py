"""The run folder ``submission_runs/<id>_v<N>/``: allocated once, written atomically, secrets redacted."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from harness.evidence.redact import Redactor, redactor
from harness.record.failures import Cause
from harness.record.outcomes import Status
from harness.spec.phase_order import BASE_EVAL_PHASES, FREEZE_PHASES

ENV_SNAPSHOT = "env_snapshot.txt"
GPU_SNAPSHOT = "gpu_snapshot.txt"
TRAINING_LOG = "training_log.txt"
TRAINING_METRICS = "training_metrics.json"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINTS_DIR = "checkpoints"
"""Resumable checkpoints, ``step_<N>/`` each (trainers/checkpoints.py)."""
PREDICTIONS = "predictions.jsonl"
EVALUATION_RESULTS = "evaluation_results.json"
EVALUATION_SUMMARY = "evaluation_summary.md"
BASE_PREDICTIONS = "base_predictions.jsonl"
BASE_EVALUATION_RESULTS = "base_evaluation_results.json"
RUN_MANIFEST = "run_manifest.json"
FAILURE_ANALYSIS = "failure_analysis.md"
REPORT = "report.html"
LOSS_CURVE = "loss_curve.png"
CATEGORY_ACCURACY = "category_accuracy.png"
JOURNAL = "journal.md"
RESOURCES = "resources.jsonl"
RESOURCES_PLOT = "resources.svg"


SHA256SUMS = "SHA256SUMS"
GUARDRAILS = "guardrails.json"
TRACEBACKS_DIR = "tracebacks"
REHEARSAL_MODEL = "rehearsal_model"
BUNDLE_NAMES = (
    ENV_SNAPSHOT, GPU_SNAPSHOT, TRAINING_LOG, TRAINING_METRICS, CHECKPOINT_DIR, PREDICTIONS,
    EVALUATION_RESULTS, EVALUATION_SUMMARY, BASE_PREDICTIONS, BASE_EVALUATION_RESULTS,
    RUN_MANIFEST, FAILURE_ANALYSIS, REPORT, LOSS_CURVE, CATEGORY_ACCURACY, JOURNAL, SHA256SUMS,
    GUARDRAILS, TRACEBACKS_DIR, REHEARSAL_MODEL, RESOURCES, RESOURCES_PLOT, CHECKPOINTS_DIR,
)
# What redaction never takes apart in a bundle: its file names and the words its structured
# values are made of (phases, statuses, causes, backends), so that a secret equal to "loss" or
# "passed" still leaves a bundle that verifies. Matched as whole words.
KEPT_WORDS = (
    *BUNDLE_NAMES, *BASE_EVAL_PHASES, *FREEZE_PHASES, *Status, *Cause, "not judged", "torch", "jax", "train",
    "freeze", "cpu", "cuda", "tpu",
)
KEPT = (
    r"(?<![\w.-])(?:" + "|".join(map(re.escape, sorted(KEPT_WORDS, key=len, reverse=True)))
    + r")(?![\w-])",
    r"(?<![\w.-])[a-z0-9][a-z0-9-]*_summary\.md(?![\w-])",
)


def evidence_redactor() -> Redactor:
    """The redactor for bundle files: the secrets of this moment, the bundle's own words kept."""
    return redactor(KEPT)


def summary_name(milestone_id: str) -> str:
    return f"{milestone_id}_summary.md"


def run_dirs(runs_root: Path, milestone_id: str) -> list[Path]:
    """The ``<id>_v<N>`` folders of one milestone, oldest first."""
    pattern = re.compile(rf"^{re.escape(milestone_id)}_v(\d+)$")
    found = [(int(m.group(1)), p) for p in runs_root.glob(f"{milestone_id}_v*") if (m := pattern.match(p.name))]
    return [path for _, path in sorted(found)]


def allocate_run_dir(runs_root: Path, milestone_id: str) -> Path:
    """Create the next ``<id>_v<N>`` folder; never reuse or overwrite an earlier run."""
    runs_root.mkdir(parents=True, exist_ok=True)
    earlier = run_dirs(runs_root, milestone_id)
    version = int(earlier[-1].name.rpartition("_v")[2]) + 1 if earlier else 1
    while True:
        candidate = runs_root / f"{milestone_id}_v{version}"
        try:
            candidate.mkdir()  # atomic: a concurrent session gets FileExistsError and moves on
        except FileExistsError:
            version += 1
            continue
        return candidate


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` atomically (temp file + rename): a reader sees the old file or the new one.

    Never through a symlink: a linked folder would carry the file out of the bundle."""
    if path.is_symlink() or path.parent.is_symlink():
        raise OSError(errno.ELOOP, "refusing to write evidence through a symlink", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; evidence is meant to be read by others
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` atomically as UTF-8, with secrets redacted."""
    return write_bytes(path, evidence_redactor().text(text).encode("utf-8"))


def json_safe(data: Any) -> Any:
    """``data`` with non-finite floats spelled as strings ("nan", "inf"): JSON has no such numbers."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(item) for item in data]
    return data


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically; string values are redacted before escaping."""
    hidden = evidence_redactor().data(data)
    text = json.dumps(json_safe(hidden), indent=2, sort_keys=True, allow_nan=False)
    return write_bytes(path, (text + "\n").encode("utf-8"))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line, atomically; string values are redacted before escaping."""
    hide = evidence_redactor().data
    text = "".join(json.dumps(hide(row), sort_keys=True) + "\n" for row in rows)
    return write_bytes(path, text.encode("utf-8"))


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line, redacted, and close the file: a session killed later keeps
    every line so far. Never through a symlink, as ``write_bytes``."""
    if path.parent.is_symlink():
        raise OSError(errno.ELOOP, "refusing to write evidence through a symlink", str(path))
    line = json.dumps(json_safe(evidence_redactor().data(row)), sort_keys=True) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o644), "a", encoding="utf-8") as handle:
        handle.write(line)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


LOCK_SUFFIX = ".lock"


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        return read_json(run_dir / RUN_MANIFEST)
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
