"""Optional MLflow tracking: once the session is over, each run's spec, metrics, verdicts and bundle
go to the store named by ``--mlflow-uri``."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from harness.evidence import bundle
from harness.evidence.measurements import measure_bundle
from harness.evidence.redact import redact
from harness.phases.rehearsal import REHEARSAL_SUFFIX
from harness.record.failures import Cause
from harness.record.outcomes import describe
from harness.spec.milestones import FreezeMilestone, Milestone

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from harness.plugin.session import MilestoneSession
    from harness.record.run import MilestoneRun

NEEDS_EXTRA = "--mlflow-uri: needs the [mlflow] extra (pip install 'tunix-rt[mlflow]')"
# Telemetry off keeps the promise that nothing leaves the machine; MLflow 3 keeps file stores
# behind a switch, and a user who typed a file: URI has chosen one.
MLFLOW_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}
PARAM_VALUE_LIMIT = 6000  # MLflow 3 refuses longer param values
STEP_METRICS = ("loss", "lr", "grad_norm", "tokens_per_s")
CATEGORY_METRICS = ("accuracy", "format_compliance")
UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w./ -]")  # what MLflow accepts in keys on every OS


def tracking_uri(config: pytest.Config) -> str | None:
    """The ``--mlflow-uri`` given, checked before any run starts; None without one."""
    uri: str | None = config.option.mlflow_uri
    if uri is None:
        return None
    needed = ["mlflow", *(["sqlalchemy", "alembic"] if uri.startswith("sqlite:") else [])]
    if any(find_spec(name) is None for name in needed):
        raise pytest.UsageError(NEEDS_EXTRA)
    store = local_store(uri)
    if store is not None:
        folder = next(path for path in store.absolute().parents if path.exists())
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise pytest.UsageError(
                f"--mlflow-uri {uri}: cannot create the store {store}: "
                f"{folder} is not a writable folder"
            )
    return uri


def local_store(uri: str) -> Path | None:
    """The folder of a ``file:`` store or the database of a ``sqlite:`` one; None for a server."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "sqlite":
        return Path(parsed.path.removeprefix("/"))  # sqlite:///relative.db, sqlite:////absolute.db
    return None


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a sqlite database, else the store decides."""
    store = local_store(uri)
    if store is None or not uri.startswith("sqlite:"):
        return None
    return (store.resolve().parent / "mlruns").as_uri()


def experiment_name(milestone: Milestone | FreezeMilestone) -> str:
    """One experiment per bundle series: ``smoke`` and ``smoke-rehearsal`` are kept apart."""
    return milestone.id + (REHEARSAL_SUFFIX if milestone.rehearsal else "")


def key(text: str) -> str:
    """``text`` redacted and made a valid MLflow param, tag or metric name."""
    return UNSAFE_NAME_CHARACTERS.sub("_", redact(text))


def _flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {
            k: v
            for name, item in value.items()
            for k, v in _flatten(f"{prefix}.{name}", item).items()
        }
    return {prefix: value if isinstance(value, str) else json.dumps(value)}


def run_params(milestone: Milestone | FreezeMilestone) -> dict[str, str]:
    """The spec and training config as params like ``training.batch_size``, redacted, cut to fit."""
    flat = _flatten("spec", milestone.spec.model_dump(mode="json"))
    if isinstance(milestone, Milestone):
        flat |= _flatten("training", milestone.training.model_dump(mode="json"))
    params = {key(name): redact(value) for name, value in flat.items()}
    return {
        name: value if len(value) <= PARAM_VALUE_LIMIT else value[: PARAM_VALUE_LIMIT - 3] + "..."
        for name, value in params.items()
    }


def run_tags(manifest: dict[str, Any], bundle_path: str) -> dict[str, str]:
    """Identity and outcome, from the run's manifest: run id, commit, verdict, rehearsal, phases."""
    tags = {
        "milestone": manifest["milestone"],
        "run_id": manifest["run_id"],
        "bundle": bundle_path,
        "commit": manifest["commit"],
        "verdict": manifest["verdict"],
        "rehearsal": json.dumps(manifest["rehearsal"]),
    }
    tags |= {f"phase.{phase}": outcome["status"] for phase, outcome in manifest["phases"].items()}
    return {key(name): redact(str(value)) for name, value in tags.items()}


