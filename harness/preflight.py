"""The pre-flight phase: snapshot the machine, then find blockers before any training starts."""

from __future__ import annotations

import importlib.util

from harness import bundle
from harness.data import load_evalset, load_traces
from harness.hardware import missing_devices, wrong_platform
from harness.failures import Cause, PhaseBlocked
from harness.run import MilestoneRun
from harness.snapshot import env_snapshot, gpu_snapshot, render_env_snapshot

BACKEND_MODULES = {"torch": ("torch", "transformers"), "jax": ("jax", "flax", "optax", "tunix")}


def snapshot(run: MilestoneRun) -> None:
    """Write ``env_snapshot.txt`` and ``gpu_snapshot.txt``; the facts also go into the manifest."""
    run.env = env_snapshot(run.root)
    bundle.write_text(run.run_dir / bundle.ENV_SNAPSHOT, render_env_snapshot(run.env))
    bundle.write_text(run.run_dir / bundle.GPU_SNAPSHOT, gpu_snapshot())


def missing_modules(backend: str) -> list[str]:
    return [name for name in BACKEND_MODULES[backend] if importlib.util.find_spec(name) is None]


def preflight(run: MilestoneRun) -> None:
    """Snapshot, then block on absent hardware (a skip) or a missing dependency or bad data (a failure)."""
    snapshot(run)
    spec = run.milestone.spec
    if reason := wrong_platform(spec.hardware):
        raise PhaseBlocked(Cause.UNSUPPORTED_PLATFORM, reason)
    if reason := missing_devices(spec.hardware, spec.backend):
        raise PhaseBlocked(Cause.MISSING_HARDWARE, reason)
    missing = missing_modules(spec.backend)
    if missing:
        raise ModuleNotFoundError(
            f"the {spec.backend} backend needs {', '.join(missing)}, not installed in this environment"
        )
    load_traces(run.milestone.dataset_path)
    load_evalset(run.milestone.evalset_path)
