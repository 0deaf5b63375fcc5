"""The facts recorded of each input a run read: where, its sha256 and its record count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.record.contamination import METHOD, NGRAM
from harness.record.run import MilestoneRun
from harness.spec.data import DataError, count_records, file_sha256, input_place
from harness.spec.milestones import FreezeMilestone
from harness.text import first_line


def data_facts(root: Path, path: Path, as_written: str, *, records: bool = True) -> dict[str, Any]:
    """Where an input was read, its sha256 and (for JSON Lines, validated in pre-flight) its record
    count; a file that cannot be read any more is recorded so, for the evidence phase to report."""
    facts: dict[str, Any] = input_place(root, path, as_written)
    try:
        facts["sha256"] = file_sha256(path)
        if records:
            facts["records"] = count_records(path)
    except (OSError, DataError) as error:
        facts["unreadable"] = first_line(str(error))
    return facts


def contamination_facts(run: MilestoneRun) -> dict[str, Any]:
    """The eval items pre-flight found in the training data, by each check, with the method."""
    found = run.record.contamination
    if found is None:
        return {}
    return {
        "contamination": {
            "method": METHOD,
            "items": len(found.items),
            # Evidence holds no empty lists: "none found" says that a check found nothing.
            "item_ids": list(found.items) or ["none found"],
            "exact_prompt": list(found.exact) or ["none found"],
            "normalised_prompt": list(found.normalised) or ["none found"],
            f"shared_{NGRAM}_gram": list(found.ngram) or ["none found"],
        }
    }


def input_facts(run: MilestoneRun) -> dict[str, Any]:
    """The training config, dataset and evalset a training run reads; none for a freeze."""
    if isinstance(run.milestone, FreezeMilestone):
        return {}
    milestone, spec = run.milestone, run.milestone.spec
    training = data_facts(run.root, milestone.training_path, spec.training_config, records=False)
    return {
        "training_config": {"file": training.pop("path"), **training},
        "dataset": data_facts(run.root, milestone.dataset_path, spec.dataset),
        "evalset": data_facts(run.root, milestone.evalset_path, spec.evalset),
    }
