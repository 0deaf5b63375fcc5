"""One run over several jax processes (the hosts of a TPU slice): the same pytest command on every
host with ``--jax-distributed``. Process 0 opens the run folders and writes the whole bundle; the
others run every phase too (each jax computation needs all of them) but keep their own records in
a hidden scratch folder beside the bundle, removed when their session ends, and write only their
shards of the checkpoint, into process 0's bundle (which every host must see at the same path)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.plugin.runs import series
from harness.record.run import RunRecord
from harness.spec.milestones import FreezeMilestone, Milestone
from harness.text import first_line

# What a non-zero process would write outside its scratch folder: refused with the option.
WRITES_OUTSIDE = {
    "update_goldens": "--update-goldens",
    "update_snapshots": "--snapshot-update",
    "reevaluate": "--reevaluate",
}


@dataclass(frozen=True)
class ProcessPlace:
    """This process among the run's processes."""

    index: int = 0
    count: int = 1

    @property
    def primary(self) -> bool:
        """Whether this process writes the evidence."""
        return self.index == 0

    def describe(self) -> str:
        return f"process {self.index} of {self.count}"


def join(config: pytest.Config) -> ProcessPlace:
    """With ``--jax-distributed``, join the run's other processes before anything starts a jax
    backend (``jax.distributed.initialize``); else this process alone."""
    if not config.option.jax_distributed:
        return ProcessPlace()
    if hasattr(config, "workerinput") or getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--jax-distributed: refused under xdist (-n); one session per host")
    given = [flag for name, flag in WRITES_OUTSIDE.items() if getattr(config.option, name, None)]
    if given:
        raise pytest.UsageError(
            f"--jax-distributed: refused with {', '.join(given)}, which writes outside the run "
            "folder; run it in one process"
        )
    from trainers.jax.distributed import initialize

    try:
        index, count = initialize()
    except (RuntimeError, ValueError) as error:
        raise pytest.UsageError(f"--jax-distributed: {first_line(str(error))}") from None
    return ProcessPlace(index, count)


Records = dict[str, tuple[Path, RunRecord]]


@dataclass(frozen=True)
class SharedRuns:
    """The run folders of a run of several processes, as one process sees them."""

    records: Records
    """This process's folder and record of each milestone: process 0's bundles, or scratch."""
    primary_dirs: dict[str, Path]
    """In a non-zero process: process 0's folder of each milestone (empty in process 0)."""
    scratch: list[Path]
    """Every non-zero process's scratch folders: outputs of the run on a shared disk."""


def share_runs(
    milestones: Sequence[Milestone | FreezeMilestone],
    runs_root: Path,
    opened: Records,
    place: ProcessPlace,
) -> SharedRuns:
    """Process 0 tells the others the folders it ``opened``. It keeps them; every other process
    keeps its own records in a hidden scratch folder beside each (``.<id>_v<N>.process<i>``,
    removed when its session ends), and knows process 0's folder, where the checkpoint is."""
    from trainers.jax.distributed import broadcast_ints

    mine = [int(opened[m.id][0].name.rpartition("_v")[2]) if opened else 0 for m in milestones]
    versions = broadcast_ints(mine)
    primary_dirs = {
        m.id: runs_root / f"{series(m)}_v{version}"
        for m, version in zip(milestones, versions, strict=True)
    }
    if problem := _unshared(list(primary_dirs.values()), runs_root):
        for folder, _ in opened.values():
            folder.rmdir()  # opened a moment ago, still empty
        raise pytest.UsageError(f"--jax-distributed: {problem}")
    scratch = [scratch_dir(p, i) for p in primary_dirs.values() for i in range(1, place.count)]
    if place.primary:
        return SharedRuns(opened, {}, scratch)
    records = {}
    for milestone_id, primary in primary_dirs.items():
        own = scratch_dir(primary, place.index)
        shutil.rmtree(own, ignore_errors=True)  # left by a session that was killed
        own.mkdir(parents=True)
        records[milestone_id] = (own, RunRecord())
    return SharedRuns(records, primary_dirs, scratch)


def _unshared(primary_dirs: list[Path], runs_root: Path) -> str | None:
    """Why the processes cannot share the run: some do not see process 0's run folders, where
    every process writes its shards of the checkpoint; None when all see them."""
    from trainers.jax.distributed import gather_ints

    seen = gather_ints(int(all(folder.is_dir() for folder in primary_dirs)))
    blind = [str(index) for index, sees in enumerate(seen) if not sees]
    if not blind:
        return None
    folders = ", ".join(str(folder.relative_to(runs_root.parent)) for folder in primary_dirs)
    return (
        f"process {', '.join(blind)} of {len(seen)} does not see process 0's run folder "
        f"({folders}): run the project from a disk every host shares (docs/tpu.md); nothing written"
    )


def scratch_dir(primary: Path, index: int) -> Path:
    """Where process ``index`` keeps its own records of the run in ``primary``."""
    return primary.parent / f".{primary.name}.process{index}"


def remove_scratch(folders: Sequence[Path]) -> None:
    """A non-zero process leaves nothing of its own records behind."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
