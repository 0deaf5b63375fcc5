"""The evaluate phase: greedy generation from the saved checkpoint, scored by the shared scorer."""

from __future__ import annotations

import time

from harness.evidence import bundle
from harness.evidence.plots import category_accuracy_png
from harness.evidence.writers import evaluation_results, evaluation_summary, prediction_rows
from harness.record.evaluation import EvalResult, score_items
from harness.record.run import MilestoneRun
from harness.spec.data import load_evalset
from harness.spec.prompting import format_prompt
from trainers.protocol import Trainer


def evaluate(run: MilestoneRun, trainer: Trainer) -> EvalResult:
    """Generate for every eval item from the run's checkpoint, score, and write the results."""
    trained = run.record.train_result
    assert trained is not None, "evaluation needs the checkpoint of this run's training"
    milestone = run.milestone
    keys = milestone.spec.evaluation.breakdown
    items = load_evalset(milestone.evalset_path, keys)
    settings = milestone.training.eval
    run.progress(f"evaluate: generating for {len(items)} items")
    started = time.perf_counter()
    completions = trainer.generate(
        trained.checkpoint_dir,
        [format_prompt(item.prompt) for item in items],
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        device=trained.device,
    )
    result = score_items(items, completions, time.perf_counter() - started, keys)
    run.record.eval_result = result
    bundle.write_jsonl(run.run_dir / bundle.PREDICTIONS, prediction_rows(result))
    bundle.write_json(run.run_dir / bundle.EVALUATION_RESULTS, evaluation_results(run))
    bundle.write_text(run.run_dir / bundle.EVALUATION_SUMMARY, evaluation_summary(run, result))
    bundle.write_bytes(
        run.run_dir / bundle.CATEGORY_ACCURACY, category_accuracy_png(result.per_category)
    )
    run.progress(
        f"evaluate: accuracy {result.accuracy:.2f}, "
        f"format compliance {result.format_compliance:.2f} in {result.runtime_s:.1f}s"
    )
    return result
