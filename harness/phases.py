"""The phase order of each kind of milestone and which phase each one needs to have passed."""

from __future__ import annotations

PREFLIGHT = "preflight"
GUARDRAILS_BEFORE = "guardrails-before"
TRAIN = "train"
EVALUATE = "evaluate"
BUILD = "build"
VALIDATE = "validate"
LOCK = "lock"
GUARDRAILS_AFTER = "guardrails-after"
EVIDENCE = "evidence"
SUMMARY = "summary"

PHASES = (PREFLIGHT, GUARDRAILS_BEFORE, TRAIN, EVALUATE, GUARDRAILS_AFTER, EVIDENCE, SUMMARY)
FREEZE_PHASES = (PREFLIGHT, GUARDRAILS_BEFORE, BUILD, VALIDATE, LOCK, GUARDRAILS_AFTER, EVIDENCE, SUMMARY)

# A phase runs only on fresh state from the phase it needs. Evidence and summary need
# nothing: they document whatever happened, so a failed run is still a documented run.
# Validate and lock check the frozen files on disk, so a skipped build does not stop them.
NEEDS: dict[str, str] = {
    GUARDRAILS_BEFORE: PREFLIGHT,
    TRAIN: GUARDRAILS_BEFORE,
    EVALUATE: TRAIN,
    BUILD: GUARDRAILS_BEFORE,
    VALIDATE: GUARDRAILS_BEFORE,
    LOCK: GUARDRAILS_BEFORE,
    GUARDRAILS_AFTER: GUARDRAILS_BEFORE,
}


def phases_of(kind: str) -> tuple[str, ...]:
    """The ordered phases of a ``train`` or ``freeze`` milestone."""
    return FREEZE_PHASES if kind == "freeze" else PHASES