def run_status(manifest: dict[str, Any]) -> str:
    """MLflow's run status: FINISHED for a passed verdict, KILLED if interrupted, else FAILED."""
    if any(outcome["cause"] == Cause.INTERRUPTED for outcome in manifest["phases"].values()):
        return "KILLED"
    return "FINISHED" if manifest["verdict"] == "passed" else "FAILED"


def _read(path: Path) -> dict[str, Any]:
    return bundle.read_json(path) if path.is_file() else {}


def run_metrics(run_dir: Path) -> list[tuple[str, float, int]]:
    """(name, value, step) from the bundle: the criteria metrics, each step, each eval category."""
    found = [(name, value, 0) for name, value in measure_bundle(run_dir).items()]
    for record in _read(run_dir / bundle.TRAINING_METRICS).get("per_step", []):
        # Non-finite values are spelled "nan" or "inf" in the JSON; float() reads them back.
        found += [
            (name, float(record[name]), int(record["step"]))
            for name in STEP_METRICS
            if name in record
        ]
    for category, scores in (
        _read(run_dir / bundle.EVALUATION_RESULTS).get("per_category", {}).items()
    ):
        found += [
            (key(f"eval.{category}.{name}"), float(scores[name]), 0) for name in CATEGORY_METRICS
        ]
    return found


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def log_run(client: MlflowClient, run: MilestoneRun, uri: str) -> str:
    """Log one finished run as an MLflow run and return its MLflow id."""
    from mlflow.entities import Metric, Param

    name = experiment_name(run.milestone)
    found = client.get_experiment_by_name(name)
    experiment_id = (
        found.experiment_id
        if found
        else client.create_experiment(name, artifact_location=artifact_location(uri))
    )
    # Outcomes come from the manifest: under xdist the phases ran in a worker, not in this process.
    manifest = bundle.read_json(run.run_dir / bundle.RUN_MANIFEST)
    tags = run_tags(manifest, str(run.run_dir.relative_to(run.root)))
    created = client.create_run(
        experiment_id, start_time=_ms(manifest["started_at"]), tags=tags, run_name=run.run_id
    )
    mlflow_id: str = created.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        mlflow_id,
        metrics=[Metric(name, value, now, step) for name, value, step in run_metrics(run.run_dir)],
        params=[Param(name, value) for name, value in run_params(run.milestone).items()],
    )
    # The bundle was redacted as it was written; copied byte for byte, SHA256SUMS still holds.
    client.log_artifacts(mlflow_id, str(run.run_dir))
    # Terminated last: a run whose logging was cut short stays RUNNING in MLflow.
    client.set_terminated(
        mlflow_id, status=run_status(manifest), end_time=_ms(manifest["finished_at"])
    )
    return mlflow_id


@contextmanager
def _mlflow_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in MLFLOW_ENVIRONMENT}
    os.environ.update(MLFLOW_ENVIRONMENT)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class MlflowTracker:
    """Logs every run of the session to MLflow once pytest is done and the bundles are final."""

    def __init__(self, session: MilestoneSession, uri: str) -> None:
        self.session = session
        self.uri = uri

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # The session writes the report and SHA256SUMS in pytest_sessionfinish, before this hook.
        with _mlflow_environment():
            for run in self.session.runs.values():
                self.log(config, run)

    def log(self, config: pytest.Config, run: MilestoneRun) -> None:
        """Log ``run``; a failure costs neither the bundle nor the exit status, and says so."""
        try:
            from mlflow import MlflowClient

            mlflow_id = log_run(MlflowClient(tracking_uri=self.uri), run, self.uri)
        except Exception as error:  # whatever the store did, the bundle on disk is complete
            where = run.run_dir.relative_to(run.root)
            _say(
                config,
                f"tunix-rt: {run.run_id} not logged to MLflow {self.uri}: {describe(error)}; "
                f"its bundle is complete in {where}/",
                red=True,
            )
            return
        _say(
            config,
            f"tunix-rt: {run.run_id} logged to MLflow {self.uri} "
            f"(experiment {experiment_name(run.milestone)}, run {mlflow_id})",
        )


def _say(config: pytest.Config, line: str, **markup: bool) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(redact(line), file=sys.stderr)
    else:
        reporter.write_line(redact(line), **markup)
