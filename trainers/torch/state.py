"""The torch backend's resumable state: trained weights, optimizer and schedule, RNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

STATE_FILE = "torch_state.pt"


def write_state(folder: Path, model: torch.nn.Module, optimizer: Any, schedule: Any) -> None:
    """What a resumed run needs to take the next step as this one would: the weights that are
    trained (under LoRA the adapters; the frozen rest is rebuilt from the source), the optimizer's
    moments, the schedule's position and the RNG that dropout draws from."""
    weights = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    state = {
        "weights": weights,
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    torch.save(state, folder / STATE_FILE)


def read_state(folder: Path, model: torch.nn.Module, optimizer: Any, schedule: Any) -> None:
    """Put the state ``write_state`` left in ``folder`` back into a freshly built run."""
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    differing = sorted(trained ^ set(state["weights"]))
    if differing:
        raise ValueError(
            f"{folder}: its weights are not the ones this model trains (first: {differing[0]})"
        )
    model.load_state_dict(state["weights"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
