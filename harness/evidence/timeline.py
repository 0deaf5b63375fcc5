"""``resources.svg``: memory (top) and CPU (bottom) over the run's time, each phase a band, the
memory guard's estimate a dashed line. Written as SVG text, not with matplotlib: it is redrawn
after every phase, in a few milliseconds, where a matplotlib figure costs a quarter of a second
(and a second to import in a session that draws nothing else)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from harness.record.resources import GIB, EstimatedPeak, PhaseSpan, ResourceRecord, ResourceSample

WIDTH, LEFT, RIGHT = 800, 64, 16
MEMORY = (64, 220)  # top and height of the memory panel
CPU = (318, 90)
HEIGHT = 440
COLORS = ("#1f77b4", "#9ecae1", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_DEVICE_LINES = 3
MAX_POINTS = 1000
LABEL_GAP = 12  # pixels between two phase names
Points = list[tuple[float, float]]
Series = tuple[str, Points]


def resources_svg(record: ResourceRecord, estimate: EstimatedPeak | None) -> str:
    """The timeline of every sample so far; a line saying so when there is none."""
    # A copy: the sampler's thread may be appending while the main thread draws.
    shown = ResourceRecord(record.interval_s, list(record.samples))
    samples = shown.samples
    title = f"Memory and CPU over the run: {len(samples)} samples, every {record.interval_s:g} s"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    if not samples:
        parts.append(f'<text x="{LEFT}" y="60">No sample yet: no phase has run.</text></svg>')
        return "\n".join(parts)
    end = max(samples[-1].elapsed_s, 1e-3)
    memory: list[Series] = [("process RSS", [(s.elapsed_s, s.rss_bytes / GIB) for s in samples])]
    if any(s.children for s in samples):
        memory.append(("with children", [(s.elapsed_s, s.total_rss_bytes / GIB) for s in samples]))
    cpu: list[Series] = [("CPU %, one core = 100", [(s.elapsed_s, s.cpu_percent) for s in samples])]
    device_memory, device_busy = _device_series(samples)
    limit = estimate.total_bytes / GIB if estimate else None
    parts += _bands(shown.spans, end)
    parts += _panel(MEMORY, "GiB", memory + device_memory, end, limit)
    if estimate is not None:
        parts.append(_estimate_line(estimate, _top(memory + device_memory, limit)))
    parts += _panel(CPU, "percent", cpu + device_busy, end, None)
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        "seconds since the first phase began</text></svg>"
    )
    return "\n".join(parts)


def _device_series(samples: Sequence[ResourceSample]) -> tuple[list[Series], list[Series]]:
    """Memory used and utilisation of each device; of more than ``MAX_DEVICE_LINES`` devices, the
    highest of them at each sample (an 8-chip TPU would draw eight lines over each other)."""
    names = list(dict.fromkeys(d.name for s in samples for d in s.devices))
    groups = {name: {name} for name in names}
    if len(names) > MAX_DEVICE_LINES:
        groups = {f"highest of {len(names)} devices": set(names)}
    memory, busy = [], []
    for label, members in groups.items():
        used, utilization = [], []
        for sample in samples:
            devices = [d for d in sample.devices if d.name in members]
            if devices:
                used.append((sample.elapsed_s, max(d.used_bytes for d in devices) / GIB))
            rates = [d.utilization_percent for d in devices if d.utilization_percent is not None]
            if rates:
                utilization.append((sample.elapsed_s, max(rates)))
        memory.append((f"{label} used", used))
        if utilization:
            busy.append((f"{label} utilisation %", utilization))
    return memory, busy


def _x(seconds: float, end: float) -> float:
    return LEFT + seconds / end * (WIDTH - LEFT - RIGHT)


def _y(value: float, top: float, panel: tuple[int, int]) -> float:
    return panel[0] + panel[1] * (1 - value / top)


def _top(series: Sequence[Series], extra: float | None) -> float:
    """A round upper bound of the panel: 1, 2 or 5 times a power of ten."""
    largest = max([v for _, points in series for _, v in points] + [extra or 0.0, 1e-9])
    power = 10 ** math.floor(math.log10(largest))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= largest)


def _bands(spans: Sequence[PhaseSpan], end: float) -> list[str]:
    """A shaded band per phase across both panels, its name written down its left edge; where two
    names would overlap, the longer phase keeps its name."""
    bottom = CPU[0] + CPU[1]
    rects, labels, taken = [], [], []
    for index, span in enumerate(spans):
        left, right = _x(span.start_s, end), _x(span.end_s, end)
        fill = "#f2f2f2" if index % 2 == 0 else "#e4e4e4"
        rects.append(
            f'<rect x="{left:.1f}" y="{MEMORY[0]}" width="{max(right - left, 0.5):.1f}" '
            f'height="{bottom - MEMORY[0]}" fill="{fill}"/>'
        )
    for span in sorted(spans, key=lambda span: span.start_s - span.end_s):
        left = _x(span.start_s, end)
        if all(abs(left - other) >= LABEL_GAP for other in taken):
            taken.append(left)
            labels.append(
                f'<text transform="translate({left + 9:.1f},{MEMORY[0] + 4}) rotate(90)" '
                f'fill="#555">{escape(span.phase)}</text>'
            )
    return rects + labels


def _ticks(top: float) -> list[float]:
    """Round values from 0 to ``top``: steps of 1, 2 or 5 times a power of ten, at most 6."""
    power = 10 ** math.floor(math.log10(top / 5)) if top > 0 else 1.0
    step = next(s * power for s in (1, 2, 5, 10) if top / (s * power) <= 5)
    return [step * i for i in range(int(top / step + 1e-9) + 1)]


def _panel(
    panel: tuple[int, int], unit: str, series: Sequence[Series], end: float,
    extra: float | None,
) -> list[str]:
    """Axes, ticks, one polyline per series and its legend entry above the panel."""
    top = _top(series, extra)
    parts = [
        f'<line x1="{LEFT}" y1="{panel[0] + panel[1]}" x2="{WIDTH - RIGHT}" '
        f'y2="{panel[0] + panel[1]}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{panel[0]}" x2="{LEFT}" y2="{panel[0] + panel[1]}" '
        'stroke="black"/>',
        f'<text transform="translate(14,{panel[0] + panel[1] / 2}) rotate(-90)" '
        f'text-anchor="middle">{unit}</text>',
    ]
    for value in _ticks(top):
        y = _y(value, top, panel)
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    for seconds in _ticks(end):
        x = _x(seconds, end)
        parts.append(
            f'<text x="{x:.1f}" y="{panel[0] + panel[1] + 13}" text-anchor="middle">'
            f"{seconds:g}</text>"
        )
    legend_x = LEFT
    for index, (name, points) in enumerate(series):
        color = COLORS[index % len(COLORS)]
        line = " ".join(f"{_x(t, end):.1f},{_y(v, top, panel):.1f}" for t, v in _thin(points))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        legend = f'<text x="{legend_x}" y="{panel[0] - 6}" fill="{color}">{escape(name)}</text>'
        parts.append(legend)
        legend_x += 7 * len(name) + 16
    return parts


def _thin(points: Points) -> Points:
    """At most about ``MAX_POINTS`` points, each the highest of its stretch: an hours-long run
    keeps its peaks and a small file."""
    size = -(-len(points) // MAX_POINTS)
    if size <= 1:
        return points
    return [max(points[i : i + size], key=lambda p: p[1]) for i in range(0, len(points), size)]


def _estimate_line(estimate: EstimatedPeak, top: float) -> str:
    y = _y(estimate.total_bytes / GIB, top, MEMORY)
    label = f"memory guard estimate, {estimate.scope}: {estimate.total_bytes / GIB:.2f} GiB"
    return (
        f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#d62728" '
        f'stroke-dasharray="6,4"/><text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end" '
        f'fill="#d62728">{escape(label)}</text>'
    )
