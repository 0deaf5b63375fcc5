"""The pytest-html report of a milestone session: title, environment, phase outcomes, extras."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Generator, Iterable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from pytest_html import extras
from pytest_html.basereport import BaseReport
from pytest_metadata.plugin import metadata_key

from harness.evidence import bundle
from harness.evidence.redact import secret_values
from harness.evidence.verdict_html import STYLE, verdict_html
from harness.spec.phase_order import EVALUATE, PREFLIGHT, SUMMARY, TRAIN

if TYPE_CHECKING:
    from harness.record.evaluation import Prediction
    from harness.record.run import MilestoneRun
    from harness.spec.criteria import Judgement

SHOWN_PREDICTIONS = 20
# The environment table sits above the verdict in pytest-html's page: it holds the facts that
# tell where the run happened, no more (pytest-metadata's own are in env_snapshot.txt too).
ENVIRONMENT_SHOWN = ("commit", "dirty", "os", "devices", "torch", "jax", "gpu")
PYTEST_METADATA_KEYS = ("Python", "Platform", "Packages", "Plugins")
# What a phase's report carries to the process that writes the HTML (the xdist controller): user
# properties travel with the report.
PHASE_OUTCOME = "tunix-rt phase outcome"
ENVIRONMENT = "tunix-rt environment"
PHASE_OUTCOME_HEADER = '<th class="col-phase-outcome">Phase outcome</th>'


class SessionRuns(Protocol):
    """What the report reads of a milestone session: its pytest config, its runs, and the phase
    and run of a test item."""

    config: pytest.Config
    runs: dict[str, MilestoneRun]

    def run_for(self, item: pytest.Item) -> tuple[str, MilestoneRun] | None: ...


class ReportPlugin:
    """pytest-html hooks that render what the session's runs collected, phase by phase."""

    def __init__(self, session: SessionRuns) -> None:
        self.session = session
        self.report_data: Any = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        # The report data object is kept to refresh its environment table after pre-flight.
        self.report_data = report
        runs = ", ".join(f"{run.milestone.id} ({run.run_id})" for run in self.session.runs.values())
        report.title = f"tunix-rt milestone report: {runs}"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        """The first screen: each run's verdict, numbers, criteria, comparison and plots, from its
        bundle as the session closed it (under xdist the phases ran in a worker)."""
        prefix.extend([STYLE, *(verdict_html(run.run_dir) for run in self.session.runs.values())])

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.append(PHASE_OUTCOME_HEADER)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        text = str(dict(report.user_properties).get(PHASE_OUTCOME, ""))
        cells.append(f'<td class="col-phase-outcome">{escape(text)}</td>')

    # The report is made where the phase ran (an xdist worker, or this process) and shown where
    # the HTML is written (the controller, or this process): what it shows travels on it.
    # Outermost, so that the session has recorded the phase's outcome when the extras are made.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        found = self.session.run_for(item)
        # A phase blocked in setup has no call report, so its extras go on the setup report
        # (pytest-html merges the ``extras`` fixture into call reports only).
        if found is None or report.when == "teardown" or (report.when == "setup" and report.passed):
            return report
        phase, run = found
        shown = phase_extras(phase, run, self.report_dir())
        # pytest-html's documented way to add extras to a report.
        report.extras = [*getattr(report, "extras", []), *shown]  # type: ignore[attr-defined]
        report.user_properties.append((PHASE_OUTCOME, outcome_line(run, phase)))
        if phase == PREFLIGHT and run.record.env:
            report.user_properties.append((ENVIRONMENT, environment(run)))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        facts = dict(report.user_properties).get(ENVIRONMENT)
        if isinstance(facts, dict):
            self.show_environment(facts)

    def report_dir(self) -> Path:
        return Path(str(self.session.config.option.htmlpath)).resolve().parent

    def show_environment(self, facts: dict[str, str]) -> None:
        """Make the environment table, above the verdict, a few lines: the run's key facts (the
        whole snapshot is env_snapshot.txt) and what the user added with --metadata."""
        config = self.session.config
        given = config.stash.get(metadata_key, {})
        added = {key: value for key, value in given.items() if key not in PYTEST_METADATA_KEYS}
        metadata = {**facts, **added}
        config.stash[metadata_key] = metadata
        if self.report_data is not None:
            self.report_data.set_data("environment", metadata)


def place_report(config: pytest.Config, run_dir: Path) -> Path | None:
    """Where the session's HTML report goes: where --html says, else (pytest-html loaded) a
    self-contained ``report.html`` in ``run_dir``; None without pytest-html."""
    option = config.option
    if getattr(option, "htmlpath", "missing") is None:
        option.htmlpath = str(run_dir / bundle.REPORT)
        option.self_contained_html = True
    path = getattr(option, "htmlpath", None)
    if not path:
        return None
    if not config.getini("generate_report_on_test"):
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                "tunix-rt: set generate_report_on_test = true in the pytest ini, so that the "
                "report is rewritten after every phase and a killed session still leaves one"
            ),
            stacklevel=2,
        )
    return Path(path).resolve()


def report_file(config: pytest.Config) -> Path | None:
    """The session's HTML report, once pytest-html has written it."""
    report = Path(str(getattr(config.option, "htmlpath", "") or ""))
    return report if report.is_file() else None


def redact_report(config: pytest.Config) -> None:
    """pytest-html writes the report itself; secrets are taken out of it after each write."""
    report = report_file(config)
    if report is not None and secret_values():
        bundle.write_text(report, report.read_text(encoding="utf-8"))


def copy_report(config: pytest.Config, run_dirs: Iterable[Path]) -> None:
    """One report per session, copied into every run folder that does not already hold it."""
    report = report_file(config)
    if report is None:
        return
    for run_dir in run_dirs:
        if run_dir / bundle.REPORT != report:
            shutil.copyfile(report, run_dir / bundle.REPORT)


