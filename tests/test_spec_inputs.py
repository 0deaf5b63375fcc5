"""What a training spec may name and where it is read: inputs anywhere, recorded resolved; strict
YAML and values; models known at load. Every problem is one line when the spec loads."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from harness.evidence import bundle
from harness.evidence.documents import write_documents
from harness.evidence.verify import schema_problems
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.data import DataError, file_sha256, load_traces
from harness.spec.milestones import Milestone
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError, read_yaml

if TYPE_CHECKING:
    from tests.conftest import MiniProject

ROOT = Path(__file__).resolve().parent.parent
# Found, not imported: torch cannot be imported twice into one process, and pytester drops the
# modules a test imported. The mini run trains in its own process.
NEEDS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
TRACES = (
    (ROOT / "datasets" / "dev-reasoning-v2" / "traces.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
)
ITEMS = (ROOT / "evalsets" / "eval_v2.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped configs with 8 traces and 5 eval items, inside ``tmp_path/project``."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "configs", root / "configs")
    write_lines(root / "datasets" / "dev-reasoning-v2" / "traces.jsonl", TRACES[:8])
    write_lines(root / "evalsets" / "eval_v2.jsonl", ITEMS[:5])
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Inputs mounted outside the project, as Kaggle mounts them under /kaggle/input."""
    mount = tmp_path / "kaggle" / "input"
    write_lines(mount / "reasoning" / "traces.jsonl", TRACES[:6])
    write_lines(mount / "eval.jsonl", ITEMS[:3])
    shutil.copy(ROOT / "configs" / "training" / "smoke_tiny.yaml", mount / "smoke_tiny.yaml")
    return mount


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def spec_file(root: Path, spec_id: str = "smoke") -> Path:
    return root / "configs" / "milestones" / f"{spec_id}.yaml"


def edit(path: Path, **changes: object) -> Path:
    """Rewrite a YAML file with top-level keys replaced (a dotted key reaches into a mapping)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = data
        for parent in parents:
            target = target[parent]
        target[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(root: Path, spec_id: str = "smoke") -> str:
    with pytest.raises(SpecError) as info:
        MilestoneRegistry(root).load(spec_id)
    message = str(info.value)
    assert "\n" not in message
    return message


def manifest_of(root: Path, tmp_path: Path) -> dict[str, object]:
    """The run manifest a run of the project's smoke milestone writes before any phase ran."""
    milestone = MilestoneRegistry(root).load("smoke")
    assert isinstance(milestone, Milestone)
    run_dir = bundle.allocate_run_dir(tmp_path / "runs", "smoke")
    write_documents(MilestoneRun(milestone, root, run_dir, RunOptions(progress=lambda _: None)))
    assert schema_problems(run_dir) == []
    return json.loads((run_dir / bundle.RUN_MANIFEST).read_text(encoding="utf-8"))


# --- inputs: read where the spec names them, recorded resolved --------------------------------


def test_absolute_inputs_are_read_where_named_and_recorded(
    project: Path, outside: Path, tmp_path: Path
) -> None:
    named = {
        "dataset": str(outside / "reasoning"),
        "evalset": str(outside / "eval.jsonl"),
        "training_config": str(outside / "smoke_tiny.yaml"),
    }
    edit(spec_file(project), **named)
    manifest = manifest_of(project, tmp_path)
    traces = (outside / "reasoning" / "traces.jsonl").resolve()
    assert manifest["dataset"] == {
        "path": str(traces),
        "resolved_path": str(traces),
        "as_written": named["dataset"],
        "sha256": file_sha256(traces),
        "records": 6,
    }
    assert manifest["evalset"]["resolved_path"] == named["evalset"]
    assert manifest["evalset"]["records"] == 3
    assert manifest["training_config"] == {
        "file": named["training_config"],
        "resolved_path": named["training_config"],
        "as_written": named["training_config"],
        "sha256": file_sha256(outside / "smoke_tiny.yaml"),
    }


def test_relative_names_keep_their_project_folders(project: Path, tmp_path: Path) -> None:
    manifest = manifest_of(project, tmp_path)
    assert manifest["dataset"]["path"] == "datasets/dev-reasoning-v2/traces.jsonl"
    assert manifest["dataset"]["as_written"] == "dev-reasoning-v2"
    assert manifest["evalset"]["path"] == "evalsets/eval_v2.jsonl"
    assert manifest["training_config"]["file"] == "configs/training/smoke_tiny.yaml"
    assert manifest["training_config"]["as_written"] == "smoke_tiny.yaml"


def test_a_relative_name_with_dotdot_is_resolved_against_the_project_and_recorded(
    project: Path, tmp_path: Path
) -> None:
    write_lines(project / "shared" / "reasoning" / "traces.jsonl", TRACES[:4])
    edit(spec_file(project), dataset="../shared/reasoning")
    facts = manifest_of(project, tmp_path)["dataset"]
    assert facts["path"] == "shared/reasoning/traces.jsonl"
    assert facts["resolved_path"] == str(
        project.resolve() / "shared" / "reasoning" / "traces.jsonl"
    )
    assert facts["as_written"] == "../shared/reasoning"
    assert facts["records"] == 4


