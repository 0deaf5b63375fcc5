"""What every benchmark shares: options, medians of repeats, a table of ratios judged on targets."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.spec.milestones import Milestone
from harness.spec.registry import MilestoneRegistry

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """A ratio's goal: ``ratio >= value`` or, with ``at_most``, ``ratio <= value``."""

    value: float
    at_most: bool = False

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.at_most else ratio >= self.value

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.value:g}"


@dataclass(frozen=True)
class Ratio:
    """One quantity measured on both sides in alternating runs; ``ratio`` is ours over theirs.

    The ratio is the median over run pairs of ours / theirs: the two runs of a pair follow each
    other, so a slow drift in other work on the machine cancels out. Without a target the ratio
    is shown for information and never fails the run.
    """

    metric: str
    ours_runs: Sequence[float]
    theirs_runs: Sequence[float]
    target: Target | None

    @property
    def ours(self) -> float:
        return statistics.median(self.ours_runs)

    @property
    def theirs(self) -> float:
        return statistics.median(self.theirs_runs)

    @property
    def ratio(self) -> float:
        pairs = zip(self.ours_runs, self.theirs_runs, strict=True)
        return statistics.median(ours / theirs for ours, theirs in pairs)

    @property
    def met(self) -> bool:
        return self.target is None or self.target.met(self.ratio)


@dataclass(frozen=True)
class Check:
    """A yes/no condition a benchmark must also meet, such as equal outputs."""

    name: str
    detail: str
    ok: bool


def load_milestone(milestone_id: str) -> Milestone:
    """A training milestone's validated spec, config and data paths, as the harness loads them."""
    milestone = MilestoneRegistry(ROOT).load(milestone_id)
    if not isinstance(milestone, Milestone):
        raise SystemExit(
            f"{milestone_id} is a freeze milestone; benchmarks need a training milestone"
        )
    return milestone


def parser(description: str, repeats: int) -> argparse.ArgumentParser:
    """A command-line parser with the options most benchmarks take: --milestone and --repeats."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--milestone",
        default="smoke",
        help="Take the model, training config and data of this milestone (default smoke).",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=repeats,
        help=f"Measure each side this many times, alternately; compare medians ({repeats}).",
    )
    return parser


def machine() -> str:
    """The CPU, its cores, the OpenMP thread setting and the 1-minute load (this run's included)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    load = os.getloadavg()[0]
    return f"{model}, {os.cpu_count()} cores, OMP_NUM_THREADS {threads}, load average {load:.1f}"


def report(
    title: str,
    sides: tuple[str, str],
    ratios: Sequence[Ratio],
    checks: Sequence[Check] = (),
) -> int:
    """Print both sides' medians, the ratio and PASS/MISS for each quantity, every run, the checks.

    Returns the exit status: 0 when every target is met and every check holds, else 1.
    """
    print(f"{title}\n  on {machine()}")
    header = ("metric", *sides, "ratio", "target", "")
    rows = [header] + [
        (
            r.metric,
            _number(r.ours),
            _number(r.theirs),
            f"{r.ratio:.3f}",
            str(r.target or "-"),
            _verdict(r.met) if r.target else "",
        )
        for r in ratios
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for r in ratios:
        if len(r.ours_runs) > 1:
            ours, theirs = _runs(r.ours_runs), _runs(r.theirs_runs)
            print(f"  {r.metric} of each run: {sides[0]} {ours}, {sides[1]} {theirs}")
    for check in checks:
        print(f"  {check.name}: {check.detail}  {_verdict(check.ok)}")
    met = all(r.met for r in ratios) and all(c.ok for c in checks)
    return 0 if met else 1


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 1000 else f"{value:.4g}"


def _runs(values: Sequence[float]) -> str:
    return " ".join(_number(value) for value in values)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