def move_report(config: pytest.Config, report: Path) -> None:
    """Write the report to ``report`` from now on, so that pytest-html's closing line names it."""
    config.option.htmlpath = str(report)
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, BaseReport):  # pytest-html 4 writes to, and names, this path
            plugin._report_path = report


def outcome_line(run: MilestoneRun, phase: str) -> str:
    """``passed``, or the status, cause class and reason of a phase that did not pass."""
    outcome = run.outcome_of(phase)
    if outcome.ok:
        return str(outcome.status)
    return f"{outcome.status}: {outcome.cause}: {outcome.reason}"


def environment(run: MilestoneRun) -> dict[str, str]:
    """The key snapshot facts and the GPU line, HTML-escaped: pytest-html inserts values as HTML."""
    facts = {**run.record.env, "gpu": gpu_line(run.run_dir / bundle.GPU_SNAPSHOT)}
    return {key: escape(facts[key]) for key in ENVIRONMENT_SHOWN if key in facts}


def gpu_line(path: Path) -> str:
    """The line of ``gpu_snapshot.txt`` that says most: nvidia-smi's driver line, else the first."""
    if not path.is_file():
        return "not recorded: pre-flight wrote no gpu_snapshot.txt"
    lines = [
        line.strip(" |")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip(" |")
    ]
    driver = [line for line in lines if "Driver Version" in line]
    return " ".join((driver or lines or ["empty gpu_snapshot.txt"])[0].split())


def phase_extras(phase: str, run: MilestoneRun, report_dir: Path) -> list[dict[str, Any]]:
    """What the row of ``phase`` shows besides its outcome."""
    found: list[dict[str, Any]] = []
    outcome = run.outcome_of(phase)
    if not outcome.ok:
        found.append(
            extras.html(
                f"<p><strong>{escape(phase)} {escape(outcome_line(run, phase))}</strong></p>"
            )
        )
    if phase == TRAIN:
        found += png_extra(run.run_dir / bundle.LOSS_CURVE, "loss and learning rate")
        found += svg_extra(run.run_dir / bundle.RESOURCES_PLOT, "memory and CPU over time")
        found += json_extra(run.run_dir / bundle.TRAINING_METRICS, "final training metrics")
    if phase == EVALUATE:
        found += png_extra(run.run_dir / bundle.CATEGORY_ACCURACY, "accuracy per category")
        found += json_extra(run.run_dir / bundle.EVALUATION_RESULTS, "evaluation results")
        if run.record.eval_result is not None:
            found.append(
                extras.html(predictions_table(run.record.eval_result.predictions[:SHOWN_PREDICTIONS]))
            )
    if run.record.judgements.get(phase):
        found.append(extras.html(criteria_html(run.record.judgements[phase])))
    if phase == SUMMARY:
        found.append(extras.html(bundle_links(run.run_dir, report_dir)))
    return found


def png_extra(path: Path, name: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [extras.png(base64.b64encode(path.read_bytes()).decode("ascii"), name=name)]


def svg_extra(path: Path, name: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [extras.svg(base64.b64encode(path.read_bytes()).decode("ascii"), name=name)]


def json_extra(path: Path, name: str) -> list[dict[str, Any]]:
    """The JSON file's summary values; per-step records stay in the file."""
    if not path.is_file():
        return []
    data = bundle.read_json(path)
    return [
        extras.json({key: value for key, value in data.items() if key != "per_step"}, name=name)
    ]


def predictions_table(predictions: tuple[Prediction, ...]) -> str:
    """Prompt, expected answer, the answer found (the raw completion on hover), correct."""
    rows = "".join(
        f"<tr><td>{escape(p.id)}</td><td>{escape(p.prompt)}</td><td>{escape(p.expected)}</td>"
        f'<td title="{escape(p.completion)}">{escape(_answer(p))}</td>'
        f"<td>{'yes' if p.correct else 'no'}</td></tr>"
        for p in predictions
    )
    return (
        f'<table class="predictions"><caption>First {len(predictions)} predictions</caption>'
        "<tr><th>id</th><th>prompt</th><th>expected</th><th>got</th><th>correct</th></tr>"
        f"{rows}</table>"
    )


def _answer(prediction: Prediction) -> str:
    return prediction.answer if prediction.answer is not None else "(no answer)"


def criteria_html(judgements: list[Judgement]) -> str:
    rows = "".join(
        f"<tr><td>{escape(j.metric)}</td><td>{escape(j.comparison)}</td>"
        f"<td>{_number(j.measured)}</td><td>{_number(j.threshold)}</td>"
        f"<td>{escape(f'{j.verdict}: {j.reason}' if j.reason else str(j.verdict))}</td></tr>"
        for j in judgements
    )
    return (
        '<table class="criteria"><caption>Acceptance criteria</caption>'
        "<tr><th>metric</th><th>requirement</th><th>measured</th><th>threshold</th><th>verdict</th></tr>"
        f"{rows}</table>"
    )


def _number(value: float | None) -> str:
    return f"{value:.4g}" if value is not None else "-"


def bundle_links(run_dir: Path, report_dir: Path) -> str:
    """Links to the bundle's files, relative to the report, which sits in a bundle itself."""
    entries = sorted(
        p for p in run_dir.iterdir() if not p.name.startswith(".") and p.name != bundle.REPORT
    )
    items = "".join(
        f'<li><a href="{escape(Path(os.path.relpath(path, report_dir)).as_posix())}">'
        f"{escape(path.name + ('/' if path.is_dir() else ''))}</a></li>"
        for path in entries
    )
    return f'<p>Files of {escape(run_dir.name)}:</p><ul class="bundle-files">{items}</ul>'
