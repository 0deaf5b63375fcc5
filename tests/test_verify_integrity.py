"""Verify reads only the bundle: no symlink is followed, no path outside it is opened or hashed,
every unlisted file is named, and a malformed file is one problem line, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.__main__ import main
from harness.evidence import bundle
from harness.evidence.baseline import BaselineError, load_baseline
from harness.evidence.measurements import measure_bundle
from harness.evidence.verify import bundle_files, write_checksums
from harness.evidence.writers import scores
from harness.record.evaluation import CategoryScore
from harness.record.statistics import INTERVAL_METHOD

if TYPE_CHECKING:
    from tests.conftest import MiniProject

CLOSING = "The mini milestone proves nothing about quality."
DIGEST = "0" * 64
PHASES = ("preflight", "guardrails-before", "train", "evaluate", "guardrails-after", "evidence",
          "summary")


def manifest(milestone: str, run_id: str) -> dict[str, Any]:
    """A run manifest of a run whose every phase passed, valid against its schema."""
    data = {"path": f"datasets/{milestone}/traces.jsonl", "sha256": DIGEST, "records": 16}
    passed = {"status": "passed", "cause": "completed", "reason": "completed", "duration_s": 0.1}
    return {
        "milestone": milestone, "title": "Mini milestone", "run_id": run_id, "kind": "train",
        "commit": "f" * 40, "dirty": False, "backend": "torch", "device": "cpu",
        "hardware_required": {"accelerator": "cpu", "count": 1, "platform": "any"},
        "hardware_detected": {"cpu": "x86_64", "cpu_count": "2"},
        "model": "random:tiny-gemma", "training_config": {"file": "mini.yaml", "sha256": DIGEST},
        "batch_size": 4, "max_seq_len": 192, "precision": "fp32", "seed": 7,
        "run_shape": {"max_steps": 2}, "steps_completed": 2, "dataset": data,
        "evalset": {**data, "path": f"evalsets/{milestone}.jsonl", "records": 5},
        "started_at": "2026-11-23T16:29:11+00:00", "finished_at": "2026-11-23T16:30:19+00:00",
        "complete": True, "session_finished": True, "follows": "none: the first run",
        "verdict": "passed", "phases": {phase: passed for phase in PHASES},
        "closing_statement": CLOSING,
    }


def assemble(run_dir: Path, milestone: str = "mini") -> Path:
    """A bundle that verifies, built from exactly what verify requires of a run that passed."""
    run_id = run_dir.name
    steps = [{"step": n, "loss": loss, "lr": 0.003, "grad_norm": 1.0, "samples": 4, "tokens": 300,
              "seconds": 0.5, "tokens_per_s": 600.0} for n, loss in ((1, 4.0), (2, 3.0))]
    metrics = {"milestone": milestone, "run_id": run_id, "backend": "torch", "device": "cpu",
               "model": "random:tiny-gemma", "steps_planned": 2, "steps_completed": 2,
               "completed": True, "tokens_counted": 600, "per_step": steps, "runtime_s": 1.0,
               "tokens_per_s": 600.0, "samples_per_s": 8.0}
    category = scores(CategoryScore(count=5, correct=2, format_ok=4))
    results = {"milestone": milestone, "run_id": run_id, "evalset": milestone, **category,
               "interval_method": INTERVAL_METHOD, "per_category": {"arithmetic": category},
               "runtime_s": 1.0, "items_per_s": 5.0}
    bundle.write_json(run_dir / bundle.RUN_MANIFEST, manifest(milestone, run_id))
    bundle.write_json(run_dir / bundle.TRAINING_METRICS, metrics)
    bundle.write_json(run_dir / bundle.EVALUATION_RESULTS, results)
    texts = {
        bundle.ENV_SNAPSHOT: "python  3.11.7\n",
        bundle.GPU_SNAPSHOT: "nvidia-smi: not found (a CPU run)\n",
        bundle.TRAINING_LOG: "step 1 loss 4.0\nstep 2 loss 3.0\n",
        bundle.PREDICTIONS: '{"correct": false}\n',
        bundle.EVALUATION_SUMMARY: "# Evaluation\n\naccuracy 0.4\n",
        bundle.summary_name(milestone): f"# {run_id}\n\n{CLOSING}\n",
        f"{bundle.CHECKPOINT_DIR}/config.json": '{"model_type": "gemma"}\n',
        bundle.RESOURCES: '{"phase": "train", "rss_bytes": 1048576}\n',
        bundle.RESOURCES_PLOT: '<svg xmlns="http://www.w3.org/2000/svg"></svg>\n',
    }
    for name, text in texts.items():
        bundle.write_text(run_dir / name, text)
    # A safetensors file with no tensors: its 8-byte header length, then the empty JSON header.
    weights = run_dir / bundle.CHECKPOINT_DIR / "model.safetensors"
    bundle.write_bytes(weights, struct.pack("<Q", 2) + b"{}")
    write_checksums(run_dir)
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return assemble(tmp_path / "bundle" / "mini_v1")


def verify_lines(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What ``python -m harness verify`` prints (its main(): a traceback fails the test)."""
    code = main(["verify", str(run_dir)])
    out, err = capsys.readouterr()
    if code == 0:
        assert out.startswith(f"ok: {run_dir} verifies") and err == "", out + err
        return []
    lines = out.splitlines()
    assert all(line.startswith(f"{run_dir}: ") for line in lines), out
    assert code == 1 and err.splitlines() == [f"{len(lines)} problem(s): {run_dir} does not verify"]
    return [line.removeprefix(f"{run_dir}: ") for line in lines]


