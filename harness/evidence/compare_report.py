"""``python -m harness compare`` rendered: the same tables as markdown and as one self-contained
HTML page (inline CSS, the loss curves embedded as a PNG), readable offline."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from harness.evidence import bundle
from harness.evidence.compare import SETTINGS, ComparedRun, Comparison
from harness.evidence.plots import loss_curves_png
from harness.evidence.writers import cell, rate_with_interval
from harness.record.statistics import PAIRED_TEST, Interval, PairedComparison
from harness.spec.criteria import METRICS
from harness.spec.phase_order import BASE_EVAL_PHASES, BUILD, LOCK, VALIDATE

HTML_FILE, MARKDOWN_FILE, LOSS_CURVES = "comparison.html", "comparison.md", "loss_curves.png"
NONE = "-"
STATUSES = ("passed", "failed", "skipped")
# Every phase of either kind of milestone, in the order a run meets them.
PHASE_ORDER = (*BASE_EVAL_PHASES[:-3], BUILD, VALIDATE, LOCK, *BASE_EVAL_PHASES[-3:])
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.passed { color: #176e1f; } td.failed { color: #b00020; } td.skipped { color: #8a6d00; }
img { max-width: 100%; }
"""


@dataclass(frozen=True)
class Table:
    """One section of the comparison: a title, a sentence, and rows of text cells."""

    title: str
    note: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def _outcome(phase: object) -> str:
    if not isinstance(phase, dict):
        return NONE
    status = str(phase.get("status", "?"))
    return status if status == "passed" else f"{status}: {phase.get('reason', '?')}"


def _phase_rank(phase: str) -> tuple[int, str]:
    """Where ``phase`` stands in a run (the manifest keeps its phases sorted by name)."""
    return (PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER), phase)


def outcomes(runs: Sequence[ComparedRun]) -> Table:
    """Verdict and every phase's outcome, per run."""
    found = [("bundle", *(str(r.path) for r in runs))]
    for key in ("milestone", "verdict"):
        found.append((key, *(str(r.manifest.get(key, NONE)) for r in runs)))
    phases = [r.manifest.get("phases", {}) for r in runs]
    for name in sorted({name for each in phases for name in each}, key=_phase_rank):
        found.append((name, *(_outcome(each.get(name)) for each in phases)))
    header = ("", *(r.label for r in runs))
    return Table("Outcomes", "Each run's verdict and phases.", header, found)


