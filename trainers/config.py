"""The typed training configuration read from ``configs/training/*.yaml``."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictInt,
    model_validator,
)

MAX_STEPS = 10**9
"""The most optimizer steps a run may ask for: optax counts steps in int32 (2**31 - 1), and 10**9
steps is decades at one step a second, so a larger number is a typo, not a plan."""
SEED_LIMIT = 2**32
"""Seeds fit in 32 bits: numpy takes [0, 2**32) only, and such a seed means the same to torch,
numpy and JAX (whose integers are 32-bit unless x64 is enabled)."""

# Counts are strict integers: YAML's ``true`` or ``4.0`` must not quietly become 1 or 4.
Count = Annotated[StrictInt, Field(gt=0)]
StepCount = Annotated[StrictInt, Field(gt=0, le=MAX_STEPS)]
Seed = Annotated[StrictInt, Field(ge=0, lt=SEED_LIMIT)]
# Rates and scales are finite: ``.inf`` or ``.nan`` would only surface as a NaN loss mid-run.
# Floats stay lax about strings (YAML 1.1 reads ``1e-4``, with no dot, as one), not about
# ``true``, which pydantic would take for 1.0.


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is needed, not true or false")
    return value


Real = Annotated[FiniteFloat, BeforeValidator(_not_a_bool)]
PositiveFinite = Annotated[Real, Field(gt=0)]
Beta = Annotated[Real, Field(ge=0, lt=1)]


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in a mapping is an error, not last-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_seen: dict[Hashable, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base`` keys are meant to be overridden
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # an unhashable key is reported by PyYAML itself
            if key in first_seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"duplicate key {key!r}, first on line {first_seen[key]}",
                    problem_mark=key_node.start_mark,
                )
            first_seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class StrictModel(BaseModel):
    """A frozen config model that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AdamWConfig(StrictModel):
    """AdamW: ``lr`` (the peak), decoupled ``weight_decay``, ``betas`` and ``eps``."""

    name: Literal["adamw"]
    lr: PositiveFinite
    weight_decay: Annotated[Real, Field(ge=0.0)]
    betas: tuple[Beta, Beta]
    eps: PositiveFinite


class AdafactorConfig(StrictModel):
    """Adafactor (Shazeer and Stern, 2018) with a learning rate of its own and no momentum: each
    matrix keeps the mean squared gradient of its rows and of its columns, each vector a full one.

    The same update on both backends (docs/training.md#adafactor): transformers' ``Adafactor`` with
    ``relative_step=False, scale_parameter=False`` on torch, optax's adafactor on jax.
    """

    name: Literal["adafactor"]
    lr: PositiveFinite
    """The peak learning rate, which ``schedule`` warms up and decays, as for AdamW."""
    weight_decay: Annotated[Real, Field(ge=0.0)] = 0.0
    """Decoupled: each step multiplies every weight by ``1 - lr x weight_decay``."""
    decay_rate: Annotated[Real, Field(gt=0.0, le=1.0)] = 0.8
    """The second-moment decay at step ``t`` is ``1 - t ** -decay_rate``."""
    clip_threshold: PositiveFinite = 1.0
    """Each weight's update is scaled down to a root mean square of at most this."""
    eps: PositiveFinite = 1e-30
    """Added to every squared gradient."""


# ``name`` says which optimizer, and so which keys it reads: a key of the other is refused.
OptimizerConfig = Annotated[AdamWConfig | AdafactorConfig, Field(discriminator="name")]
OPTIMIZERS = ("adamw", "adafactor")


