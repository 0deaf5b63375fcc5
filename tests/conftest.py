"""Shared fixtures of the unit tier: a mini project to run the plugin end to end in seconds."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainers.models import ARCHITECTURES

# The property tests' plugin: kept out of milestone sessions by addopts in pyproject.toml.
pytest_plugins = ["_hypothesis_pytestplugin"]

# pytester restores sys.modules after each of its tests, dropping a framework first imported in
# one; torch and jaxlib then crash the process when the next test imports them again. Imported
# here, before any test runs, they stay loaded whatever subset of the tier is selected.
for _framework in ("torch", "jax"):
    if importlib.util.find_spec(_framework) is not None:
        importlib.import_module(_framework)

ROOT = Path(__file__).resolve().parents[1]

TRAINING = """\
# pytest acceptance --milestone mini
seed: 7
batch_size: 4
max_seq_len: 192
precision: fp32
grad_clip: 1.0
log_every: 2
optimizer: {{name: adamw, lr: {lr}, weight_decay: 0.0, betas: [0.9, 0.98], eps: 1.0e-8}}
schedule: {{warmup_steps: 0, decay: constant, min_lr_ratio: 1.0}}
divergence: {{factor: 3.0, patience: 3}}
eval: {{batch_size: 4, max_new_tokens: 8}}
"""

SPEC = """\
id: {milestone_id}
title: Mini milestone
purpose: Exercise every phase in seconds.
backend: {backend}
hardware: {{accelerator: {accelerator}, count: 1, platform: any, label: test hardware}}
model: {model}
training_config: {training}.yaml
dataset: mini
evalset: mini
run: {{max_steps: {max_steps}}}
frozen: []
guardrails: {{clean_tree: true}}
acceptance:
  train.nonfinite_steps: "== 0"
  eval.count: "== 5"
closing_statement: The mini milestone proves nothing about quality.
"""


class MiniProject:
    """A project with the real acceptance phases, tiny data and milestones that train in seconds."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        # The project sits below pytester's folder, where pytester keeps its own stdout/stderr
        # files: those must not count as outputs of the run.
        self.path = pytester.path / "project"
        self.path.mkdir()
        (self.path / "acceptance").mkdir()
        for module in (ROOT / "acceptance").glob("test_*.py"):
            shutil.copy(module, self.path / "acceptance")
        (self.path / "configs" / "milestones").mkdir(parents=True)
        (self.path / "configs" / "training").mkdir()
        self.training("mini")
        traces = (ROOT / "datasets" / "dev-reasoning-v2" / "traces.jsonl").read_text().splitlines()
        (self.path / "datasets" / "mini").mkdir(parents=True)
        (self.path / "datasets" / "mini" / "traces.jsonl").write_text("\n".join(traces[:16]) + "\n")
        items = (ROOT / "evalsets" / "eval_v2.jsonl").read_text().splitlines()
        (self.path / "evalsets").mkdir()
        (self.path / "evalsets" / "mini.jsonl").write_text("\n".join(items[:5]) + "\n")
        # As in pyproject.toml: the property tests' plugin stays out of milestone sessions.
        (self.path / "pytest.ini").write_text(
            "[pytest]\n"
            "addopts = --strict-markers -p no:hypothesispytest\n"
            "generate_report_on_test = true\n"
        )
        self.commit("a mini project")

    def git(self, *args: str) -> str:
        identity = ["-c", "user.name=tunix-rt tests", "-c", "user.email=tests@tunix-rt.invalid"]
        done = subprocess.run(["git", *identity, *args], cwd=self.path, capture_output=True, text=True, check=True)
        return done.stdout

    def commit(self, message: str) -> None:
        if not (self.path / ".git").exists():
            self.git("init", "-q")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def training(self, name: str, *, lr: float = 3.0e-3) -> None:
        (self.path / "configs" / "training" / f"{name}.yaml").write_text(TRAINING.format(lr=lr))

    def milestone(
        self,
        milestone_id: str,
        *,
        accelerator: str = "cpu",
        model: str = "random:tiny-gemma",
        training: str = "mini",
        max_steps: int = 4,
        backend: str = "torch",
    ) -> None:
        text = SPEC.format(
            milestone_id=milestone_id,
            backend=backend,
            accelerator=accelerator,
            model=model,
            training=training,
            max_steps=max_steps,
        )
        (self.path / "configs" / "milestones" / f"{milestone_id}.yaml").write_text(text)

    def run(self, *args: str) -> pytest.RunResult:
        """A session in its own process: torch cannot be imported twice into one process."""
        return self.pytester.runpytest_subprocess(str(self.path / "acceptance"), *args)

    def run_in_process(self, *args: str) -> pytest.RunResult:
        """A session that never imports torch (usage errors, collection) in this process."""
        return self.pytester.runpytest(str(self.path / "acceptance"), *args)

    def start_long_training(self) -> subprocess.Popen[bytes]:
        """A session of a ``mini-long`` milestone left running once training has logged a step."""
        self.milestone("mini-long", max_steps=100000)
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "acceptance", "--milestone", "mini-long"],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        log = self.bundle("mini-long_v1") / "training_log.txt"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.is_file() and "step " in log.read_text():
                return process
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the session ended early: {output}")
            time.sleep(0.2)
        process.kill()
        pytest.fail("training did not log a step in time")

    def bundle(self, run_id: str) -> Path:
        return self.path / "submission_runs" / run_id

    def manifest(self, run_id: str) -> dict[str, Any]:
        return json.loads((self.bundle(run_id) / "run_manifest.json").read_text())


