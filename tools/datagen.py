"""Deterministic generator of the dev-reasoning-v2 dataset and the eval_v2 evalset.

Run ``python -m tools.datagen [--out-root PATH]``. Output is byte-identical
across runs and machines: it depends only on SEED and this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from harness.spec.data import TRACES_FILE, EvalItem, Trace, file_sha256
from harness.spec.prompting import format_completion, format_prompt

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
WORDS = (
    "apple", "banana", "bridge", "candle", "carrot", "castle", "cherry", "cloud",
    "copper", "cotton", "dragon", "eagle", "engine", "falcon", "forest", "garden",
    "ginger", "glass", "guitar", "hammer", "harbor", "island", "jacket", "jungle",
    "kettle", "ladder", "lemon", "letter", "magnet", "marble", "meadow", "mirror",
    "monkey", "nickel", "orange", "oyster", "paddle", "panda", "parrot", "pencil",
    "pepper", "planet", "pocket", "puzzle", "rabbit", "river", "rocket", "saddle",
    "salmon", "silver", "spider", "spoon", "stone", "summer", "tablet", "tiger",
    "tomato", "tunnel", "turtle", "velvet", "violin", "wagon", "walnut", "window",
    "winter", "yellow", "zebra", "bottle", "button", "cactus",
)

Steps = tuple[tuple[str, str], ...]
Draft = tuple[str, Steps, str]
Task = Callable[[random.Random], Draft]


@dataclass(frozen=True)
class Example:
    """One generated question with its reasoning steps and answer."""

    category: str
    task_type: str
    prompt: str
    steps: Steps
    answer: str


def num(value: Fraction | int) -> str:
    """Format a number with at most 2 decimals and no trailing zeros."""
    hundredths = Fraction(value) * 100
    if hundredths.denominator != 1:
        raise ValueError(f"{value} needs more than 2 decimals")
    sign = "-" if hundredths < 0 else ""
    whole, frac = divmod(abs(hundredths.numerator), 100)
    decimals = f"{frac:02d}".rstrip("0")
    return f"{sign}{whole}.{decimals}" if decimals else f"{sign}{whole}"


def _add_mul(rng: random.Random) -> Draft:
    """a + b * c."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 30), rng.randint(2, 9)
    product = b * c
    steps = (
        ("explain", "multiply first"),
        ("compute", f"{b} * {c} = {product}"),
        ("compute", f"{a} + {product} = {a + product}"),
    )
    return f"What is {a} + {b} * {c}?", steps, str(a + product)


def _mul_sub(rng: random.Random) -> Draft:
    """a * b - c."""
    a, b, c = rng.randint(2, 20), rng.randint(2, 9), rng.randint(2, 99)
    product = a * b
    steps = (
        ("explain", "multiply first"),
        ("compute", f"{a} * {b} = {product}"),
        ("compute", f"{product} - {c} = {product - c}"),
    )
    return f"What is {a} * {b} - {c}?", steps, str(product - c)


def _paren_mul(rng: random.Random) -> Draft:
    """(a + b) * c."""
    a, b, c = rng.randint(2, 50), rng.randint(2, 50), rng.randint(2, 9)
    total = a + b
    steps = (
        ("explain", "brackets first"),
        ("compute", f"{a} + {b} = {total}"),
        ("compute", f"{total} * {c} = {total * c}"),
    )
    return f"What is ({a} + {b}) * {c}?", steps, str(total * c)