def test_a_symlinked_dataset_is_recorded_at_its_target(
    project: Path, outside: Path, tmp_path: Path
) -> None:
    (project / "datasets" / "linked").symlink_to(outside / "reasoning", target_is_directory=True)
    edit(spec_file(project), dataset="linked")
    milestone = MilestoneRegistry(project).load("smoke")
    assert isinstance(milestone, Milestone)
    assert milestone.dataset_path == (outside / "reasoning" / "traces.jsonl").resolve()
    facts = manifest_of(project, tmp_path)["dataset"]
    assert (
        facts["resolved_path"]
        == facts["path"]
        == str((outside / "reasoning" / "traces.jsonl").resolve())
    )
    assert facts["as_written"] == "linked"


def test_a_dataset_folder_without_data_is_a_spec_error(project: Path, outside: Path) -> None:
    (outside / "empty").mkdir()
    edit(spec_file(project), dataset=str(outside / "empty"))
    message = load_error(project)
    assert message == (
        f"{spec_file(project)}: key 'dataset': "
        f"no .jsonl file in the dataset folder {outside / 'empty'}"
    )


def test_an_ambiguous_data_folder_is_a_spec_error_naming_it(project: Path, outside: Path) -> None:
    write_lines(outside / "my-data" / "dataset.jsonl", TRACES[:2])
    write_lines(outside / "my-data" / "evalset.jsonl", ITEMS[:2])
    edit(spec_file(project), evalset=str(outside / "my-data"))
    assert load_error(project) == (
        f"{spec_file(project)}: key 'evalset': the evalset folder {outside / 'my-data'} holds 2 "
        ".jsonl files (dataset.jsonl, evalset.jsonl): name one"
    )


def test_data_files_of_any_name_are_read_and_recorded_where_they_are(
    project: Path, outside: Path, tmp_path: Path
) -> None:
    dataset = write_lines(outside / "my-data" / "dataset.jsonl", TRACES[:5])
    evalset = write_lines(outside / "held-out" / "questions.jsonl", ITEMS[:4])
    edit(spec_file(project), dataset=str(dataset), evalset=str(evalset.parent))
    manifest = manifest_of(project, tmp_path)
    assert manifest["dataset"] == {
        "path": str(dataset),
        "resolved_path": str(dataset),
        "as_written": str(dataset),
        "sha256": file_sha256(dataset),
        "records": 5,
    }
    assert manifest["evalset"]["resolved_path"] == str(evalset)
    assert manifest["evalset"]["as_written"] == str(evalset.parent)
    assert manifest["evalset"]["records"] == 4
    assert not (project / "datasets" / "my-data").exists()


@pytest.mark.parametrize("name", ["/", "\x00", "line\nbreak", "a" * 5000, "no/such/folder"])
@pytest.mark.parametrize("key", ["dataset", "evalset", "training_config"])
def test_any_input_name_is_a_one_line_spec_error_never_a_crash(
    project: Path, key: str, name: str
) -> None:
    edit(spec_file(project), **{key: name})
    assert f"key '{key}'" in load_error(project)


def test_an_input_gone_after_loading_is_recorded_not_a_crash(project: Path, tmp_path: Path) -> None:
    milestone = MilestoneRegistry(project).load("smoke")
    assert isinstance(milestone, Milestone)
    milestone.evalset_path.unlink()
    run_dir = bundle.allocate_run_dir(tmp_path / "runs", "smoke")
    write_documents(MilestoneRun(milestone, project, run_dir, RunOptions(progress=lambda _: None)))
    manifest = json.loads((run_dir / bundle.RUN_MANIFEST).read_text(encoding="utf-8"))
    assert "no such file" in manifest["evalset"]["unreadable"]
    assert any("$.evalset" in problem for problem in schema_problems(run_dir))


def test_a_line_that_is_not_utf8_is_counted_and_left_to_preflight(
    project: Path, tmp_path: Path
) -> None:
    traces = project / "datasets" / "dev-reasoning-v2" / "traces.jsonl"
    traces.write_bytes(traces.read_bytes() + b'{"prompt": "\xff"}\n')
    assert manifest_of(project, tmp_path)["dataset"]["records"] == 9
    with pytest.raises(DataError, match=r"traces\.jsonl:9: not valid UTF-8$"):
        load_traces(traces.parent)


# --- strict YAML: UTF-8, no duplicate keys ------------------------------------------------------


def test_a_spec_that_is_not_utf8_names_file_and_line(project: Path) -> None:
    path = spec_file(project)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"title: caf\xe9 run"
    path.write_bytes(b"\n".join(lines))
    assert load_error(project) == f"{path}:3: not valid UTF-8 (byte 0xe9)"


def test_a_training_config_that_is_not_utf8_names_its_file(project: Path) -> None:
    path = project / "configs" / "training" / "smoke_tiny.yaml"
    path.write_bytes(path.read_bytes() + b"# \xff\n")
    assert load_error(project).startswith(f"{path}:")


