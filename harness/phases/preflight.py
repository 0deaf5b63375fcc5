"""The pre-flight phase: snapshot the machine, then find blockers before any training starts."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from harness.evidence import bundle
from harness.phases.rehearsal import build_twin, model_place
from harness.probes.environment import machine_facts, nvidia_smi_report, render_facts
from harness.probes.hardware import missing_devices, probe_devices, probe_memory, wrong_platform
from harness.probes.lineage import model_lineage
from harness.probes.memory import (
    ModelShape,
    NoEstimate,
    devices_of,
    estimate_for,
    model_config,
    refusal,
    suggestion,
)
from harness.record.contamination import find_contamination
from harness.record.failures import Cause, InsufficientMemory, MissingCredential, PhaseBlocked
from harness.record.resources import EstimatedPeak
from harness.record.run import MilestoneRun
from harness.spec.data import load_evalset, load_traces
from harness.spec.milestones import FreezeMilestone
from trainers.models import (
    CredentialMissing,
    ModelSource,
    flax_checkpoint,
    hf_token_set,
    kaggle_can_download,
    pretrained_folder,
    refuse_flax_on_torch,
)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
BACKEND_MODULES = {
    "torch": ("torch", "transformers"),
    "jax": ("jax", "flax", "optax", "orbax", "qwix", "tunix", "safetensors", "transformers"),
}


def record_environment(run: MilestoneRun) -> None:
    """Write ``env_snapshot.txt`` (with the devices of the kind the milestone needs, as its
    backend sees them) and ``gpu_snapshot.txt``; the facts also go into the manifest."""
    run.record.env = machine_facts(run.root)
    if isinstance(run.milestone, FreezeMilestone):
        run.record.env["devices"] = "not looked for: a freeze trains nothing"
    else:
        spec = run.milestone.spec
        probe = probe_devices(spec.hardware, spec.backend)
        run.record.env["devices"] = f"{probe.found} ({probe.looked_for})"
    bundle.write_text(run.run_dir / bundle.ENV_SNAPSHOT, render_facts(run.record.env))
    bundle.write_text(run.run_dir / bundle.GPU_SNAPSHOT, nvidia_smi_report())


# LoRA on torch goes through peft; jax's qwix is among the jax backend's own modules.
LORA_MODULES = {"torch": ("peft",), "jax": ()}


def missing_modules(backend: str, lora: bool = False) -> list[str]:
    wanted = BACKEND_MODULES[backend] + (LORA_MODULES[backend] if lora else ())
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def qlora_blocker(run: MilestoneRun) -> PhaseBlocked | None:
    """Why a QLoRA run cannot train here: it needs a CUDA GPU and bitsandbytes; else None."""
    spec, lora = run.milestone.spec, run.milestone.training.lora
    if spec.backend != "torch" or lora is None or lora.quantize == "none":
        return None
    what = f"QLoRA (lora.quantize {lora.quantize}) runs on a CUDA GPU through bitsandbytes"
    if spec.hardware.accelerator != "cuda":
        return PhaseBlocked(
            Cause.MISSING_HARDWARE, f"{what}; milestone {spec.id} trains on {spec.hardware.label}"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        return PhaseBlocked(
            Cause.MISSING_DEPENDENCY,
            f"{what}; bitsandbytes is not installed here (pip install -e '.[torch,qlora]')",
        )
    return None


def credential_problem(model_source: str) -> str | None:
    """Why an ``hf:`` model cannot be loaded here: not cached locally and no token to fetch it."""
    kind, _, repo_id = model_source.partition(":")
    if kind != "hf" or hf_token_set():
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    return (
        f"{model_source} is not in the local Hugging Face cache and HF_TOKEN is not set "
        f"(gated models such as Gemma need it to download)"
    )


def check_model_source(source: str, backend: str, hub_cache: Path | None = None) -> None:
    """A pretrained model the backend can load, checked before anything trains: its folder is
    there, config.json parses (for jax: into a Tunix Gemma), and a tokenizer sits beside it. A
    ``kaggle:`` folder in Kaggle's Flax layout: jax derives its config from the orbax shapes,
    torch refuses it."""
    parsed = ModelSource.parse(source)
    if parsed.kind == "random":
        return
    try:
        folder = pretrained_folder(parsed, fetch=False, hub_cache=hub_cache)
    except FileNotFoundError:
        fetched = parsed.kind == "hf" or (parsed.kind == "kaggle" and kaggle_can_download())
        if fetched and hub_cache is None:
            return  # not cached but a token is set: train fetches it, then loads it the same way
        raise
    flax = parsed.kind == "kaggle" and flax_checkpoint(folder) is not None
    if backend == "jax" and flax:
        from trainers.jax.kaggle import read_config as read_flax_config

        read_flax_config(folder)
    elif backend == "jax":
        from trainers.jax.pretrained import CONFIG, read_config, tunix_config

        tunix_config(read_config(folder), str(folder / CONFIG))
    else:
        from transformers import AutoConfig

        refuse_flax_on_torch(source, folder)
        AutoConfig.from_pretrained(folder, local_files_only=True)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        wanted = " or ".join(TOKENIZER_FILES)
        raise FileNotFoundError(f"model folder {folder} has no tokenizer ({wanted})")


def check_model(run: MilestoneRun) -> None:
    """The run's model is one the backend loads. A rehearsal checks the real source as far as
    this machine has it (it needs no credential: the real machine has its own), then builds the
    tiny twin and checks that through the same code."""
    spec = run.milestone.spec
    if not run.milestone.rehearsal:
        if problem := credential_problem(spec.model):
            raise MissingCredential(problem)
        try:
            check_model_source(spec.model, spec.backend)
        except CredentialMissing as error:
            raise MissingCredential(str(error)) from None
        return
    if ModelSource.parse(spec.model).kind == "random":
        return
    # The real model is on the real machine, not necessarily here.
    with contextlib.suppress(FileNotFoundError):
        check_model_source(spec.model, spec.backend)
    run.progress(f"preflight: {build_twin(run)}")
    place = model_place(run)
    check_model_source(place.source, spec.backend, place.hub_cache)


def check_memory(run: MilestoneRun) -> str:
    """What the memory guard found: the estimated peak of one process (torch) or one mesh device
    (jax) against the device's free memory, or why it could not tell (the run then goes on).
    Raises ``InsufficientMemory`` when the run cannot fit."""
    milestone = run.milestone
    spec, training = milestone.spec, milestone.training
    on_jax = spec.backend == "jax"
    accelerator = spec.hardware.accelerator
    devices = devices_of(spec.backend, training)
    place = model_place(run)
    try:
        shape = ModelShape.from_config(model_config(place.source, place.hub_cache))
    except NoEstimate as why:
        return f"not checked: {why}"
    needed = estimate_for(spec.backend, shape, training)
    memory = probe_memory(accelerator, devices, spec.backend)
    scope = f"one of {devices} training processes" if devices > 1 else "one training process"
    if on_jax:
        scope = f"one device of the {training.mesh.data} x {training.mesh.fsdp} mesh"
    probe = "jax.Device.memory_stats() reports none" if on_jax else "no probe"
    missing = f"not compared: {probe} of free {accelerator} memory"
    compared = memory.describe() if memory else missing
    run.record.memory_estimate = EstimatedPeak(needed.total, scope, tuple(needed.parts()), compared)
    if memory is None:
        return f"not checked: {probe} of free {accelerator} memory here"
    sharing = devices if accelerator == "cpu" else 1  # CPU processes or devices share one RAM
    if reason := refusal(needed, memory, sharing):
        reason += suggestion(run.root, spec.backend, shape, memory, devices, sharing)
        # Printed, so pytest shows the breakdown with the failed phase's one line, on the terminal
        # and in report.html.
        print(f"memory estimate of {milestone.id}:\n{needed.table()}")
        raise InsufficientMemory(f"{reason}\n\n{needed.table()}")
    return f"estimate {needed.summary()}; {memory.describe()}"


def preflight(run: MilestoneRun) -> None:
    """Snapshot, then block: absent hardware is a skip; a missing dependency or credential, bad
    data, or too little memory for the estimated peak is a failure. Either way the run ends here,
    before any training."""
    record_environment(run)
    if isinstance(run.milestone, FreezeMilestone):
        return  # a freeze trains nothing: it needs no device, framework or data
    spec = run.milestone.spec
    if reason := wrong_platform(spec.hardware, spec.backend):
        raise PhaseBlocked(Cause.UNSUPPORTED_PLATFORM, reason)
    if reason := missing_devices(spec.hardware, spec.backend):
        raise PhaseBlocked(Cause.MISSING_HARDWARE, reason)
    missing = missing_modules(spec.backend, lora=run.milestone.training.lora is not None)
    if missing:
        raise ModuleNotFoundError(
            f"the {spec.backend} backend needs {', '.join(missing)}, "
            "not installed in this environment"
        )
    if blocked := qlora_blocker(run):
        raise blocked
    check_model(run)
    place = model_place(run)
    run.record.model_lineage = model_lineage(place.source, place.hub_cache)
    traces = load_traces(run.milestone.dataset_path)
    items = load_evalset(run.milestone.evalset_path, spec.evaluation.breakdown)
    run.record.contamination = find_contamination(
        [trace.prompt for trace in traces], {item.id: item.prompt for item in items}
    )
    run.record.memory_guard = check_memory(run)
    run.progress(f"preflight: memory {run.record.memory_guard}")
