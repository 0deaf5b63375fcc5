"""The reviewer's report and the operator's journal, from real sessions on the mini project."""

from __future__ import annotations

import base64
import html
import json
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.spec.phase_order import PHASES

if TYPE_CHECKING:
    from tests.conftest import MiniProject

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def report_data(path: Path) -> dict[str, Any]:
    """The data pytest-html renders its page from: the JSON in ``data-jsonblob``."""
    blob = re.search(r'data-jsonblob="([^"]*)"', path.read_text(encoding="utf-8"))
    assert blob, f"{path} holds no pytest-html data"
    return json.loads(html.unescape(blob.group(1)))


def phase_rows(data: dict[str, Any], milestone: str) -> dict[str, dict[str, Any]]:
    """Each phase's row by phase name: the last report pytest-html kept for its test."""
    rows = {}
    for phase in PHASES:
        test = f"test_{phase.replace('-', '_')}[{milestone}]"
        entries = [reports for node, reports in data["tests"].items() if node.endswith(test)]
        if entries:
            rows[phase] = entries[0][-1]
    return rows


def phase_outcome(row: dict[str, Any]) -> str:
    cell = next(c for c in row["resultsTableRow"] if "col-phase-outcome" in c)
    return html.unescape(re.sub(r"<[^>]+>", "", cell))


def extras_of(row: dict[str, Any], format_type: str) -> list[dict[str, Any]]:
    return [extra for extra in row["extras"] if extra["format_type"] == format_type]


