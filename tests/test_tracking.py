"""MLflow tracking on a mini project: what a session leaves in a real local store, and what it
does when the extra is missing or the store cannot be written."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.evidence.verify import verify_bundle
from harness.plugin.tracking import NEEDS_EXTRA, PARAM_VALUE_LIMIT

if TYPE_CHECKING:
    from tests.conftest import MiniProject

NO_EXTRA = "the [mlflow] extra is not installed (pip install 'tunix-rt[mlflow]')"
SECRET = "s3cr3t-value-123"
needs_mlflow = pytest.mark.skipif(find_spec("mlflow") is None, reason=NO_EXTRA)


@pytest.fixture(scope="session")
def mlflow() -> Iterator[Any]:
    """MLflow as a user reading the store has it: telemetry off, file stores allowed.

    Imported once per session, before any pytester snapshot: those drop the modules a test
    imported, and MLflow does not import cleanly a second time into one process.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        yield pytest.importorskip("mlflow", reason=NO_EXTRA)


def only_run(mlflow: Any, uri: str, experiment: str) -> Any:
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    [run] = client.search_runs([found.experiment_id])
    return run


def edit_spec(mini: MiniProject, milestone_id: str, old: str, new: str) -> None:
    spec = mini.path / "configs" / "milestones" / f"{milestone_id}.yaml"
    spec.write_text(spec.read_text().replace(old, new))
    mini.commit(f"edit {milestone_id}")


@pytest.mark.parametrize(
    ("hidden", "uri"), [("mlflow", "file:./mlruns"), ("sqlalchemy", "sqlite:///mlflow.db")]
)
def test_without_the_extra_the_option_is_a_one_line_usage_error_before_any_run(
    mini: MiniProject, monkeypatch: pytest.MonkeyPatch, hidden: str, uri: str
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # as if the package were not installed
    result = mini.run_in_process("--milestone", "mini", "--mlflow-uri", uri)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {NEEDS_EXTRA}"])
    assert not (mini.path / "submission_runs").exists()


@needs_mlflow
def test_a_store_that_cannot_be_created_is_a_usage_error_before_any_run(
    mini: MiniProject, pytester: pytest.Pytester
) -> None:
    (pytester.path / "not-a-folder").write_text("")
    uri = f"file:{pytester.path / 'not-a-folder' / 'mlruns'}"
    result = mini.run_in_process("--milestone", "mini", "--mlflow-uri", uri)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --mlflow-uri {uri}: cannot create the store *not-a-folder*"]
    )
    assert not (mini.path / "submission_runs").exists()


@pytest.mark.slow
def test_a_run_is_logged_with_its_spec_metrics_verdicts_and_bundle(
    mini: MiniProject, pytester: pytest.Pytester, mlflow: Any
) -> None:
    uri = f"file:{pytester.path / 'mlruns'}"
    result = mini.run("--milestone", "mini", "--mlflow-uri", uri)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"tunix-rt: mini_v1 logged to MLflow {uri} (experiment mini, run *)"]
    )

    run = only_run(mlflow, uri, "mini")
    manifest = mini.manifest("mini_v1")
    assert run.info.run_name == "mini_v1"
    assert run.info.status == "FINISHED"
    assert run.data.params["training.batch_size"] == "4"
    assert run.data.params["spec.run.max_steps"] == "4"
    assert run.data.params["training.optimizer.betas"] == "[0.9, 0.98]"
    assert run.data.tags["verdict"] == "passed"
    assert run.data.tags["commit"] == manifest["commit"]
    assert run.data.tags["rehearsal"] == "false"
    assert {run.data.tags[f"phase.{phase}"] for phase in manifest["phases"]} == {"passed"}

    per_step = json.loads((mini.bundle("mini_v1") / "training_metrics.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=uri)
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert len(losses) == per_step["steps_completed"] == 4
    assert [m.step for m in losses] == [s["step"] for s in per_step["per_step"]]
    assert [m.value for m in losses] == pytest.approx([s["loss"] for s in per_step["per_step"]])
    assert len(client.get_metric_history(run.info.run_id, "tokens_per_s")) == 4
    assert run.data.metrics["eval.count"] == 5

    copy = str(pytester.path / "copy")
    logged = Path(mlflow.artifacts.download_artifacts(run.info.artifact_uri, dst_path=copy))
    names = {path.name for path in logged.iterdir()}
    assert {"run_manifest.json", "SHA256SUMS", "training_metrics.json"} <= names
    assert verify_bundle(logged) == []  # the logged copy is the bundle, checksums and all


@pytest.mark.slow
def test_secrets_never_reach_the_store(
    mini: MiniProject, pytester: pytest.Pytester, mlflow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    edit_spec(mini, "mini-gpu", "title: Mini milestone", f"title: Mini milestone for {SECRET}")
    store = pytester.path / "mlruns"
    result = mini.run("--milestone", "mini-gpu", "--mlflow-uri", f"file:{store}")
    assert result.ret == pytest.ExitCode.OK

    run = only_run(mlflow, f"file:{store}", "mini-gpu")
    assert run.data.params["spec.title"] == "Mini milestone for [REDACTED]"
    files = [path for path in store.rglob("*") if path.is_file()]
    assert [str(path) for path in files if SECRET.encode() in path.read_bytes()] == []


@pytest.mark.slow
def test_a_sqlite_store_keeps_artifacts_beside_its_database(
    mini: MiniProject, pytester: pytest.Pytester, mlflow: Any
) -> None:
    edit_spec(mini, "mini-gpu", "Exercise every phase in seconds.", "x" * 7000)
    uri = f"sqlite:///{pytester.path / 'store' / 'mlflow.db'}"
    result = mini.run("--milestone", "mini-gpu", "--mlflow-uri", uri)
    assert result.ret == pytest.ExitCode.OK

    run = only_run(mlflow, uri, "mini-gpu")
    assert run.info.status == "FAILED"  # no CUDA here: the run documents a skip, not a pass
    assert run.data.tags["verdict"] == "preflight skipped"
    assert len(run.data.params["spec.purpose"]) == PARAM_VALUE_LIMIT
    assert run.data.params["spec.purpose"].endswith("...")
    assert run.info.artifact_uri.startswith((pytester.path / "store" / "mlruns").as_uri())
    assert (pytester.path / "store" / "mlruns").is_dir()


@pytest.mark.slow
@needs_mlflow
def test_a_store_that_fails_at_the_end_costs_neither_the_bundle_nor_the_exit_status(
    mini: MiniProject, pytester: pytest.Pytester
) -> None:
    blocker = pytester.path / "stores"
    # The store's folder turns into a file once the phases are done: MLflow cannot write there.
    (mini.path / "conftest.py").write_text(
        "import pathlib\n\n\ndef pytest_sessionfinish():\n"
        f"    pathlib.Path({str(blocker)!r}).write_text('')\n"
    )
    mini.commit("a store that breaks")
    uri = f"file:{blocker / 'mlruns'}"
    result = mini.run("--milestone", "mini-gpu", "--mlflow-uri", uri)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"tunix-rt: mini-gpu_v1 not logged to MLflow {uri}: *; "
            "its bundle is complete in submission_runs/mini-gpu_v1/"
        ]
    )
    assert verify_bundle(mini.bundle("mini-gpu_v1")) == []
