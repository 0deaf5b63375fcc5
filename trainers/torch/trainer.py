"""The PyTorch backend: trains on one device, or launches DDP or FSDP workers, and generates
greedily from the checkpoint it left."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainers.encoding import encode_prompt
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
        """Greedy completions for ``prompts``, batched with left padding and a KV cache."""
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
        model = AutoModelForCausalLM.from_pretrained(checkpoint_dir).to(device).eval()
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
