"""The phase order of every milestone and which phase each one needs to have passed."""

from __future__ import annotations

PREFLIGHT = "preflight"
GUARDRAILS_BEFORE = "guardrails-before"
TRAIN = "train"
EVALUATE = "evaluate"
GUARDRAILS_AFTER = "guardrails-after"
EVIDENCE = "evidence"
SUMMARY = "summary"

PHASES = (PREFLIGHT, GUARDRAILS_BEFORE, TRAIN, EVALUATE, GUARDRAILS_AFTER, EVIDENCE, SUMMARY)

# A phase runs only on fresh state from the phase it needs. Evidence and summary need
# nothing: they document whatever happened, so a failed run is still a documented run.
NEEDS: dict[str, str] = {
    GUARDRAILS_BEFORE: PREFLIGHT,
    TRAIN: GUARDRAILS_BEFORE,
    EVALUATE: TRAIN,
    GUARDRAILS_AFTER: GUARDRAILS_BEFORE,
}


def phase_index(phase: str) -> int:
    return PHASES.index(phase)
