"""The memory guard's estimate: what one torch training process holds at its peak, computed from the
model config and the training config before any weight exists (docs/memory.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainers.config import TrainingConfig
from trainers.models import ARCHITECTURES, ModelSource, flax_checkpoint, pretrained_folder

if TYPE_CHECKING:
    from harness.probes.hardware import DeviceMemory

GIB = 2**30
FP32, BF16 = 4, 2
# RMSNorms in each decoder layer, by model_type: the Gemma families the estimate models.
LAYER_NORMS = {"gemma": 2, "gemma2": 4, "gemma3_text": 4}
QK_NORM_TYPES = ("gemma3_text",)
# Bytes per token per vocabulary entry at the loss's peak, in any precision: the trainer holds
# the last micro-batch's output until the next forward returns, so two sets of logits and fp32
# log-softmax are alive (2 x (4 + 4); with bf16 logits, 2 x (2 + 4) plus the loss's fp32 copy).
# The backward needs less: logits, log-softmax and its gradient in and out (act + 12).
LOSS_BYTES_PER_ENTRY = 16
PRECISION_NAMES = {"fp32": "fp32", "bf16": "bf16 autocast", "bf16-pure": "bf16-pure"}


class NoEstimate(Exception):
    """The model's shape is not known here: no config at hand, or an architecture not modelled."""


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Gemma-family decoder config that training memory depends on."""

    model_type: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    logit_softcapping: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Read a transformers config (its defaults fill what a ``config.json`` leaves out)."""
        if config.model_type not in LAYER_NORMS:
            known = ", ".join(LAYER_NORMS)
            raise NoEstimate(f"model_type {config.model_type!r} is not modelled (known: {known})")
        return cls(
            model_type=config.model_type,
            vocab=config.vocab_size,
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            tied_embeddings=config.tie_word_embeddings,
            logit_softcapping=getattr(config, "final_logit_softcapping", None) is not None,
        )

    @property
    def layer_matmul_parameters(self) -> int:
        """Weights of one decoder layer's projections: q, k, v, o and the GeGLU gate, up, down."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return 2 * h * q + 2 * h * kv + 3 * h * self.intermediate

    @property
    def layer_parameters(self) -> int:
        qk_norm = 2 * self.head_dim if self.model_type in QK_NORM_TYPES else 0
        return self.layer_matmul_parameters + LAYER_NORMS[self.model_type] * self.hidden + qk_norm

    @property
    def parameters(self) -> int:
        """Every weight: embeddings (shared with the output head when tied), layers, final norm."""
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * self.layer_parameters + self.hidden

    @property
    def matmul_parameters(self) -> int:
        """The weights autocast casts to bf16: every projection and the output head."""
        return self.layers * self.layer_matmul_parameters + self.vocab * self.hidden

    def layer_activation_bytes(self, precision: str) -> int:
        """Bytes per token a decoder layer keeps for backward when training in ``precision``."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        act = FP32 if precision == "fp32" else BF16
        # Each RMSNorm computes in fp32 and keeps its input and the normalised value.
        norms = LAYER_NORMS[self.model_type] * 2 * h * FP32
        if self.model_type in QK_NORM_TYPES:
            norms += 2 * (q + kv) * FP32
        # The projections' inputs: the two pre-norm outputs in the weights' dtype, or under
        # autocast one bf16 copy per projection that reads them (q, k, v; gate, up).
        inputs = 5 * h * BF16 if precision == "bf16" else 2 * h * act
        # SDPA keeps queries, keys and values (repeated to every head once padding masks the
        # batch) and its output; o_proj keeps a contiguous copy of that output.
        attention = 5 * q * act
        # GeGLU keeps the gate and up projections, the gate's activation and their product.
        mlp = 4 * self.intermediate * act
        return norms + inputs + attention + mlp

    def head_activation_bytes(self, act: int) -> int:
        """Bytes per token of the final norm, the logits and the fp32 loss over the vocabulary."""
        norm = 2 * self.hidden * FP32 + self.hidden * act
        softcapping = self.vocab * act if self.logit_softcapping else 0  # its tanh is kept
        return norm + softcapping + LOSS_BYTES_PER_ENTRY * self.vocab


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process holds at its peak, by what holds them (docs/memory.md)."""

    weights: int
    """The weights (sharded under FSDP, plus the layers it gathers): fp32, or bf16 under bf16-pure;
    under bf16 autocast also the bf16 copy of every matmul weight that the backward keeps."""
    gradients: int
    """One gradient per weight, in the weights' dtype (sharded under FSDP; twice under DDP, whose
    buckets copy it)."""
    optimizer: int
    """AdamW's two moments per weight, in the weights' dtype (sharded under FSDP)."""
    activations: int
    """What one micro-batch's forward keeps for backward, the loss over the vocabulary included."""
    workspace: int
    """The optimizer step's temporaries: one value per weight, in the weights' dtype, in torch's
    foreach AdamW."""
    micro_batch: int
    seq_len: int
    precision: str

    @property
    def total(self) -> int:
        """The peak: activations are freed before the optimizer steps, so only the larger counts."""
        held = self.weights + self.gradients + self.optimizer
        return held + max(self.activations, self.workspace)

    def parts(self) -> list[tuple[str, int]]:
        """The named parts that add up to ``total``."""
        transient = ("activations", self.activations)
        if self.workspace > self.activations:
            transient = ("optimizer-step workspace", self.workspace)
        return [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer", self.optimizer),
            transient,
        ]

    def summary(self) -> str:
        """One line: the total and its parts in GiB, and the shape of a micro-batch."""
        parts = " + ".join(f"{name} {gib(value)}" for name, value in self.parts())
        return (
            f"{gib(self.total)} GiB = {parts} GiB (micro-batch {self.micro_batch} x "
            f"{self.seq_len} tokens, {self.precision})"
        )

    def table(self) -> str:
        """Every part, the larger-only ones included, as a markdown table in GiB."""
        rows = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer", self.optimizer),
            ("activations", self.activations),
            ("optimizer-step workspace (the larger of it and activations counts)", self.workspace),
            ("total", self.total),
        ]
        lines = [f"| {name} | {gib(value)} |" for name, value in rows]
        return "\n".join(["| part | GiB |", "| --- | ---: |", *lines])


