"""What fine-tuning changed: this run's evaluation against the base model's and the baseline's,
item by item, for the manifest and the summary."""

from __future__ import annotations

from typing import Any

from harness.record.run import BASE_MODEL, MilestoneRun
from harness.record.statistics import PAIRED_TEST, Interval, PairedComparison


def comparison_facts(run: MilestoneRun) -> dict[str, Any]:
    """The manifest's ``comparisons``: per comparison the accuracies, what flipped and the test."""
    found = run.comparisons()
    if not found:
        return {}
    return {"comparisons": {key: _facts(compared) for key, compared in found.items()}}


def _facts(compared: PairedComparison) -> dict[str, Any]:
    return {
        "against": compared.against,
        "items": compared.items,
        "correct_before": compared.correct_before,
        "correct_after": compared.correct_after,
        "accuracy_before": compared.accuracy_before,
        "accuracy_after": compared.accuracy_after,
        "accuracy_delta": compared.accuracy_delta,
        "wrong_to_right": len(compared.wrong_to_right),
        "right_to_wrong": len(compared.right_to_wrong),
        # Evidence holds no empty lists: "none found" says that nothing flipped that way.
        "wrong_to_right_ids": list(compared.wrong_to_right) or ["none found"],
        "right_to_wrong_ids": list(compared.right_to_wrong) or ["none found"],
        "p_value": compared.p_value,
        "test": PAIRED_TEST,
    }


def shown(rate: float, bounds: Interval) -> str:
    return f"{rate:.1%} [{bounds.low:.1%}, {bounds.high:.1%}]"


def headline(compared: PairedComparison) -> str:
    """One sentence: what the run moved accuracy from and to, with intervals and the test."""
    verb = "Fine-tuning moved" if compared.against == BASE_MODEL else "This run moved"
    before = shown(compared.accuracy_before, compared.interval_before)
    after = shown(compared.accuracy_after, compared.interval_after)
    return (
        f"{verb} accuracy from {before} ({compared.against}) to {after} on "
        f"{compared.items} items: "
        f"{len(compared.wrong_to_right)} wrong to right, {len(compared.right_to_wrong)} right to "
        f"wrong, p = {compared.p_value:.3g} ({PAIRED_TEST})."
    )


def comparison_lines(run: MilestoneRun) -> list[str]:
    """The summary's section: each comparison's headline and the ids that flipped."""
    lines = []
    for compared in run.comparisons().values():
        lines += ["", f"## Compared with {compared.against}", "", headline(compared), ""]
        for name, ids in (("wrong to right", compared.wrong_to_right),
                          ("right to wrong", compared.right_to_wrong)):
            lines.append(f"- {name}: {', '.join(f'`{i}`' for i in ids) if ids else 'none'}")
    return lines
