"""The evaluate phase (and evaluate-base): greedy generation for every eval item, scored by the
shared scorer, from this run's checkpoint (or from the untuned model, before training)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from harness.evidence import bundle
from harness.evidence.plots import category_accuracy_png
from harness.evidence.writers import evaluation_results, evaluation_summary, prediction_rows
from harness.phases.train import build_request
from harness.record.evaluation import EvalResult, score_items
from harness.record.run import MilestoneRun
from harness.spec.data import load_evalset
from harness.spec.prompting import format_prompt
from trainers.protocol import Trainer

Generate = Callable[[Sequence[str]], list[str]]


def evaluate(run: MilestoneRun, trainer: Trainer) -> EvalResult:
    """Generate for every eval item from the run's checkpoint, score, and write the results."""
    trained = run.record.train_result
    assert trained is not None, "evaluation needs the checkpoint of this run's training"
    settings = run.milestone.training.eval

    def generate(prompts: Sequence[str]) -> list[str]:
        return trainer.generate(
            trained.checkpoint_dir,
            prompts,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            device=trained.device,
        )

    result = generate_and_score(run, "evaluate", generate)
    run.record.eval_result = result
    bundle.write_jsonl(run.run_dir / bundle.PREDICTIONS, prediction_rows(result))
    bundle.write_json(run.run_dir / bundle.EVALUATION_RESULTS, evaluation_results(run, result))
    bundle.write_text(run.run_dir / bundle.EVALUATION_SUMMARY, evaluation_summary(run, result))
    bundle.write_bytes(
        run.run_dir / bundle.CATEGORY_ACCURACY, category_accuracy_png(result.per_category)
    )
    return result


def evaluate_base(run: MilestoneRun, trainer: Trainer) -> EvalResult:
    """Score the untuned model with the same prompts and decoding, before any training step."""
    request = build_request(run)
    settings = run.milestone.training.eval

    def generate(prompts: Sequence[str]) -> list[str]:
        return trainer.generate_untuned(
            request, prompts, max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size
        )

    result = generate_and_score(run, "evaluate-base", generate)
    run.record.base_eval_result = result
    bundle.write_jsonl(run.run_dir / bundle.BASE_PREDICTIONS, prediction_rows(result))
    bundle.write_json(
        run.run_dir / bundle.BASE_EVALUATION_RESULTS, evaluation_results(run, result)
    )
    return result


def generate_and_score(run: MilestoneRun, phase: str, generate: Generate) -> EvalResult:
    """Greedy completions for the evalset's prompts, scored, with a progress line either side."""
    keys = run.milestone.spec.evaluation.breakdown
    items = load_evalset(run.milestone.evalset_path, keys)
    run.progress(f"{phase}: generating for {len(items)} items")
    started = time.perf_counter()
    completions = generate([format_prompt(item.prompt) for item in items])
    result = score_items(items, completions, time.perf_counter() - started, keys)
    run.progress(
        f"{phase}: accuracy {result.accuracy:.2f}, "
        f"format compliance {result.format_compliance:.2f} in {result.runtime_s:.1f}s"
    )
    return result
