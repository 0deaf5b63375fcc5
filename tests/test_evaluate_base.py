"""evaluate-base: the untuned model scored with the same prompts and decoding, and what
fine-tuning changed, item by item, with its paired test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence.verify import verify_bundle
from harness.spec.phase_order import BASE_EVAL_PHASES

if TYPE_CHECKING:
    from tests.conftest import MiniProject

torch = pytest.importorskip("torch")


def _rows(path: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


@pytest.mark.slow
def test_the_base_model_is_scored_first_and_the_summary_says_what_fine_tuning_changed(
    mini: MiniProject,
) -> None:
    spec = mini.path / "configs" / "milestones" / "mini.yaml"
    text = spec.read_text().replace("acceptance:\n", "evaluate_base: true\nacceptance:\n")
    spec.write_text(text.replace("acceptance:\n", 'acceptance:\n  compare.base.p_value: "<= 1"\n'))
    mini.commit("score the base model too")

    mini.run("--milestone", "mini").assert_outcomes(passed=len(BASE_EVAL_PHASES))

    run_dir = mini.bundle("mini_v1")
    manifest = mini.manifest("mini_v1")
    assert set(manifest["phases"]) == set(BASE_EVAL_PHASES)
    assert verify_bundle(run_dir) == []
    base = json.loads((run_dir / "base_evaluation_results.json").read_text())
    tuned = json.loads((run_dir / "evaluation_results.json").read_text())
    paired = manifest["comparisons"]["base"]
    assert paired["against"] == "the base model" and paired["items"] == 5
    assert (paired["accuracy_before"], paired["accuracy_after"]) == (
        base["accuracy"],
        tuned["accuracy"],
    )
    before, after = _rows(run_dir / "base_predictions.jsonl"), _rows(run_dir / "predictions.jsonl")
    gained = sorted(i for i in after if after[i]["correct"] and not before[i]["correct"])
    assert [i for i in paired["wrong_to_right_ids"] if i != "none found"] == gained
    assert 0.0 <= paired["p_value"] <= 1.0
    judged = {c["metric"]: c["verdict"] for c in manifest["criteria"]}
    assert judged["compare.base.p_value"] == "passed"
    summary = (run_dir / "mini_summary.md").read_text()
    assert "Fine-tuning moved accuracy from " in summary and "(the base model) to " in summary
    assert "- the base model, before training: 5 items, accuracy " in summary


def test_the_untuned_model_generates_as_its_saved_checkpoint_does(tmp_path: Path) -> None:
    """generate_untuned builds the model training starts from; saved as it is, the checkpoint
    path generates the same completions."""
    from trainers.config import TrainingConfig
    from trainers.models import build_model_and_tokenizer
    from trainers.protocol import TrainRequest
    from trainers.torch.trainer import TorchTrainer

    config = TrainingConfig.model_validate(
        {
            "seed": 3, "batch_size": 2, "max_seq_len": 64, "precision": "fp32", "grad_clip": 1.0,
            "log_every": 1,
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0,
                          "betas": [0.9, 0.98], "eps": 1e-8},
            "schedule": {"warmup_steps": 0, "decay": "constant", "min_lr_ratio": 1.0},
            "divergence": {"factor": 3.0, "patience": 3},
            "eval": {"batch_size": 2, "max_new_tokens": 6},
        }
    )
    request = TrainRequest("random:tiny-gemma", config, (), 1, None, "cpu", tmp_path / "ckpt")
    model, tokenizer = build_model_and_tokenizer(request.model_source, config.seed)
    model.save_pretrained(tmp_path / "untuned")
    tokenizer.save_pretrained(tmp_path / "untuned")
    prompts = ["Question: What is 2 + 3?\nAnswer: ", "Question: Reverse abc\nAnswer: "]
    trainer = TorchTrainer()
    untuned = trainer.generate_untuned(request, prompts, max_new_tokens=6, batch_size=2)
    saved = trainer.generate(
        tmp_path / "untuned", prompts, max_new_tokens=6, batch_size=2, device="cpu"
    )
    assert untuned == saved and len(untuned) == 2
