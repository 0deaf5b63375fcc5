"""Contamination of an evalset by the training data: eval items whose question the model may
have seen in training, found by exact and normalised prompt matches and by shared 13-grams (the
decontamination method lm-evaluation-harness documents)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

NGRAM = 13
METHOD = (
    "exact prompt match; normalised prompt match (case, punctuation and whitespace ignored); "
    f"a shared {NGRAM}-gram of normalised words (prompts of fewer words are checked by the "
    "matches only)"
)
_NOT_WORD = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Case folded, punctuation dropped, whitespace runs made one space."""
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Contamination:
    """The eval items each check flagged, by id."""

    exact: tuple[str, ...]
    normalised: tuple[str, ...]
    ngram: tuple[str, ...]

    @property
    def items(self) -> tuple[str, ...]:
        """Every flagged item, once."""
        return tuple(sorted({*self.exact, *self.normalised, *self.ngram}))


def find_contamination(
    training_prompts: Iterable[str], eval_prompts: Mapping[str, str]
) -> Contamination:
    """Check each eval prompt (by id) against every training prompt."""
    exact, normalised, grams = set(), set(), set()
    for prompt in training_prompts:
        exact.add(prompt)
        normalised.add(normalise(prompt))
        grams |= ngrams(prompt)
    return Contamination(
        exact=tuple(sorted(i for i, p in eval_prompts.items() if p in exact)),
        normalised=tuple(sorted(i for i, p in eval_prompts.items() if normalise(p) in normalised)),
        ngram=tuple(sorted(i for i, p in eval_prompts.items() if ngrams(p) & grams)),
    )
