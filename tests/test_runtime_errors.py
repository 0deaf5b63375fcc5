"""A problem at run time is one line on the terminal and in the report; its traceback is kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.test_memory import A_16_GIB_GPU

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

RAISING_FORWARD = '''
import pytest
import transformers


@pytest.fixture(autouse=True)
def forward_raises_on_second_step(monkeypatch):
    """A model whose forward fails mid-training, with a message of several lines."""
    original = transformers.GemmaForCausalLM.forward
    calls = []

    def forward(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a malformed batch reached the model\\nsecond line of detail")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.GemmaForCausalLM, "forward", forward)
'''


def failures_section(stdout: str) -> list[str]:
    """The lines pytest prints between the FAILURES header and the next section."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "= FAILURES =" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start + 1 : end]


def shown(section: list[str], test: str) -> list[str]:
    """What the failures section shows for ``test``: its lines up to the next header."""
    title = f" {test} "
    start = next(i for i, line in enumerate(section) if line.startswith("_") and title in line)
    after = section[start + 1 :]
    end = next((i for i, line in enumerate(after) if line.startswith(("_", "-"))), len(after))
    return [line for line in after[:end] if line.strip()]


def a_model_folder_transformers_cannot_parse(mini: MiniProject) -> None:
    """A ``local:`` model whose config.json is cut short, as an interrupted copy leaves it."""
    folder = mini.path / "bad-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gemma", "hidden_size": 128,\n')
    mini.milestone("mini-bad-model", model=f"local:{folder}")


def test_runtime_errors_are_one_line_with_their_traceback_in_the_bundle(mini: MiniProject) -> None:
    a_model_folder_transformers_cannot_parse(mini)
    (mini.path / "acceptance" / "conftest.py").write_text(RAISING_FORWARD)
    mini.commit("a model folder with a broken config.json, and a model that fails mid-training")
    result = mini.run("--milestone", "mini-bad-model", "--milestone", "mini")
    result.assert_outcomes(passed=7, failed=2, skipped=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    section = failures_section(result.stdout.str())
    preflight = mini.manifest("mini-bad-model_v1")["phases"]["preflight"]
    assert preflight["status"] == "failed" and preflight["cause"] == "error"
    assert preflight["reason"].startswith("OSError: It looks like the config file at ")
    kept_at = "submission_runs/mini-bad-model_v1/tracebacks/preflight.txt"
    assert shown(section, "test_preflight[mini-bad-model]") == [
        f"{preflight['reason']} (traceback: {kept_at})"
    ]
    train = mini.manifest("mini_v1")["phases"]["train"]
    assert train["reason"] == "RuntimeError: a malformed batch reached the model"
    assert shown(section, "test_train[mini]") == [
        f"{train['reason']} (traceback: submission_runs/mini_v1/tracebacks/train.txt)"
    ]
    result.stdout.no_fnmatch_line("*def test_*")
    result.stdout.fnmatch_lines(["FAILED *test_train[[]mini[]] - RuntimeError*"])

    kept = (mini.bundle("mini_v1") / "tracebacks" / "train.txt").read_text()
    assert "def test_train" in kept and "raise RuntimeError" in kept
    assert "second line of detail" in kept
    kept = (mini.bundle("mini-bad-model_v1") / "tracebacks" / "preflight.txt").read_text()
    assert "harness/phases/preflight.py" in kept and "is not a valid JSON file" in kept
    analysis = (mini.bundle("mini_v1") / "failure_analysis.md").read_text()
    assert "tracebacks/" in analysis
    assert "tracebacks/train.txt" in (mini.bundle("mini_v1") / "journal.md").read_text()
    report = (mini.bundle("mini_v1") / "report.html").read_text()
    assert "a malformed batch reached the model" in report
    assert "second line of detail" not in report


def test_a_failed_assertion_of_a_phase_is_its_message_in_one_line(mini: MiniProject) -> None:
    (mini.path / "notes.txt").write_text("committed\n")
    mini.commit("a tracked file")
    (mini.path / "notes.txt").write_text("edited, not committed\n")
    result = mini.run("--milestone", "mini")
    result.assert_outcomes(passed=3, failed=1, skipped=3)
    reason = mini.manifest("mini_v1")["phases"]["guardrails-before"]["reason"]
    assert reason.startswith("a rule is broken before the run: uncommitted change at start: notes")
    section = failures_section(result.stdout.str())
    assert shown(section, "test_guardrails_before[mini]") == [
        f"{reason} (traceback: submission_runs/mini_v1/tracebacks/guardrails-before.txt)"
    ]
    kept = (mini.bundle("mini_v1") / "tracebacks" / "guardrails-before.txt").read_text()
    assert "assert not problems" in kept


def test_a_traceback_style_asked_for_shows_the_traceback(mini: MiniProject) -> None:
    a_model_folder_transformers_cannot_parse(mini)
    mini.commit("a model folder with a broken config.json")
    result = mini.run("--milestone", "mini-bad-model", "--tb=short")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    result.stdout.fnmatch_lines(["*harness/phases/preflight.py:*", "E   OSError: It looks like the *"])
    assert (mini.bundle("mini-bad-model_v1") / "tracebacks" / "preflight.txt").is_file()


def test_a_refused_run_is_one_line_with_its_memory_breakdown_as_output(mini: MiniProject) -> None:
    (mini.path / "acceptance" / "conftest.py").write_text(A_16_GIB_GPU)
    mini.milestone("mini-2b", accelerator="cuda", model="random:gemma-2b")
    mini.commit("a Gemma 2B milestone and a 16 GiB GPU")
    result = mini.run("--milestone", "mini-2b")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    reason = mini.manifest("mini-2b_v1")["phases"]["preflight"]["reason"]
    kept_at = "submission_runs/mini-2b_v1/tracebacks/preflight.txt"
    section = failures_section(result.stdout.str())
    assert shown(section, "test_preflight[mini-2b]") == [f"{reason} (traceback: {kept_at})"]
    result.stdout.fnmatch_lines(["*Captured stdout call*", "| part | GiB |", "| total | *"])
    report = (mini.bundle("mini-2b_v1") / "report.html").read_text()
    assert "| total |" in report
