"""An earlier bundle of the same milestone whose checkpoint a new run takes over: checked before
anything is written, read only through the bundle's own checks, linked, never modified."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.verify import Unreadable, read_object, verify_bundle
from harness.spec.phase_order import TRAIN
from trainers.flops import FlopsBasis
from trainers.protocol import StepRecord, TrainResult


class EarlierRunError(ValueError):
    """The earlier bundle cannot be taken over; one line naming it and why."""


def verified_manifest(path: Path, milestone_id: str) -> dict[str, Any]:
    """``path``'s manifest, once it is a verified bundle of ``milestone_id``."""
    if not (path / bundle.RUN_MANIFEST).is_file():
        raise EarlierRunError(f"{path}: not an evidence bundle (no {bundle.RUN_MANIFEST})")
    problems = verify_bundle(path)
    if problems:
        raise EarlierRunError(f"{path}: fails verification: {'; '.join(problems[:3])}")
    manifest = read_object(path, bundle.RUN_MANIFEST)
    if manifest.get("milestone") != milestone_id:
        raise EarlierRunError(
            f"{path}: a bundle of milestone {manifest.get('milestone')!r}, not {milestone_id!r}"
        )
    return manifest


def training_metrics(path: Path) -> dict[str, Any]:
    """The earlier bundle's ``training_metrics.json``; one line naming it where it is unreadable."""
    try:
        return read_object(path, bundle.TRAINING_METRICS)
    except Unreadable as error:
        raise EarlierRunError(f"{path}: {error}") from None


def check_earlier_run(path: Path, milestone_id: str) -> Path:
    """``path`` resolved, once it is a verified bundle of ``milestone_id`` whose training passed."""
    train = verified_manifest(path, milestone_id).get("phases", {}).get(TRAIN, {})
    if train.get("status") != "passed":
        raise EarlierRunError(f"{path}: its train phase {train.get('status')}: no checkpoint to take")
    return path.resolve()


def taken_over(earlier: Path, checkpoint_dir: Path, device: str) -> TrainResult:
    """The earlier run's training, as its ``training_metrics.json`` records it, with its checkpoint
    linked (or copied, across file systems) into ``checkpoint_dir``, to be evaluated on
    ``device`` (this machine's, which may not be the one it was trained on)."""
    metrics = training_metrics(earlier)
    link_tree(earlier / bundle.CHECKPOINT_DIR, checkpoint_dir)
    return TrainResult(
        backend=str(metrics.get("backend")),
        device=device,
        model_parameters=int(metrics.get("model_parameters", 0)),
        steps=tuple(step_record(record) for record in metrics.get("per_step", [])),
        runtime_s=float(metrics.get("runtime_s", 0.0)),
        checkpoint_dir=checkpoint_dir,
        flops=_flops(metrics.get("flops_basis")),
    )


def link_tree(source: Path, destination: Path) -> None:
    """Hard links to every file under ``source``: the same bytes, no second copy, and the earlier
    bundle untouched (evidence is replaced atomically, never written in place)."""
    for folder, _, names in os.walk(source):
        target = destination / Path(folder).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                os.link(Path(folder) / name, target / name)
            except OSError:
                shutil.copy2(Path(folder) / name, target / name)


def step_record(record: dict[str, Any]) -> StepRecord:
    # Non-finite values are spelled "nan" or "inf" in the JSON; float() reads them back.
    return StepRecord(
        step=int(record["step"]),
        loss=float(record["loss"]),
        lr=float(record["lr"]),
        grad_norm=float(record["grad_norm"]),
        samples=int(record["samples"]),
        tokens=int(record["tokens"]),
        seconds=float(record["seconds"]),
    )


def _flops(basis: Any) -> FlopsBasis | None:
    if not isinstance(basis, dict):
        return None
    return FlopsBasis(
        basis["parameters"], basis["seq_len"], basis["flops_per_token"], basis["device_name"],
        basis["devices"],
    )
