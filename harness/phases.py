"""The phase order of every milestone and which phase each one needs to have passed."""

from __future__ import annotations

PREFLIGHT = "preflight"
TRAIN = "train"
EVALUATE = "evaluate"
EVIDENCE = "evidence"
SUMMARY = "summary"

PHASES = (PREFLIGHT, TRAIN, EVALUATE, EVIDENCE, SUMMARY)

# A phase runs only on fresh state from the phase it needs. Evidence and summary need
# nothing: they document whatever happened, so a failed run is still a documented run.
NEEDS: dict[str, str] = {TRAIN: PREFLIGHT, EVALUATE: TRAIN}


def phase_index(phase: str) -> int:
    return PHASES.index(phase)
