"""The jax backend's optimizer and learning-rate schedule, built in this one place (optax)."""

from __future__ import annotations

import math
from typing import Any

import jax
import optax
from flax import nnx

from trainers.config import AdafactorConfig, TrainingConfig

# optax factors only weights whose two largest axes both have this many entries (128 by default);
# transformers' Adafactor on torch factors every weight of two or more axes: so does this.
FACTOR_EVERY_MATRIX = 1


def learning_rate(config: TrainingConfig, total: int) -> optax.Schedule:
    """Linear warm-up from 0, then cosine to ``min_lr_ratio`` of the peak, or constant; as torch."""
    peak, schedule = config.optimizer.lr, config.schedule
    if schedule.decay == "constant":
        warmup = optax.linear_schedule(0.0, peak, schedule.warmup_steps)
        return optax.join_schedules(
            [warmup, optax.constant_schedule(peak)], [schedule.warmup_steps]
        )
    # A run no longer than its warm-up still gets a one-step decay, as torch's schedule clamps it.
    decay_steps = max(total, schedule.warmup_steps + 1)
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, schedule.warmup_steps, decay_steps, end_value=peak * schedule.min_lr_ratio
    )


def adafactor(opt: AdafactorConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    """optax's adafactor, as ``optax.adafactor`` chains it (factored second moments, update
    clipping, learning rate) without momentum or scaling by each weight's size, and with the
    weight decay where ``optax.adamw`` puts it: before the learning rate, so that each step
    shrinks a weight by ``lr x weight_decay`` as transformers' Adafactor does on torch
    (``optax.adafactor``'s own ``weight_decay_rate`` is not scaled by the learning rate)."""
    return optax.chain(
        optax.scale_by_factored_rms(
            decay_rate=opt.decay_rate, epsilon=opt.eps, min_dim_size_to_factor=FACTOR_EVERY_MATRIX
        ),
        optax.clip_by_block_rms(opt.clip_threshold),
        optax.add_decayed_weights(opt.weight_decay),
        optax.scale_by_learning_rate(schedule),
    )


def build_optimizer(
    config: TrainingConfig, schedule: optax.Schedule
) -> optax.GradientTransformation:
    """Gradient clipping to ``grad_clip``, then the optimizer of ``config``."""
    opt = config.optimizer
    if isinstance(opt, AdafactorConfig):
        update = adafactor(opt, schedule)
    else:
        update = optax.adamw(
            schedule, b1=opt.betas[0], b2=opt.betas[1], eps=opt.eps, weight_decay=opt.weight_decay
        )
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), update)


def shard_state_like_weights(optimizer: nnx.Optimizer, mesh: jax.sharding.Mesh) -> None:
    """Give each optimizer state the sharding of its weight where it has the weight's shape, and
    replicate it where it does not: flax hands every state its weight's sharding, which Adafactor's
    factored statistics (and their one-value placeholders) cannot take. They are small."""
    for _, node in nnx.iter_graph(optimizer):
        if not isinstance(node, nnx.optimizer.OptVariable):
            continue
        spec = node.get_metadata().get("out_sharding")
        if spec is not None and not _divides(node.get_value().shape, spec, mesh):
            node.set_metadata(out_sharding=(None,) * node.get_value().ndim)


def _divides(shape: tuple[int, ...], spec: tuple[Any, ...], mesh: jax.sharding.Mesh) -> bool:
    """Whether ``spec`` names one entry per axis of ``shape``, each sharded one splitting evenly."""
    if len(spec) != len(shape):
        return False
    for size, axes in zip(shape, spec, strict=True):
        names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        if size % math.prod(mesh.shape[name] for name in names):
            return False
    return True