class ScheduleConfig(StrictModel):
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak."""

    warmup_steps: Annotated[StrictInt, Field(ge=0, le=MAX_STEPS)]
    decay: Literal["cosine", "constant"]
    min_lr_ratio: Annotated[Real, Field(ge=0.0, le=1.0)]


class EvalConfig(StrictModel):
    """Greedy generation settings for the evaluation phase."""

    batch_size: Count
    max_new_tokens: Count


class DivergenceConfig(StrictModel):
    """Stop when the loss stays above ``factor`` x its running minimum for ``patience`` steps."""

    factor: Annotated[Real, Field(gt=1.0)]
    patience: Count


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The projections of a Gemma decoder layer, by their transformers names."""
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj")
LoraTarget = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraConfig(StrictModel):
    """Low-rank adapters on the attention and MLP projections; only the adapters are trained."""

    rank: Count
    alpha: PositiveFinite
    """Each adapter's update ``B A`` is scaled by ``alpha / rank``."""
    dropout: Annotated[Real, Field(ge=0.0, lt=1.0)] = 0.0
    """Dropout on each adapter's input while training (torch backend only)."""
    target_modules: tuple[LoraTarget, ...] = DEFAULT_LORA_TARGETS
    """The projections of every decoder layer that get adapters, by their transformers names."""
    quantize: Literal["none", "nf4"] = "none"
    """``nf4``: QLoRA, the frozen projections held in 4 bits by bitsandbytes (torch on CUDA)."""

    @model_validator(mode="after")
    def _targets_named_once(self) -> LoraConfig:
        if not self.target_modules:
            raise ValueError("lora.target_modules names no projection")
        repeated = sorted({t for t in self.target_modules if self.target_modules.count(t) > 1})
        if repeated:
            raise ValueError(f"lora.target_modules names {', '.join(repeated)} more than once")
        return self


class MeshConfig(StrictModel):
    """A ``data`` x ``fsdp`` device mesh: batches split over both axes, weights over ``fsdp``."""

    data: Count = 1
    fsdp: Count = 1


class ParallelConfig(StrictModel):
    """How the torch backend spreads one run over processes, launched through ``torchrun``.

    ``single`` trains in the pytest process on one device; ``ddp`` and ``fsdp`` start
    ``processes`` workers (one per GPU, or CPU processes with the gloo backend).
    """

    strategy: Literal["single", "ddp", "fsdp"] = "single"
    processes: Count = 1

    @model_validator(mode="after")
    def _processes_match_strategy(self) -> ParallelConfig:
        if self.strategy == "single" and self.processes != 1:
            raise ValueError(
                f"strategy single runs 1 process, not {self.processes}; use ddp or fsdp"
            )
        if self.strategy != "single" and self.processes < 2:
            raise ValueError(
                f"strategy {self.strategy} needs at least 2 processes, got {self.processes}"
            )
        return self


# Why a jax run refuses ``precision: bf16-pure``, both where the spec is loaded and in the trainer.
BF16_PURE_IS_TORCH_ONLY = (
    "bf16-pure is torch-only: the jax backend keeps float32 weights and optimizer state "
    "(use fp32 or bf16)"
)