# jax's persistent compilation cache, shared by the tier's workers and every process they start:
# the same tiny programs are compiled by many tests. A size limit turns on its file lock, so that
# concurrent processes never read an entry half written.
JAX_CACHE = {
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(4 << 30),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
}


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[None]:
    """An empty cache at each start of the tier (as in CI), under pytest's temporary root."""
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if hasattr(request.config, "workerinput") else root
    settings = {**JAX_CACHE, "JAX_COMPILATION_CACHE_DIR": str(shared / "jax-compilation-cache")}
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update({name: value for name, value in settings.items() if before[name] is None})
    jax = sys.modules.get("jax")
    if jax is not None:  # imported above, before these were set: this process is told directly
        env = os.environ
        jax.config.update("jax_compilation_cache_dir", env["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update(
            "jax_compilation_cache_max_size", int(env["JAX_COMPILATION_CACHE_MAX_SIZE"])
        )
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs",
            float(env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
        )
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)


@pytest.fixture
def mini(pytester: pytest.Pytester) -> MiniProject:
    """A mini project with three milestones: ``mini``, ``mini-gpu`` (needs CUDA), ``mini-broken``
    (its model folder has a config.json and a tokenizer but no weights: it passes pre-flight,
    then fails to train)."""
    project = MiniProject(pytester)
    project.milestone("mini")
    project.milestone("mini-gpu", accelerator="cuda")
    weightless = project.path / "weightless-model"
    weightless.mkdir()
    (weightless / "config.json").write_text(json.dumps(ARCHITECTURES["tiny-gemma"]))
    shutil.copy(ROOT / "tests" / "data" / "char_tokenizer.json", weightless / "tokenizer.json")
    project.milestone("mini-broken", model=f"local:{weightless}")
    project.commit("mini milestones")
    return project


# What kagglehub reads for credentials, and where it would find a notebook's own.
KAGGLE_VARIABLES = (
    "KAGGLE_USERNAME",
    "KAGGLE_KEY",
    "KAGGLE_API_TOKEN",
    "KAGGLE_KERNEL_RUN_TYPE",
    "KAGGLE_DATA_PROXY_URL",
)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Kaggle credentials anywhere and an empty kagglehub cache, which is returned."""
    for name in KAGGLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "home" / ".kaggle"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    return tmp_path / "kagglehub"
