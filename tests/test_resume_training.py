"""A run killed mid-training and resumed from its last complete checkpoint takes the same steps
as the run that was never interrupted, on both backends: weights, optimizer moments, schedule
position, dropout RNG and data order all come back."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.spec.data import load_traces
from harness.spec.prompting import format_completion, format_prompt
from harness.spec.yaml_files import load_yaml_model
from trainers.checkpoints import CheckpointPlan, complete, latest
from trainers.config import TrainingConfig
from trainers.protocol import Example, StepRecord, Trainer, TrainRequest

ROOT = Path(__file__).resolve().parents[1]
STEPS, KILLED_AT = 8, 5
# The same process on the same machine: resumed steps are the uninterrupted ones to the bit,
# far inside the golden curves' tolerance (harness/phases/goldens.py).
SAME = {"rel": 0.0, "abs": 1e-6}


class Killed(Exception):
    """Stands for the end of the process: nothing after the step it is raised at runs."""


def examples() -> tuple[Example, ...]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:32]
    return tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)


def trainer_for(backend: str) -> Trainer:
    if backend == "torch":
        pytest.importorskip("torch")
        from trainers.torch.trainer import TorchTrainer

        return TorchTrainer()
    pytest.importorskip("tunix")
    from trainers.jax.trainer import JaxTrainer

    return JaxTrainer()


def request(config: TrainingConfig, out: Path, **extra: object) -> TrainRequest:
    return TrainRequest(
        "random:tiny-gemma", config, examples(), STEPS, None, "cpu", out / "checkpoint", **extra
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "config_file"),
    [
        ("torch", "smoke_tiny.yaml"),
        ("torch", "smoke_lora_tiny.yaml"),  # adapter dropout: the RNG must come back too
        ("jax", "smoke_jax_tiny.yaml"),
    ],
)
def test_a_run_killed_at_step_k_resumes_into_the_uninterrupted_runs_losses(
    backend: str, config_file: str, tmp_path: Path
) -> None:
    trainer = trainer_for(backend)
    config = load_yaml_model(ROOT / "configs" / "training" / config_file, TrainingConfig)
    whole: list[StepRecord] = []
    trainer.train(request(config, tmp_path / "whole"), whole.append)

    plan = CheckpointPlan(tmp_path / "killed" / "checkpoints", every=2, keep=1)
    killed: list[StepRecord] = []

    def dies_at_k(record: StepRecord) -> None:
        killed.append(record)
        if record.step == KILLED_AT:
            raise Killed

    with pytest.raises(Killed):
        trainer.train(request(config, tmp_path / "killed", checkpoints=plan), dies_at_k)
    assert [step for step, _ in complete(plan.root)] == [4]  # keep 1: step 2's was removed
    found = latest(plan.root)
    assert found is not None
    resumed: list[StepRecord] = []
    trainer.train(request(config, tmp_path / "resumed", resume_from=found[1]), resumed.append)

    assert [r.step for r in resumed] == list(range(5, STEPS + 1))
    assert [r.loss for r in resumed] == pytest.approx([r.loss for r in whole[4:]], **SAME)
    assert [r.lr for r in resumed] == pytest.approx([r.lr for r in whole[4:]], **SAME)
    # Checkpointing itself changes nothing: the killed run matched the whole one up to its end.
    assert [r.loss for r in killed] == pytest.approx([r.loss for r in whole[:KILLED_AT]], **SAME)
