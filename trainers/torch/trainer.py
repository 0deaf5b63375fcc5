"""The PyTorch backend: trains on one device, or launches DDP or FSDP workers, and generates
greedily from the checkpoint it left."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainers.encoding import encode_prompt
from trainers.models import build_model_and_tokenizer
from trainers.protocol import StepHook, TrainRequest, TrainResult
from trainers.torch.fit import BACKEND, Replica, fit
from trainers.torch.parallel import launch


class TorchTrainer:
    """Full fine-tuning of a transformers causal LM on one device, or with DDP or FSDP."""

    backend = BACKEND

    def train(self, request: TrainRequest, on_step: StepHook) -> TrainResult:
        if request.config.parallel.strategy == "single":
            return fit(request, on_step, Replica())
        return launch(request, on_step)

    def generate(
        self,
        checkpoint_dir: Path,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
        device: str,
    ) -> list[str]:
        """Greedy completions for ``prompts`` from the checkpoint a run left."""
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
        model = AutoModelForCausalLM.from_pretrained(checkpoint_dir)
        return greedy(model.to(device).eval(), tokenizer, prompts, max_new_tokens, batch_size)

    def generate_untuned(
        self,
        request: TrainRequest,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
    ) -> list[str]:
        """Greedy completions from the model ``request`` would train, as training builds it."""
        model, tokenizer = build_model_and_tokenizer(
            request.model_source, request.config.seed, request.hub_cache
        )
        model = model.to(request.device).eval()
        return greedy(model, tokenizer, prompts, max_new_tokens, batch_size)


def greedy(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    """Greedy completions for ``prompts``, batched with left padding and a KV cache."""
    completions: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        encoded = [encode_prompt(tokenizer, p) for p in chunk]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor(
            [[tokenizer.pad_token_id] * (width - len(ids)) + ids for ids in encoded]
        )
        attention = (
            torch.arange(width) >= torch.tensor([[width - len(ids)] for ids in encoded])
        ).long()
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=attention.to(model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, width:]
        completions.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return completions
