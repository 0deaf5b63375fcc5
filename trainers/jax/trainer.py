"""The jax backend: a Tunix Gemma trained by Tunix's PeftTrainer step and optax (AdamW or
Adafactor, trainers/jax/optim.py) on a mesh."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from transformers import PreTrainedTokenizerFast
from tunix.sft import peft_trainer
from tunix.sft import utils as sft_utils

from trainers.char_tokenizer import build_char_tokenizer
from trainers.checkpoints import Checkpointer, read_step
from trainers.config import BF16_PURE_IS_TORCH_ONLY, TrainingConfig
from trainers.encoding import IGNORE_INDEX, batches, encode_example
from trainers.guards import LossGuard
from trainers.jax import distributed as jax_distributed
from trainers.jax import model as jax_model
from trainers.jax import sampling as jax_sampling
from trainers.jax import state as jax_state
from trainers.jax.optim import build_optimizer, learning_rate, shard_state_like_weights
from trainers.loop import StepOutcome, TrainingLoop
from trainers.models import ModelSource, pretrained_folder
from trainers.protocol import StepHook, TrainRequest, TrainResult

# bf16 as torch's autocast has it: bfloat16 matmul inputs, float32 weights and optimizer state.
MATMUL_PRECISION = {"fp32": "float32", "bf16": "bfloat16"}


def collate(
    rows: Sequence[tuple[list[int], list[int]]], batch_size: int, width: int, pad_id: int
) -> dict[str, np.ndarray]:
    """Right-pad every row to ``width`` and the batch to ``batch_size`` rows: XLA compiles once.

    ``padding_mask`` marks real tokens (attention, positions, token counts); ``loss_mask`` marks the
    completion tokens the loss is taken on. Filler rows are all padding and add nothing to the loss.
    """
    tokens = np.full((batch_size, width), pad_id, dtype=np.int32)
    padding = np.zeros((batch_size, width), dtype=bool)
    loss = np.zeros((batch_size, width), dtype=bool)
    for row, (ids, labels) in enumerate(rows):
        tokens[row, : len(ids)] = ids
        padding[row, : len(ids)] = True
        loss[row, : len(labels)] = np.asarray(labels) != IGNORE_INDEX
    return {"input_tokens": tokens, "padding_mask": padding, "loss_mask": loss}


def model_input(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The arguments of Tunix's default loss: the loss mask is its ``input_mask``, and positions and
    the causal attention mask come from the padding mask."""
    padding = batch["padding_mask"]
    return {
        "input_tokens": batch["input_tokens"],
        "input_mask": batch["loss_mask"],
        "positions": sft_utils.build_positions_from_mask(padding),
        "attention_mask": sft_utils.make_causal_attn_mask(padding),
    }


def check_precision(config: TrainingConfig) -> None:
    if config.precision not in MATMUL_PRECISION:
        raise ValueError(f"precision {BF16_PURE_IS_TORCH_ONLY}")


def check_batch(config: TrainingConfig, mesh: jax.sharding.Mesh) -> None:
    if config.batch_size % mesh.size:
        raise ValueError(
            f"batch_size {config.batch_size} does not split over the {mesh.size} mesh devices "
            f"(data={config.mesh.data} x fsdp={config.mesh.fsdp})"
        )


@dataclass(frozen=True)
class JaxStep:
    """One call of Tunix's jitted train step on a batch padded to the compiled shape."""

    train_step: Callable[[dict[str, jax.Array]], tuple[jax.Array, Any, jax.Array]]
    rows: Sequence[tuple[list[int], list[int]]]
    config: TrainingConfig
    pad_id: int
    schedule: optax.Schedule
    mesh: jax.sharding.Mesh

    def __call__(
        self, step: int, indices: Sequence[int], loss_known: Callable[[float], None]
    ) -> StepOutcome:
        config = self.config
        batch = collate(
            [self.rows[i] for i in indices], config.batch_size, config.max_seq_len, self.pad_id
        )
        # Every process builds the whole batch and feeds the rows of its own devices.
        loss, _, grad_norm = self.train_step(jax_distributed.global_batch(batch, self.mesh))
        value = float(loss)
        # Tunix has already applied this step: a stop here keeps the weights after it.
        loss_known(value)
        return StepOutcome(
            loss=value,
            lr=float(self.schedule(step - 1)),
            grad_norm=float(grad_norm),
            samples=len(indices),
            tokens=int(batch["padding_mask"].sum()),
        )