def test_the_report_shows_environment_phases_plots_and_predictions(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    report = mini.bundle("mini_v1") / "report.html"
    data = report_data(report)
    assert "mini (mini_v1)" in data["title"]
    assert (
        '<title id="head-title">tunix-rt milestone report: mini (mini_v1)</title>'
        in report.read_text()
    )
    commit = mini.git("rev-parse", "HEAD").strip()
    assert data["environment"]["commit"] == commit
    assert data["environment"]["torch"] == torch.__version__
    assert "gpu" in data["environment"]
    assert "Packages" not in data["environment"]  # a few lines: the verdict follows on screen

    # The first screen leads with the verdict: numbers with intervals, criteria, the plots.
    page = report.read_text()
    first = page[page.index('class="additional-summary prefix"') : page.index('id="results-table"')]
    assert "mini mini_v1: " in first and ">passed</span>" in first
    results = json.loads((mini.bundle("mini_v1") / "evaluation_results.json").read_text())
    low, high = results["accuracy_interval"]["low"], results["accuracy_interval"]["high"]
    assert f"{results['accuracy']:.1%} [{low:.1%}, {high:.1%}] of 5" in html.unescape(first)
    assert "<caption>Acceptance criteria</caption>" in first and "eval.count" in first
    assert first.count('src="data:image/png;base64,') == 2
    assert first.count('alt="memory and CPU over time" src="data:image/svg+xml;base64,') == 1

    rows = phase_rows(data, "mini")
    assert list(rows) == list(PHASES)
    assert all(phase_outcome(row) == "passed" for row in rows.values())
    images = extras_of(rows["train"], "image")
    names = [image["name"] for image in images]
    assert names == ["loss and learning rate", "memory and CPU over time"]
    assert base64.b64decode(images[0]["content"].partition("base64,")[2]).startswith(PNG_MAGIC)
    timeline = base64.b64decode(images[1]["content"].partition("base64,")[2]).decode()
    assert timeline.startswith("<svg") and ">train</text>" in timeline
    assert [extra["name"] for extra in extras_of(rows["train"], "json")] == [
        "final training metrics"
    ]
    predictions = next(
        e["content"] for e in extras_of(rows["evaluate"], "html") if "predictions" in e["content"]
    )
    assert predictions.count("<tr>") == 1 + 5
    assert "<th>expected</th><th>got</th><th>correct</th>" in predictions
    assert any("eval.count" in e["content"] for e in extras_of(rows["evaluate"], "html"))
    assert any("train.nonfinite_steps" in e["content"] for e in extras_of(rows["train"], "html"))
    links = "".join(e["content"] for e in extras_of(rows["summary"], "html"))
    assert '<a href="training_metrics.json">training_metrics.json</a>' in links
    assert '<a href="checkpoint">checkpoint/</a>' in links


def test_plots_and_a_journal_entry_per_phase_go_into_the_bundle(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    bundle = mini.bundle("mini_v1")
    for name in ("loss_curve.png", "category_accuracy.png"):
        assert (bundle / name).read_bytes().startswith(PNG_MAGIC), name
    journal = (bundle / "journal.md").read_text()
    entries = re.findall(r"^## \S+ (\S+): (\S+)$", journal, re.MULTILINE)
    assert entries == [(phase, "passed") for phase in PHASES]
    train = journal.split(" train: passed")[1].split("\n## ")[0]
    written = train.split("- files written: ")[1].splitlines()[0]
    for name in (
        "`loss_curve.png`",
        "`training_log.txt`",
        "`training_metrics.json`",
        "`checkpoint/` (",
    ):
        assert name in written, name
    assert "- checkpoint: `checkpoint/`" in train
    assert "`journal.md`" not in journal

    # Resources were sampled as each phase started and ended, and the peak stands in the manifest
    # beside the memory guard's estimate.
    samples = [json.loads(line) for line in (bundle / "resources.jsonl").read_text().splitlines()]
    phases = [sample["phase"] for sample in samples]
    assert list(dict.fromkeys(phases)) == list(PHASES)
    assert all(phases.count(phase) >= 2 for phase in PHASES)
    resources = mini.manifest("mini_v1")["resources"]
    assert resources["samples"] == len(samples)
    assert resources["measured_peak"]["rss"]["bytes"] == max(s["rss_bytes"] for s in samples)
    assert resources["estimated_peak"]["per"] == "one training process"
    assert resources["estimated_peak"]["bytes"] > 0
    assert set(resources["probes"]) == {"process", "cuda", "jax"}
    assert resources["probes"]["jax"] == "not sampled: a torch run does not use jax"
    assert (bundle / "resources.svg").read_text().startswith("<svg")


@pytest.mark.skipif("torch.cuda.is_available()", reason="this machine has CUDA")
def test_skipped_phases_carry_their_reason_in_the_report_and_the_journal(mini: MiniProject) -> None:
    mini.run("--milestone", "mini-gpu").assert_outcomes(passed=2, skipped=5)
    rows = phase_rows(report_data(mini.bundle("mini-gpu_v1") / "report.html"), "mini-gpu")
    assert list(rows) == list(PHASES)
    assert phase_outcome(rows["preflight"]).startswith(
        "skipped: missing hardware: needs test hardware"
    )
    for phase in ("guardrails-before", "train", "evaluate", "guardrails-after"):
        shown = phase_outcome(rows[phase])
        assert shown.startswith("skipped: blocked by an earlier phase: "), phase
        assert "preflight skipped: needs test hardware" in shown, phase
        assert any(html.escape(shown) in e["content"] for e in extras_of(rows[phase], "html")), (
            phase
        )
    assert phase_outcome(rows["summary"]) == "passed"
    journal = (mini.bundle("mini-gpu_v1") / "journal.md").read_text()
    assert journal.count("\n## ") == len(PHASES)
    assert "- reason: preflight skipped: needs test hardware" in journal


def test_a_killed_session_leaves_a_report_of_the_phases_that_ran(mini: MiniProject) -> None:
    process = mini.start_long_training()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    data = report_data(mini.bundle("mini-long_v1") / "report.html")
    rows = phase_rows(data, "mini-long")
    assert list(rows) == ["preflight", "guardrails-before"]
    assert all(phase_outcome(row) == "passed" for row in rows.values())
    assert data["environment"]["commit"] == mini.git("rev-parse", "HEAD").strip()
