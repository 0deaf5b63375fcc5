"""The backends by name, each built with its framework imported only then."""

from __future__ import annotations

from trainers.protocol import Trainer

BACKENDS = ("torch", "jax")


def load_trainer(backend: str) -> Trainer:
    """Build the trainer for ``backend``, importing its framework only now."""
    if backend == "torch":
        from trainers.torch.trainer import TorchTrainer

        return TorchTrainer()
    if backend == "jax":
        from trainers.jax.trainer import JaxTrainer

        return JaxTrainer()
    raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