class JaxTrainer:
    """Full or LoRA fine-tuning of a Tunix Gemma, sharded over a (data, fsdp) device mesh."""

    backend = "jax"

    @jax_model.quiet_tunix()
    def train(self, request: TrainRequest, on_step: StepHook) -> TrainResult:
        """Train with Tunix's jitted train step, one call per batch: every step is seen and timed.

        Tunix's step returns the loss together with the update it already applied, so the guard
        checks each loss after its step: a stopped run's checkpoint holds the weights after the
        step that stopped it (torch keeps those from before it).
        """
        config = request.config
        check_precision(config)
        source = jax_model.loadable(request.model_source)
        mesh = jax_model.build_mesh(config.mesh, request.device)
        check_batch(config, mesh)
        model, tokenizer, pretrained = self._model(source, config, mesh, request.hub_cache)
        rows = [encode_example(tokenizer, ex, config.max_seq_len) for ex in request.examples]
        total = request.total_steps()
        schedule = learning_rate(config, total)
        trainer = peft_trainer.PeftTrainer(
            model,
            build_optimizer(config, schedule),
            peft_trainer.TrainingConfig(
                eval_every_n_steps=total, max_steps=total, data_sharding_axis=jax_model.BATCH_AXES
            ),
        ).with_gen_model_input_fn(model_input)
        shard_state_like_weights(trainer.optimizer, mesh)
        card = jax_model.model_card(
            request.model_source, model.config, config.seed, config.lora, config.mesh, pretrained
        )
        loop = TrainingLoop(total)
        loop.add_loss_hook(LossGuard(config.divergence.factor, config.divergence.patience).check)
        loop.add_hook(on_step)
        loop.add_save_hook(
            lambda step: self._save(request, model, trainer.optimizer, step, card, tokenizer)
        )
        if request.checkpoints is not None:
            checkpointer = Checkpointer(
                request.checkpoints,
                lambda folder, step: jax_state.write_state(folder, model, trainer.optimizer, step),
            )
            loop.add_checkpoint_hook(checkpointer, request.checkpoints.every)
        start = 0
        if request.resume_from is not None:  # before the step is jitted over the state
            jax_state.read_state(request.resume_from, model, trainer.optimizer)
            start = read_step(request.resume_from)
        # Tunix reads the mesh from the legacy `with mesh:` context when it shards inputs and state.
        with mesh, jax.default_matmul_precision(MATMUL_PRECISION[config.precision]):
            train_step, _ = trainer.jit_train_and_eval_step(cache_nnx_graph=True)
            step = JaxStep(train_step, rows, config, tokenizer.pad_token_id, schedule, mesh)
            done = loop.run(batches(len(rows), config.batch_size, config.seed), step, start)
        return TrainResult(
            backend=self.backend,
            device=request.device,
            model_parameters=jax_model.parameter_count(model),
            steps=done.steps,
            runtime_s=done.runtime_s,
            checkpoint_dir=request.checkpoint_dir,
        )

    @staticmethod
    def _model(
        source: ModelSource,
        config: TrainingConfig,
        mesh: jax.sharding.Mesh,
        hub_cache: Path | None,
    ) -> tuple[nnx.Module, Any, dict[str, Any] | None]:
        """The model, its tokenizer and, for a pretrained folder, its transformers config (for
        Kaggle's Flax layout, the one its shapes give)."""
        from trainers.jax import kaggle as jax_kaggle
        from trainers.models import flax_checkpoint

        if source.kind == "random":
            model = jax_model.build_model(source.location, config.seed, mesh, config.lora)
            return model, build_char_tokenizer(), None
        folder = pretrained_folder(source, hub_cache=hub_cache)
        if source.kind == "kaggle" and flax_checkpoint(folder) is not None:
            return jax_kaggle.load_kaggle(folder, config.seed, mesh, config.lora)
        return jax_model.load_pretrained(folder, config.seed, mesh, config.lora)

    @staticmethod
    def _save(
        request: TrainRequest,
        model: nnx.Module,
        optimizer: nnx.Optimizer,
        step: int,
        card: dict[str, Any],
        tokenizer: Any,
    ) -> None:
        request.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if jax_distributed.is_primary():  # before the checkpoint's closing barrier
            tokenizer.save_pretrained(request.checkpoint_dir)
        jax_model.save_checkpoint(request.checkpoint_dir, model, optimizer, step, card, tokenizer)

    @jax_model.quiet_tunix()
    def generate(
        self,
        checkpoint_dir: Path,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
        device: str,
    ) -> list[str]:
        """Greedy completions for ``prompts`` from the checkpoint's orbax state, restored into the
        model rebuilt shape-only from its card."""
        model = jax_model.load_model(checkpoint_dir, device)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(checkpoint_dir)
        return jax_sampling.greedy_completions(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size
        )

    @jax_model.quiet_tunix()
    def generate_untuned(
        self,
        request: TrainRequest,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
    ) -> list[str]:
        """Greedy completions from the model ``request`` would train, built on its mesh as training
        builds it (LoRA adapters, if any, start as zero updates)."""
        config = request.config
        source = jax_model.loadable(request.model_source)
        mesh = jax_model.build_mesh(config.mesh, request.device)
        model, tokenizer, _ = self._model(source, config, mesh, request.hub_cache)
        return jax_sampling.greedy_completions(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
