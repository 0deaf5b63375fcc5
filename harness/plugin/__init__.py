"""The tunix-rt pytest plugin: options, markers and fixtures; the milestone session does the rest."""

from __future__ import annotations

import importlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("harness.plugin.phase_tests")

from harness.phases.lock import frozen_lock_extension, locks_in_scope  # noqa: E402
from harness.plugin.plan import milestone_lines, plan_lines  # noqa: E402
from harness.plugin.project import registry, runs_root  # noqa: E402
from harness.plugin.session import MilestoneSession  # noqa: E402
from harness.plugin.tracking import MlflowTracker, tracking_uri  # noqa: E402
from harness.record.run import MilestoneRun  # noqa: E402
from trainers import Trainer, load_trainer  # noqa: E402

session_key = pytest.StashKey[MilestoneSession]()

MARKERS = (
    "cpu: a milestone phase that runs on a CPU.",
    "cuda: a milestone phase that needs a CUDA GPU (detected with torch.cuda or jax.devices).",
    "tpu: a milestone phase that needs TPU devices (detected with jax.devices('tpu')).",
    "windows: a milestone phase that needs native Windows (detected with sys.platform).",
    "slow: a test that takes more than a few seconds.",
    "phase(name): an ordered milestone phase (preflight, guardrails-before, train, evaluate, build, "
    "validate, lock, guardrails-after, evidence, summary).",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tunix-rt", "tunix-rt milestone runs")
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
        "--update-goldens",
        dest="update_goldens",
        action="store_true",
        help="Record this run's per-step losses as the milestone's golden curve instead of comparing "
        "with it. Refused under xdist or on a dirty tree.",
    )
    group.addoption(
        "--rehearse",
        dest="rehearse",
        action="store_true",
        help="Rehearse the milestones on this CPU: tiny model, a few steps, the same phases and "
        "guardrails; bundles go to <id>-rehearsal_vN/ and criteria are recorded as not judged.",
    )
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
    parser.addini(
        "runs_dir",
        help="Folder, inside the project, that receives the evidence bundles <id>_v<N>/.",
        default="submission_runs",
    )
    parser.addini(
        "milestone_paths",
        type="paths",
        help="Folders, inside the project, holding the milestone specs <id>.yaml "
        "(default: configs/milestones).",
        default=[],
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if not config.option.milestones:
        return
    mlflow_uri = tracking_uri(config)
    session = MilestoneSession.from_config(config)
    if not config.option.collectonly:
        session.open_runs()
    config.stash[session_key] = session
    config.pluginmanager.register(session, "tunix-rt-session")
    if mlflow_uri and not hasattr(config, "workerinput"):
        config.pluginmanager.register(MlflowTracker(session, mlflow_uri), "tunix-rt-mlflow")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --milestone ID` with no paths: collect the phases from the milestones' specs.
        config.args = [str(m.spec_path) for m in session.milestones]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """A selected milestone's spec file collects the phase tests, parametrized for it."""
    session = parent.config.stash.get(session_key, None)
    if session is None or not any(file_path == m.spec_path for m in session.milestones):
        return None
    return MilestonePhases.from_parent(parent, path=file_path)


class MilestonePhases(pytest.Module):
    """The phase tests shipped with the plugin, collected under a milestone's spec file."""

    def _getobj(self) -> object:
        return importlib.import_module("harness.plugin.phase_tests")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.option.show_milestones:
        return None
    config._do_configure()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        for line in milestone_lines(registry(config), runs_root(config)):
            reporter.write_line(line)
    finally:
        config._ensure_unconfigure()
    return 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Phase reports carry the milestone, run folder, commit and criteria verdicts as junit properties."""
    report = yield
    session = item.config.stash.get(session_key, None)
    found = session.run_for(item) if session else None
    if found is not None and (call.when == "call" or (call.when == "setup" and not report.passed)):
        phase, run = found
        # junitxml reads the properties from the item when its teardown is reported.
        item.user_properties += [
            ("milestone", run.milestone.id),
            ("phase", phase),
            ("run_dir", str(run.run_dir.relative_to(run.root))),
            ("commit", run.env.get("commit", "not recorded")),
        ]
        item.user_properties += [(f"criterion {j.metric}", j.line()) for j in run.judgements.get(phase, [])]
    return report


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """With --collect-only, the plan: phases, what each needs, what would be skipped here and why."""
    if not config.option.collectonly or session_key not in config.stash:
        return []
    return [line for m in config.stash[session_key].milestones for line in plan_lines(m)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "milestone_id" in metafunc.fixturenames and session_key not in metafunc.config.stash:
        known = ", ".join(registry(metafunc.config).ids())
        reason = f"no --milestone given; known milestones: {known}"
        metafunc.parametrize("milestone_id", [pytest.param(None, marks=pytest.mark.skip(reason=reason))])


@pytest.fixture(scope="session")
def milestone_run(request: pytest.FixtureRequest, milestone_id: str) -> MilestoneRun:
    """The run of the milestone this phase belongs to: its spec, folder and what earlier phases left."""
    return request.config.stash[session_key].runs[milestone_id]


@pytest.fixture(scope="session")
def trainer(milestone_run: MilestoneRun) -> Trainer:
    """The milestone's backend, its framework imported only now."""
    return load_trainer(milestone_run.milestone.spec.backend)


@pytest.fixture
def frozen_lock(request: pytest.FixtureRequest, snapshot: Any) -> Any:
    """The syrupy snapshot of frozen artifacts, kept in ``configs/frozen/<freeze id>.json``; syrupy
    sees the locks of the selected milestones only."""
    runs = request.config.stash[session_key].runs.values()
    extension = frozen_lock_extension(
        request.config.rootpath.resolve(), locks_in_scope([run.milestone for run in runs])
    )
    return snapshot.use_extension(extension)
