"""A Kaggle handle not in the kagglehub cache: one line without credentials, left to the train
phase with them or inside a notebook, and a handle without a version needs Kaggle."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kagglehub")

from harness.phases.preflight import check_model_source  # noqa: E402
from trainers.models import ModelSource, pretrained_folder  # noqa: E402

HANDLE = "google/gemma/flax/2b/2"


def test_an_uncached_handle_without_credentials_is_one_line(offline: Path) -> None:
    line = (
        f"kaggle:{HANDLE} is not in the kagglehub cache ({offline}) and no Kaggle credentials are "
        "set (KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json) to download it"
    )
    with pytest.raises(FileNotFoundError) as resolved:
        pretrained_folder(ModelSource.parse(f"kaggle:{HANDLE}"))
    assert str(resolved.value) == line
    with pytest.raises(FileNotFoundError) as checked:
        check_model_source(f"kaggle:{HANDLE}", "jax")
    assert str(checked.value) == line


def test_an_uncached_handle_with_credentials_is_left_to_the_train_phase(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    check_model_source(f"kaggle:{HANDLE}", "jax")  # nothing fetched: train does that


def test_an_uncached_handle_in_a_kaggle_notebook_is_left_to_the_train_phase(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook has no credentials: kagglehub attaches the model to it through Kaggle's proxy."""
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("KAGGLE_DATA_PROXY_URL", "http://127.0.0.1:9")
    check_model_source(f"kaggle:{HANDLE}", "jax")


def test_an_unversioned_handle_needs_kaggle(offline: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^kaggle:google/gemma/flax/2b names no version"):
        pretrained_folder(ModelSource.parse("kaggle:google/gemma/flax/2b"))