def link_line(name: str, target: Path) -> str:
    return f"{name}: a symlink to {target}; a bundle holds no symlinks, none is followed"


def test_an_assembled_bundle_verifies(run_dir: Path) -> None:
    command = [sys.executable, "-m", "harness", "verify", str(run_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    assert done.stdout == f"ok: {run_dir} verifies (13 files)\n"


def test_a_path_that_is_no_folder_is_one_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a bundle\n")
    for path in (tmp_path / "file", tmp_path / "nowhere"):
        assert verify_lines(path, capsys) == ["not a folder"]


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_checksum_entries_outside_the_bundle_are_refused_unread(
    run_dir: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    outside = run_dir.parent / "hostname"
    outside.write_text("vm\n")
    name = "../" * 12 + str(outside).lstrip("/") if where == "relative" else str(outside)
    listing = run_dir / "SHA256SUMS"
    number = len(listing.read_text().splitlines()) + 1
    digest = hashlib.sha256(b"vm\n").hexdigest()  # the right one: only refusing it fails verify
    listing.write_text(listing.read_text() + f"{digest}  {name}\n")
    why = "a path through '..'" if where == "relative" else "an absolute path"
    expected = f"SHA256SUMS:{number}: {name}: {why}, outside the bundle; not read"
    assert verify_lines(run_dir, capsys) == [expected]


def test_a_symlinked_checkpoint_folder_is_one_problem_and_never_followed(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = run_dir.parent / "elsewhere"
    shutil.move(run_dir / "checkpoint", elsewhere)
    (run_dir / "checkpoint").symlink_to(elsewhere, target_is_directory=True)
    assert verify_lines(run_dir, capsys) == [link_line("checkpoint", elsewhere)]
    assert "checkpoint/config.json" not in bundle_files(run_dir)


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_a_file_symlinked_to_an_identical_copy_is_refused(
    run_dir: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    snapshot = run_dir / "gpu_snapshot.txt"
    inside = target == "inside"
    copy = run_dir / "checkpoint" / "copy.txt" if inside else run_dir.parent / "copy.txt"
    shutil.copyfile(snapshot, copy)
    snapshot.unlink()
    snapshot.symlink_to(copy)
    expected = link_line("gpu_snapshot.txt", copy)
    unlisted = ["checkpoint/copy.txt: not listed in SHA256SUMS"] if inside else []
    assert verify_lines(run_dir, capsys) == [expected, *unlisted]


def test_every_unlisted_file_is_named_dot_files_included(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["checkpoint/.evil.bin", ".hidden", ".run_manifest.json.k3j9x2qz.tmp",
             "checkpoint/SHA256SUMS"]
    for name in extra:
        (run_dir / name).write_bytes(b"\x00payload")
    expected = [f"{name}: not listed in SHA256SUMS" for name in sorted(extra)]
    assert verify_lines(run_dir, capsys) == expected


def test_a_listed_dot_file_is_checked_like_any_file(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "checkpoint" / ".evil.bin").write_bytes(b"before")
    write_checksums(run_dir)
    assert "checkpoint/.evil.bin" in (run_dir / "SHA256SUMS").read_text()
    (run_dir / "checkpoint" / ".evil.bin").write_bytes(b"after")
    expected = "checkpoint/.evil.bin: content differs from its SHA256SUMS entry"
    assert verify_lines(run_dir, capsys) == [expected]


@pytest.mark.parametrize("secret", ["model", "config"])
def test_checksums_keep_file_names_that_contain_a_secret(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("TUNIX_TEST_SECRET", secret)
    write_checksums(run_dir)
    assert "  checkpoint/model.safetensors\n" in (run_dir / "SHA256SUMS").read_text()
    assert "  checkpoint/config.json\n" in (run_dir / "SHA256SUMS").read_text()
    assert verify_lines(run_dir, capsys) == []


def test_a_baseline_with_a_symlinked_result_is_refused_and_never_measured(run_dir: Path) -> None:
    results = run_dir / "evaluation_results.json"
    outside = run_dir.parent / "results.json"
    shutil.copyfile(results, outside)
    results.unlink()
    results.symlink_to(outside)
    refused = r"mini_v1: fails verification: evaluation_results.json: a symlink to .*results.json;"
    with pytest.raises(BaselineError, match=refused):
        load_baseline(run_dir)
    measured = measure_bundle(run_dir)
    assert "eval.accuracy" not in measured and measured["train.final_loss"] == 3.0


def rewrite(run_dir: Path, name: str, data: bytes) -> None:
    (run_dir / name).write_bytes(data)


def manifest_with(**changes: Any) -> bytes:
    return json.dumps({**manifest("mini", "mini_v1"), **changes}).encode()


DEEP = b"[" * 5000 + b"]" * 5000
NESTED = b"[" * 600 + b"]" * 600


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("run_manifest.json", b"\xff\xfe{}", "run_manifest.json: not UTF-8 text"),
        ("run_manifest.json", b"[1, 2]", "run_manifest.json: expected a JSON object, got list"),
        ("run_manifest.json", b'"text"', "run_manifest.json: expected a JSON object, got string"),
        ("run_manifest.json", DEEP, "run_manifest.json: JSON nested deeper than 32 levels"),
        ("run_manifest.json", manifest_with(phases=[1]),
         "run_manifest.json: $.phases: [1] is not of type 'object'"),
        ("run_manifest.json", manifest_with(phases={"train": "passed"}),
         "run_manifest.json: $.phases.train: 'passed' is not of type 'object'"),
        ("SHA256SUMS", b"\xff\xfe", "SHA256SUMS: not UTF-8 text"),
        ("mini_summary.md", b"\xe9t\xe9 " + CLOSING.encode(), "mini_summary.md: not UTF-8 text"),
        ("training_metrics.json", b"\xff", "training_metrics.json: not UTF-8 text"),
        ("training_metrics.json", b"[]", "training_metrics.json: expected a JSON object, got list"),
        ("evaluation_results.json", b"\x80\x81", "evaluation_results.json: not UTF-8 text"),
        ("evaluation_results.json", b"3",
         "evaluation_results.json: expected a JSON object, got number"),
        ("evaluation_results.json", NESTED,
         "evaluation_results.json: JSON nested deeper than 32 levels"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_a_malformed_file_is_one_problem_line_naming_it(
    run_dir: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, problem: str
) -> None:
    rewrite(run_dir, name, data)
    lines = verify_lines(run_dir, capsys)
    assert problem in lines
    # Only the file itself, its checksum and what its content requires are reported.
    expected = (name, "SHA256SUMS", "failure_analysis.md")
    assert all(line.startswith(expected) for line in lines), lines


def test_measure_takes_a_malformed_step_as_one_without_a_finite_loss(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "training_metrics.json").read_text())
    metrics["per_step"] = [1, "x", [], {"step": 4}, {"loss": "abc"}, {"loss": [2]},
                           {"loss": True}, {"loss": 2.0}, {"loss": 1.0}]
    rewrite(run_dir, "training_metrics.json", json.dumps(metrics).encode())
    measured = measure_bundle(run_dir)
    assert (measured["train.steps_completed"], measured["train.nonfinite_steps"]) == (9.0, 7.0)
    losses = ("train.first_loss", "train.final_loss", "train.loss_ratio")
    assert [measured[name] for name in losses] == [2.0, 1.0, 0.5]
    metrics["per_step"] = {"loss": 1.0}
    rewrite(run_dir, "training_metrics.json", json.dumps(metrics).encode())
    assert not any(name.startswith("train.") for name in measure_bundle(run_dir))


def test_measure_skips_what_it_cannot_read(run_dir: Path) -> None:
    rewrite(run_dir, "run_manifest.json", b"\xff")
    rewrite(run_dir, "evaluation_results.json", b"[0.5]")
    os.remove(run_dir / "training_metrics.json")
    assert measure_bundle(run_dir) == {}


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("run_manifest.json", b"\xff\xfe", "run_manifest.json: not UTF-8 text"),
        ("run_manifest.json", b"[]", "run_manifest.json: expected a JSON object, got list"),
        ("SHA256SUMS", b"\xff", "SHA256SUMS: not UTF-8 text"),
        ("training_metrics.json", b"\xff", "training_metrics.json: not UTF-8 text"),
    ],
)
def test_a_malformed_baseline_is_a_one_line_usage_error(
    mini: MiniProject, name: str, data: bytes, problem: str
) -> None:
    baseline = assemble(mini.path / "submission_runs" / "mini_v9")
    rewrite(baseline, name, data)
    result = mini.run_in_process("--milestone", "mini", "--baseline", "submission_runs/mini_v9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    result.stderr.fnmatch_lines([f"*--baseline: *mini_v9: fails verification: *{problem}*"])
