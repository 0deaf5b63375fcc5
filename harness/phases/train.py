"""The train phase: build the request from the spec, run the backend, log steps, keep metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from harness.evidence import bundle
from harness.evidence.earlier_run import taken_over
from harness.evidence.plots import loss_curve_png
from harness.evidence.writers import training_metrics
from harness.phases.budget import BudgetWatch
from harness.phases.rehearsal import model_place
from harness.probes.lineage import NOT_HERE, model_lineage
from harness.record.run import MilestoneRun
from harness.spec.data import load_traces
from harness.spec.prompting import format_completion, format_prompt
from trainers import checkpoints
from trainers.checkpoints import CheckpointPlan
from trainers.protocol import Example, StepRecord, Trainer, TrainRequest, TrainResult


def build_request(run: MilestoneRun) -> TrainRequest:
    """The backend-neutral request for this milestone: formatted examples, run shape, device."""
    milestone = run.milestone
    traces = load_traces(milestone.dataset_path)
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    place = model_place(run)
    training, resumes = milestone.training, run.options.resumes
    return TrainRequest(
        model_source=place.source,
        hub_cache=place.hub_cache,
        config=milestone.training,
        examples=examples,
        max_steps=milestone.spec.run.max_steps,
        epochs=milestone.spec.run.epochs,
        device=milestone.spec.hardware.accelerator,
        checkpoint_dir=(run.options.primary_run_dir or run.run_dir) / bundle.CHECKPOINT_DIR,
        checkpoints=CheckpointPlan(
            run.run_dir / bundle.CHECKPOINTS_DIR,
            training.checkpoint_every,
            training.keep_checkpoints,
        ),
        resume_from=resumes.checkpoint if resumes else None,
    )


class StepLogger:
    """Every ``every`` steps: ``training_metrics.json`` of the steps so far, rewritten atomically
    so that a killed run keeps them, a flushed ``training_log.txt`` line and a progress line; the
    same at each resumable checkpoint, and the budget's estimate, which may stop the run."""

    def __init__(self, run: MilestoneRun, log: TextIO, every: int) -> None:
        request = run.record.training_request
        assert request is not None
        self.run, self.log, self.every, self.plan = run, log, every, request.checkpoints
        self.total = request.total_steps()
        # The terminal gets about ten lines per run; the log file gets every ``every`` steps.
        self.show_every = max(every, self.total // 10 // every * every)
        self.elapsed = 0.0
        self.done = 0
        """Steps of this session (a resumed run starts after its checkpoint's)."""
        budget = run.milestone.spec.budget
        self.budget = (
            BudgetWatch(budget.wall_minutes * 60, run.record.started_at, self.total)
            if budget is not None
            else None
        )

    def __call__(self, record: StepRecord) -> None:
        self.run.record.steps.append(record)
        self.elapsed += record.seconds
        self.done += 1
        # The loop writes a step's checkpoint before its step hooks run.
        plan = self.plan
        checkpointed = plan is not None and checkpoints.folder(plan.root, record.step).is_dir()
        if checkpointed:
            self.run.record.checkpoints.append(record.step)
        estimate = self.budget.estimate(record) if self.budget else None
        if estimate is not None:
            self.run.record.budget_estimate_s = estimate
        stop = self.budget.stop_after(record, estimate) if self.budget else None
        # A checkpoint's step is in the metrics it is resumed with; a stop is logged and shown.
        if stop or checkpointed or not record.step % self.every or record.step in (1, self.total):
            self._log(record, show=stop is not None)
        if stop is not None:
            self.run.progress(f"train: {stop}")
            raise stop

    def _log(self, record: StepRecord, show: bool) -> None:
        # The metrics go first: the log never names a step that training_metrics.json lacks.
        write_training_metrics(self.run)
        eta = self.elapsed / self.done * (self.total - record.step)
        line = (
            f"step {record.step}/{self.total} loss {record.loss:.4f} lr {record.lr:.2e} "
            f"grad_norm {record.grad_norm:.3f} tokens/s {record.tokens / record.seconds:.0f} "
            f"elapsed {self.elapsed:.1f}s eta {eta:.0f}s"
        )
        if self.budget is not None:
            estimate = self.run.record.budget_estimate_s
            shown = f"{estimate / 60:.2f} min" if estimate is not None else "after warm-up"
            line += f" estimate {shown} budget {self.budget.budget_s / 60:g} min"
        self.log.write(bundle.evidence_redactor().text(line) + "\n")
        self.log.flush()
        if show or record.step % self.show_every == 0 or record.step in (1, self.total):
            self.run.progress(f"train: {line}")


def train(run: MilestoneRun, trainer: Trainer) -> TrainResult:
    """Train the milestone's model; metrics so far are written even when training stops early.
    With --reevaluate, take over the earlier bundle's checkpoint instead; with --resume, go on
    from the earlier bundle's checkpoint, its steps up to it first in this run's curve."""
    request = build_request(run)
    run.record.training_request = request
    if run.options.reevaluates is not None:
        return take_over(run, run.options.reevaluates)
    resumes = run.options.resumes
    if resumes is not None:
        run.record.steps = list(resumes.steps)
        run.progress(f"train: {resumes.line}, from {resumes.checkpoint.name}")
    with (run.run_dir / bundle.TRAINING_LOG).open("a", encoding="utf-8") as log:
        log.write(
            f"# {run.run_id}: {request.model_source} on {request.device} ({trainer.backend}), "
            f"{len(request.examples)} examples, {request.total_steps()} steps"
            + (f"; {resumes.line}\n" if resumes else "\n")
        )
        log.flush()
        try:
            logger = StepLogger(run, log, run.milestone.training.log_every)
            result = trainer.train(request, logger)
        finally:
            note_last_checkpoint(run, request)
            write_training_metrics(run)
            write_loss_curve(run)
    run.record.train_result = result
    lineage = run.record.model_lineage
    if lineage and lineage.get("folder") == NOT_HERE:
        # An hf: model that pre-flight left to training to fetch is on this machine now.
        run.record.model_lineage = model_lineage(request.model_source, request.hub_cache)
    write_training_metrics(run)
    return result


def note_last_checkpoint(run: MilestoneRun, request: TrainRequest) -> None:
    """Record the checkpoint a resumable stop wrote after its step hooks had run."""
    found = checkpoints.latest(request.checkpoints.root) if request.checkpoints else None
    if found is not None and found[0] not in run.record.checkpoints:
        run.record.checkpoints.append(found[0])


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
