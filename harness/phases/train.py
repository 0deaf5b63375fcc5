"""The train phase: build the request from the spec, run the backend, log steps, keep metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from harness.evidence import bundle
from harness.evidence.earlier_run import taken_over
from harness.evidence.plots import loss_curve_png
from harness.evidence.writers import training_metrics
from harness.phases.rehearsal import model_place
from harness.probes.lineage import NOT_HERE, model_lineage
from harness.record.run import MilestoneRun
from harness.spec.data import load_traces
from harness.spec.prompting import format_completion, format_prompt
from trainers.protocol import Example, StepRecord, Trainer, TrainRequest, TrainResult


def build_request(run: MilestoneRun) -> TrainRequest:
    """The backend-neutral request for this milestone: formatted examples, run shape, device."""
    milestone = run.milestone
    traces = load_traces(milestone.dataset_path)
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    place = model_place(run)
    return TrainRequest(
        model_source=place.source,
        hub_cache=place.hub_cache,
        config=milestone.training,
        examples=examples,
        max_steps=milestone.spec.run.max_steps,
        epochs=milestone.spec.run.epochs,
        device=milestone.spec.hardware.accelerator,
        checkpoint_dir=(run.options.primary_run_dir or run.run_dir) / bundle.CHECKPOINT_DIR,
    )


class StepLogger:
    """Every ``every`` steps: ``training_metrics.json`` of the steps so far, rewritten atomically
    so that a killed run keeps them, a flushed ``training_log.txt`` line and a progress line."""

    def __init__(self, run: MilestoneRun, log: TextIO, every: int) -> None:
        assert run.record.training_request is not None
        self.run, self.log, self.every = run, log, every
        self.total = run.record.training_request.total_steps()
        # The terminal gets about ten lines per run; the log file gets every ``every`` steps.
        self.show_every = max(every, self.total // 10 // every * every)
        self.elapsed = 0.0

    def __call__(self, record: StepRecord) -> None:
        self.run.record.steps.append(record)
        self.elapsed += record.seconds
        if record.step % self.every and record.step not in (1, self.total):
            return
        # The metrics go first: the log never names a step that training_metrics.json lacks.
        write_training_metrics(self.run)
        eta = self.elapsed / record.step * (self.total - record.step)
        line = (
            f"step {record.step}/{self.total} loss {record.loss:.4f} lr {record.lr:.2e} "
            f"grad_norm {record.grad_norm:.3f} tokens/s {record.tokens / record.seconds:.0f} "
            f"elapsed {self.elapsed:.1f}s eta {eta:.0f}s"
        )
        self.log.write(bundle.evidence_redactor().text(line) + "\n")
        self.log.flush()
        if record.step % self.show_every == 0 or record.step in (1, self.total):
            self.run.progress(f"train: {line}")


def train(run: MilestoneRun, trainer: Trainer) -> TrainResult:
    """Train the milestone's model; metrics so far are written even when training stops early.
    With --reevaluate, take over the earlier bundle's checkpoint instead."""
    request = build_request(run)
    run.record.training_request = request
    if run.options.reevaluates is not None:
        return take_over(run, run.options.reevaluates)
    with (run.run_dir / bundle.TRAINING_LOG).open("a", encoding="utf-8") as log:
        log.write(
            f"# {run.run_id}: {request.model_source} on {request.device} ({trainer.backend}), "
            f"{len(request.examples)} examples, {request.total_steps()} steps\n"
        )
        log.flush()
        try:
            logger = StepLogger(run, log, run.milestone.training.log_every)
            result = trainer.train(request, logger)
        finally:
            write_training_metrics(run)
            write_loss_curve(run)
    run.record.train_result = result
    lineage = run.record.model_lineage
    if lineage and lineage.get("folder") == NOT_HERE:
        # An hf: model that pre-flight left to training to fetch is on this machine now.
        run.record.model_lineage = model_lineage(request.model_source, request.hub_cache)
    write_training_metrics(run)
    return result


def take_over(run: MilestoneRun, earlier: Path) -> TrainResult:
    """No training: the earlier bundle's checkpoint (linked, not copied) and its training record,
    for the evaluate phase to score anew."""
    request = run.record.training_request
    assert request is not None
    result = taken_over(earlier, request.checkpoint_dir, request.device)
    run.record.steps = list(result.steps)
    run.record.train_result = result
    line = f"# {run.run_id}: no training; re-evaluates the checkpoint of {earlier.name}\n"
    bundle.write_text(run.run_dir / bundle.TRAINING_LOG, line)
    write_training_metrics(run)
    write_loss_curve(run)
    run.progress(f"train: no training, the checkpoint of {earlier.name} is evaluated anew")
    return result


def write_training_metrics(run: MilestoneRun) -> None:
    bundle.write_json(run.run_dir / bundle.TRAINING_METRICS, training_metrics(run))


def write_loss_curve(run: MilestoneRun) -> None:
    """``loss_curve.png`` of the steps so far; nothing to draw before the first step."""
    if run.record.steps:
        bundle.write_bytes(run.run_dir / bundle.LOSS_CURVE, loss_curve_png(run.record.steps))
