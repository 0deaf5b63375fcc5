"""Rehearsal: any milestone on the CPU, its steps capped and its model replaced by a tiny twin.

The twin keeps what the real run depends on: the source kind, the checkpoint format (Hugging Face
layout, or Kaggle's Flax layout for a ``kaggle:`` Flax variant) and the architecture family (read
from the real config where this machine has it, else from the name).
It is built into the run folder and loaded through the same code as the real model, so a
rehearsal fails where the real run would.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.evidence import bundle
from harness.spec.data import load_traces
from harness.spec.milestones import HardwareRequirement, Milestone, RunShape
from harness.spec.prompting import format_completion, format_prompt
from trainers.models import ModelSource, flax_checkpoint, pretrained_folder

if TYPE_CHECKING:
    from harness.record.run import MilestoneRun

REHEARSAL_STEPS = 12
REHEARSAL_SUFFIX = "-rehearsal"
NOT_JUDGED = "a rehearsal on the CPU with a tiny model: the spec's thresholds are for the real run"
# A twin under hf: sits in a Hugging Face cache of its own, at this revision.
HUB_CACHE = "hub"
REVISION = "rehearsal"
# Families by name, most specific first, for a source whose config is not on this machine:
# gemma-3-1b and gemma3-1b are Gemma 3, gemma-2b is Gemma 1.
FAMILY_BY_NAME = (
    (r"gemma-?3(?![a-z0-9])", "gemma3_text"),
    (r"gemma-?2(?![a-z0-9])", "gemma2"),
    (r"gemma", "gemma"),
)
# Gemma's published checkpoints are bf16: a twin whose real config names no dtype is saved so too.
PUBLISHED_DTYPE = "bfloat16"
# Config values the twin copies from the real config: the ones the loaders check or convert.
COPIED = (
    "hidden_act",
    "hidden_activation",
    "rope_theta",
    "rms_norm_eps",
    "attention_bias",
    "tie_word_embeddings",
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "torch_dtype",
    "rope_scaling",
)
# Split into several safetensors files with an index, as published checkpoints are.
SHARD_SIZE = "100KB"


def rehearse(milestone: Milestone) -> Milestone:
    """The same milestone, model source, phases and guardrails, on a CPU: few steps, fp32, one
    device, LoRA without QLoRA's quantization; the model's tiny twin is built by pre-flight
    (``build_twin``)."""
    spec, training = milestone.spec, milestone.training
    cpu = HardwareRequirement(
        accelerator="cpu",
        count=1,
        platform="any",
        label=f"a CPU, rehearsing for {spec.hardware.label}",
    )
    steps = min(REHEARSAL_STEPS, spec.run.max_steps or REHEARSAL_STEPS)
    model = spec.model
    if ModelSource.parse(model).kind == "random":
        model = "random:tiny-gemma"
    return dataclasses.replace(
        milestone,
        spec=spec.model_copy(
            update={"model": model, "hardware": cpu, "run": RunShape(max_steps=steps)}
        ),
        training=training.model_copy(
            update={
                "precision": "fp32",
                "max_seq_len": min(training.max_seq_len, 192),
                "batch_size": min(training.batch_size, 8),
                "mesh": training.mesh.model_copy(update={"data": 1, "fsdp": 1}),
                "eval": training.eval.model_copy(update={"max_new_tokens": 32}),
                # QLoRA's 4-bit weights need a CUDA GPU: the CPU rehearses the same adapters.
                "lora": training.lora and training.lora.model_copy(update={"quantize": "none"}),
            }
        ),
        rehearsal=True,
    )


@dataclasses.dataclass(frozen=True)
class ModelPlace:
    """Where a run's trainer finds its model: the source, and for ``hf:`` the cache it is read
    from (None: the user's own)."""

    source: str
    hub_cache: Path | None = None


def model_place(run: MilestoneRun) -> ModelPlace:
    """The real source, or for a rehearsal the same kind of source pointing at its twin."""
    source = run.milestone.spec.model
    parsed = ModelSource.parse(source)
    if not run.milestone.rehearsal or parsed.kind == "random":
        return ModelPlace(source)
    twin = run.run_dir / bundle.REHEARSAL_MODEL
    if parsed.kind == "hf":
        return ModelPlace(source, twin / HUB_CACHE)
    return ModelPlace(f"{parsed.kind}:{twin / Path(parsed.location).name}")


def real_folder(parsed: ModelSource) -> Path | None:
    """The real model's folder where this machine has it (no download), else None."""
    try:
        return pretrained_folder(parsed, fetch=False)
    except FileNotFoundError:
        return None


def flax_variation(parsed: ModelSource) -> str | None:
    """For a ``kaggle:`` source in Kaggle's Flax layout, the name of its checkpoint folder (the
    variation: ``2b`` in ``google/gemma/flax/2b/2`` or ``/kaggle/input/gemma/flax/2b/2``), from
    the folder where this machine has it, else from the name; None for Hugging Face layout."""
    if parsed.kind != "kaggle":
        return None
    if (folder := real_folder(parsed)) is not None:
        checkpoint = flax_checkpoint(folder)
        return checkpoint.name if checkpoint is not None else None
    parts = Path(parsed.location).parts
    lowered = [part.lower() for part in parts[:-1]]
    return parts[lowered.index("flax") + 1] if "flax" in lowered else None


def real_config(parsed: ModelSource) -> dict[str, Any] | None:
    """The real model's transformers config where this machine has it (no download; for Kaggle's
    Flax layout, derived from its checkpoint), else None."""
    if (folder := real_folder(parsed)) is None:
        return None
    if parsed.kind == "kaggle" and flax_checkpoint(folder) is not None:
        from trainers.jax.kaggle import read_config

        return read_config(folder)
    path = folder / "config.json"
    if not path.is_file():
        return None
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return config


def family_by_name(parsed: ModelSource) -> str:
    name = parsed.location.lower()
    for pattern, model_type in FAMILY_BY_NAME:
        if re.search(pattern, name):
            return model_type
    raise ValueError(
        f"cannot rehearse {parsed.kind}:{parsed.location}: its config.json is not on this machine "
        f"and its name names no Gemma family"
    )


def twin_changes(parsed: ModelSource) -> tuple[str, dict[str, Any], str]:
    """The twin's model type, the config values it copies, and how the family was known."""
    config = real_config(parsed)
    if config is None:
        return family_by_name(parsed), {"torch_dtype": PUBLISHED_DTYPE}, "family from its name"
    # A config that names no dtype (one derived from Kaggle's Flax layout) gets Gemma's own.
    copied = {"torch_dtype": PUBLISHED_DTYPE} | {
        key: config[key] for key in COPIED if config.get(key) is not None
    }
    return str(config.get("model_type")), copied, "family and dtype from its config"


def tokenizer_corpus(run: MilestoneRun) -> list[str]:
    """The milestone's own training text, for the twin's SentencePiece tokenizer."""
    traces = load_traces(run.milestone.dataset_path)
    return [format_prompt(t.prompt) + format_completion(t) for t in traces]


def build_twin(run: MilestoneRun) -> str:
    """Build the rehearsal's tiny twin of the real model in the run folder; says what was built."""
    from trainers import tiny_checkpoints

    parsed = ModelSource.parse(run.milestone.spec.model)
    model_type, changes, known = twin_changes(parsed)
    variation = flax_variation(parsed)
    layout, known_types = (
        ("Hugging Face layout", tiny_checkpoints.SHAPES)
        if variation is None
        else ("Kaggle's Flax layout", tiny_checkpoints.KAGGLE_FOLDERS)
    )
    if model_type not in known_types:
        raise ValueError(
            f"cannot rehearse {run.milestone.spec.model}: no tiny twin of model_type "
            f"{model_type!r} in {layout} (known: {', '.join(known_types)})"
        )
    place = model_place(run)
    if place.hub_cache is not None:
        repo = place.hub_cache / f"models--{parsed.location.replace('/', '--')}"
        folder = repo / "snapshots" / REVISION
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(REVISION, encoding="utf-8")
    else:
        folder = Path(ModelSource.parse(place.source).location)
    seed, corpus = run.milestone.training.seed, tokenizer_corpus(run)
    if variation is None:
        tiny_checkpoints.build_checkpoint(
            folder, model_type, corpus, seed, max_shard_size=SHARD_SIZE, **changes
        )
    else:
        tiny_checkpoints.build_kaggle_checkpoint(
            folder, model_type, corpus, seed, checkpoint_name=variation, **changes
        )
    where = folder.relative_to(run.run_dir)
    return (
        f"rehearsing {run.milestone.spec.model} with a tiny {model_type} twin in {layout} "
        f"({known}) in {where}/"
    )
