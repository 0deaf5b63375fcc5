"""Tests that values of credential-like environment variables never reach evidence files."""

from __future__ import annotations

import base64
import html
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence import bundle
from harness.evidence.redact import REDACTED, SECRET_NAME, encoded_forms, redact, secret_values

if TYPE_CHECKING:
    from tests.conftest import MiniProject

ROOT = Path(__file__).resolve().parents[1]

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


def test_a_secret_equal_to_a_number_leaves_numbers_keys_and_digests_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "1234")
    digest = "ab1234" + "0" * 58
    data = {"seed": 1234, "1234": "key", "sha256": digest, "note": "step 1234 of 5000"}
    path = bundle.write_json(tmp_path / "run_manifest.json", data)
    assert bundle.read_json(path) == {
        "seed": 1234,
        "1234": "key",
        "sha256": digest,
        "note": f"step {REDACTED} of 5000",
    }


def test_a_secret_equal_to_a_common_word_leaves_names_and_vocabulary_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MY_PASSWORD", "loss")
    data = {"final_loss": 0.5, "files": ["loss_curve.png"], "status": "passed", "note": "loss fell"}
    path = bundle.write_json(tmp_path / "training_metrics.json", data)
    assert bundle.read_json(path) == {**data, "note": f"{REDACTED} fell"}
    text = bundle.write_text(tmp_path / "summary.md", "- `loss_curve.png`: the loss\n")
    assert text.read_text(encoding="utf-8") == f"- `loss_curve.png`: the {REDACTED}\n"


def test_vocabulary_does_not_shelter_a_secret_glued_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASSWORD", "passed")
    assert (
        bundle.evidence_redactor().text("train passed; bypassed") == f"train passed; by{REDACTED}"
    )


def test_a_digest_that_is_a_secret_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "0123456789abcdef" * 2 + "01234567"  # 40 hex digits, like an old GitHub token
    monkeypatch.setenv("GITHUB_TOKEN", token)
    assert bundle.evidence_redactor().text(f"commit {token}") == f"commit {REDACTED}"


HOSTILE = 's3cr&t<"v@l>/+ ü'


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: v,
        lambda v: html.escape(v),
        lambda v: html.escape(html.escape(v)),
        lambda v: html.escape(json.dumps(html.escape(v))),
        lambda v: json.dumps(v),
        lambda v: json.dumps(v, ensure_ascii=False),
        lambda v: urllib.parse.quote(v, safe=""),
        lambda v: urllib.parse.quote_plus(v),
        lambda v: base64.b64encode(v.encode()).decode(),
    ],
    ids=[
        "raw",
        "html",
        "html-twice",
        "html-json-html",
        "json",
        "json-utf8",
        "url",
        "url-plus",
        "b64",
    ],
)
def test_every_encoding_of_a_secret_is_redacted(
    encode: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD", HOSTILE)
    form = encode(HOSTILE)
    hidden = redact(f"<p>{form}</p>")
    assert form not in hidden
    assert REDACTED in hidden


def test_each_line_of_a_multi_line_secret_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_KEY", "-----BEGIN KEY-----\nAAAAB3NzaC1yc2E\n-----END KEY-----")
    assert "AAAAB3NzaC1yc2E" not in redact("log: AAAAB3NzaC1yc2E")


def test_a_session_with_word_number_and_html_secrets_leaves_a_bundle_that_verifies(
    mini: MiniProject,
) -> None:
    secrets = {"KAGGLE_KEY": "1234", "MY_PASSWORD": "loss", "HF_TOKEN": HOSTILE}
    env = {name: value for name, value in os.environ.items() if not SECRET_NAME.search(name)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance", "--milestone", "mini"],
        cwd=mini.path,
        env={**env, **secrets},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    run_dir = mini.bundle("mini_v1")
    verified = subprocess.run(
        [sys.executable, "-m", "harness", "verify", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert bundle.read_json(run_dir / "run_manifest.json")["seed"] == 7
    assert "final_loss" in bundle.read_json(run_dir / "training_metrics.json")
    assert "  loss_curve.png\n" in (run_dir / "SHA256SUMS").read_text()
    for path in run_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for form in encoded_forms(HOSTILE):
                assert form.encode() not in content, f"{form!r} leaked into {path.name}"
