"""One training request run by our torch trainer and by transformers.Trainer, step for step."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from trainers.config import AdafactorConfig, LoraConfig
from trainers.encoding import IGNORE_INDEX, encode_example
from trainers.models import build_model_and_tokenizer
from trainers.protocol import StepRecord, TrainRequest
from trainers.torch.batching import BatchPlan, Row, Shard
from trainers.torch.trainer import TorchTrainer

SCHEDULES = {"cosine": "cosine_with_min_lr", "constant": "constant_with_warmup"}


@dataclass(frozen=True)
class Run:
    """One side's training: per step, the loss, the real tokens and the clock at its end."""

    losses: list[float]
    tokens: list[int]
    step_ends: list[float]

    def tokens_per_s(self, warmup: int) -> float:
        """Real tokens of the steps after the first ``warmup`` over the time they took."""
        return sum(self.tokens[warmup:]) / (self.step_ends[-1] - self.step_ends[warmup - 1])


def clock(device: str) -> float:
    """``perf_counter`` once the device has finished the work queued so far."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def train_ours(request: TrainRequest) -> Run:
    run = Run([], [], [])

    def on_step(record: StepRecord) -> None:
        run.step_ends.append(clock(request.device))
        run.losses.append(record.loss)
        run.tokens.append(record.tokens)

    TorchTrainer().train(request, on_step)
    return run


class _MicroBatches(torch.utils.data.Dataset[list[dict[str, list[int]]]]):
    """Item ``i`` is a whole micro-batch, in the order and split of our trainer's ``BatchPlan``."""

    def __init__(self, rows: Sequence[Row], shards: Sequence[Shard]) -> None:
        self.rows, self.shards = rows, shards

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, item: int) -> list[dict[str, list[int]]]:
        return [
            {"input_ids": self.rows[i][0], "labels": self.rows[i][1]}
            for i in self.shards[item].indices
        ]


class _PlannedTrainer(Trainer):
    """transformers.Trainer reading the micro-batches in order and keeping each one's loss."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.micro_losses: list[torch.Tensor] = []

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler[int]:
        assert isinstance(self.train_dataset, _MicroBatches)
        return torch.utils.data.SequentialSampler(self.train_dataset)

    def training_step(
        self, model: Any, inputs: Any, num_items_in_batch: Any = None
    ) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.micro_losses.append(loss)
        return loss


class _SameRandomStream(TrainerCallback):
    """Puts back, before the first step, the random state the model was built with: Trainer seeds
    again and its DataLoader draws a seed, so LoRA dropout's masks would differ from ours."""

    def __init__(self) -> None:
        self.state = torch.get_rng_state()
        self.restored = False

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.restored:
            torch.set_rng_state(self.state)
            self.restored = True


def with_peft_adapters(model: Any, lora: LoraConfig) -> Any:
    """``model`` with peft's LoRA adapters, configured here as a peft user would."""
    import peft

    config = peft.LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


class _StepClock(TrainerCallback):
    def __init__(self, device: str) -> None:
        self.device = device
        self.step_ends: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_ends.append(clock(self.device))


def train_theirs(request: TrainRequest, output_dir: Path) -> Run:
    """The run through transformers.Trainer: same init (and peft adapters), batches, optimizer,
    schedule and clipping."""
    config = request.config
    if config.batching == "packed" or config.parallel.strategy != "single":
        raise ValueError(
            "the transformers.Trainer side reproduces padded batches on one device only"
        )
    if config.lora is not None and config.lora.quantize != "none":
        raise ValueError("the transformers.Trainer side trains LoRA without quantization only")
    model, tokenizer = build_model_and_tokenizer(request.model_source, config.seed)
    model.config.use_cache = False  # as our trainer: no KV cache while training
    if config.lora is not None:
        model = with_peft_adapters(model, config.lora)
    same_stream = _SameRandomStream()
    rows = [encode_example(tokenizer, ex, config.max_seq_len) for ex in request.examples]
    steps = request.total_steps()
    plan = BatchPlan(rows, config, tokenizer.pad_token_id)
    step_rows = itertools.islice(plan.steps(), steps)
    shards = [shard for indices in step_rows for shard in plan.shards(indices)]
    if not all(shard.indices for shard in shards):
        raise ValueError(
            "a step has fewer rows than grad_accum_steps: Trainer takes no empty batch"
        )
    opt = config.optimizer
    optimizer = None
    if isinstance(opt, AdafactorConfig):
        # Trainer's own optim="adafactor": relative_step and scale_parameter off, the other
        # settings transformers' defaults, and no weight decay on biases and norms.
        if opt.weight_decay or (opt.decay_rate, opt.clip_threshold, opt.eps) != (0.8, 1.0, 1e-30):
            raise ValueError(
                "the transformers.Trainer side's adafactor compares only with no weight decay "
                "and transformers' defaults (decay_rate 0.8, clip_threshold 1.0, eps 1e-30)"
            )
    else:
        # Our trainer decays every weight; Trainer's own AdamW would spare biases and norms.
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=opt.lr,
            betas=opt.betas,
            eps=opt.eps,
            weight_decay=opt.weight_decay,
        )
    schedule = config.schedule
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=1,  # one micro-batch per dataset item
        gradient_accumulation_steps=config.grad_accum_steps,
        learning_rate=opt.lr,
        lr_scheduler_type=SCHEDULES[schedule.decay],
        lr_scheduler_kwargs={"min_lr_rate": schedule.min_lr_ratio}
        if schedule.decay == "cosine"
        else {},
        warmup_steps=schedule.warmup_steps,
        max_grad_norm=config.grad_clip,
        optim="adafactor" if optimizer is None else "adamw_torch",
        weight_decay=opt.weight_decay,
        seed=config.seed,
        bf16=config.precision == "bf16",
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        torch_compile=config.compile,
        use_cpu=request.device == "cpu",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        remove_unused_columns=False,
    )
    pad = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding="longest")
    step_clock = _StepClock(request.device)
    trainer = _PlannedTrainer(
        model=model,
        args=args,
        train_dataset=_MicroBatches(rows, shards),
        data_collator=lambda items: pad(items[0]),
        optimizers=(optimizer, None),
        callbacks=[same_stream, step_clock],
    )
    trainer.remove_callback(PrinterCallback)  # its closing metrics would break our table
    trainer.train()
    # With loss kwargs, each micro-batch's loss is its share of the step's mean: they add up to it.
    micro = [loss.item() for loss in trainer.micro_losses]
    parts = config.grad_accum_steps
    losses = [sum(micro[start : start + parts]) for start in range(0, len(micro), parts)]
    tokens = [
        sum(shard.tokens for shard in shards[start : start + parts])
        for start in range(0, len(shards), parts)
    ]
    return Run(losses, tokens, step_clock.step_ends)
