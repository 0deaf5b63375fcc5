"""The phase order of each kind of milestone and which phase each one needs to have passed."""

from __future__ import annotations

PREFLIGHT = "preflight"
GUARDRAILS_BEFORE = "guardrails-before"
TRAIN = "train"
EVALUATE = "evaluate"
EVALUATE_BASE = "evaluate-base"
BUILD = "build"
VALIDATE = "validate"
LOCK = "lock"
GUARDRAILS_AFTER = "guardrails-after"
EVIDENCE = "evidence"
SUMMARY = "summary"

PHASES = (PREFLIGHT, GUARDRAILS_BEFORE, TRAIN, EVALUATE, GUARDRAILS_AFTER, EVIDENCE, SUMMARY)
# With ``evaluate_base: true`` the untuned model is scored first, with the same prompts and decoding.
BASE_EVAL_PHASES = (PREFLIGHT, GUARDRAILS_BEFORE, EVALUATE_BASE, *PHASES[2:])
FREEZE_PHASES = (PREFLIGHT, GUARDRAILS_BEFORE, BUILD, VALIDATE, LOCK, GUARDRAILS_AFTER, EVIDENCE, SUMMARY)

# A phase runs only on fresh state from the phase it needs. Evidence and summary need
# nothing: they document whatever happened, so a failed run is still a documented run.
# Validate checks the frozen ZIP on disk, so a skipped or failed build does not stop it (with
# --snapshot-update it checks build's candidate, and fails when there is none). Lock needs
# validate: an invalid ZIP is never held to, nor (with --snapshot-update) written into, the lock.
NEEDS: dict[str, str] = {
    GUARDRAILS_BEFORE: PREFLIGHT,
    TRAIN: GUARDRAILS_BEFORE,
    EVALUATE_BASE: GUARDRAILS_BEFORE,  # training does not wait on it: a failed one blocks nothing
    EVALUATE: TRAIN,
    BUILD: GUARDRAILS_BEFORE,
    VALIDATE: GUARDRAILS_BEFORE,
    LOCK: VALIDATE,
    GUARDRAILS_AFTER: GUARDRAILS_BEFORE,
}


def phases_of(kind: str, evaluate_base: bool = False) -> tuple[str, ...]:
    """The ordered phases of a ``train`` milestone (with or without ``evaluate-base``) or a
    ``freeze`` one."""
    if kind == "freeze":
        return FREEZE_PHASES
    return BASE_EVAL_PHASES if evaluate_base else PHASES
