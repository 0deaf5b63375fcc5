"""The PyTorch backend: a transformers causal LM, completion-only loss, AdamW, seeded and deterministic."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    get_constant_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
)

from trainers.base import StepHook, StepRecord, TrainRequest, TrainResult
from trainers.encoding import IGNORE_INDEX, batches, encode_example, encode_prompt
from trainers.guards import LossGuard, TrainingStopped
from trainers.models import build_model_and_tokenizer

def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest row; padding is masked out of attention and loss."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def _scheduler(optimizer: torch.optim.Optimizer, request: TrainRequest, total: int) -> Any:
    schedule = request.config.schedule
    if schedule.decay == "constant":
        return get_constant_schedule_with_warmup(optimizer, schedule.warmup_steps)
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, schedule.warmup_steps, total, min_lr_rate=schedule.min_lr_ratio
    )


class TorchTrainer:
    """Full fine-tuning of a transformers causal LM on one device."""

    backend = "torch"

    def train(self, request: TrainRequest, on_step: StepHook) -> TrainResult:
        config = request.config
        torch.use_deterministic_algorithms(True, warn_only=True)
        model, tokenizer = build_model_and_tokenizer(request.model_source, config.seed)
        device = torch.device(request.device)
        model.to(device).train()
        rows = [encode_example(tokenizer, ex, config.max_seq_len) for ex in request.examples]
        opt = config.optimizer
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay
        )
        total = request.total_steps()
        scheduler = _scheduler(optimizer, request, total)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
        guard = LossGuard(config.divergence.factor, config.divergence.patience)
        records: list[StepRecord] = []
        started = time.perf_counter()
        for step, indices in enumerate(batches(len(rows), config.batch_size, config.seed), start=1):
            if step > total:
                break
            tick = time.perf_counter()
            batch = {k: v.to(device) for k, v in collate([rows[i] for i in indices], tokenizer.pad_token_id).items()}
            with autocast:
                loss = model(**batch).loss
            try:
                guard.check(step, loss.item())
            except TrainingStopped:
                self._save(model, tokenizer, request.checkpoint_dir)  # the weights before this step
                raise
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            record = StepRecord(
                step=step,
                loss=loss.item(),
                lr=lr,
                grad_norm=grad_norm.item(),
                samples=len(indices),
                tokens=int(batch["attention_mask"].sum().item()),
                seconds=time.perf_counter() - tick,
            )
            records.append(record)
            on_step(record)
        runtime = time.perf_counter() - started
        self._save(model, tokenizer, request.checkpoint_dir)
        return TrainResult(
            backend=self.backend,
            device=str(device),
            model_parameters=sum(p.numel() for p in model.parameters()),
            steps=tuple(records),
            runtime_s=runtime,
            checkpoint_dir=request.checkpoint_dir,
        )

    @staticmethod
    def _save(model: Any, tokenizer: Any, checkpoint_dir: Path) -> None:
        model.save_pretrained(checkpoint_dir)
        tokenizer.save_pretrained(checkpoint_dir)

    def generate(
        self,
        checkpoint_dir: Path,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
        device: str,
    ) -> list[str]:
        """Greedy completions for ``prompts``, batched with left padding and a KV cache."""
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
        model = AutoModelForCausalLM.from_pretrained(checkpoint_dir).to(device).eval()
        completions: list[str] = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            encoded = [encode_prompt(tokenizer, p) for p in chunk]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + ids for ids in encoded])
            attention = (torch.arange(width) >= torch.tensor([[width - len(ids)] for ids in encoded])).long()
            with torch.no_grad():
                output = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new_tokens = output[:, width:]
            completions.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        return completions
