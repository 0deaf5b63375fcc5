"""Tests for loading milestone specs and training configs, and their one-line SpecErrors."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.spec.milestones import FreezeMilestone, Milestone
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError, load_yaml_model, read_yaml
from trainers.config import TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = MilestoneRegistry(ROOT)
TRAINING_CONFIGS = sorted((ROOT / "configs" / "training").glob("*.yaml"))

Spec = dict[str, Any]


TRAINING_MILESTONES = [mid for mid in REGISTRY.ids() if REGISTRY.kind_of(ROOT / "configs" / "milestones" / f"{mid}.yaml") == "train"]


@pytest.mark.parametrize("spec_id", TRAINING_MILESTONES)
def test_every_shipped_training_milestone_loads(spec_id: str) -> None:
    milestone = REGISTRY.load(spec_id)
    assert isinstance(milestone, Milestone)
    assert milestone.id == spec_id
    assert milestone.spec_path == ROOT / "configs" / "milestones" / f"{spec_id}.yaml"
    assert milestone.training_path.is_file()
    assert milestone.dataset_path.is_file()
    assert milestone.evalset_path.is_file()
    assert milestone.spec.hardware.accelerator in milestone.spec.markers


SHIPPED_YAML = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_reads_strictly(path: Path) -> None:
    """UTF-8 and no key twice in a mapping, read by the loader of every spec and config."""
    assert isinstance(read_yaml(path), dict)


@pytest.mark.parametrize("spec_id", REGISTRY.ids())
def test_every_shipped_milestone_of_either_kind_loads(spec_id: str) -> None:
    assert REGISTRY.load(spec_id).id == spec_id


def test_shipped_milestone_ids() -> None:
    assert {"smoke", "m44", "m43", "m38", "m42"} <= set(REGISTRY.ids())


def test_m42_is_a_freeze_of_a_smoke_bundle() -> None:
    m42 = REGISTRY.load("m42")
    assert isinstance(m42, FreezeMilestone)
    assert m42.spec.source.startswith("submission_runs/smoke_v")
    assert "checkpoint/model.safetensors" in m42.spec.files
    assert m42.spec.guardrails.clean_tree is True


@pytest.mark.parametrize(
    ("spec_id", "backend", "accelerator"),
    [
        ("smoke", "torch", "cpu"),
        ("m44", "torch", "cuda"),
        ("m43", "jax", "cuda"),
        ("m38", "jax", "tpu"),
    ],
)
def test_shipped_milestone_backend_and_accelerator(
    spec_id: str, backend: str, accelerator: str
) -> None:
    spec = REGISTRY.load(spec_id).spec
    assert spec.backend == backend
    assert spec.hardware.accelerator == accelerator


def test_m38_is_an_eight_core_tpu_run_of_200_steps() -> None:
    spec = REGISTRY.load("m38").spec
    assert spec.hardware.count == 8
    assert spec.run.max_steps == 200
    assert spec.run.epochs is None


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_training_config_validates(path: Path) -> None:
    config = load_yaml_model(path, TrainingConfig)
    assert config.batch_size > 0


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.name)
def test_training_config_first_line_is_the_pytest_command(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# pytest acceptance --milestone ")
    spec_id = first_line.split("--milestone ", 1)[1].split()[0]
    assert spec_id in REGISTRY.ids()


def test_shipped_training_configs_exist() -> None:
    assert {p.name for p in TRAINING_CONFIGS} >= {
        "smoke_tiny.yaml",
        "submission_local_gpu.yaml",
        "submission_local_gpu_jax.yaml",
        "submission_tpu.yaml",
    }


# --- bad specs in a temporary project ------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped configs with empty-but-present dataset and evalset files."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "datasets" / "dev-reasoning-v2").mkdir(parents=True)
    (tmp_path / "datasets" / "dev-reasoning-v2" / "traces.jsonl").touch()
    (tmp_path / "evalsets").mkdir()
    (tmp_path / "evalsets" / "eval_v2.jsonl").touch()
    return tmp_path


def _smoke_path(project: Path) -> Path:
    return project / "configs" / "milestones" / "smoke.yaml"


def _rewrite_smoke(project: Path, change: Callable[[Spec], None]) -> Path:
    path = _smoke_path(project)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _load_error(project: Path, spec_id: str = "smoke") -> str:
    with pytest.raises(SpecError) as info:
        MilestoneRegistry(project).load(spec_id)
    message = str(info.value)
    assert "\n" not in message
    return message


def _where(message: str) -> tuple[Path, int | None]:
    """The file (absolute, or relative to the working directory) and line a message starts with."""
    head = message.split(": ", 1)[0]
    match = re.fullmatch(r"(.+?)(?::(\d+))?", head)
    assert match is not None, message
    name, line = match.groups()
    return Path(name).resolve(), int(line) if line else None


def test_tmp_project_loads_unchanged(project: Path) -> None:
    assert MilestoneRegistry(project).load("smoke").id == "smoke"


def _rename(old: str, new: str) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        spec[new] = spec.pop(old)

    return change


def _rename_hardware_key(spec: Spec) -> None:
    spec["hardware"]["acelerator"] = spec["hardware"].pop("accelerator")


def _set(key: str, value: Any) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        spec[key] = value

    return change


def _drop(key: str) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        del spec[key]

    return change


BAD_SPECS: list[tuple[str, Callable[[Spec], None], list[str]]] = [
    (
        "unknown-top-level-key",
        _rename("hardware", "hardwre"),
        ["'hardwre'", "did you mean 'hardware'"],
    ),
    (
        "unknown-nested-key",
        _rename_hardware_key,
        ["'hardware.acelerator'", "did you mean 'accelerator'"],
    ),
    ("wrong-type", _set("run", {"max_steps": "many"}), ["'run.max_steps'", "'many'"]),
    (
        "both-steps-and-epochs",
        _set("run", {"max_steps": 10, "epochs": 2}),
        ["'run'", "max_steps", "epochs"],
    ),
    ("neither-steps-nor-epochs", _set("run", {}), ["'run'", "max_steps", "epochs"]),
    ("bad-backend", _set("backend", "tensorflow"), ["'backend'", "'tensorflow'"]),
    ("missing-closing-statement", _drop("closing_statement"), ["missing key 'closing_statement'"]),
    ("id-not-file-name", _set("id", "smokey"), ["'id'", "'smokey'", "file name"]),
    ("frozen-unknown-milestone", _set("frozen", ["nope"]), ["'frozen'", "'nope'"]),
    (
        "missing-training-config",
        _set("training_config", "no_such_config.yaml"),
        ["'training_config'", "no_such_config.yaml"],
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(change, expected, id=name) for name, change, expected in BAD_SPECS],
)
def test_bad_spec_is_one_line_naming_file_and_key(
    project: Path, change: Callable[[Spec], None], expected: list[str]
) -> None:
    path = _rewrite_smoke(project, change)
    message = _load_error(project)
    assert _where(message) == (path.resolve(), None)
    for part in expected:
        assert part in message


def test_invalid_yaml_names_the_line(project: Path) -> None:
    path = _smoke_path(project)
    lines = path.read_text(encoding="utf-8").splitlines()
    index = lines.index("backend: torch")
    lines[index] = "backend: torch: jax"  # a mapping value where none is allowed
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = _load_error(project)
    assert _where(message) == (path.resolve(), index + 1)
    assert ": invalid YAML (" in message


def test_tab_indentation_names_the_line(project: Path) -> None:
    path = _smoke_path(project)
    path.write_text("id: smoke\n\ttitle: x\n", encoding="utf-8")
    message = _load_error(project)
    assert _where(message) == (path.resolve(), 2)
    assert "invalid YAML" in message


def test_control_character_in_yaml_is_one_line(project: Path) -> None:
    path = _smoke_path(project)
    path.write_bytes(b"id: smoke\ntitle: a\x07b\n")
    _load_error(project)


def test_yaml_list_instead_of_mapping(project: Path) -> None:
    path = _smoke_path(project)
    path.write_text("- id: smoke\n- title: x\n", encoding="utf-8")
    message = _load_error(project)
    assert _where(message) == (path.resolve(), None)
    assert "mapping" in message
    assert "list" in message


def test_empty_spec_file(project: Path) -> None:
    path = _smoke_path(project)
    path.write_text("", encoding="utf-8")
    message = _load_error(project)
    assert _where(message) == (path.resolve(), None)
    assert "mapping" in message


def test_several_problems_stay_on_one_line(project: Path) -> None:
    def change(spec: Spec) -> None:
        spec["backend"] = "tensorflow"
        del spec["title"]
        spec["colour"] = "blue"

    _rewrite_smoke(project, change)
    message = _load_error(project)
    assert "'backend'" in message
    assert "missing key 'title'" in message
    assert "'colour'" in message


def test_unknown_milestone_lists_the_known_ones(project: Path) -> None:
    message = _load_error(project, "m99")
    assert "'m99'" in message
    for known in ("smoke", "m44", "m43", "m38"):
        assert known in message


def test_missing_dataset_folder(project: Path) -> None:
    shutil.rmtree(project / "datasets" / "dev-reasoning-v2")
    message = _load_error(project)
    assert _where(message) == (_smoke_path(project).resolve(), None)
    assert "'dataset'" in message


def test_missing_evalset_file(project: Path) -> None:
    (project / "evalsets" / "eval_v2.jsonl").unlink()
    message = _load_error(project)
    assert _where(message) == (_smoke_path(project).resolve(), None)
    assert "'evalset'" in message


def test_bad_training_config_names_the_training_file(project: Path) -> None:
    path = project / "configs" / "training" / "smoke_tiny.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["optimizer"]["lrr"] = config["optimizer"].pop("lr")
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    message = _load_error(project)
    assert _where(message) == (path.resolve(), None)
    assert "'optimizer.lrr'" in message
    assert "did you mean 'lr'" in message


@pytest.mark.parametrize(
    ("spec_id", "setting", "key"),
    [
        ("smoke-jax", "precision: bf16-pure", "precision"),
        ("smoke-jax", "grad_accum_steps: 2", "grad_accum_steps"),
        ("smoke-jax", "parallel: {strategy: ddp, processes: 2}", "parallel"),
        ("smoke", "mesh: {data: 1, fsdp: 2}", "mesh"),
        ("smoke-jax", "lora: {rank: 4, alpha: 8, dropout: 0.1}", "lora.dropout"),
    ],
)
def test_a_setting_the_milestones_backend_would_ignore_is_refused(
    project: Path, spec_id: str, setting: str, key: str
) -> None:
    spec = yaml.safe_load((project / "configs" / "milestones" / f"{spec_id}.yaml").read_text())
    config = project / "configs" / "training" / spec["training_config"]
    name = setting.split(":")[0]
    lines = [line for line in config.read_text().splitlines() if not line.startswith(f"{name}:")]
    config.write_text("\n".join([*lines, setting, ""]))
    message = _load_error(project, spec_id)
    assert _where(message) == (config.resolve(), None)
    assert f"key '{key}'" in message
    assert f"milestone {spec_id} trains with {spec['backend']}" in message


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (
            "{name: adafactor, lr: 1.0e-3, betas: [0.9, 0.99]}",
            "unknown key 'optimizer.betas': adafactor does not read it (valid keys: name, lr, "
            "weight_decay, decay_rate, clip_threshold, eps)",
        ),
        (
            "{name: adamw, lr: 1.0e-3, weight_decay: 0.0, betas: [0.9, 0.99], eps: 1.0e-8, "
            "clip_threshold: 1.0}",
            "unknown key 'optimizer.clip_threshold': adamw does not read it",
        ),
        ("{name: adafactor, lr: 1.0e-3, decay_rat: 0.8}", "did you mean 'decay_rate'?"),
        ("{name: adafactr, lr: 1.0e-3}", "'adafactr' is none of adamw, adafactor; did you mean"),
        ("{lr: 1.0e-3}", "missing key 'optimizer.name' (adamw or adafactor)"),
    ],
)
def test_a_key_the_named_optimizer_does_not_read_is_refused(
    project: Path, optimizer: str, message: str
) -> None:
    config = project / "configs" / "training" / "smoke_tiny.yaml"
    text = re.sub(r"optimizer:\n(  .*\n)+", f"optimizer: {optimizer}\n", config.read_text())
    config.write_text(text)
    error = _load_error(project)
    assert _where(error) == (config.resolve(), None)
    assert message in error


@pytest.mark.parametrize(
    ("spec_id", "lora", "message"),
    [
        (
            "smoke-jax",
            "{rank: 4, alpha: 8, target_modules: [q_proj, k_proj]}",
            "key 'lora.target_modules': the jax backend holds k_proj and v_proj in one weight",
        ),
        ("smoke", "{rank: 4, alpha: 8, quantize: nf4}", "it needs precision bf16, not fp32"),
        ("smoke", "{rank: 4, alpha: 8, target_modules: [q_proj, q_proj]}", "q_proj more than once"),
        ("smoke", "{rank: 4, alpha: 8, target_modules: [qkv]}", "key 'lora.target_modules.0'"),
    ],
)
def test_a_lora_section_a_backend_cannot_train_is_refused(
    project: Path, spec_id: str, lora: str, message: str
) -> None:
    spec = yaml.safe_load((project / "configs" / "milestones" / f"{spec_id}.yaml").read_text())
    config = project / "configs" / "training" / spec["training_config"]
    config.write_text(config.read_text() + f"lora: {lora}\n")
    error = _load_error(project, spec_id)
    assert _where(error) == (config.resolve(), None)
    assert message in error
