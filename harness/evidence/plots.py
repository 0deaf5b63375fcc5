"""PNG plots of a run for the bundle and the report: the loss curve and accuracy per category;
and the loss curves of several runs overlaid, for ``python -m harness compare``."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from harness.record.evaluation import CategoryScore
    from trainers.protocol import StepRecord


def loss_curve_png(steps: Sequence[StepRecord]) -> bytes:
    """Loss (top) and learning rate (bottom) over the optimizer steps."""
    figure = _figure(height=5.5)
    loss_axes, lr_axes = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    numbers = [s.step for s in steps]
    loss_axes.plot(numbers, [s.loss for s in steps], color="tab:blue", linewidth=1.2)
    loss_axes.set_ylabel("loss")
    loss_axes.set_title(f"Training loss over {len(steps)} steps")
    loss_axes.grid(alpha=0.3)
    lr_axes.plot(numbers, [s.lr for s in steps], color="tab:orange", linewidth=1.2)
    lr_axes.set_ylabel("learning rate")
    lr_axes.set_xlabel("step")
    lr_axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    lr_axes.grid(alpha=0.3)
    lr_axes.xaxis.set_major_locator(_integer_ticks())
    return _png(figure)


def loss_curves_png(curves: Mapping[str, Sequence[tuple[int, float]]]) -> bytes:
    """Several runs' per-step losses on one pair of axes, one line and legend entry per run."""
    figure = _figure(height=4.5)
    axes = figure.subplots()
    for label, points in curves.items():
        axes.plot([p[0] for p in points], [p[1] for p in points], linewidth=1.2, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(f"Training loss of {len(curves)} runs")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    axes.xaxis.set_major_locator(_integer_ticks())
    return _png(figure)


def category_accuracy_png(per_category: Mapping[str, CategoryScore]) -> bytes:
    """Accuracy and answer-format compliance per eval category, side by side."""
    figure = _figure(height=4.0)
    axes = figure.subplots()
    names = list(per_category)
    positions = range(len(names))
    width = 0.4
    axes.bar(
        [p - width / 2 for p in positions],
        [per_category[n].accuracy for n in names],
        width,
        label="accuracy",
        color="tab:green",
    )
    axes.bar(
        [p + width / 2 for p in positions],
        [per_category[n].format_compliance for n in names],
        width,
        label="format compliance",
        color="tab:gray",
    )
    axes.set_xticks(list(positions), [f"{n}\n({per_category[n].count})" for n in names], fontsize=8)
    axes.set_ylim(0, 1.15)
    axes.set_ylabel("rate")
    axes.set_title("Accuracy per category (items)")
    axes.legend(loc="upper center", ncols=2, fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def _figure(height: float) -> Figure:
    # A bare Figure on the Agg canvas: pyplot would keep global figure state between calls.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, height), dpi=100, layout="tight")
    FigureCanvasAgg(figure)
    return figure


def _integer_ticks() -> MaxNLocator:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
