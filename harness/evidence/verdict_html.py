"""The first screen of the report: each run's verdict, its headline numbers with their intervals,
the criteria verdicts, what fine-tuning changed and the plots (loss, accuracy per category, memory
and CPU over time), rendered from the bundle."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.comparison import headline
from harness.evidence.verify import Unreadable, read_object
from harness.record.statistics import PairedComparison

STYLE = (
    "<style>.tunix-verdict{margin:0 0 1.5em}.tunix-verdict td,.tunix-verdict th{padding:2px 8px;"
    "text-align:left}.tunix-verdict .passed{color:#2a7d2a}.tunix-verdict .failed{color:#b00}"
    ".tunix-verdict img{max-width:48%;margin-right:1%}</style>"
)


def _read(run_dir: Path, name: str) -> dict[str, Any]:
    try:
        return read_object(run_dir, name)
    except Unreadable:
        return {}


def verdict_html(run_dir: Path) -> str:
    """The verdict section of one bundle, or a line saying it has no manifest yet."""
    manifest = _read(run_dir, bundle.RUN_MANIFEST)
    if not manifest:
        return f"<p>{escape(run_dir.name)}: no {bundle.RUN_MANIFEST} yet.</p>"
    verdict = str(manifest.get("verdict"))
    mark = "passed" if verdict == "passed" else "failed"
    parts = [
        f'<section class="tunix-verdict"><h2>{escape(str(manifest.get("milestone")))} '
        f'{escape(run_dir.name)}: <span class="{mark}">{escape(verdict)}</span></h2>',
        _numbers(run_dir),
        *(f"<p>{escape(headline(c))}</p>" for c in _comparisons(manifest)),
        _criteria(manifest),
        _plots(run_dir),
        "</section>",
    ]
    return "".join(part for part in parts if part)


def _rate(scores: dict[str, Any], key: str) -> str:
    count, rate, bounds = scores.get("count"), scores.get(key), scores.get(f"{key}_interval")
    if not isinstance(rate, float | int) or not isinstance(bounds, dict):
        return "-"
    return f"{rate:.1%} [{bounds['low']:.1%}, {bounds['high']:.1%}] of {count}"


def _numbers(run_dir: Path) -> str:
    """Training and evaluation in one small table: what a reviewer reads first."""
    metrics = _read(run_dir, bundle.TRAINING_METRICS)
    rows = []
    if metrics.get("per_step"):
        rows.append(("training", f"{metrics.get('steps_completed')} steps, loss "
                     f"{metrics.get('first_loss'):.4g} -> {metrics.get('final_loss'):.4g}"))
    for name, label in ((bundle.EVALUATION_RESULTS, "this run"),
                        (bundle.BASE_EVALUATION_RESULTS, "the base model")):
        scores = _read(run_dir, name)
        if scores:
            rows.append((f"accuracy ({label})", _rate(scores, "accuracy")))
            rows.append((f"format compliance ({label})", _rate(scores, "format_compliance")))
    if not rows:
        return ""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="headline">{body}</table>'


def _comparisons(manifest: dict[str, Any]) -> list[PairedComparison]:
    found = manifest.get("comparisons")
    if not isinstance(found, dict):
        return []
    return [
        PairedComparison(
            against=str(facts["against"]),
            items=int(facts["items"]),
            correct_before=int(facts["correct_before"]),
            correct_after=int(facts["correct_after"]),
            right_to_wrong=tuple(i for i in facts["right_to_wrong_ids"] if i != "none found"),
            wrong_to_right=tuple(i for i in facts["wrong_to_right_ids"] if i != "none found"),
            p_value=float(facts["p_value"]),
        )
        for facts in found.values()
        if isinstance(facts, dict)
    ]


def _criteria(manifest: dict[str, Any]) -> str:
    criteria = manifest.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        return "<p>No criterion was judged in this run.</p>"
    rows = "".join(
        f"<tr><td>{escape(str(c.get('metric')))}</td><td>{escape(str(c.get('comparison')))}</td>"
        f"<td>{escape(str(c.get('measured')))}</td>"
        f'<td class="{"failed" if c.get("verdict") == "failed" else "passed"}">'
        f"{escape(str(c.get('reason')))}</td></tr>"
        for c in criteria
        if isinstance(c, dict)
    )
    return (
        '<table class="criteria"><caption>Acceptance criteria</caption><tr><th>metric</th>'
        f"<th>requirement</th><th>measured</th><th>verdict</th></tr>{rows}</table>"
    )


def _plots(run_dir: Path) -> str:
    images = []
    for name, alt, mime in ((bundle.LOSS_CURVE, "loss and learning rate", "image/png"),
                            (bundle.CATEGORY_ACCURACY, "accuracy per category", "image/png"),
                            (bundle.RESOURCES_PLOT, "memory and CPU over time", "image/svg+xml")):
        path = run_dir / name
        if path.is_file() and not path.is_symlink():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            images.append(f'<img alt="{alt}" src="data:{mime};base64,{data}">')
    return f"<div>{''.join(images)}</div>" if images else ""

