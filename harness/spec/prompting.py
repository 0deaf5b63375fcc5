"""The fixed prompt and completion format shared by every backend."""

from __future__ import annotations

from harness.spec.data import Trace


def format_prompt(question: str) -> str:
    """The text a model is given: ``Question: {question}\\nAnswer: ``."""
    return f"Question: {question}\nAnswer: "


def format_completion(trace: Trace) -> str:
    """The text a model should produce: ``<reasoning>s1 ; s2</reasoning><answer>a</answer>``."""
    reasoning = " ; ".join(step.content for step in trace.steps)
    return f"<reasoning>{reasoning}</reasoning><answer>{trace.final_answer}</answer>"
