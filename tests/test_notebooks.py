"""The Kaggle notebooks, executed headless on the CPU as Kaggle would run them: the repository
attached read-only under a stand-in for /kaggle/input beside a user's model and data, the bundle
left in a stand-in for /kaggle/working, rehearsing, nothing installed. And the committed notebooks
carry no outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from harness import notebook
from harness.evidence import bundle
from harness.evidence.verify import verify_bundle
from harness.spec.data import file_sha256
from tests.mounts import read_only, tree_state

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TRACES = (ROOT / "datasets" / "dev-reasoning-v2" / "traces.jsonl").read_text().splitlines()
ITEMS = (ROOT / "evalsets" / "eval_v2.jsonl").read_text().splitlines()
CELL_TIMEOUT_S = 600


def test_committed_notebooks_carry_no_outputs_and_one_parameters_cell() -> None:
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [path.name for path in found] == ["kaggle_gpu.ipynb", "kaggle_tpu.ipynb"]
    for path in found:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert [(c.outputs, c.execution_count) for c in code] == [([], None)] * len(code), path
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path


# --- /kaggle/input and /kaggle/working, stood in for by temporary folders ----------------------


def attach_repository(folder: Path) -> Path:
    """This checkout's files as Kaggle attaches a repository uploaded as a dataset: the tracked
    files and the new ones git does not ignore, without the git history."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():  # a file deleted in this checkout but not yet committed is skipped
            (folder / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / os.fsdecode(name))
    return folder


def attach_data(folder: Path) -> tuple[Path, Path]:
    """A user's data: ``my-data/dataset.jsonl`` and an evalset folder whose items carry keys of
    their own (``section``, ``difficulty``)."""
    dataset = folder / "my-data" / "dataset.jsonl"
    dataset.parent.mkdir(parents=True)
    dataset.write_text("\n".join(TRACES[:24]) + "\n", encoding="utf-8")
    items = [
        json.loads(line) | {"section": ("algebra", "words")[i % 2], "difficulty": 1 + i % 3}
        for i, line in enumerate(ITEMS[:8])
    ]
    evalset = folder / "my-evals" / "evalset.jsonl"
    evalset.parent.mkdir(parents=True)
    evalset.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return dataset, evalset


def attach_model(folder: Path) -> Path:
    """A tiny Gemma in Kaggle's Flax layout where Kaggle mounts the attached Gemma 2B, built in a
    process of its own (torch cannot be imported twice into one)."""
    target = folder / "gemma" / "flax" / "2b" / "2"
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(json.loads(line)["prompt"] for line in TRACES), encoding="utf-8")
    script = (
        "import sys; from pathlib import Path\n"
        "from trainers.tiny_checkpoints import build_kaggle_checkpoint\n"
        "lines = Path(sys.argv[2]).read_text().splitlines()\n"
        "build_kaggle_checkpoint(Path(sys.argv[1]), 'gemma', lines, checkpoint_name='2b')\n"
    )
    env = os.environ | {"JAX_PLATFORMS": "cpu"}
    subprocess.run(
        [sys.executable, "-c", script, str(target), str(corpus)], cwd=ROOT, env=env, check=True
    )
    corpus.unlink()
    return target


def execute(path: Path, working: Path, **parameters: object) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel whose working directory is ``working``, with
    ``parameters`` set in a cell after its parameters cell (as papermill injects them); a name
    the parameters cell does not define is refused. Kept in ``working`` for a look afterwards."""
    notebook = nbformat.read(path, as_version=4)
    at, cell = next(
        (i, c) for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
    )
    defined = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert set(parameters) <= defined, f"{path.name} defines no {set(parameters) - defined}"
    injected = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(injected))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(working)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, working.parent / f"executed_{path.name}")
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the executed notebook showed: streams, and text and HTML results."""
    parts: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data: dict[str, Any] = output.get("data", {})
            parts += [data.get("text/markdown", ""), data.get("text/html", "")]
    return "\n".join(parts)


def check_bundle(run_dir: Path, dataset: Path, evalset: Path) -> dict[str, Any]:
    """What a user checks of the bundle: it verifies, passed, read the data where it lies and kept
    the evalset's own keys; the manifest is returned for more."""
    assert verify_bundle(run_dir) == []
    manifest = bundle.read_json(run_dir / bundle.RUN_MANIFEST)
    assert manifest["verdict"] == "passed"
    assert manifest["rehearsal"] is True
    assert manifest["dataset"]["resolved_path"] == str(dataset.resolve())
    assert manifest["dataset"]["sha256"] == file_sha256(dataset)
    assert manifest["dataset"]["records"] == 24
    assert manifest["evalset"]["as_written"] == str(evalset.parent)
    assert manifest["evalset"]["resolved_path"] == str(evalset.resolve())
    predictions = (run_dir / bundle.PREDICTIONS).read_text(encoding="utf-8").splitlines()
    assert json.loads(predictions[1])["extra"] == {"section": "words", "difficulty": 2}
    results = bundle.read_json(run_dir / bundle.EVALUATION_RESULTS)
    assert sorted(results["breakdown"]["section"]) == ["algebra", "words"]
    return manifest


@pytest.fixture
def kaggle(tmp_path: Path) -> Path:
    """``kaggle/input`` and ``kaggle/working``, as in a Kaggle notebook."""
    (tmp_path / "kaggle" / "working").mkdir(parents=True)
    attach_repository(tmp_path / "kaggle" / "input" / "tunix-rt")
    return tmp_path / "kaggle"


