"""torch training: a causal LM, completion-only loss, AdamW or Adafactor, every weight or LoRA
adapters, deterministic; one replica a process.

The shared loop (trainers/loop.py) runs ``TorchStep``; ``Replica`` is one device, parallel's
subclasses are DDP or FSDP workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from trainers.config import TrainingConfig
from trainers.encoding import encode_example
from trainers.flops import FlopsBasis, flops_per_token
from trainers.guards import LossGuard
from trainers.loop import StepOutcome, TrainingLoop
from trainers.models import build_model_and_tokenizer
from trainers.protocol import StepHook, TrainRequest, TrainResult
from trainers.torch import lora
from trainers.torch.batching import BatchPlan, Row
from trainers.torch.optim import build_optimizer, build_schedule

BACKEND = "torch"


def to_bf16_weights(model: torch.nn.Module) -> None:
    """``bf16-pure``: weights, and so gradients and AdamW state, in bfloat16. Buffers stay float32,
    as when transformers loads a model in bf16: rotary frequencies rounded to bf16 would turn every
    position by a different angle than the one the model was trained with."""
    for param in model.parameters():
        param.data = param.data.to(torch.bfloat16)


class Replica:
    """One process's part in a run: here the only process, on one device. DDP and FSDP extend it."""

    rank = 0
    world = 1

    def device(self, requested: str) -> torch.device:
        return torch.device(requested)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def syncing(self, model: torch.nn.Module, sync: bool) -> AbstractContextManager[Any]:
        """Where gradients are exchanged: a no-op for one process."""
        return contextlib.nullcontext()

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over every process."""
        return value

    def clip(self, model: torch.nn.Module, max_norm: float) -> float:
        """Clip gradients to ``max_norm``; the norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()

    def save(
        self, model: Any, wrapped: torch.nn.Module, tokenizer: Any, request: TrainRequest
    ) -> None:
        save_checkpoint(model, tokenizer, request)


def save_checkpoint(model: Any, tokenizer: Any, request: TrainRequest) -> None:
    """The trained model and its tokenizer as a transformers folder; under LoRA the merged
    model, with the adapters beside it (trainers/torch/lora.py)."""
    if lora.is_adapted(model):
        lora.save(model, request)
    else:
        model.save_pretrained(request.checkpoint_dir)
    tokenizer.save_pretrained(request.checkpoint_dir)


def flops_basis(
    model: Any, rows: Sequence[Row], parameters: int, device: torch.device, world: int
) -> FlopsBasis:
    """The FLOPs behind MFU. Attention stays inside each row, so its context is the row length,
    averaged over the rows weighted by their tokens."""
    lengths = [len(ids) for ids, _ in rows]
    seq_len = sum(n * n for n in lengths) / sum(lengths)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return FlopsBasis(
        parameters, seq_len, flops_per_token(parameters, model.config, seq_len), name, world
    )


def build_model(request: TrainRequest, device: torch.device) -> tuple[Any, Any, int]:
    """The model to train on ``device`` (under LoRA, frozen with its adapters), its tokenizer and
    its number of weights, adapters left out."""
    config = request.config
    quantized = lora.quantized_loading(config.lora, device)
    model, tokenizer = build_model_and_tokenizer(
        request.model_source, config.seed, request.hub_cache, quantized
    )
    parameters = model.num_parameters()  # counts a 4-bit weight once, as transformers does
    if config.precision == "bf16-pure":
        to_bf16_weights(model)
    if config.lora is not None:
        model = lora.with_adapters(model, config.lora)
    if quantized is None:  # a quantized model is placed by its loading
        model.to(device)
    model.train()
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer, parameters


def fit(request: TrainRequest, on_step: StepHook, replica: Replica) -> TrainResult:
    """Train ``request`` as ``replica``'s part of the run; every process gets the same request."""
    config = request.config
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = replica.device(request.device)
    model, tokenizer, parameters = build_model(request, device)
    wrapped = replica.wrap(model)
    rows = [encode_example(tokenizer, ex, config.max_seq_len) for ex in request.examples]
    plan = BatchPlan(rows, config, tokenizer.pad_token_id)
    total = request.total_steps()
    step = TorchStep(replica, plan, wrapped, config, device, total)
    loop = TrainingLoop(total)
    loop.add_loss_hook(LossGuard(config.divergence.factor, config.divergence.patience).check)
    loop.add_hook(on_step)
    # A transformers checkpoint holds no step number: the step the run ended at is not needed.
    loop.add_save_hook(lambda _: replica.save(model, wrapped, tokenizer, request))
    done = loop.run(plan.steps(), step)
    return TrainResult(
        backend=BACKEND,
        device=str(torch.device(request.device)),
        model_parameters=parameters,
        steps=done.steps,
        runtime_s=done.runtime_s,
        checkpoint_dir=request.checkpoint_dir,
        flops=flops_basis(model, rows, parameters, device, replica.world),
    )


class TorchStep:
    """One optimizer step of this replica's micro-batches: forward and backward over each, the
    step's loss to the loop's hooks, then clipping, the optimizer and the schedule."""

    def __init__(
        self,
        replica: Replica,
        plan: BatchPlan,
        wrapped: torch.nn.Module,
        config: TrainingConfig,
        device: torch.device,
        total: int,
    ) -> None:
        self.replica, self.plan, self.wrapped, self.device = replica, plan, wrapped, device
        self.forward = torch.compile(wrapped) if config.compile else wrapped
        self.micro_batches, self.grad_clip = config.grad_accum_steps, config.grad_clip
        self.optimizer = build_optimizer(lora.trainable(wrapped), config, device)
        self.scheduler = build_schedule(self.optimizer, config, total)
        self.autocast = torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"
        )
        # The last micro-batch's output (its logits) lives until the next forward returns, also
        # across steps: the peak that the memory estimate in docs/memory.md models.
        self.output: Any = None

    def __call__(
        self, step: int, indices: Sequence[int], loss_known: Callable[[float], None]
    ) -> StepOutcome:
        replica, device = self.replica, self.device
        shards = self.plan.shards(indices)
        step_loss_tokens = sum(s.loss_tokens for s in shards)
        mine = shards[replica.rank * self.micro_batches :][: self.micro_batches]
        loss = torch.zeros((), device=device)
        for micro, shard in enumerate(mine):
            inputs = {k: v.to(device) for k, v in self.plan.tensors(shard).items()}
            with replica.syncing(self.wrapped, sync=micro == len(mine) - 1):
                with self.autocast:
                    self.output = self.forward(**inputs, use_cache=False)
                output = self.output
                # Micro-batch mean losses, weighted by their share of the step's loss tokens, sum to
                # the mean over the whole step; an empty one still runs, contributing exact zeros.
                part = (
                    output.loss * (shard.loss_tokens / step_loss_tokens)
                    if shard.loss_tokens
                    else output.logits.sum() * 0.0
                )
                (part * replica.world).backward()  # DDP and FSDP average gradients over processes
            loss += part.detach()
        step_loss = replica.sum(loss).item()
        # Before the optimizer uses this loss: a stop here keeps the weights from before the step.
        loss_known(step_loss)
        grad_norm = replica.clip(self.wrapped, self.grad_clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepOutcome(
            loss=step_loss,
            lr=lr,
            grad_norm=grad_norm,
            samples=len(indices),
            tokens=sum(s.tokens for s in shards),
            positions=sum(s.positions for s in shards),
        )
