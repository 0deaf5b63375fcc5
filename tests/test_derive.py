"""A milestone of one's own from a shipped one (``python -m harness derive``): another model and
data named by path, written beside the source spec, checked as any spec, counts held to the new
files, and nothing else ever overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness.__main__ import main
from harness.spec.derived import Changes, derive
from harness.spec.milestones import Milestone
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError

ROOT = Path(__file__).resolve().parent.parent
TRACES = (ROOT / "datasets" / "dev-reasoning-v2" / "traces.jsonl").read_text().splitlines()
ITEMS = (ROOT / "evalsets" / "eval_v2.jsonl").read_text().splitlines()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The shipped configs and data in a project of their own, its milestones editable."""
    root = tmp_path / "tunix-rt"
    shutil.copytree(ROOT / "configs", root / "configs")
    for folder in ("datasets", "evalsets"):
        (root / folder).symlink_to(ROOT / folder)
    return root


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """A user's data as Kaggle mounts it: ``/kaggle/input/my-data``, the evalset with own keys."""
    data = tmp_path / "kaggle" / "input" / "my-data"
    data.mkdir(parents=True)
    (data / "dataset.jsonl").write_text("\n".join(TRACES[:7]) + "\n")
    items = [json.loads(line) | {"section": "ab"[i % 2]} for i, line in enumerate(ITEMS[:3])]
    (data / "evals").mkdir()
    (data / "evals" / "questions.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return data


def test_a_derived_milestone_names_the_users_model_and_data(project: Path, mount: Path) -> None:
    changes = Changes(
        model="kaggle:/kaggle/input/gemma/flax/2b/2",
        dataset=str(mount / "dataset.jsonl"),
        evalset=str(mount / "evals"),
        breakdown=["section"],
    )
    path = derive(MilestoneRegistry(project), "m38", "m38-notebook", changes)
    assert path == project / "configs" / "milestones" / "m38-notebook.yaml"
    assert path.read_text().startswith("# pytest acceptance --milestone m38-notebook\n")
    derived = MilestoneRegistry(project).load("m38-notebook")
    assert isinstance(derived, Milestone)
    assert derived.spec.model == "kaggle:/kaggle/input/gemma/flax/2b/2"
    assert derived.dataset_path == mount / "dataset.jsonl"
    assert derived.evalset_path == mount / "evals" / "questions.jsonl"
    assert derived.spec.evaluation.breakdown == ("section",)
    # The record counts are the new files'; every other criterion and key is m38's.
    assert derived.spec.acceptance == {
        "preflight.dataset_records": "== 7",
        "preflight.evalset_records": "== 3",
        "preflight.contaminated_items": "== 0",
        "train.steps_completed": "== 200",
        "train.nonfinite_steps": "== 0",
        "eval.count": "== 3",
    }
    m38 = MilestoneRegistry(project).load("m38")
    assert (derived.spec.hardware, derived.training) == (m38.spec.hardware, m38.training)
    assert derived.spec.guardrails.clean_tree is True
    assert not any((project / "configs").rglob("*.jsonl"))


def test_deriving_again_rewrites_the_derived_spec(project: Path, mount: Path) -> None:
    registry = MilestoneRegistry(project)
    derive(registry, "m44", "mine", Changes(dataset=str(mount / "dataset.jsonl")))
    derive(registry, "m44", "mine", Changes())
    derived = registry.load("mine")
    assert derived.spec.acceptance["preflight.dataset_records"] == "== 550"
    assert derived.spec.dataset == "dev-reasoning-v2"


def test_a_spec_that_was_not_derived_is_never_overwritten(project: Path, mount: Path) -> None:
    smoke = project / "configs" / "milestones" / "smoke.yaml"
    before = smoke.read_bytes()
    with pytest.raises(SpecError) as info:
        derive(MilestoneRegistry(project), "m38", "smoke", Changes(dataset=str(mount)))
    assert str(info.value) == f"{smoke}: not a derived spec, left as it is (choose another id)"
    assert smoke.read_bytes() == before


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            Changes(dataset="/no/such/data"),
            "key 'dataset': no dataset file or folder /no/such/data",
        ),
        (Changes(model="local:/no/model"), "key 'model': no model folder /no/model"),
        (Changes(breakdown=["category"]), "key 'evaluation.breakdown': 'category' is a key"),
        (Changes(breakdown=["section"]), "key 'evaluation.breakdown': "),
    ],
)
def test_a_bad_change_is_one_line_naming_the_derived_file_and_leaves_no_file(
    project: Path, changes: Changes, expected: str
) -> None:
    target = project / "configs" / "milestones" / "m38-notebook.yaml"
    with pytest.raises(SpecError) as info:
        derive(MilestoneRegistry(project), "m38", "m38-notebook", changes)
    assert str(info.value).startswith(f"{target}: {expected}")
    assert "\n" not in str(info.value)
    assert not target.exists()


def test_a_breakdown_key_the_evalset_lacks_names_its_line(project: Path) -> None:
    with pytest.raises(SpecError) as info:
        derive(MilestoneRegistry(project), "m38", "own", Changes(breakdown=["section"]))
    evalset = ROOT / "evalsets" / "eval_v2.jsonl"
    assert str(info.value).endswith(
        f"{evalset}:1: missing key 'section' (named in the spec's evaluation.breakdown)"
    )


@pytest.mark.parametrize("new_id", ["M38", "../m38", "m38\n", ""])
def test_the_new_id_must_be_a_milestone_id(project: Path, new_id: str) -> None:
    with pytest.raises(SpecError, match="is not a milestone id"):
        derive(MilestoneRegistry(project), "m38", new_id, Changes())


def test_a_freeze_milestone_has_nothing_to_derive(project: Path) -> None:
    with pytest.raises(SpecError, match="a freeze milestone has no model or data to change"):
        derive(MilestoneRegistry(project), "m42", "m42-mine", Changes())


def test_the_command_line_prints_the_spec_or_one_line(
    project: Path, mount: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    args = ["derive", "m44", "--as", "m44-own", "--dataset", str(mount / "dataset.jsonl")]
    assert main(args + ["--breakdown", "section", "--evalset", str(mount / "evals")]) == 0
    assert capsys.readouterr().out == "configs/milestones/m44-own.yaml\n"
    spec = yaml.safe_load((project / "configs" / "milestones" / "m44-own.yaml").read_text())
    assert spec["evaluation"] == {"breakdown": ["section"]}
    assert main(["derive", "m44", "--as", "m44-own", "--dataset", str(mount / "absent")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(
        "python -m harness derive: configs/milestones/m44-own.yaml: key 'dataset'"
    )
