"""Deterministic generator of the dev-reasoning-v2 dataset and the eval_v2 evalset.

Run ``python -m tools.datagen [--out-root PATH]``. Output is byte-identical across runs and
machines: it depends only on SEED and this package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.spec.data import TRACES_FILE, EvalItem, Trace, file_sha256
from harness.spec.prompting import format_completion, format_prompt
from tools.datagen.tasks import TASKS, Steps, Task

SEED = 20260611
GENERATOR = "tools.datagen"
DATASET_NAME = "dev-reasoning-v2"
EVALSET_NAME = "eval_v2"
TRACE_VERSION = "2"
TRAIN_COUNT = 550
EVAL_COUNT = 100
# The models trained on this are tiny character-level ones trained for
# minutes on a CPU, so every example must stay short.
MAX_PROMPT_CHARS = 60
MAX_STEPS = 3
MAX_EXAMPLE_CHARS = 160
MAX_DRAWS = 1000
CATEGORIES = ("arithmetic", "percentages", "rates_units", "string_transforms", "edge_cases")
# Angle brackets are left out so that no field can be mistaken for a tag.
ALLOWED_CHARS = frozenset(chr(code) for code in range(32, 127)) - {"<", ">"}


@dataclass(frozen=True)
class Example:
    """One generated question with its reasoning steps and answer."""

    category: str
    task_type: str
    prompt: str
    steps: Steps
    answer: str


def split_seed(split: str) -> int:
    """The seed of one split, derived from SEED so splits draw independent streams."""
    return int.from_bytes(hashlib.sha256(f"{SEED}/{split}".encode("ascii")).digest()[:8], "big")


def generate(count: int, seed: int, forbidden: frozenset[str] = frozenset()) -> list[Example]:
    """Draw count examples with unique prompts, none in forbidden, categories interleaved."""
    rng = random.Random(seed)
    seen = set(forbidden)
    examples: list[Example] = []
    for index in range(count):
        category = CATEGORIES[index % len(CATEGORIES)]
        tasks = TASKS[category]
        task_type, task = tasks[(index // len(CATEGORIES)) % len(tasks)]
        example = _draw_unique(rng, category, task_type, task, seen)
        seen.add(example.prompt)
        examples.append(example)
    return examples


def _draw_unique(
    rng: random.Random, category: str, task_type: str, task: Task, seen: set[str]
) -> Example:
    """Draw from one task until its prompt is new."""
    for _ in range(MAX_DRAWS):
        prompt, steps, answer = task(rng)
        if prompt not in seen:
            return Example(category, task_type, prompt, steps, answer)
    raise RuntimeError(f"{task_type}: no new prompt after {MAX_DRAWS} draws")


def generate_splits() -> tuple[list[Example], list[Example]]:
    """The train and eval examples; eval is drawn first and its prompts kept out of train."""
    evals = generate(EVAL_COUNT, split_seed("eval"))
    eval_prompts = frozenset(example.prompt for example in evals)
    train = generate(TRAIN_COUNT, split_seed("train"), eval_prompts)
    overlap = {example.prompt for example in train} & eval_prompts
    if overlap:
        raise RuntimeError(f"eval prompts leaked into train: {sorted(overlap)[:3]}")
    return train, evals


def trace_record(example: Example, index: int) -> dict[str, object]:
    """The JSON record of a training trace, checked against the size limits."""
    record: dict[str, object] = {
        "trace_version": TRACE_VERSION,
        "prompt": example.prompt,
        "final_answer": example.answer,
        "steps": [
            {"i": i, "type": kind, "content": content}
            for i, (kind, content) in enumerate(example.steps)
        ],
        "meta": {
            "dataset": DATASET_NAME,
            "category": example.category,
            "task_type": example.task_type,
            "index": index,
        },
    }
    check_trace(Trace.model_validate(record))
    return record


def eval_record(example: Example, index: int) -> dict[str, object]:
    """The JSON record of an eval item, numbered from 1."""
    record: dict[str, object] = {
        "id": f"{EVALSET_NAME}-{index + 1:04d}",
        "prompt": example.prompt,
        "expected_answer": example.answer,
        "category": example.category,
    }
    item = EvalItem.model_validate(record)
    _check_text(item.id, item.prompt, item.expected_answer)
    _check_prompt(item.prompt)
    return record


def example_chars(trace: Trace) -> int:
    """Length of the full training text of a trace: prompt plus completion."""
    return len(format_prompt(trace.prompt) + format_completion(trace))


def check_trace(trace: Trace) -> None:
    """Raise ValueError when a trace breaks the size or character limits."""
    _check_text(trace.prompt, trace.final_answer, *(step.content for step in trace.steps))
    _check_prompt(trace.prompt)
    if len(trace.steps) > MAX_STEPS:
        raise ValueError(f"{trace.prompt!r}: {len(trace.steps)} steps, limit {MAX_STEPS}")
    if example_chars(trace) >= MAX_EXAMPLE_CHARS:
        chars = example_chars(trace)
        raise ValueError(f"{trace.prompt!r}: {chars} chars, limit {MAX_EXAMPLE_CHARS}")


def _check_prompt(prompt: str) -> None:
    """Raise ValueError when a prompt is too long."""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"{prompt!r}: prompt longer than {MAX_PROMPT_CHARS} chars")


def _check_text(*fields: str) -> None:
    """Raise ValueError when a field has characters outside ALLOWED_CHARS."""
    for field in fields:
        if not set(field) <= ALLOWED_CHARS:
            raise ValueError(f"{field!r}: characters outside printable ASCII minus angle brackets")


def write_jsonl(path: Path, records: list[dict[str, object]]) -> None:
    """Write records one per line, sorted keys, ASCII, "\\n" endings."""
    text = "".join(
        json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n" for record in records
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("ascii"))


def write_manifest(
    path: Path, data_file: Path, name: str, split: str, examples: list[Example]
) -> None:
    """Write the manifest describing one generated file."""
    manifest = {
        "name": name,
        "generator": GENERATOR,
        "seed": SEED,
        "split": split,
        "split_seed": split_seed(split),
        "count": len(examples),
        "categories": dict(Counter(example.category for example in examples)),
        "task_types": dict(Counter(example.task_type for example in examples)),
        "file": data_file.name,
        "sha256": file_sha256(data_file),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    path.write_bytes(text.encode("ascii"))


def write_all(out_root: Path) -> list[Path]:
    """Generate both splits under out_root; return the files written."""
    train, evals = generate_splits()
    dataset_dir = out_root / "datasets" / DATASET_NAME
    traces_file = dataset_dir / TRACES_FILE
    eval_file = out_root / "evalsets" / f"{EVALSET_NAME}.jsonl"
    train_manifest = dataset_dir / "manifest.json"
    eval_manifest = out_root / "evalsets" / f"{EVALSET_NAME}.manifest.json"
    write_jsonl(traces_file, [trace_record(example, index) for index, example in enumerate(train)])
    write_manifest(train_manifest, traces_file, DATASET_NAME, "train", train)
    write_jsonl(eval_file, [eval_record(example, index) for index, example in enumerate(evals)])
    write_manifest(eval_manifest, eval_file, EVALSET_NAME, "eval", evals)
    return [traces_file, train_manifest, eval_file, eval_manifest]


def repo_root() -> Path:
    """The repository root, two folders above this package."""
    return Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.datagen", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out-root",
        type=Path,
        default=repo_root(),
        help="folder to write datasets/ and evalsets/ into",
    )
    args = parser.parse_args(argv)
    for path in write_all(args.out_root):
        print(f"wrote {path}")
    return 0

