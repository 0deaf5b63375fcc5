"""The milestone session: one object per pytest session holding every run, registered as a plugin.
Its hooks are thin: run folders, outputs, collection, interrupts and ``--lf`` have modules of
their own."""

from __future__ import annotations

import sys
from collections.abc import Generator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from harness.evidence import bundle, journal
from harness.evidence.documents import write_documents
from harness.evidence.verify import write_checksums
from harness.phases.rehearsal import rehearse
from harness.plugin import collection, runs
from harness.plugin.distribution import (
    WORKER_INPUT_KEY,
    is_controller,
    is_worker,
    milestone_scheduling,
    param_of,
)
from harness.plugin.hosts import ProcessPlace, join, remove_scratch, share_runs
from harness.plugin.interrupts import Interrupts
from harness.plugin.last_failed import WholeMilestoneRerun
from harness.plugin.outputs import allowed_outputs
from harness.plugin.project import registry, runs_root
from harness.plugin.report import (
    ReportPlugin,
    copy_report,
    move_report,
    place_report,
    redact_report,
)
from harness.plugin.resources import DEFAULT_INTERVAL_S, PhaseResources, sampling_interval
from harness.plugin.startup import (
    baseline_for,
    reevaluation_source,
    refuse_golden_update,
    refuse_snapshot_update,
    resumption_source,
)
from harness.record.failures import Cause, PhaseBlocked, classify, has_traceback, show_in_one_line
from harness.record.measurements import Baseline
from harness.record.outcomes import PhaseOutcome, Status, describe
from harness.record.resumption import Resumption
from harness.record.run import MilestoneRun, RunOptions, RunRecord
from harness.spec.milestones import FreezeMilestone, Milestone
from harness.spec.phase_order import EVIDENCE
from harness.spec.yaml_files import SpecError