def gib(value: int) -> str:
    return f"{value / GIB:.1f}"


def estimate(shape: ModelShape, config: TrainingConfig) -> MemoryEstimate:
    """The peak memory of a process training ``shape`` as the torch trainer does with ``config``."""
    parallel = config.parallel
    processes = parallel.processes if parallel.strategy != "single" else 1
    shards = parallel.processes if parallel.strategy == "fsdp" else 1
    micro_batch = -(-config.batch_size // (config.grad_accum_steps * processes))
    precision = config.precision
    act = FP32 if precision == "fp32" else BF16
    # A weight, its gradient, each AdamW moment and the residual stream share one dtype.
    word = BF16 if precision == "bf16-pure" else FP32
    local = -(-shape.parameters // shards)
    weights = local * word + (shape.matmul_parameters * BF16 if precision == "bf16" else 0)
    if shards > 1:
        # FSDP gathers the embedding and two decoder layers (the one computing, the one prefetched).
        weights += (shape.vocab * shape.hidden + 2 * shape.layer_parameters) * word
    layer = shape.layer_activation_bytes(precision)
    per_token_layers = shape.layers * layer
    if config.gradient_checkpointing:
        # Only each layer's input is kept; one layer at a time is recomputed in the backward.
        per_token_layers = shape.layers * shape.hidden * word + layer
    tokens = micro_batch * config.max_seq_len
    return MemoryEstimate(
        weights=weights,
        gradients=local * word * (2 if parallel.strategy == "ddp" else 1),
        optimizer=2 * local * word,
        activations=tokens * (per_token_layers + shape.head_activation_bytes(act)),
        workspace=local * word,
        micro_batch=micro_batch,
        seq_len=config.max_seq_len,
        precision=PRECISION_NAMES[precision],
    )


def lora_parameters(shape: ModelShape, rank: int) -> int:
    """Weights of the jax backend's LoRA adapters (``trainers.jax.model.LORA_MODULES``): rank x
    (inputs + outputs) for the query, key-value, gate, up and down projections of every layer."""
    h, q, kv, i = (
        shape.hidden,
        shape.heads * shape.head_dim,
        shape.kv_heads * shape.head_dim,
        (shape.intermediate),
    )
    return shape.layers * rank * ((h + q) + (h + 2 * kv) + 3 * (h + i))


def estimate_jax(shape: ModelShape, config: TrainingConfig) -> MemoryEstimate:
    """The peak memory of one device of the jax trainer's ``data x fsdp`` mesh: float32 weights,
    gradients and AdamW moments (of every weight, or of the LoRA adapters only) sharded over
    ``fsdp``, and the float32 activations of the device's share of a batch (bf16 is a matmul
    precision there, not a storage dtype)."""
    devices, shards = config.mesh.data * config.mesh.fsdp, config.mesh.fsdp
    local = -(-shape.parameters // shards)
    trained = local if config.lora is None else lora_parameters(shape, config.lora.rank)
    micro_batch = -(-config.batch_size // devices)
    tokens = micro_batch * config.max_seq_len
    per_token = shape.layers * shape.layer_activation_bytes("fp32")
    return MemoryEstimate(
        weights=(local + (trained if config.lora else 0)) * FP32,
        gradients=trained * FP32,
        optimizer=2 * trained * FP32,
        activations=tokens * (per_token + shape.head_activation_bytes(FP32)),
        workspace=trained * FP32,
        micro_batch=micro_batch,
        seq_len=config.max_seq_len,
        precision=f"{config.precision} matmuls, fp32 state, {devices} devices",
    )


def model_config(source: str, hub_cache: Path | None = None) -> Any:
    """The transformers config of a model source, read without downloading or building weights
    (``hub_cache`` as for ``pretrained_folder``); Kaggle's Flax layout's is derived from its
    checkpoint."""
    from transformers import AutoConfig

    parsed = ModelSource.parse(source)
    if parsed.kind == "random":
        params = dict(ARCHITECTURES[parsed.location])
        return AutoConfig.for_model(params.pop("model_type"), **params)
    try:
        folder = pretrained_folder(parsed, fetch=False, hub_cache=hub_cache)
    except FileNotFoundError:
        where = "the local Hugging Face cache" if parsed.kind == "hf" else "this machine"
        raise NoEstimate(f"{source} has no config.json in {where}") from None
    if parsed.kind == "kaggle" and flax_checkpoint(folder) is not None:
        from trainers.jax.kaggle import read_config

        params = read_config(folder)
        return AutoConfig.for_model(params.pop("model_type"), **params)
    if not (folder / "config.json").is_file():
        raise NoEstimate(f"{source} has no {folder / 'config.json'}")
    return AutoConfig.from_pretrained(folder, local_files_only=True)


def refusal(needed: MemoryEstimate, memory: DeviceMemory, processes: int = 1) -> str | None:
    """Why the run cannot fit ``memory``, with the numbers; None when it fits.

    ``processes`` share the device when they train on one machine's RAM (DDP or FSDP on CPU).
    """
    if needed.total * processes <= memory.available:
        return None
    each = f"{processes} processes x " if processes > 1 else ""
    return f"the run needs {each}{needed.summary()}, but {memory.describe()}"
