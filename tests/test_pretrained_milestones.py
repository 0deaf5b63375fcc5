"""A milestone whose model is a pretrained-format folder (Hugging Face layout with a SentencePiece
tokenizer) runs end to end on both backends; a folder the backend cannot load stops pre-flight."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("sentencepiece")
pytestmark = pytest.mark.slow

from pretrained_checkpoints import build_checkpoint  # noqa: E402

if TYPE_CHECKING:
    from tests.conftest import MiniProject


@pytest.fixture(scope="session")
def gemma_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma in Hugging Face layout, built once: before any pytester test takes its
    snapshot of the loaded modules, so torch is never imported twice into this process."""
    return build_checkpoint(tmp_path_factory.mktemp("models") / "gemma", "gemma")


def needs(backend: str) -> None:
    """Skip without ``backend``; found, not imported: the sessions import it in their own process,
    and jaxlib aborts when imported into this one after a pytester session."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_pretrained_folder_outside_the_project_runs_every_phase(
    mini: MiniProject, backend: str, gemma_folder: Path
) -> None:
    needs(backend)
    folder = gemma_folder
    mini.milestone("mini-pretrained", model=f"local:{folder}", backend=backend)
    mini.commit("a milestone on a pretrained-format Gemma")
    result = mini.run("--milestone", "mini-pretrained")
    result.assert_outcomes(passed=7)
    run_dir = mini.bundle("mini-pretrained_v1")
    results = json.loads((run_dir / "evaluation_results.json").read_text())
    assert results["count"] == 5
    metrics = json.loads((run_dir / "training_metrics.json").read_text())
    assert metrics["steps_completed"] == 4
    assert metrics["model_parameters"] > 0
    # The tokenizer the model was trained with travels in the checkpoint, for evaluation and users.
    assert (run_dir / "checkpoint" / "tokenizer.json").is_file()


def test_a_folder_the_jax_backend_cannot_build_stops_preflight_in_one_line(
    mini: MiniProject, gemma_folder: Path
) -> None:
    needs("jax")
    folder = shutil.copytree(gemma_folder, mini.path.parent / "gemma")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "rope_theta": 500000.0}))
    mini.milestone("mini-pretrained", model=f"local:{folder}", backend="jax")
    mini.commit("a milestone on a Gemma whose RoPE base Tunix does not compute")
    result = mini.run("--milestone", "mini-pretrained")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    reason = mini.manifest("mini-pretrained_v1")["phases"]["preflight"]["reason"]
    assert reason == (
        f"ValueError: {folder / 'config.json'}: rope_theta is 500000.0; "
        "Tunix's Gemma computes 10000.0"
    )