def run_notebook(kaggle: Path, name: str, model: Path | None) -> tuple[nbformat.NotebookNode, Path]:
    """Execute ``name`` against the stand-ins, its inputs read-only and proven untouched; the
    executed notebook and the working copy it left."""
    inputs, working = kaggle / "input", kaggle / "working"
    dataset, evalset = attach_data(inputs)
    with read_only(inputs) as before:
        executed = execute(
            NOTEBOOKS / name,
            working,
            MODEL_INPUT=str(model) if model else None,
            DATASET=str(dataset),
            EVALSET=str(evalset.parent),
            BREAKDOWN=["section"],
            REHEARSE=True,
            INSTALL=False,
            PROJECT_SOURCE=str(inputs / "tunix-rt"),
            WORKING=str(working),
        )
        assert tree_state(inputs) == before
    project = working / "tunix-rt"
    assert [path.name for path in working.iterdir()] == ["tunix-rt"]
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""  # everything the session wrote is in its (git-ignored) run folder
    return executed, project


@pytest.mark.slow
def test_the_tpu_notebook_rehearses_m38_on_the_users_data_and_leaves_a_verified_bundle(
    kaggle: Path,
) -> None:
    model = attach_model(kaggle / "input")
    executed, project = run_notebook(kaggle, "kaggle_tpu.ipynb", model)
    run_dir = project / "submission_runs" / "m38-notebook-rehearsal_v1"
    inputs = kaggle / "input"
    manifest = check_bundle(
        run_dir, inputs / "my-data" / "dataset.jsonl", inputs / "my-evals" / "evalset.jsonl"
    )
    assert manifest["milestone"] == "m38-notebook"
    assert manifest["model"] == f"kaggle:{model}"
    assert manifest["model_lineage"]["folder"].startswith(str(run_dir / "rehearsal_model"))
    shown = outputs_text(executed)
    assert "[m38-notebook-rehearsal_v1] train: step 12/12" in shown  # progress, in the cell
    assert "<iframe srcdoc=" in shown
    assert f"ok: {run_dir} verifies" in shown
    assert f"{run_dir} (" in shown
    assert "verdict: passed" in shown


@pytest.mark.slow
def test_the_gpu_notebook_rehearses_m44_kaggle_and_shows_the_memory_guards_verdict(
    kaggle: Path,
) -> None:
    # The spec's own model (kaggle:google/gemma/transformers/2b/2): the attached folder is the TPU
    # test's part.
    executed, project = run_notebook(kaggle, "kaggle_gpu.ipynb", None)
    run_dir = project / "submission_runs" / "m44-kaggle-notebook-rehearsal_v1"
    inputs = kaggle / "input"
    manifest = check_bundle(
        run_dir, inputs / "my-data" / "dataset.jsonl", inputs / "my-evals" / "evalset.jsonl"
    )
    assert manifest["model"] == "kaggle:google/gemma/transformers/2b/2"
    shown = outputs_text(executed)
    assert "The memory guard let the run start:** estimate " in shown
    assert f"ok: {run_dir} verifies" in shown


# --- what the notebooks call, on bundles of each outcome ---------------------------------------


def bundle_with(folder: Path, preflight: dict[str, str], analysis: str = "") -> Path:
    folder.mkdir(parents=True)
    manifest = {"verdict": f"preflight {preflight['status']}", "phases": {"preflight": preflight}}
    (folder / bundle.RUN_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    if analysis:
        (folder / bundle.FAILURE_ANALYSIS).write_text(analysis, encoding="utf-8")
    return folder


def test_the_memory_verdict_of_a_refused_run_shows_the_failure_analysis(tmp_path: Path) -> None:
    refused = {"status": "failed", "cause": "insufficient memory", "reason": "the run needs 57 GiB"}
    analysis = "# Failure analysis\n\nthe run needs 56.9 GiB = weights 9.3 + ...\n"
    folder = bundle_with(tmp_path / "m44_v1", refused, analysis)
    verdict = notebook.memory_verdict(notebook.NotebookRun("m44", 1, folder, ()))
    assert verdict == f"**The memory guard refused the run.**\n\n{analysis}"


def test_the_memory_verdict_of_a_run_skipped_before_the_guard_says_why(tmp_path: Path) -> None:
    skipped = {"status": "skipped", "cause": "missing hardware", "reason": "no CUDA GPU"}
    folder = bundle_with(tmp_path / "m44_v1", skipped)
    run = notebook.NotebookRun("m44", 0, folder, ("[m44_v1] preflight: snapshot",))
    assert notebook.memory_verdict(run) == (
        "**Pre-flight ended before the memory guard:** skipped: no CUDA GPU"
    )
    assert notebook.verdict(run) == "preflight skipped"


def test_a_bundle_outside_the_working_folder_is_refused(tmp_path: Path) -> None:
    folder = bundle_with(tmp_path / "elsewhere" / "m38_v1", {"status": "passed"})
    run = notebook.NotebookRun("m38", 0, folder, ())
    with pytest.raises(RuntimeError, match="Kaggle would not keep it"):
        notebook.output_listing(run, tmp_path / "working")
    assert notebook.output_listing(run, tmp_path).startswith(f"{folder} (0.0 MiB):")


def test_nothing_named_anew_runs_the_shipped_milestone_and_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "tunix-rt"
    shutil.copytree(ROOT / "configs", project / "configs")
    before = tree_state(project)
    assert notebook.milestone_to_run(project, "m38") == "m38"
    assert tree_state(project) == before
