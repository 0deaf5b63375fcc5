"""`python -m harness compare` verifies bundles, then sets them side by side: outcomes, criteria,
metrics with intervals, only the settings that differ, the loss curves, the items that flipped."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.evidence import bundle
from harness.evidence.verify import verify_bundle, write_checksums
from harness.evidence.writers import prediction_rows, scored
from harness.record.evaluation import score_items
from harness.record.statistics import wilson
from harness.spec.data import load_evalset
from tests.test_verify_integrity import assemble, manifest

ROOT = Path(__file__).resolve().parents[1]
# Which of the first five eval_v2 items each run answers correctly, and what it was set up with.
RUNS = {
    "mini_v1": ({1, 2, 3}, {}, (4.0, 3.0, 2.5)),
    "mini_v2": ({1, 4, 5}, {"seed": 8}, (4.0, 3.5, 3.2)),
    "mini_v3": ({1, 2, 3, 4, 5}, {"precision": "bf16"}, (4.1, 2.0, 1.0)),
}


def item_id(number: int) -> str:
    return f"eval_v2-{number:04d}"


def build(run_dir: Path, correct: set[int], settings: dict[str, object],
          losses: tuple[float, ...]) -> Path:
    """A bundle that verifies, whose run answered the items numbered ``correct`` right."""
    assemble(run_dir)
    run_id = run_dir.name
    items = load_evalset(ROOT / "evalsets" / "eval_v2.jsonl")[:5]
    completions = [
        f"<reasoning>r</reasoning><answer>{item.expected_answer if n in correct else 'x'}</answer>"
        for n, item in enumerate(items, start=1)
    ]
    result = score_items(items, completions, runtime_s=1.0)
    bundle.write_jsonl(run_dir / bundle.PREDICTIONS, prediction_rows(result))
    results = {"milestone": "mini", "run_id": run_id, "evalset": "mini", **scored(result),
               "runtime_s": 1.0, "items_per_s": 5.0}
    bundle.write_json(run_dir / bundle.EVALUATION_RESULTS, results)
    metrics = bundle.read_json(run_dir / bundle.TRAINING_METRICS)
    metrics["per_step"] = [dict(metrics["per_step"][0], step=n, loss=loss)
                           for n, loss in enumerate(losses, start=1)]
    bundle.write_json(run_dir / bundle.TRAINING_METRICS, metrics)
    written = manifest("mini", run_id) | settings
    written["criteria"] = [{"phase": "evaluate", "metric": "eval.accuracy", "comparison": ">= 0.5",
                            "measured": result.accuracy, "threshold": 0.5,
                            "verdict": "passed" if result.accuracy >= 0.5 else "failed",
                            "reason": "judged"}]
    bundle.write_json(run_dir / bundle.RUN_MANIFEST, written)
    write_checksums(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [build(root / run_id, *spec) for run_id, spec in RUNS.items()]


@pytest.fixture(scope="module")
def compared(runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compared") / "out"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    return out


class Page(HTMLParser):
    """The text of an HTML page and every address it would load or link to."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.addresses: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.addresses += [value or "" for name, value in attrs if name in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rows(markdown: str, title: str) -> list[list[str]]:
    """The cells of the rows of the markdown table under ``## <title>``, below its header."""
    section = markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_the_bundles_are_built_to_verify(runs: list[Path]) -> None:
    assert all(verify_bundle(run) == [] for run in runs)


def test_the_page_opens_offline_and_names_every_run(compared: Path) -> None:
    assert sorted(p.name for p in compared.iterdir()) == [
        "comparison.html", "comparison.md", "loss_curves.png"]
    page = Page((compared / "comparison.html").read_text())
    assert page.addresses and all(a.startswith("data:image/png;base64,") for a in page.addresses)
    text = " ".join(page.text)
    assert "Comparison of mini_v1, mini_v2, mini_v3" in text
    assert (compared / "loss_curves.png").read_bytes().startswith(b"\x89PNG")


def test_only_the_settings_that_differ_are_shown(compared: Path) -> None:
    table = rows((compared / "comparison.md").read_text(), "Settings that differ")
    assert table == [["precision", "fp32", "fp32", "bf16"], ["seed", "7", "8", "7"]]


def test_the_flipped_items_and_the_exact_p_value_against_the_first_run(compared: Path) -> None:
    table = rows((compared / "comparison.md").read_text(), "Items that flipped against mini_v1")
    # mini_v2 gains items 4 and 5 and loses 2 and 3: p = 1; mini_v3 only gains 4 and 5:
    # p = 2 x P(Binomial(2, 1/2) <= 0) = 0.5.
    gained = f"2: {item_id(4)}, {item_id(5)}"
    assert [row[:2] for row in table] == [["mini_v2", "5"], ["mini_v3", "5"]]
    assert table[0][3:] == [gained, f"2: {item_id(2)}, {item_id(3)}", "1"]
    assert table[1][3:] == [gained, "0", "0.5"]
    assert table[1][2] == "60.0% [23.1%, 88.2%] -> 100.0% [56.6%, 100.0%]"


def test_metrics_carry_their_intervals_and_criteria_their_verdicts(compared: Path) -> None:
    markdown = (compared / "comparison.md").read_text()
    metrics = {row[0]: row[1:] for row in rows(markdown, "Metrics")}
    bounds = wilson(3, 5)
    assert metrics["eval.accuracy"][0] == f"60.0% [{bounds.low:.1%}, {bounds.high:.1%}]"
    assert metrics["train.final_loss"] == ["2.5", "3.2", "1"]
    assert "eval.accuracy_low" not in metrics
    criteria = {row[0]: row[1:] for row in rows(markdown, "Criteria")}
    assert criteria["eval.accuracy >= 0.5"] == ["passed (0.6)", "passed (0.6)", "passed (1)"]
    outcomes = {row[0]: row[1:] for row in rows(markdown, "Outcomes")}
    assert outcomes["train"] == ["passed"] * 3


def test_a_bundle_that_does_not_verify_is_refused_in_one_line_and_nothing_is_written(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = build(tmp_path / "mini_v4", {1}, {}, (4.0, 3.0))
    (tampered / bundle.PREDICTIONS).write_text("{}\n")
    out = tmp_path / "out"
    assert main(["compare", str(runs[0]), str(tampered), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"{tampered}: does not verify: predictions.jsonl: content differs from its " \
        "SHA256SUMS entry\n"
    assert not out.exists()


def test_the_output_never_goes_inside_a_compared_bundle(
    runs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in runs[1].iterdir())
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(runs[1] / "cmp")]) == 2
    assert "inside the compared bundle" in capsys.readouterr().err
    assert sorted(p.name for p in runs[1].iterdir()) == before and verify_bundle(runs[1]) == []


def test_the_default_folder_is_named_after_the_bundles(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(runs[0]), str(runs[2])]) == 0
    assert (tmp_path / "comparison-mini_v1-vs-mini_v3" / "comparison.html").is_file()
