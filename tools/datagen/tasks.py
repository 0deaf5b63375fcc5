"""The question templates of the generated data: each draws one question, its reasoning steps and
its answer from a seeded ``random.Random``."""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

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
