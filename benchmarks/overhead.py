"""Benchmark (a): harness overhead, a milestone session's wall time over a bare script's.

CPU time is shown beside it: other work on the machine stretches wall time far more.

Run: .venv/bin/python -m benchmarks.overhead
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ROOT, Ratio, Target, load_milestone, parser, report
from harness.evidence import bundle
from harness.spec.milestones import Milestone

TARGET = Target(1.10, at_most=True)
# Bundles go below the git-ignored runs folder, so the session's guardrails never see them.
RUNS_PARENT = ROOT / "submission_runs"


def session_command(milestone_id: str, runs_dir: Path) -> list[str]:
    """The milestone session as a user starts it, its bundles sent to ``runs_dir``."""
    return [
        sys.executable, "-m", "pytest", "acceptance", "--milestone", milestone_id,
        "-p", "no:cacheprovider", "-o", f"runs_dir={runs_dir.relative_to(ROOT)}",
    ]  # fmt: skip


def bare_command(milestone_id: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bare_smoke", "--milestone", milestone_id]


@dataclass(frozen=True)
class Timing:
    """A process's wall time and CPU time (user and system, its children included)."""

    wall_s: float
    cpu_s: float


def timed(command: list[str]) -> tuple[Timing, subprocess.CompletedProcess[str]]:
    """Run ``command`` from start to exit: interpreter start-up and imports count on both sides."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Timing(wall, cpu), done


def runs_folder(milestone: Milestone) -> Path:
    """A fresh runs folder holding copies of the frozen artifacts the milestone checks."""
    RUNS_PARENT.mkdir(exist_ok=True)
    runs_dir = Path(tempfile.mkdtemp(prefix=".benchmark-", dir=RUNS_PARENT))
    for frozen_id in milestone.spec.frozen:
        shutil.copytree(RUNS_PARENT / frozen_id, runs_dir / frozen_id)
    return runs_dir


def evaluated(runs_dir: Path, milestone_id: str) -> bool:
    """Whether the latest session got through training and evaluation (later phases may fail)."""
    runs = bundle.run_dirs(runs_dir, milestone_id)
    return bool(runs) and (runs[-1] / bundle.EVALUATION_RESULTS).is_file()


def measure(milestone: Milestone, repeats: int) -> list[Ratio]:
    """Wall and CPU time of both processes, run alternately ``repeats`` times."""
    session: list[Timing] = []
    bare: list[Timing] = []
    runs_dir = runs_folder(milestone)
    try:
        for _ in range(repeats):
            timing, done = timed(session_command(milestone.id, runs_dir))
            if not evaluated(runs_dir, milestone.id):
                raise SystemExit(f"the session stopped before evaluation:\n{done.stdout[-3000:]}")
            session.append(timing)
            timing, done = timed(bare_command(milestone.id))
            if done.returncode:
                raise SystemExit(f"the bare script failed:\n{done.stderr[-3000:]}")
            bare.append(timing)
    finally:
        shutil.rmtree(runs_dir)
    return [
        Ratio("wall time [s]", [t.wall_s for t in session], [t.wall_s for t in bare], TARGET),
        Ratio("CPU time [s]", [t.cpu_s for t in session], [t.cpu_s for t in bare], None),
    ]


def main() -> int:
    args = parser(__doc__.splitlines()[0], repeats=3).parse_args()
    milestone = load_milestone(args.milestone)
    ratios = measure(milestone, args.repeats)
    title = (
        f"(a) harness overhead: pytest acceptance --milestone {milestone.id} vs bare script, "
        f"median of {args.repeats}"
    )
    return report(title, ("harness session", "bare script"), ratios)


if __name__ == "__main__":
    raise SystemExit(main())
