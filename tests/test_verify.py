"""`python -m harness verify` re-checks a bundle and names every problem it finds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness", "verify", str(path)]
    return subprocess.run(command, capture_output=True, text=True)


def test_verify_passes_a_fresh_bundle_and_names_edits_deletions_and_placeholders(
    mini: MiniProject,
) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    bundle = mini.bundle("mini_v1")
    done = verify(bundle)
    assert done.returncode == 0, done.stdout
    assert "verifies" in done.stdout
    (bundle / "resources.svg").unlink()

    metrics = bundle / "evaluation_results.json"
    data = json.loads(metrics.read_text())
    data["accuracy"] = 0.99
    metrics.write_text(json.dumps(data))
    (bundle / "predictions.jsonl").unlink()
    manifest = bundle / "run_manifest.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"model": "random:tiny-gemma"', '"model": "TODO"'))

    done = verify(bundle)
    assert done.returncode == 1
    assert "evaluation_results.json: content differs from its SHA256SUMS entry" in done.stdout
    assert "predictions.jsonl: missing" in done.stdout
    assert "resources.svg: missing" in done.stdout
    assert "run_manifest.json: $.model is empty or a placeholder" in done.stdout
