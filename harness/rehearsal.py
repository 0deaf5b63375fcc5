"""Rehearsal: any milestone on the CPU, its model swapped for the tiny config and its steps capped."""

from __future__ import annotations

import dataclasses

from harness.specs import HardwareRequirement, Milestone, RunShape

REHEARSAL_MODEL = "random:tiny-gemma"
REHEARSAL_STEPS = 12
REHEARSAL_SUFFIX = "-rehearsal"
NOT_JUDGED = "a rehearsal on the CPU with a tiny model: the spec's thresholds are for the real run"


def rehearse(milestone: Milestone) -> Milestone:
    """The same milestone, phases and guardrails, on a CPU: tiny model, few steps, fp32, one device."""
    spec, training = milestone.spec, milestone.training
    cpu = HardwareRequirement(
        accelerator="cpu", count=1, platform="any", label=f"a CPU, rehearsing for {spec.hardware.label}"
    )
    steps = min(REHEARSAL_STEPS, spec.run.max_steps or REHEARSAL_STEPS)
    return dataclasses.replace(
        milestone,
        spec=spec.model_copy(
            update={"model": REHEARSAL_MODEL, "hardware": cpu, "run": RunShape(max_steps=steps)}
        ),
        training=training.model_copy(
            update={
                "precision": "fp32",
                "max_seq_len": min(training.max_seq_len, 192),
                "batch_size": min(training.batch_size, 8),
                "mesh": training.mesh.model_copy(update={"data": 1, "fsdp": 1}),
                "eval": training.eval.model_copy(update={"max_new_tokens": 32}),
            }
        ),
        rehearsal=True,
    )
