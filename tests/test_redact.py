"""Tests that values of credential-like environment variables never reach evidence files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import bundle
from harness.redact import REDACTED, SECRET_NAME, redact, secret_values

SECRETS = {
    "HF_TOKEN": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "KAGGLE_KEY": "0123456789abcdef0123456789abcdef",
    "MY_SECRET": "open-sesame-42",
    "DB_PASSWORD": "correct-horse-battery-staple",
}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the secrets a test plants are in the environment."""
    for name in list(os.environ):
        if SECRET_NAME.search(name):
            monkeypatch.delenv(name)


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


def _text_with_secrets() -> str:
    return "".join(f"{name}={value}\n" for name, value in SECRETS.items())


def test_redact_hides_every_planted_secret(planted: dict[str, str]) -> None:
    text = redact(_text_with_secrets())
    for value in planted.values():
        assert value not in text
    assert text == "".join(f"{name}={REDACTED}\n" for name in planted)


def test_write_text_never_writes_a_secret(planted: dict[str, str], tmp_path: Path) -> None:
    path = bundle.write_text(tmp_path / "env_snapshot.txt", _text_with_secrets())
    written = path.read_text(encoding="utf-8")
    for value in planted.values():
        assert value not in written
    assert written.count(REDACTED) == len(planted)


def test_write_json_never_writes_a_secret(planted: dict[str, str], tmp_path: Path) -> None:
    data = {"env": dict(planted), "nested": [{"token": planted["HF_TOKEN"]}]}
    path = bundle.write_json(tmp_path / "run_manifest.json", data)
    written = path.read_text(encoding="utf-8")
    for value in planted.values():
        assert value not in written
    assert bundle.read_json(path) == {
        "env": {name: REDACTED for name in planted},
        "nested": [{"token": REDACTED}],
    }


def test_write_jsonl_never_writes_a_secret(planted: dict[str, str], tmp_path: Path) -> None:
    rows = [{"completion": planted["KAGGLE_KEY"]}]
    path = bundle.write_jsonl(tmp_path / "predictions.jsonl", rows)
    assert planted["KAGGLE_KEY"] not in path.read_text(encoding="utf-8")


def test_short_values_are_not_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "abc")
    monkeypatch.setenv("DB_PASSWORD", "")
    assert redact("abc and abcdef") == "abc and abcdef"
    assert secret_values() == []


def test_four_characters_are_enough_to_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "abcd")
    assert redact("x abcd y") == f"x {REDACTED} y"


def test_secret_containing_another_is_redacted_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", "sesame")
    monkeypatch.setenv("HF_TOKEN", "hf_open_sesame_please")
    assert redact("token: hf_open_sesame_please.") == f"token: {REDACTED}."
    assert redact("just sesame") == f"just {REDACTED}"


def test_non_secret_names_are_untouched(
    planted: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/reviewer")
    monkeypatch.setenv("MILESTONE_TITLE", "full production training")
    text = "home is /home/reviewer; full production training"
    assert redact(text) == text


def test_names_match_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("github_token", "ghp_lowercase_name")
    assert redact("ghp_lowercase_name") == REDACTED


def test_explicit_environ_mapping() -> None:
    environ = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "HOME": "/root"}
    assert redact("wJalrXUtnFEMI /root", environ) == f"{REDACTED} /root"


def test_write_json_hides_a_secret_json_would_escape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = 'pässwort"with\\quote'
    monkeypatch.setenv("DB_PASSWORD", password)
    path = bundle.write_json(tmp_path / "run_manifest.json", {"password": password})
    assert bundle.read_json(path) == {"password": REDACTED}


def test_tokenizers_parallelism_does_not_corrupt_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    data = {"completed": False, "dirty": False}
    path = bundle.write_json(tmp_path / "training_metrics.json", data)
    assert bundle.read_json(path) == data