def _number(value: object) -> str:
    """A measurement as a reader wants it: whole numbers whole, others to four digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)  # "not measured"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def _criteria(run: ComparedRun) -> dict[str, str]:
    found = run.manifest.get("criteria", [])
    return {
        f"{c.get('metric')} {c.get('comparison')}":
            f"{c.get('verdict')} ({_number(c.get('measured'))})"
        for c in (found if isinstance(found, list) else [])
        if isinstance(c, dict)
    }


def criteria(runs: Sequence[ComparedRun]) -> Table:
    """Every criterion any run judged: verdict and measured value, per run."""
    each = [_criteria(r) for r in runs]
    names = dict.fromkeys(name for found in each for name in found)
    return Table(
        "Criteria", "Verdict (measured value) of each criterion a run's spec states.",
        ("criterion", *(r.label for r in runs)),
        [(name, *(found.get(name, NONE) for found in each)) for name in names],
    )


def _value(metrics: dict[str, float], name: str) -> str:
    if name not in metrics:
        return NONE
    value, low, high = metrics[name], metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
    if low is not None and high is not None:
        return rate_with_interval(value, Interval(low, high))
    return _number(value)


def metrics(runs: Sequence[ComparedRun]) -> Table:
    """Every registry metric any run has, a rate with its 95% interval in the same cell."""
    measured = set().union(*(r.metrics for r in runs))
    bounds = {f"{name}_{end}" for name in measured for end in ("low", "high")}
    names = [name for name in METRICS if name in measured and name not in bounds]
    return Table(
        "Metrics", "Registry metrics (docs/criteria.md); rates with their 95% Wilson interval.",
        ("metric", *(r.label for r in runs)),
        [(name, *(_value(r.metrics, name) for r in runs)) for name in names],
    )


def changed(comparison: Comparison) -> Table:
    """The settings whose values differ between the runs, and only those."""
    compared = ", ".join(SETTINGS)
    note = f"Only what differs among: {compared}." if comparison.changed else (
        f"The runs agree on every setting compared: {compared}.")
    header = ("setting", *(r.label for r in comparison.runs))
    return Table("Settings that differ", note, header, [(n, *v) for n, v in comparison.changed])


def _ids(ids: tuple[str, ...]) -> str:
    return f"{len(ids)}: {', '.join(ids)}" if ids else "0"


def _flip_row(run: ComparedRun, compared: PairedComparison | str) -> tuple[str, ...]:
    if isinstance(compared, str):
        return (run.label, f"not compared: {compared}", NONE, NONE, NONE, NONE)
    return (
        run.label,
        str(compared.items),
        f"{rate_with_interval(compared.accuracy_before, compared.interval_before)} -> "
        f"{rate_with_interval(compared.accuracy_after, compared.interval_after)}",
        _ids(compared.wrong_to_right),
        _ids(compared.right_to_wrong),
        f"{compared.p_value:.3g}",
    )


def flips(comparison: Comparison) -> Table:
    """Per later run, the items that flipped against the first run, with the paired test."""
    first = comparison.runs[0]
    later = zip(comparison.runs[1:], comparison.flips, strict=True)
    return Table(
        f"Items that flipped against {first.label}",
        f"Items scored in both runs; p from the {PAIRED_TEST}.",
        ("run", "items", f"accuracy: {first.label} -> run", "wrong to right", "right to wrong",
         "p"),
        [_flip_row(run, compared) for run, compared in later],
    )


def tables(comparison: Comparison) -> list[Table]:
    runs = comparison.runs
    return [outcomes(runs), criteria(runs), metrics(runs), changed(comparison), flips(comparison)]


def title(comparison: Comparison) -> str:
    return "Comparison of " + ", ".join(run.label for run in comparison.runs)


def markdown_table(table: Table) -> list[str]:
    lines = [f"## {table.title}", "", table.note, ""]
    if not table.rows:
        return lines
    lines += ["| " + " | ".join(cell(c) for c in table.header) + " |",
              "|" + " --- |" * len(table.header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def markdown(comparison: Comparison, curves: bool) -> str:
    """``comparison.md``: every table, and a link to the overlaid loss curves."""
    lines = [f"# {title(comparison)}", ""]
    for table in tables(comparison):
        lines += markdown_table(table)
    plot = f"![loss curves]({LOSS_CURVES})" if curves else "No run logged a training step."
    lines += ["## Loss curves", "", plot]
    return "\n".join(lines) + "\n"


def _td(text: str) -> str:
    """A cell, coloured by the outcome it starts with."""
    status = text.split(" ")[0].rstrip(":")
    kind = f' class="{status}"' if status in STATUSES else ""
    return f"<td{kind}>{escape(text)}</td>"


def html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.header)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in table.rows)
    grid = f"<table><tr>{head}</tr>{body}</table>" if table.rows else ""
    return f"<h2>{escape(table.title)}</h2><p>{escape(table.note)}</p>{grid}"


def html(comparison: Comparison, png: bytes | None) -> str:
    """``comparison.html``: the same tables, the loss curves embedded; nothing is fetched."""
    plot = "<p>No run logged a training step.</p>"
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        plot = f'<img alt="loss curves" src="data:image/png;base64,{data}">'
    sections = "".join(html_table(table) for table in tables(comparison))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title(comparison))}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title(comparison))}</h1>{sections}<h2>Loss curves</h2>{plot}"
        "</body></html>\n"
    )


def write_comparison(comparison: Comparison, out: Path) -> list[Path]:
    """Write the page, the markdown and the loss-curve PNG into ``out``; the paths written."""
    curves = {run.label: run.losses for run in comparison.runs if run.losses}
    png = loss_curves_png(curves) if curves else None
    written = [bundle.write_text(out / HTML_FILE, html(comparison, png)),
               bundle.write_text(out / MARKDOWN_FILE, markdown(comparison, png is not None))]
    if png is not None:
        written.append(bundle.write_bytes(out / LOSS_CURVES, png))
    return written
