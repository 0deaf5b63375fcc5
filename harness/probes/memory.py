"""The memory guard's estimate: what one torch training process holds at its peak, computed from the
model config and the training config before any weight exists (docs/memory.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.probes.model_shape import BF16, FP32, ModelShape, NoEstimate, Shape
from harness.spec.milestones import TRAINING_DIR
from harness.spec.yaml_files import SpecError, load_yaml_model
from trainers.config import AdafactorConfig, LoraConfig, TrainingConfig, backend_mismatch
from trainers.models import ARCHITECTURES, ModelSource, flax_checkpoint, pretrained_folder

if TYPE_CHECKING:
    from harness.probes.hardware import DeviceMemory

__all__ = ["ModelShape", "NoEstimate"]  # re-exported: the estimate's callers name them here

GIB = 2**30
PRECISION_NAMES = {"fp32": "fp32", "bf16": "bf16 autocast", "bf16-pure": "bf16-pure"}
# QLoRA's NF4 weight: 4 bits, plus per block of 64 an 8-bit scale, plus per 256 scales a float32
# one (bitsandbytes' nested quantization).
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
# transformers' Adafactor works on one weight at a time in float32: the squared gradient and the
# factored estimate of its mean (2 values per element), and from bf16 weights also float32
# copies of the weight and of its gradient (4).
ADAFACTOR_COPIES = {FP32: 2, BF16: 4}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process holds at its peak, by what holds them (docs/memory.md)."""

    weights: int
    """The weights (sharded under FSDP, plus the layers it gathers): fp32, or bf16 under bf16-pure;
    under bf16 autocast also the bf16 copy of every matmul weight that the backward keeps. Under
    LoRA the frozen weights (NF4 projections under QLoRA) and the float32 adapters."""
    gradients: int
    """One gradient per trained weight, in its dtype (sharded under FSDP; twice under DDP, whose
    buckets copy it)."""
    optimizer: int
    """AdamW's two moments per trained weight, in its dtype (sharded under FSDP); Adafactor's
    factored statistics in float32."""
    activations: int
    """What one micro-batch's forward keeps for backward, the loss over the vocabulary included."""
    workspace: int
    """The optimizer step's temporaries: one value per trained weight in torch's foreach AdamW;
    float32 copies of the largest trained weight in Adafactor."""
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


def elements(shapes: list[Shape]) -> int:
    return sum(math.prod(shape) for shape in shapes)


def factored_elements(shapes: list[Shape], layout: str) -> int:
    """Adafactor's second-moment statistics of ``shapes``: a full one for a vector; for a weight
    of two or more axes, its mean over one axis and its mean over another. transformers (torch)
    takes the last two axes, optax (jax) the two largest."""
    total = 0
    for shape in shapes:
        if len(shape) < 2:
            total += math.prod(shape)
            continue
        if layout == "torch":
            first, second = len(shape) - 2, len(shape) - 1
        else:
            first, second = sorted(range(len(shape)), key=shape.__getitem__)[-2:]
        total += math.prod(shape) // shape[first] + math.prod(shape) // shape[second]
    return total


def optimizer_state(config: TrainingConfig, trained: list[Shape], word: int, local: int) -> int:
    """Bytes of the optimizer's state: AdamW's two moments of each of the ``local`` trained
    values (the process's shard), in their dtype; Adafactor's factored statistics in float32."""
    if isinstance(config.optimizer, AdafactorConfig):
        return factored_elements(trained, "torch") * FP32
    return 2 * local * word


def optimizer_workspace(config: TrainingConfig, trained: list[Shape], word: int, local: int) -> int:
    """The torch optimizer step's temporaries: foreach AdamW's square root of every second moment
    at once; Adafactor's float32 copies of the largest trained weight (``ADAFACTOR_COPIES``)."""
    if isinstance(config.optimizer, AdafactorConfig):
        return max(math.prod(shape) for shape in trained) * FP32 * ADAFACTOR_COPIES[word]
    return local * word


