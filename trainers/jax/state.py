"""The jax backend's resumable state: the model's and the optimizer's nnx state through Tunix's
orbax checkpoint manager (the optimizer's step count is the schedule's position)."""

from __future__ import annotations

from pathlib import Path

from flax import nnx
from tunix.sft.checkpoint_manager import CheckpointManager

STATE_DIR = "jax_state"


def write_state(folder: Path, model: nnx.Module, optimizer: nnx.Optimizer, step: int) -> None:
    """The weights (every nnx variable of the model, RNG streams included) and the optimizer's
    state after ``step``, into ``folder``."""
    manager = CheckpointManager(str((folder / STATE_DIR).resolve()))
    manager.save(step, model, optimizer, force=True)
    manager.close()


def read_state(folder: Path, model: nnx.Module, optimizer: nnx.Optimizer) -> None:
    """Restore what ``write_state`` left in ``folder`` into a freshly built model and optimizer,
    onto their shards."""
    manager = CheckpointManager(str((folder / STATE_DIR).resolve()))
    restored, _ = manager.maybe_restore(model, optimizer)
    manager.close()
    if restored == 0:
        raise FileNotFoundError(f"{folder}: no orbax state under {STATE_DIR}/")