class TrainingConfig(StrictModel):
    """Everything about how a model is trained, apart from what and for how long."""

    seed: Seed
    batch_size: Count
    max_seq_len: Count
    precision: Literal["fp32", "bf16", "bf16-pure"]
    """``fp32``; ``bf16``: autocast over float32 weights, gradients and AdamW state; ``bf16-pure``
    (torch backend): all three in bfloat16, half their memory, though bf16 rounds away the AdamW
    updates smaller than a weight's last bit (docs/training.md)."""
    grad_clip: PositiveFinite
    log_every: Count
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    divergence: DivergenceConfig
    eval: EvalConfig
    lora: LoraConfig | None = None
    """LoRA adapters (peft on torch, qwix on jax); None trains every weight."""
    mesh: MeshConfig = MeshConfig()
    """The jax backend's device mesh (jax backend only)."""
    grad_accum_steps: Count = 1
    """Micro-batches per optimizer step: ``batch_size`` examples are split into this many, so the
    effective batch (and the loss curve) stays the same while activation memory shrinks."""
    batching: Literal["padded", "length_grouped", "packed"] = "padded"
    """torch backend: ``padded`` pads each batch to its longest row; ``length_grouped`` batches
    rows of similar length together; ``packed`` concatenates rows into full sequences with
    attention kept inside each row."""
    gradient_checkpointing: bool = False
    """torch backend: recompute activations in the backward pass to save memory."""
    compile: bool = False
    """torch backend: ``torch.compile`` the model before training."""
    parallel: ParallelConfig = ParallelConfig()
    """torch backend: one device, or DDP/FSDP over several processes."""

    @model_validator(mode="after")
    def _batch_splits_evenly(self) -> TrainingConfig:
        shards = self.grad_accum_steps * self.parallel.processes
        if self.batch_size % shards:
            raise ValueError(
                f"batch_size {self.batch_size} does not split into grad_accum_steps x "
                f"parallel.processes = {self.grad_accum_steps} x {self.parallel.processes} "
                "equal micro-batches"
            )
        return self


    @model_validator(mode="after")
    def _lora_runs_where_it_can(self) -> TrainingConfig:
        if self.lora is None:
            return self
        if self.parallel.strategy == "fsdp":
            raise ValueError(
                "lora under parallel.strategy fsdp is not supported: use ddp, whose processes "
                "each hold the frozen weights once and exchange only the adapters' gradients"
            )
        if self.lora.quantize != "none" and self.precision != "bf16":
            raise ValueError(
                f"lora.quantize {self.lora.quantize} computes in bf16 over the 4-bit weights: it "
                f"needs precision bf16, not {self.precision}"
            )
        if self.lora.quantize != "none" and self.parallel.strategy != "single":
            raise ValueError(f"lora.quantize {self.lora.quantize} trains on one GPU only")
        return self

# Training settings only one backend reads: set on the other backend's milestone they would be
# silently ignored, so loading refuses them. A dotted name is a key inside a section.
BACKEND_ONLY_SETTINGS = {
    "torch": (
        "grad_accum_steps",
        "batching",
        "gradient_checkpointing",
        "compile",
        "parallel",
        "lora.dropout",
        "lora.quantize",
    ),
    "jax": ("mesh",),
}
# The Tunix modules that hold each projection. k and v are one weight (kv_einsum; q, k and v are
# one, qkv_einsum, where the heads match): an adapter on it adapts both.
JAX_LORA_MODULES = {
    "q_proj": "q_einsum",
    "k_proj": "kv_einsum",
    "v_proj": "kv_einsum",
    "o_proj": "attn_vec_einsum",
    "gate_proj": "gate_proj",
    "up_proj": "up_proj",
    "down_proj": "down_proj",
}
JAX_PAIRED_TARGETS = ("k_proj", "v_proj")


def _changed(training: TrainingConfig, dotted: str) -> bool:
    """Whether the setting ``dotted`` (``section.key`` or ``key``) differs from its default."""
    owner: Any = training
    *sections, name = dotted.split(".")
    for section in sections:
        owner = getattr(owner, section)
        if owner is None:
            return False  # the section itself is not set
    default = type(owner).model_fields[name].get_default(call_default_factory=True)
    return bool(getattr(owner, name) != default)


def backend_mismatch(backend: str, training: TrainingConfig) -> str | None:
    """The first training setting ``backend`` cannot honour, as ``key '...': why``; None if none."""
    if backend == "jax" and training.precision == "bf16-pure":
        return f"key 'precision': {BF16_PURE_IS_TORCH_ONLY}"
    for other, names in BACKEND_ONLY_SETTINGS.items():
        if other == backend:
            continue
        for name in names:
            if _changed(training, name):
                return f"key '{name}': only the {other} backend reads it"
    lora = training.lora
    if backend == "jax" and lora is not None:
        paired = [t for t in JAX_PAIRED_TARGETS if t in lora.target_modules]
        if len(paired) == 1:
            return (
                "key 'lora.target_modules': the jax backend holds k_proj and v_proj in one weight "
                f"(kv_einsum), so it adapts both or neither, not only {paired[0]}"
            )
    return None
