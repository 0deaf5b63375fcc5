"""The plugin's command-line options, ini values and markers, in one named group."""

from __future__ import annotations

from typing import Any

import pytest

MARKERS = (
    "cpu: a milestone phase that runs on a CPU.",
    "cuda: a milestone phase that needs a CUDA GPU (detected with torch.cuda or jax.devices).",
    "tpu: a milestone phase that needs TPU devices (detected with jax.devices('tpu')).",
    "windows: a milestone phase that needs native Windows (detected with sys.platform).",
    "slow: a test that takes more than a few seconds.",
    "phase(name): an ordered milestone phase (preflight, guardrails-before, evaluate-base, train, "
    "evaluate, build, validate, lock, guardrails-after, evidence, summary).",
)


def add_options(parser: pytest.Parser) -> None:
    """Register every option and ini value of the plugin."""
    group = parser.getgroup("tunix-rt", "tunix-rt milestone runs")
    _add_run_options(group)
    _add_listing_and_tracking_options(group)
    _add_ini_values(parser)


def _add_run_options(group: Any) -> None:
    """What a session runs and how it judges it."""
    group.addoption(
        "--milestone",
        action="append",
        dest="milestones",
        default=[],
        metavar="ID",
        help="Run the phases of the milestone configs/milestones/ID.yaml and write its evidence "
        "bundle to submission_runs/ID_vN/.",
    )
    group.addoption(
        "--baseline",
        dest="baseline",
        default=None,
        metavar="PATH",
        help="Hold the run against an earlier bundle (e.g. submission_runs/smoke_v1): its integrity is "
        "verified, a delta table goes into the summary, and 'baseline' in criteria resolves to it.",
    )
    group.addoption(
        "--reevaluate",
        dest="reevaluate",
        default=None,
        metavar="PATH",
        help="Evaluate anew the checkpoint of an earlier bundle of the milestone (e.g. "
        "submission_runs/smoke_v1, verified first) instead of training: a new bundle that names "
        "its source, for a scorer fix that needs no retraining. The earlier bundle is not touched.",
    )
    group.addoption(
        "--resume",
        dest="resume",
        default=None,
        metavar="PATH",
        help="Go on with the training of an earlier bundle of the milestone that ended interrupted "
        "or over budget (e.g. submission_runs/m44_v1), from its last complete checkpoint, in a new "
        "bundle; refused if its commit, config, data or dependencies differ. The earlier bundle is "
        "not touched.",
    )
    group.addoption(
        "--update-goldens",
        dest="update_goldens",
        action="store_true",
        help="Record this run's per-step losses as the milestone's golden curve instead of comparing "
        "with it. Refused under xdist or on a dirty tree.",
    )
    group.addoption(
        "--jax-distributed",
        dest="jax_distributed",
        action="store_true",
        help="Run one milestone over several jax processes, the same command on every host of a "
        "TPU slice: jax.distributed.initialize() joins them (JAX_COORDINATOR_ADDRESS, "
        "TUNIX_RT_NUM_PROCESSES and TUNIX_RT_PROCESS_ID where no cluster is detected); process 0 "
        "writes the bundle, the others only their shards of the checkpoint.",
    )
    group.addoption(
        "--rehearse",
        dest="rehearse",
        action="store_true",
        help="Rehearse the milestones on this CPU: tiny model, a few steps, the same phases and "
        "guardrails; bundles go to <id>-rehearsal_vN/ and criteria are recorded as not judged.",
    )


def _add_listing_and_tracking_options(group: Any) -> None:
    """What a session shows instead of running, and where it logs its runs."""
    group.addoption(
        "--milestones",
        dest="show_milestones",
        action="store_true",
        help="List the known milestones with title, backend, hardware and the outcome of their "
        "latest bundle, then exit (like --markers).",
    )
    group.addoption(
        "--mlflow-uri",
        dest="mlflow_uri",
        default=None,
        metavar="URI",
        help="Once the session ends, log each run (spec as params, per-step metrics, verdicts as "
        "tags, the bundle as artifacts) to the MLflow store at URI, e.g. sqlite:///mlflow.db or "
        "file:./mlruns (keep it outside the project or git-ignored). Nothing leaves the machine "
        "unless URI names a server. Needs the [mlflow] extra.",
    )


def _add_ini_values(parser: pytest.Parser) -> None:
    """Where a project keeps its milestones and bundles."""
    parser.addini(
        "runs_dir",
        help="Folder, inside the project, that receives the evidence bundles <id>_v<N>/.",
        default="submission_runs",
    )
    parser.addini(
        "resources_interval",
        help="Seconds between two samples of memory and CPU (process, CUDA GPUs, jax devices) "
        "while a phase runs, appended to the bundle's resources.jsonl (default: 2).",
        default="2",  # DEFAULT_INTERVAL_S of harness.plugin.resources
    )
    parser.addini(
        "milestone_paths",
        type="paths",
        help="Folders, inside the project, holding the milestone specs <id>.yaml "
        "(default: configs/milestones).",
        default=[],
    )
