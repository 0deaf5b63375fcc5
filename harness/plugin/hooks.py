"""The tunix-rt pytest plugin: options, markers and fixtures; the milestone session does the rest."""

from __future__ import annotations

import importlib
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("harness.plugin.phase_tests")

from harness.plugin.frozen_lock import frozen_lock_extension, locks_in_scope  # noqa: E402
from harness.plugin.options import MARKERS, add_options  # noqa: E402
from harness.plugin.plan import milestone_lines, plan_lines  # noqa: E402
from harness.plugin.project import registry, runs_root  # noqa: E402
from harness.plugin.session import MilestoneSession  # noqa: E402
from harness.plugin.tracking import MlflowTracker, tracking_uri  # noqa: E402
from harness.record.run import MilestoneRun  # noqa: E402
from harness.spec.milestones import Milestone  # noqa: E402
from trainers.backends import load_trainer  # noqa: E402
from trainers.protocol import Trainer  # noqa: E402

session_key = pytest.StashKey[MilestoneSession]()

def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if not config.option.milestones:
        return
    mlflow_uri = tracking_uri(config)
    session = MilestoneSession.from_config(config)
    if not any(isinstance(m, Milestone) and m.spec.backend == "jax" for m in session.milestones):
        # transformers imports jax whenever it is installed, for Flax models a torch run never
        # uses: 1.6 s and jax's memory in every process. Read once, when transformers loads.
        os.environ.setdefault("USE_FLAX", "0")
    if not config.option.collectonly:
        session.open_runs()
    config.stash[session_key] = session
    session.register()
    if mlflow_uri and not hasattr(config, "workerinput") and session.place.primary:
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
    """With --milestones, list the known milestones and exit, as --markers does for markers."""
    if not config.option.show_milestones:
        return None
    for line in milestone_lines(registry(config), runs_root(config)):
        print(line)
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
            ("commit", run.record.env.get("commit", "not recorded")),
        ]
        item.user_properties += [(f"criterion {j.metric}", j.line()) for j in run.record.judgements.get(phase, [])]
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
