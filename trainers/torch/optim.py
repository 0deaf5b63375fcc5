"""The torch backend's optimizer and learning-rate schedule, built in this one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
)

from trainers.config import AdafactorConfig, TrainingConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainingConfig, device: torch.device
) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over ``params`` (the trained weights only).

    Adafactor is transformers' with a learning rate of its own (``relative_step=False``) and no
    scaling by each weight's size (``scale_parameter=False``): the update of optax's adafactor and
    of ``transformers.Trainer``'s ``optim="adafactor"``. torch's ``torch.optim.Adafactor`` always
    takes ``min(lr, 1/sqrt(t))`` times the weight's RMS as its step, which neither has
    (docs/training.md#adafactor).
    """
    opt = config.optimizer
    if isinstance(opt, AdafactorConfig):
        from transformers.optimization import Adafactor

        return Adafactor(
            params,
            lr=opt.lr,
            eps=(opt.eps, 1e-3),  # the second is read only with scale_parameter
            clip_threshold=opt.clip_threshold,
            decay_rate=-opt.decay_rate,  # transformers takes the exponent with its sign
            beta1=None,
            weight_decay=opt.weight_decay,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    return torch.optim.AdamW(
        params,
        lr=opt.lr,
        betas=opt.betas,
        eps=opt.eps,
        weight_decay=opt.weight_decay,
        fused=device.type == "cuda",  # one kernel for all parameters; the CPU keeps the default
    )


def build_schedule(optimizer: torch.optim.Optimizer, config: TrainingConfig, total: int) -> Any:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine to ``min_lr_ratio`` of the peak
    at step ``total``, or constant."""
    schedule = config.schedule
    if schedule.decay == "constant":
        return get_constant_schedule_with_warmup(optimizer, schedule.warmup_steps)
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, schedule.warmup_steps, total, min_lr_rate=schedule.min_lr_ratio
    )