class MilestoneSession:
    """Loads the selected milestones, opens their run folders and records every phase outcome."""

    def __init__(
        self,
        config: pytest.Config,
        milestones: list[Milestone | FreezeMilestone],
        root: Path,
        runs_root: Path,
        resources_interval_s: float = DEFAULT_INTERVAL_S,
        place: ProcessPlace = ProcessPlace(),
    ) -> None:
        self.config = config
        self.milestones = milestones
        self.root = root
        self.runs_root = runs_root
        self.runs: dict[str, MilestoneRun] = {}
        self.locks: dict[str, FileLock] = {}
        self.unselected: list[Path] = []
        self.baselines: dict[str, Baseline | None] = {}
        self.reevaluates: Path | None = None
        self.interrupts = Interrupts()
        self.last_failed = WholeMilestoneRerun(self.runs)
        self.resources = PhaseResources(resources_interval_s)
        self.place = place
        self.primary_dirs: dict[str, Path] = {}
        """In a non-zero process of a run of several: process 0's folder of each run."""
        self.scratch: list[Path] = []
        """In a run of several processes: the non-zero processes' folders for their own records."""

    @classmethod
    def from_config(cls, config: pytest.Config) -> MilestoneSession:
        """The selected milestones, loaded and checked with the options that bear on them."""
        root = config.rootpath.resolve()
        place = join(config)  # first: before anything could start a jax backend
        try:
            milestones = [registry(config).load(mid) for mid in dict.fromkeys(config.option.milestones)]
        except SpecError as error:
            raise pytest.UsageError(f"--milestone: {error}") from None
        if config.option.rehearse:
            milestones = [rehearse(m) if isinstance(m, Milestone) else m for m in milestones]
        interval = sampling_interval(config)
        session = cls(config, milestones, root, runs_root(config), interval, place)
        session.baselines = {m.id: baseline_for(config, m, root) for m in milestones}
        session.reevaluates = reevaluation_source(config, milestones, root)
        if config.option.update_goldens:
            refuse_golden_update(config, root)
        if _updates_snapshots(config):
            refuse_snapshot_update(config, milestones)
        return session

    def register(self) -> None:
        """Register the session and the plugins it owns."""
        manager = self.config.pluginmanager
        manager.register(self, "tunix-rt-session")
        manager.register(self.interrupts, "tunix-rt-interrupts")
        manager.register(self.last_failed, "tunix-rt-last-failed")

    def open_runs(self) -> None:
        """Give every milestone its run folder (an xdist worker takes the ones its controller
        opened) and fix each run's options."""
        if is_worker(self.config):
            records = self._worker_records()
        else:
            records = self._allocate() if self.place.primary else {}
            if self.place.count > 1:
                shared = share_runs(self.milestones, self.runs_root, records, self.place)
                records, self.primary_dirs, self.scratch = (
                    shared.records, shared.primary_dirs, shared.scratch
                )
        resumes = self._resumption(records)
        report = place_report(self.config, next(iter(records.values()))[0]) if records else None
        updates = {
            "update_goldens": bool(self.config.option.update_goldens),
            "update_snapshots": _updates_snapshots(self.config),
        }
        # On a disk the hosts share, each sees the others write their folders: outputs of the run.
        run_dirs = [run_dir for run_dir, _ in records.values()]
        run_dirs += [*self.primary_dirs.values(), *self.scratch]
        allowed = allowed_outputs(
            self.root, self.runs_root, self.milestones, run_dirs, report=report, **updates
        )
        for milestone in self.milestones:
            run_dir, record = records[milestone.id]
            options = RunOptions(
                self.progress,
                allowed,
                self.baselines.get(milestone.id),
                reevaluates=self.reevaluates,
                resumes=resumes,
                primary_run_dir=self.primary_dirs.get(milestone.id),
                **updates,
            )
            self.runs[milestone.id] = MilestoneRun(milestone, self.root, run_dir, options, record)
        if report is not None:
            self.config.pluginmanager.register(ReportPlugin(self), "tunix-rt-report")

    def _resumption(self, records: dict[str, tuple[Path, RunRecord]]) -> Resumption | None:
        """What --resume goes on from, checked after allocation (which marks a killed session's
        bundle interrupted); a refusal removes the folders this session opened."""
        try:
            return resumption_source(self.config, self.milestones, self.root)
        except pytest.UsageError:
            if not is_worker(self.config):
                for run_dir, _ in records.values():
                    runs.remove_unused(run_dir)
            raise

    def _allocate(self) -> dict[str, tuple[Path, RunRecord]]:
        """Lock each milestone's series and allocate a fresh folder; a symlink anywhere on the way
        stops the session before anything is written."""
        names = [runs.series(m) for m in self.milestones]
        runs_dir = str(self.config.getini("runs_dir"))
        if refused := runs.symlink_refusal(self.root, runs_dir, self.runs_root, names):
            raise pytest.UsageError(refused)
        self.runs_root.mkdir(parents=True, exist_ok=True)
        opened = {}
        for milestone, name in zip(self.milestones, names, strict=True):
            self.locks[milestone.id] = runs.hold_lock(self.runs_root, name)
            opened[milestone.id] = runs.allocate_run(self.runs_root, name)
        return opened

    def _worker_records(self) -> dict[str, tuple[Path, RunRecord]]:
        given = self.config.workerinput[WORKER_INPUT_KEY]
        return {
            mid: (Path(run["run_dir"]), RunRecord(started_at=run["started_at"], follows=run["follows"]))
            for mid, run in given.items()
        }

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: each worker is told the run folders this controller opened and holds locked."""
        node.workerinput[WORKER_INPUT_KEY] = {
            milestone_id: {
                "run_dir": str(run.run_dir),
                "started_at": run.record.started_at,
                "follows": run.record.follows,
            }
            for milestone_id, run in self.runs.items()
        }

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return milestone_scheduling(config, log, set(self.runs))

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
        phase, milestone_id = collection.phase_of(item), collection.milestone_of(item)
        if phase is None or milestone_id not in self.runs:
            return None
        return phase, self.runs[milestone_id]

    def pytest_report_header(self) -> list[str]:
        lines = []
        if self.place.count > 1:
            writer = "writes the bundles" if self.place.primary else "writes no evidence"
            lines.append(f"tunix-rt: jax {self.place.describe()}, {writer}")
        for m in self.milestones:
            if m.id not in self.runs:
                continue
            what = (
                f"{m.spec.backend}, {m.spec.hardware.label}, seed {m.training.seed}"
                if isinstance(m, Milestone)
                else f"freeze of {m.spec.source}"
            )
            where = self.primary_dirs.get(m.id, self.runs[m.id].run_dir).relative_to(self.root)
            lines.append(f"tunix-rt: milestone {m.id} ({what}), bundle {where}")
        return lines

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        collection.parametrize(metafunc, self.milestones)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        idle = collection.idle_items(items, {m.id for m in self.milestones})
        if idle:
            self.config.hook.pytest_deselected(items=idle)
            items[:] = [item for item in items if item not in idle]
        collection.sort_phases(items, self.milestones)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.drop_unselected({collection.milestone_of(item) for item in session.items})

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
            move_report(self.config, next(iter(self.runs.values())).run_dir / bundle.REPORT)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        found = self.run_for(item)
        if found is None:
            return
        phase, run = found
        journal.begin_phase(run, phase)
        self.resources.begin(run, phase)
        blocked = run.blocker(phase)
        if blocked is not None:
            raise PhaseBlocked(*blocked)
        if phase == EVIDENCE and not self.place.primary:
            why = f"{self.place.describe()} writes no evidence: process 0 verifies the bundle"
            raise PhaseBlocked(Cause.SKIPPED, why)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """A phase ended: record its outcome, keep its traceback, journal it and render the
        documents; its report shows it in one line."""
        report = yield
        found = self.run_for(item)
        if found is None or call.when == "teardown" or (call.when == "setup" and report.passed):
            return report
        phase, run = found
        self.resources.end(run)
        outcome = _outcome(phase, report, call)
        kept = None
        if report.failed and has_traceback(call.excinfo):
            kept = run.run_dir / bundle.TRACEBACKS_DIR / f"{phase}.txt"
            bundle.write_text(kept, report.longreprtext + "\n")
        run.record.add_outcome(outcome)
        journal.end_phase(run, outcome)
        write_documents(run)
        show_in_one_line(report, outcome.reason, kept and kept.relative_to(run.root), self.config)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self) -> None:
        redact_report(self.config)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        self.close_runs()
        self.last_failed.mark_failed(self.config)
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
                    runs.remove_unused(folder)
                for lock in self.locks.values():
                    lock.release()

    def owned_runs(self) -> list[MilestoneRun]:
        """The runs whose documents this process writes: under xdist, a worker writes those it
        ran phases of, and the controller those no worker started."""
        opened = list(self.runs.values())
        if is_worker(self.config):
            return [run for run in opened if run.record.outcomes or run.in_progress]
        if is_controller(self.config):
            return [run for run in opened if not (run.run_dir / bundle.RUN_MANIFEST).is_file()]
        return opened

    def close_runs(self) -> None:
        """Record a phase cut short as interrupted, and render every run's documents once more."""
        for run in self.owned_runs():
            self.resources.end(run)
            phase = run.in_progress.name if run.in_progress else None
            if phase is not None and phase not in run.record.outcomes:
                reason = self.interrupts.reason
                cut_short = PhaseOutcome(phase, Status.FAILED, Cause.INTERRUPTED, reason, 0.0)
                run.record.add_outcome(cut_short)
                journal.end_phase(run, cut_short)
            run.record.session_finished = True
            write_documents(run)
        self.resources.close()

    def pytest_unconfigure(self) -> None:
        """A non-zero process of a run of several leaves nothing of its own records behind."""
        if self.primary_dirs:
            remove_scratch([run.run_dir for run in self.runs.values()])

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("tunix-rt evidence")
        for milestone_id, run in self.runs.items():
            if primary := self.primary_dirs.get(milestone_id):
                where = primary.relative_to(self.root)
                terminalreporter.write_line(
                    f"{primary.name}: {self.place.describe()} wrote no evidence; process 0 writes "
                    f"{where}/ (this process's shards of its checkpoint too)"
                )
                continue
            # Under xdist the phases ran in a worker: its manifest has the verdict.
            manifest = bundle.read_manifest(run.run_dir) or {}
            verdict = manifest.get("verdict", run.verdict)
            where = run.run_dir.relative_to(self.root)
            terminalreporter.write_line(f"{run.run_id}: {verdict} -> {where}/")


def _updates_snapshots(config: pytest.Config) -> bool:
    """Whether syrupy was asked to rewrite snapshots (its option exists while syrupy is loaded)."""
    return bool(getattr(config.option, "update_snapshots", False))


def _outcome(phase: str, report: pytest.TestReport, call: pytest.CallInfo[None]) -> PhaseOutcome:
    error = call.excinfo.value if call.excinfo is not None else None
    if report.passed:
        return PhaseOutcome(phase, Status.PASSED, Cause.COMPLETED, "completed", report.duration)
    assert error is not None
    if report.skipped:
        cause = error.cause if isinstance(error, PhaseBlocked) else Cause.SKIPPED
        return PhaseOutcome(phase, Status.SKIPPED, cause, describe(error), report.duration)
    return PhaseOutcome(phase, Status.FAILED, classify(error), describe(error), report.duration)