def frozen_weight_bytes(shape: ModelShape, config: TrainingConfig) -> int:
    """The base model's weights under LoRA: in the weights' dtype (and autocast's bf16 copies,
    which the backward keeps); under QLoRA the projections in NF4, the rest upcast to float32,
    the output head's autocast copy and one projection dequantized to bf16 at a time."""
    lora = config.lora
    assert lora is not None
    if lora.quantize == "none":
        word = BF16 if config.precision == "bf16-pure" else FP32
        copies = shape.matmul_parameters * BF16 if config.precision == "bf16" else 0
        return shape.parameters * word + copies
    quantized = shape.layers * shape.layer_matmul_parameters
    largest = max(inputs * outputs for inputs, outputs in shape.projections().values())
    head_copy = shape.vocab * shape.hidden * BF16
    return (
        math.ceil(quantized * NF4_BYTES)
        + (shape.parameters - quantized) * FP32
        + head_copy
        + largest * BF16
    )


def training_extras(config: TrainingConfig) -> list[str]:
    """LoRA and Adafactor where a run uses them, for its one-line summary."""
    extras = []
    if (lora := config.lora) is not None:
        kind = "LoRA" if lora.quantize == "none" else f"QLoRA {lora.quantize}"
        extras.append(f"{kind} rank {lora.rank}")
    if isinstance(config.optimizer, AdafactorConfig):
        extras.append("Adafactor")
    return extras


