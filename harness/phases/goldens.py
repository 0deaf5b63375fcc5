"""Golden loss curves: a CPU milestone's per-step losses, committed and compared with tolerances."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from harness.evidence import bundle
from harness.spec.data import file_sha256
from harness.spec.milestones import Milestone

GOLDENS_DIR = Path("configs/goldens")
# The same spec on another CPU drifts apart from the golden after a few steps: different float
# kernels (AVX2, AVX-512, generic) round differently and training amplifies it. Measured on the
# smoke milestone: at most 0.89% over 300 steps between kernels; with the same kernels, 0.
RTOL = 3e-2
ATOL = 1e-4


@dataclass(frozen=True)
class Golden:
    """The losses a milestone's spec produced on a CPU, and the tolerances to hold them to."""

    milestone: str
    backend: str
    spec_hash: str
    rtol: float
    atol: float
    losses: tuple[float, ...]


def golden_path(root: Path, milestone: Milestone) -> Path:
    return root / GOLDENS_DIR / f"{milestone.id}.{milestone.spec.backend}.json"


def spec_hash(milestone: Milestone) -> str:
    """Hash of what decides the curve: backend, model, run shape, training config and dataset.

    Criteria, frozen milestones, titles and comments do not move a loss, so they are left out.
    """
    spec = milestone.spec
    decisive = {
        "backend": spec.backend,
        "model": spec.model,
        "run": spec.run.model_dump(),
        "training": milestone.training.model_dump(mode="json"),
        "dataset": file_sha256(milestone.dataset_path),
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


def read_golden(path: Path) -> Golden | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Golden(
        milestone=data["milestone"],
        backend=data["backend"],
        spec_hash=data["spec_hash"],
        rtol=data["rtol"],
        atol=data["atol"],
        losses=tuple(data["losses"]),
    )


def write_golden(root: Path, milestone: Milestone, losses: list[float]) -> Path:
    """Record ``losses`` as the milestone's golden curve."""
    path = golden_path(root, milestone)
    data = {
        "milestone": milestone.id,
        "backend": milestone.spec.backend,
        "spec_hash": spec_hash(milestone),
        "rtol": RTOL,
        "atol": ATOL,
        "losses": losses,
    }
    return bundle.write_json(path, data)


def first_mismatch(golden: Golden, losses: list[float]) -> str | None:
    """The first step that left the tolerance and by how much, or None when the curves agree."""
    if len(losses) != len(golden.losses):
        return f"the run has {len(losses)} steps, the golden curve {len(golden.losses)}"
    for step, (got, want) in enumerate(zip(losses, golden.losses, strict=True), start=1):
        if not math.isclose(got, want, rel_tol=golden.rtol, abs_tol=golden.atol):
            return (
                f"loss at step {step} is {got:.6g}, golden {want:.6g} "
                f"(off by {abs(got - want):.3g}; rtol {golden.rtol:g}, atol {golden.atol:g})"
            )
    return None


def golden_problem(root: Path, milestone: Milestone, losses: list[float]) -> str | None:
    """Why the run's curve does not match its golden; None when it does or there is none."""
    golden = read_golden(golden_path(root, milestone))
    if golden is None:
        return None
    if golden.spec_hash != spec_hash(milestone):
        return (
            f"the golden curve {golden_path(root, milestone).name} was recorded for spec hash "
            f"{golden.spec_hash}, this spec is {spec_hash(milestone)}: rerun with --update-goldens"
        )
    mismatch = first_mismatch(golden, losses)
    return f"golden curve mismatch: {mismatch}" if mismatch else None
