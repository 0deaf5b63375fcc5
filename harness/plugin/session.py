"""The milestone session: one object per pytest session holding every run, registered as a plugin."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from collections.abc import Generator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout

from harness.evidence import bundle, history, journal
from harness.evidence.baseline import Baseline
from harness.evidence.documents import write_documents
from harness.evidence.verify import write_checksums
from harness.phases.lock import LOCKS_DIR
from harness.phases.rehearsal import REHEARSAL_SUFFIX, rehearse
from harness.plugin.distribution import (
    WORKER_INPUT_KEY,
    is_controller,
    is_worker,
    milestone_scheduling,
    param_of,
)
from harness.plugin.project import registry, runs_root
from harness.plugin.report import ReportPlugin, copy_report, move_report, redact_report
from harness.plugin.startup import baseline_for, refuse_golden_update, refuse_snapshot_update
from harness.record.failures import Cause, PhaseBlocked, classify, has_traceback, show_in_one_line
from harness.record.outcomes import PhaseOutcome, Status, describe
from harness.record.run import MilestoneRun
from harness.spec.goldens import golden_path
from harness.spec.milestones import FreezeMilestone, Milestone, SpecError
from harness.spec.phase_order import phases_of


def phase_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("phase")
    return str(marker.args[0]) if marker else None


def milestone_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("milestone_id") if callspec else None


class MilestoneSession:
    """Loads the selected milestones, opens their run folders and records every phase outcome."""

    def __init__(
        self, config: pytest.Config, milestones: list[Milestone | FreezeMilestone], root: Path, runs_root: Path
    ) -> None:
        self.config = config
        self.milestones = milestones
        self.root = root
        self.runs_root = runs_root
        self.runs: dict[str, MilestoneRun] = {}
        self.locks: dict[str, FileLock] = {}
        self.unselected: list[Path] = []
        self.baselines: dict[str, Baseline | None] = {}
        self.interrupt_reason = "the session stopped during this phase"
        self.previous_sigterm: Any = None
        self.phase_nodeids: dict[str, set[str]] = {}
        self.failed_milestones: set[str] = set()

    @classmethod
    def from_config(cls, config: pytest.Config) -> MilestoneSession:
        root = config.rootpath.resolve()
        try:
            milestones = [registry(config).load(mid) for mid in dict.fromkeys(config.option.milestones)]
        except SpecError as error:
            raise pytest.UsageError(f"--milestone: {error}") from None
        if config.option.rehearse:
            milestones = [rehearse(m) if isinstance(m, Milestone) else m for m in milestones]
        session = cls(config, milestones, root, runs_root(config))
        session.baselines = {m.id: baseline_for(config, m, root) for m in milestones}
        if config.option.update_goldens:
            refuse_golden_update(config, root)
        if getattr(config.option, "update_snapshots", False):
            refuse_snapshot_update(config, milestones)
        return session

    def open_runs(self) -> None:
        """Give every milestone its run folder; an xdist worker takes the ones its controller opened."""
        if is_worker(self.config):
            for milestone in self.milestones:
                opened = self.config.workerinput[WORKER_INPUT_KEY][milestone.id]
                run = self._new_run(milestone, Path(opened["run_dir"]))
                run.started_at, run.follows = opened["started_at"], opened["follows"]
        else:
            self._allocate_runs()
        self._allow_outputs()

    def _allocate_runs(self) -> None:
        """Lock each milestone, note an earlier run that never finished, allocate a fresh folder;
        a symlink anywhere on the way stops the session before anything is written."""
        runs_dir, series = str(self.config.getini("runs_dir")), map(_series, self.milestones)
        if refused := history.symlink_refusal(self.root, runs_dir, self.runs_root, series):
            raise pytest.UsageError(refused)
        self.runs_root.mkdir(parents=True, exist_ok=True)
        for milestone in self.milestones:
            name = _series(milestone)
            self.locks[milestone.id] = _lock(self.runs_root, name)
            earlier = bundle.run_dirs(self.runs_root, name)
            run = self._new_run(milestone, bundle.allocate_run_dir(self.runs_root, name))
            if earlier:
                previous = earlier[-1]
                if not history.session_finished(previous):
                    history.mark_interrupted(previous, run.run_id, run.started_at)
                run.follows = previous.name

    def _new_run(self, milestone: Milestone | FreezeMilestone, run_dir: Path) -> MilestoneRun:
        run = MilestoneRun(milestone, self.root, run_dir, progress=self.progress)
        run.baseline = self.baselines.get(milestone.id)
        run.update_goldens = bool(self.config.option.update_goldens)
        run.update_snapshots = bool(getattr(self.config.option, "update_snapshots", False))
        self.runs[milestone.id] = run
        return run

    def _allow_outputs(self) -> None:
        """A session may write its own run folders and lock files, and nothing else; with
        --update-goldens also the golden curves it was asked to record. The HTML report goes
        into the first run's folder."""
        allowed = [run.run_dir for run in self.runs.values()]
        allowed += [history.lock_path(self.runs_root, _series(m)) for m in self.milestones]
        if self.config.option.update_goldens:
            allowed += [golden_path(self.root, m) for m in self.milestones if isinstance(m, Milestone)]
        if getattr(self.config.option, "update_snapshots", False):
            allowed += [self.runs_root / m.id for m in self.milestones] + [self.root / LOCKS_DIR / f"{m.id}.json" for m in self.milestones]
        for run in self.runs.values():
            run.allowed_outputs = allowed
        option = self.config.option
        if self.runs and getattr(option, "htmlpath", "missing") is None:
            option.htmlpath = str(self.first_run.run_dir / bundle.REPORT)
            option.self_contained_html = True
        if self.runs and getattr(option, "htmlpath", None):
            # The report is rewritten after each phase, so it and its assets folder (where
            # --html put them) are outputs of the run as well.
            report = Path(option.htmlpath).resolve()
            for run in self.runs.values():
                run.allowed_outputs = [*allowed, report, report.parent / "assets"]
            self.config.pluginmanager.register(ReportPlugin(self), "tunix-rt-report")

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: each worker is told the run folders this controller opened and holds locked."""
        node.workerinput[WORKER_INPUT_KEY] = {
            milestone_id: {"run_dir": str(run.run_dir), "started_at": run.started_at, "follows": run.follows}
            for milestone_id, run in self.runs.items()
        }

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return milestone_scheduling(config, log, set(self.runs))

    @property
    def first_run(self) -> MilestoneRun:
        return next(iter(self.runs.values()))

    def progress(self, message: str) -> None:
        """Show a line on the terminal even while pytest captures output; on stderr without one."""
        capture = self.config.pluginmanager.getplugin("capturemanager")
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            if reporter is None:
                # An xdist worker has no terminal reporter; its stderr still reaches the operator.
                print(message, file=sys.stderr, flush=True)
            else:
                reporter.write_line(message)

    def run_for(self, item: pytest.Item) -> tuple[str, MilestoneRun] | None:
        phase, milestone_id = phase_of(item), milestone_of(item)
        if phase is None or milestone_id not in self.runs:
            return None
        return phase, self.runs[milestone_id]

    def pytest_report_header(self) -> list[str]:
        lines = []
        for m in self.milestones:
            if m.id not in self.runs:
                continue
            what = (
                f"{m.spec.backend}, {m.spec.hardware.label}, seed {m.training.seed}"
                if isinstance(m, Milestone)
                else f"freeze of {m.spec.source}"
            )
            lines.append(f"tunix-rt: milestone {m.id} ({what}), bundle {self.runs[m.id].run_dir.relative_to(self.root)}")
        return lines

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "milestone_id" not in metafunc.fixturenames:
            return
        marker = metafunc.definition.get_closest_marker("phase")
        params = [
            pytest.param(m.id, id=m.id, marks=[getattr(pytest.mark, name) for name in m.spec.markers])
            for m in self.milestones
            if marker is None or marker.args[0] in phases_of(m.spec.kind)
        ]
        metafunc.parametrize("milestone_id", params, scope="session")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Phases run milestone by milestone, in phase order, whatever order they were collected in."""
        order = {m.id: (index, phases_of(m.spec.kind)) for index, m in enumerate(self.milestones)}

        def key(item: pytest.Item) -> tuple[int, int]:
            phase, milestone_id = phase_of(item), milestone_of(item)
            if phase is None or milestone_id not in order:
                return (-1, -1)
            index, phases = order[milestone_id]
            return index, phases.index(phase)

        # A phase that no selected milestone has (train for a freeze, say) has nothing to run, and
        # a phase collected twice (from a test module and a spec file) runs once.
        seen: set[tuple[str | None, str | None]] = set()
        idle = []
        for item in items:
            if "milestone_id" not in getattr(item, "fixturenames", ()):
                continue
            phase = (milestone_of(item), phase_of(item))
            if phase[0] not in order or phase in seen:
                idle.append(item)
            seen.add(phase)
        if idle:
            self.config.hook.pytest_deselected(items=idle)
            items[:] = [item for item in items if item not in idle]
        items.sort(key=key)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.drop_unselected({milestone_of(item) for item in session.items})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.drop_unselected({param_of(nodeid) for nodeid in ids})

    def drop_unselected(self, selected: set[str | None]) -> None:
        """A milestone none of whose phases is left to run (``--lf``, ``-k``) gets no bundle."""
        for milestone_id in [mid for mid in self.runs if mid not in selected]:
            self.unselected.append(self.runs.pop(milestone_id).run_dir)
            if milestone_id in self.locks:
                self.locks.pop(milestone_id).release()
        report = getattr(self.config.option, "htmlpath", None)
        if report and self.runs and Path(report).parent in self.unselected:
            # The report was placed in a run that is dropped: the next one holds it instead.
            move_report(self.config, self.first_run.run_dir / bundle.REPORT)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        found = self.run_for(item)
        if found is None:
            return
        phase, run = found
        run.current_phase = phase
        journal.begin_phase(run)
        blocked = run.blocker(phase)
        if blocked is not None:
            raise PhaseBlocked(*blocked)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        found = self.run_for(item)
        if found is None or call.when == "teardown" or (call.when == "setup" and report.passed):
            return report
        phase, run = found
        outcome = _outcome(phase, report, call)
        kept = None
        if report.failed and has_traceback(call.excinfo):
            kept = run.run_dir / bundle.TRACEBACKS_DIR / f"{phase}.txt"
            bundle.write_text(kept, report.longreprtext + "\n")
        run.record(outcome)
        journal.end_phase(run, outcome)
        run.current_phase = None
        write_documents(run)
        show_in_one_line(report, outcome.reason, kept and kept.relative_to(run.root), self.config)
        return report

    def pytest_sessionstart(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous_sigterm = signal.signal(signal.SIGTERM, _terminate)

    def pytest_unconfigure(self) -> None:
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupt_reason = describe(excinfo.value) or "KeyboardInterrupt (SIGINT)"

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        milestone_id = param_of(report.nodeid)
        if milestone_id in self.runs:
            self.phase_nodeids.setdefault(milestone_id, set()).add(report.nodeid)
            if report.failed:
                self.failed_milestones.add(milestone_id)
        redact_report(self.config)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        self.close_runs()
        self.rerun_whole_milestones()
        try:
            return (yield)
        finally:
            if not is_worker(self.config):
                # pytest-html writes its final report inside this hook: finish it once that is done.
                redact_report(self.config)
                copy_report(self.config, [run.run_dir for run in self.runs.values()])
                for run in self.runs.values():
                    write_checksums(run.run_dir)
                for folder in self.unselected:
                    _remove_unused(folder)
                for lock in self.locks.values():
                    lock.release()

    def rerun_whole_milestones(self) -> None:
        """For ``--lf``: a milestone with a failed phase counts as failed in every phase, so the
        rerun starts it over, in a new run folder, instead of running a phase without its
        predecessors."""
        last_failed = self.config.pluginmanager.get_plugin("lfplugin")
        if last_failed is None:
            return
        for milestone_id in self.failed_milestones:
            for nodeid in self.phase_nodeids[milestone_id]:
                last_failed.lastfailed[nodeid] = True

    def owned_runs(self) -> list[MilestoneRun]:
        """The runs whose documents this process writes: under xdist, a worker writes those it
        ran phases of, and the controller those no worker started."""
        runs = list(self.runs.values())
        if is_worker(self.config):
            return [run for run in runs if run.outcomes or run.current_phase]
        if is_controller(self.config):
            return [run for run in runs if not (run.run_dir / bundle.RUN_MANIFEST).is_file()]
        return runs

    def close_runs(self) -> None:
        """Record a phase cut short as interrupted, and render every run's documents once more."""
        for run in self.owned_runs():
            if run.current_phase and run.current_phase not in run.outcomes:
                cut_short = PhaseOutcome(run.current_phase, Status.FAILED, Cause.INTERRUPTED, self.interrupt_reason, 0.0)
                run.record(cut_short)
                journal.end_phase(run, cut_short)
            run.session_finished = True
            write_documents(run)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("tunix-rt evidence")
        for run in self.runs.values():
            # Under xdist the phases ran in a worker: its manifest has the verdict.
            manifest = history.read_manifest(run.run_dir) or {}
            verdict = manifest.get("verdict", run.verdict)
            terminalreporter.write_line(f"{run.run_id}: {verdict} -> {run.run_dir.relative_to(self.root)}/")


def _remove_unused(run_dir: Path) -> None:
    """Remove the folder of a run that ran nothing, holding at most the session's report."""
    if run_dir.is_dir() and {path.name for path in run_dir.iterdir()} <= {bundle.REPORT, "assets"}:
        shutil.rmtree(run_dir)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the session like Ctrl-C, so the phase in progress is recorded as interrupted."""
    raise KeyboardInterrupt("SIGTERM received")


def _series(milestone: Milestone | FreezeMilestone) -> str:
    """The name a milestone's run folders share: ``<id>`` or ``<id>-rehearsal``."""
    return milestone.id + (REHEARSAL_SUFFIX if milestone.rehearsal else "")


def _lock(runs_root: Path, milestone_id: str) -> FileLock:
    """Hold ``.<id>.lock`` for the session; the OS releases it if the process dies."""
    lock = FileLock(history.lock_path(runs_root, milestone_id))
    try:
        lock.acquire(timeout=history.LOCK_WAIT_S)  # another session may probe it for an instant
    except Timeout:
        raise pytest.UsageError(
            f"--milestone {milestone_id}: another session is running this milestone "
            f"(lock {lock.lock_file}); wait for it to finish"
        ) from None
    return lock


def _outcome(phase: str, report: pytest.TestReport, call: pytest.CallInfo[None]) -> PhaseOutcome:
    error = call.excinfo.value if call.excinfo is not None else None
    if report.passed:
        return PhaseOutcome(phase, Status.PASSED, Cause.COMPLETED, "completed", report.duration)
    assert error is not None
    if report.skipped:
        cause = error.cause if isinstance(error, PhaseBlocked) else Cause.SKIPPED
        return PhaseOutcome(phase, Status.SKIPPED, cause, describe(error), report.duration)
    return PhaseOutcome(phase, Status.FAILED, classify(error), describe(error), report.duration)
