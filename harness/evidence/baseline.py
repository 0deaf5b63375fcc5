"""A baseline: an earlier bundle whose integrity is checked before its metrics are compared."""

from __future__ import annotations

import json
from pathlib import Path

from harness.evidence import bundle
from harness.evidence.measurements import measure_bundle
from harness.evidence.verify import Unreadable, read_text, verify_bundle
from harness.record.measurements import Baseline


class BaselineError(ValueError):
    """The baseline cannot be used; one line naming the folder and the problem."""


def load_baseline(path: Path) -> Baseline:
    """Verify the bundle at ``path`` and measure it."""
    if not (path / bundle.RUN_MANIFEST).is_file():
        raise BaselineError(f"{path}: not an evidence bundle (no {bundle.RUN_MANIFEST})")
    problems = verify_bundle(path)
    if problems:
        raise BaselineError(f"{path}: fails verification: {'; '.join(problems)}")
    return Baseline(path, path.name, measure_bundle(path), correctness(path))


def correctness(run_dir: Path) -> dict[str, bool]:
    """Which eval items the bundle's run answered correctly, from its ``predictions.jsonl``;
    nothing where it has none or a line is not a scored prediction."""
    try:
        text = read_text(run_dir, bundle.PREDICTIONS)
    except Unreadable:
        return {}
    found: dict[str, bool] = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            return {}
        if not (isinstance(row, dict) and isinstance(row.get("id"), str)
                and isinstance(row.get("correct"), bool)):
            return {}
        found[row["id"]] = row["correct"]
    return found