def estimate(shape: ModelShape, config: TrainingConfig) -> MemoryEstimate:
    """The peak memory of a process training ``shape`` as the torch trainer does with ``config``."""
    parallel = config.parallel
    processes = parallel.processes if parallel.strategy != "single" else 1
    shards = parallel.processes if parallel.strategy == "fsdp" else 1
    micro_batch = -(-config.batch_size // (config.grad_accum_steps * processes))
    precision, lora = config.precision, config.lora
    act = FP32 if precision == "fp32" else BF16
    # A weight, its gradient, each AdamW moment and the residual stream share one dtype.
    word = BF16 if precision == "bf16-pure" else FP32
    if lora is None:
        trained, trained_word = shape.torch_weight_shapes(), word
        local = -(-shape.parameters // shards)
        weights = local * word + (shape.matmul_parameters * BF16 if precision == "bf16" else 0)
        if shards > 1:
            # FSDP gathers the embedding and two decoder layers (computing, and prefetched).
            weights += (shape.vocab * shape.hidden + 2 * shape.layer_parameters) * word
    else:
        # Only the adapters train, in float32 whatever the frozen weights' dtype.
        trained, trained_word = shape.torch_adapter_shapes(lora), FP32
        local = elements(trained)
        weights = frozen_weight_bytes(shape, config) + local * FP32
    layer = shape.layer_activation_bytes(precision)
    if lora is not None:
        layer += shape.lora_activation_bytes(lora, precision)
    per_token_layers = shape.layers * layer
    if config.gradient_checkpointing:
        # Only each layer's input is kept; one layer at a time is recomputed in the backward.
        per_token_layers = shape.layers * shape.hidden * word + layer
    tokens = micro_batch * config.max_seq_len
    return MemoryEstimate(
        weights=weights,
        gradients=local * trained_word * (2 if parallel.strategy == "ddp" else 1),
        optimizer=optimizer_state(config, trained, trained_word, local),
        activations=tokens * (per_token_layers + shape.head_activation_bytes(act)),
        workspace=optimizer_workspace(config, trained, trained_word, local),
        micro_batch=micro_batch,
        seq_len=config.max_seq_len,
        precision=", ".join([PRECISION_NAMES[precision], *training_extras(config)]),
    )


def lora_parameters(shape: ModelShape, lora: LoraConfig, layout: str = "jax") -> int:
    """Weights of the LoRA adapters: peft's on torch, qwix's on jax (one adapter for k and v,
    which Tunix holds in one weight)."""
    if layout == "torch":
        return elements(shape.torch_adapter_shapes(lora))
    return elements(shape.jax_adapter_shapes(lora))


def estimate_jax(shape: ModelShape, config: TrainingConfig) -> MemoryEstimate:
    """The peak memory of one device of the jax trainer's ``data x fsdp`` mesh: float32 weights,
    gradients and optimizer state (of every weight, or of the LoRA adapters only) sharded over
    ``fsdp``, and the float32 activations of the device's share of a batch (bf16 is a matmul
    precision there, not a storage dtype). Adafactor's factored state is counted unsharded."""
    devices, shards = config.mesh.data * config.mesh.fsdp, config.mesh.fsdp
    local = -(-shape.parameters // shards)
    if config.lora is None:
        trained_shapes, trained = shape.jax_weight_shapes(), local
    else:
        trained_shapes = shape.jax_adapter_shapes(config.lora)
        trained = elements(trained_shapes)
    if isinstance(config.optimizer, AdafactorConfig):
        state = factored_elements(trained_shapes, "jax") * FP32
    else:
        state = 2 * trained * FP32
    micro_batch = -(-config.batch_size // devices)
    tokens = micro_batch * config.max_seq_len
    per_token = shape.layers * shape.layer_activation_bytes("fp32")
    extras = "".join(f", {extra}" for extra in training_extras(config))
    return MemoryEstimate(
        weights=(local + (trained if config.lora else 0)) * FP32,
        gradients=trained * FP32,
        optimizer=state,
        activations=tokens * (per_token + shape.head_activation_bytes(FP32)),
        workspace=trained * FP32,
        micro_batch=micro_batch,
        seq_len=config.max_seq_len,
        precision=f"{config.precision} matmuls, fp32 state{extras}, {devices} devices",
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


def estimate_for(backend: str, shape: ModelShape, config: TrainingConfig) -> MemoryEstimate:
    """The estimate of ``backend``: one torch process, or one device of a jax mesh."""
    return (estimate_jax if backend == "jax" else estimate)(shape, config)


def devices_of(backend: str, config: TrainingConfig) -> int:
    """How many devices a run of ``config`` on ``backend`` trains on."""
    return config.mesh.data * config.mesh.fsdp if backend == "jax" else config.parallel.processes


def fitting_config(
    root: Path, backend: str, shape: ModelShape, memory: DeviceMemory, devices: int, sharing: int
) -> tuple[Path, MemoryEstimate] | None:
    """Of the shipped training configs (``configs/training/*.yaml``) that ``backend`` reads on
    ``devices`` devices, the one that trains ``shape`` within ``memory`` (``sharing`` as for
    ``refusal``) with the largest estimate: the closest to filling the device. None if none fits."""
    fits: list[tuple[int, Path, MemoryEstimate]] = []
    for path in sorted((root / TRAINING_DIR).glob("*.yaml")):
        try:
            config = load_yaml_model(path, TrainingConfig)
        except SpecError:
            continue  # a broken config is reported by the milestone that names it
        if backend_mismatch(backend, config) or devices_of(backend, config) != devices:
            continue
        needed = estimate_for(backend, shape, config)
        if refusal(needed, memory, sharing) is None:
            fits.append((needed.total, path, needed))
    if not fits:
        return None
    _, path, needed = max(fits, key=lambda fit: fit[0])
    return path, needed


def suggestion(
    root: Path, backend: str, shape: ModelShape, memory: DeviceMemory, devices: int, sharing: int
) -> str:
    """``; configs/training/<x>.yaml fits (12.3 GiB)``, the end of a refusal's one line."""
    found = fitting_config(root, backend, shape, memory, devices, sharing)
    if found is None:
        return "; no shipped training config fits it"
    path, needed = found
    return f"; {path.relative_to(root).as_posix()} fits ({gib(needed.total)} GiB)"