def _add_sub(rng: random.Random) -> Draft:
    """a + b - c."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 99)
    total = a + b
    steps = (("compute", f"{a} + {b} = {total}"), ("compute", f"{total} - {c} = {total - c}"))
    return f"What is {a} + {b} - {c}?", steps, str(total - c)


def _percent_of(rng: random.Random) -> Draft:
    """p% of n."""
    percent = rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80, 90))
    base = rng.randint(20, 900)
    unit = num(Fraction(base, 100))
    answer = num(Fraction(base * percent, 100))
    steps = (("compute", f"{base} / 100 = {unit}"), ("compute", f"{unit} * {percent} = {answer}"))
    return f"What is {percent}% of {base}?", steps, answer


def _discount(rng: random.Random) -> Draft:
    """n reduced by p%."""
    percent, base = rng.choice((10, 20, 25, 30, 40, 50)), rng.randint(2, 60) * 10
    cut = num(Fraction(base * percent, 100))
    answer = num(base - Fraction(base * percent, 100))
    steps = (
        ("compute", f"{percent}% of {base} = {cut}"),
        ("compute", f"{base} - {cut} = {answer}"),
    )
    return f"What is {base} after a {percent}% discount?", steps, answer


def _increase(rng: random.Random) -> Draft:
    """n raised by p%."""
    percent, base = rng.choice((10, 20, 25, 30, 40, 50)), rng.randint(2, 60) * 10
    extra = num(Fraction(base * percent, 100))
    answer = num(base + Fraction(base * percent, 100))
    steps = (
        ("compute", f"{percent}% of {base} = {extra}"),
        ("compute", f"{base} + {extra} = {answer}"),
    )
    return f"What is {base} after a {percent}% increase?", steps, answer


def _what_percent(rng: random.Random) -> Draft:
    """What percent of n is m."""
    percent, base = rng.choice((5, 10, 20, 25, 40, 50, 60, 75, 80)), rng.randint(1, 30) * 20
    part = base * percent // 100
    ratio = num(Fraction(part, base))
    steps = (("compute", f"{part} / {base} = {ratio}"), ("compute", f"{ratio} * 100 = {percent}"))
    return f"What percent of {base} is {part}?", steps, f"{percent}%"


def _distance(rng: random.Random) -> Draft:
    """Distance from speed and time."""
    speed, hours = rng.randint(2, 24) * 5, rng.randint(2, 9)
    steps = (
        ("explain", "distance = speed * time"),
        ("compute", f"{speed} * {hours} = {speed * hours}"),
    )
    return f"At {speed} km/h, how many km in {hours} hours?", steps, str(speed * hours)


def _speed(rng: random.Random) -> Draft:
    """Speed from distance and time."""
    speed, hours = rng.randint(2, 24) * 5, rng.randint(2, 9)
    steps = (
        ("explain", "speed = distance / time"),
        ("compute", f"{speed * hours} / {hours} = {speed}"),
    )
    return f"A bus goes {speed * hours} km in {hours} hours. Speed in km/h?", steps, str(speed)


def _travel_time(rng: random.Random) -> Draft:
    """Time from distance and speed."""
    speed, hours = rng.randint(2, 24) * 5, rng.randint(2, 9)
    steps = (
        ("explain", "time = distance / speed"),
        ("compute", f"{speed * hours} / {speed} = {hours}"),
    )
    return f"How many hours to go {speed * hours} km at {speed} km/h?", steps, str(hours)


def _hours_to_minutes(rng: random.Random) -> Draft:
    """Hours to minutes."""
    hours = Fraction(rng.randint(5, 40), 4)
    minutes = num(hours * 60)
    steps = (("explain", "1 hour = 60 minutes"), ("compute", f"{num(hours)} * 60 = {minutes}"))
    return f"How many minutes are in {num(hours)} hours?", steps, minutes


def _minutes_to_hours(rng: random.Random) -> Draft:
    """Minutes to hours."""
    minutes = rng.randint(5, 40) * 15
    hours = num(Fraction(minutes, 60))
    steps = (("explain", "1 hour = 60 minutes"), ("compute", f"{minutes} / 60 = {hours}"))
    return f"How many hours are in {minutes} minutes?", steps, hours


def _km_to_meters(rng: random.Random) -> Draft:
    """Kilometres to metres."""
    km = num(Fraction(rng.randint(2, 100), 10))
    meters = num(Fraction(km) * 1000)
    steps = (("explain", "1 km = 1000 m"), ("compute", f"{km} * 1000 = {meters}"))
    return f"How many meters are in {km} km?", steps, meters


def _spell(word: str) -> tuple[str, str]:
    """A step spelling a word letter by letter."""
    return ("explain", "spell " + " ".join(word))


def _reverse_word(rng: random.Random) -> Draft:
    """A word backwards."""
    word = rng.choice(WORDS)
    steps = (_spell(word), ("compute", "backward " + " ".join(reversed(word))))
    return f"Reverse the word '{word}'.", steps, word[::-1]


def _count_letter(rng: random.Random) -> Draft:
    """How often a letter occurs in a word."""
    word = rng.choice(WORDS)
    letter = rng.choice(sorted(set(word)))
    count = word.count(letter)
    steps = (_spell(word), ("compute", f"'{letter}' appears {count} times"))
    return f"How many '{letter}' are in '{word}'?", steps, str(count)


def _word_length(rng: random.Random) -> Draft:
    """How many letters a word has."""
    word = rng.choice(WORDS)
    steps = (_spell(word), ("compute", f"{len(word)} letters"))
    return f"How many letters are in '{word}'?", steps, str(len(word))


def _letter_at(rng: random.Random) -> Draft:
    """The letter at a 1-based position."""
    word = rng.choice(WORDS)
    position = rng.randint(1, len(word))
    steps = (_spell(word), ("compute", f"letter {position} is {word[position - 1]}"))
    return f"What is letter {position} of '{word}'?", steps, word[position - 1]


def _either_order(rng: random.Random, constant: int, other: int) -> tuple[int, int]:
    """The two operands in a random order."""
    return (constant, other) if rng.random() < 0.5 else (other, constant)


def _times_zero(rng: random.Random) -> Draft:
    """Multiplying by zero."""
    left, right = _either_order(rng, 0, rng.randint(2, 9999))
    return f"What is {left} * {right}?", (("explain", "anything times 0 is 0"),), "0"


def _times_one(rng: random.Random) -> Draft:
    """Multiplying by one."""
    other = rng.randint(2, 9999)
    left, right = _either_order(rng, 1, other)
    return f"What is {left} * {right}?", (("explain", "anything times 1 is itself"),), str(other)


def _negative_result(rng: random.Random) -> Draft:
    """A subtraction with a negative result."""
    small = rng.randint(1, 60)
    big = small + rng.randint(1, 60)
    steps = (
        ("compute", f"{big} - {small} = {big - small}"),
        ("explain", f"{small} is smaller, so negative"),
    )
    return f"What is {small} - {big}?", steps, str(small - big)


def _negative_times(rng: random.Random) -> Draft:
    """A negative times a positive."""
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    steps = (("compute", f"{a} * {b} = {a * b}"), ("explain", "one minus sign, so negative"))
    return f"What is -{a} * {b}?", steps, str(-a * b)


def _exact_division(rng: random.Random) -> Draft:
    """A division with an integer result."""
    quotient, divisor = rng.randint(2, 30), rng.randint(2, 12)
    dividend = quotient * divisor
    steps = (
        ("compute", f"{dividend} / {divisor} = {quotient}"),
        ("check", f"{quotient} * {divisor} = {dividend}"),
    )
    return f"What is {dividend} / {divisor}?", steps, str(quotient)


def _zero_divided(rng: random.Random) -> Draft:
    """Zero divided by a number."""
    divisor = rng.randint(2, 999)
    return f"What is 0 / {divisor}?", (("explain", "0 divided by a nonzero is 0"),), "0"


TASKS: dict[str, tuple[tuple[str, Task], ...]] = {
    "arithmetic": (
        ("add_mul", _add_mul),
        ("mul_sub", _mul_sub),
        ("paren_mul", _paren_mul),
        ("add_sub", _add_sub),
    ),
    "percentages": (
        ("percent_of", _percent_of),
        ("discount", _discount),
        ("increase", _increase),
        ("what_percent", _what_percent),
    ),
    "rates_units": (
        ("distance", _distance),
        ("speed", _speed),
        ("travel_time", _travel_time),
        ("hours_to_minutes", _hours_to_minutes),
        ("minutes_to_hours", _minutes_to_hours),
        ("km_to_meters", _km_to_meters),
    ),
    "string_transforms": (
        ("reverse_word", _reverse_word),
        ("count_letter", _count_letter),
        ("word_length", _word_length),
        ("letter_at", _letter_at),
    ),
    "edge_cases": (
        ("times_zero", _times_zero),
        ("times_one", _times_one),
        ("negative_result", _negative_result),
        ("negative_times", _negative_times),
        ("exact_division", _exact_division),
        ("zero_divided", _zero_divided),
    ),
}


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
    """The repository root: the parent of the harness package folder."""
    return Path(__file__).resolve().parent.parent


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


if __name__ == "__main__":
    raise SystemExit(main())
