"""Contamination of the evalset by the training data, checked in pre-flight."""

from __future__ import annotations

from pathlib import Path

from harness.record.contamination import find_contamination, ngrams, normalise
from harness.spec.data import load_evalset, load_traces

ROOT = Path(__file__).resolve().parents[1]
LONG = "Compute the total cost of eleven apples at three dollars each plus a delivery fee of five"


def test_each_check_flags_what_it_should() -> None:
    training = ["What is 2 + 3?", "what is 7*8 ?", f"Question: {LONG} dollars, please."]
    evals = {
        "same": "What is 2 + 3?",
        "reworded": "What is 7 * 8?",
        "embedded": f"{LONG} dollars",
        "clean": "What is 9 - 4?",
    }
    found = find_contamination(training, evals)
    assert found.exact == ("same",)
    assert found.normalised == ("reworded", "same")
    assert found.ngram == ("embedded",)
    assert found.items == ("embedded", "reworded", "same")


def test_normalising_ignores_case_punctuation_and_spacing() -> None:
    assert normalise("  What is 7*8 ?") == normalise("what IS 7 * 8") == "what is 7 8"
    assert len(ngrams(LONG)) == len(LONG.split()) - 13 + 1
    assert ngrams("too short to hold one") == set()


def test_the_committed_evalset_is_clean_of_the_committed_dataset() -> None:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")
    items = load_evalset(ROOT / "evalsets" / "eval_v2.jsonl")
    found = find_contamination([t.prompt for t in traces], {i.id: i.prompt for i in items})
    assert found.items == ()
    leaked = {items[0].id: traces[0].prompt.upper() + "!"}
    assert find_contamination([t.prompt for t in traces], leaked).items == (items[0].id,)