def test_a_duplicate_key_names_file_line_and_key(project: Path) -> None:
    path = spec_file(project)
    lines = path.read_text(encoding="utf-8").splitlines()
    first = lines.index("run:") + 1
    lines.append("run: {max_steps: 5}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = load_error(project)
    assert (
        message == f"{path}:{len(lines)}: invalid YAML (duplicate key 'run', first on line {first})"
    )


def test_a_duplicate_nested_key_in_a_training_config(project: Path) -> None:
    path = project / "configs" / "training" / "smoke_tiny.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("  lr: 3.0e-3\n", "  lr: 3.0e-3\n  lr: 1.0\n")
    )
    assert "duplicate key 'lr'" in load_error(project)


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\n", encoding="utf-8")
    assert read_yaml(path)["derived"] == {"a": 1, "b": 3}


def test_milestone_listing_and_selection_report_a_non_utf8_spec(mini: MiniProject) -> None:
    (mini.path / "configs" / "milestones" / "mini-latin1.yaml").write_bytes(
        b"id: mini-latin1\ntitle: caf\xe9\n"
    )
    listing = mini.pytester.runpytest(
        "--milestones", f"--rootdir={mini.path}", "-c", str(mini.path / "pytest.ini")
    )
    assert listing.ret == 0
    listing.stdout.fnmatch_lines(
        ["mini-latin1: invalid spec: *mini-latin1.yaml:2: not valid UTF-8 (byte 0xe9)"]
    )
    selected = mini.run_in_process("--milestone", "mini-latin1")
    assert selected.ret == pytest.ExitCode.USAGE_ERROR
    selected.stderr.fnmatch_lines(
        ["*--milestone: *mini-latin1.yaml:2: not valid UTF-8 (byte 0xe9)"]
    )


# --- models known at load -----------------------------------------------------------------------


def test_an_unknown_random_architecture_is_a_spec_error(project: Path) -> None:
    edit(spec_file(project), model="random:unknown-arch")
    message = load_error(project)
    assert message.startswith(
        f"{spec_file(project)}: key 'model': unknown architecture 'unknown-arch'"
    )
    assert "tiny-gemma" in message


def test_a_local_model_needs_a_folder_with_config_json(project: Path, tmp_path: Path) -> None:
    edit(spec_file(project), model="local:/nonexistent")
    assert f"{spec_file(project)}: key 'model': no model folder /nonexistent" in load_error(project)
    folder = tmp_path / "model"
    folder.mkdir()
    edit(spec_file(project), model=f"local:{folder}")
    assert f"key 'model': no config.json in the model folder {folder}" in load_error(project)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    assert MilestoneRegistry(project).load("smoke").spec.model == f"local:{folder}"


def test_an_hf_model_is_left_to_preflight(project: Path) -> None:
    edit(spec_file(project), model="hf:nobody/not-in-any-cache")
    assert MilestoneRegistry(project).load("smoke").spec.model == "hf:nobody/not-in-any-cache"


# --- values: finite rates, strict counts, bounded seeds and steps -------------------------------

BAD_TRAINING_VALUES = [
    ("optimizer__lr", float("inf"), "key 'optimizer.lr': Input should be a finite number"),
    ("optimizer__eps", float("nan"), "key 'optimizer.eps': Input should be a finite number"),
    ("batch_size", True, "key 'batch_size': Input should be a valid integer (got True)"),
    ("batch_size", 16.0, "key 'batch_size': Input should be a valid integer (got 16.0)"),
    ("optimizer__betas", [5, -3], "key 'optimizer.betas.0': Input should be less than 1 (got 5)"),
    ("seed", 2**70, "key 'seed': Input should be less than 4294967296"),
    ("seed", -1, "key 'seed': Input should be greater than or equal to 0"),
    (
        "divergence__factor",
        float("inf"),
        "key 'divergence.factor': Input should be a finite number",
    ),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_TRAINING_VALUES, ids=lambda v: str(v))
def test_a_bad_training_value_is_one_line_naming_file_and_key(
    project: Path, key: str, value: object, expected: str
) -> None:
    path = edit(project / "configs" / "training" / "smoke_tiny.yaml", **{key: value})
    message = load_error(project)
    assert message.startswith(f"{path}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            {"max_steps": 1.0e12},
            "key 'run.max_steps': Input should be a valid integer (got 1000000000000.0)",
        ),
        (
            {"max_steps": 10**9 + 1},
            "key 'run.max_steps': Input should be less than or equal to 1000000000",
        ),
        ({"epochs": True}, "key 'run.epochs': Input should be a valid integer (got True)"),
    ],
)
def test_a_bad_run_shape_is_one_line_naming_the_spec(
    project: Path, run: dict[str, object], expected: str
) -> None:
    edit(spec_file(project), run=run)
    message = load_error(project)
    assert message.startswith(f"{spec_file(project)}: ")
    assert expected in message


def test_the_step_bound_itself_is_accepted(project: Path) -> None:
    edit(spec_file(project), run={"max_steps": 10**9})
    assert MilestoneRegistry(project).load("smoke").spec.run.max_steps == 10**9
