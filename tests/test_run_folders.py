"""Run folders: no session writes through a symlink, and sessions of different milestones run side
by side without taking each other's writes for their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence import bundle
from harness.phases.guardrails import check_after, check_before
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.milestones import Milestone
from harness.spec.registry import MilestoneRegistry

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.conftest import MiniProject

ROOT = Path(__file__).resolve().parent.parent
UNFINISHED = '{"run_id": "mini_v1", "session_finished": false}\n'


# --- never write through a symlink ------------------------------------------------------------


def _runs(mini: MiniProject) -> Path:
    return mini.path / "submission_runs"


def _refused(mini: MiniProject, linked: str) -> None:
    """The session stops with one usage line naming the link, before writing anything."""
    result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *{linked} is a symlink (to *so nothing was written*"])
    assert "Traceback" not in result.stderr.str()


def test_a_symlinked_run_folder_is_refused_and_nothing_is_written(
    mini: MiniProject, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run_manifest.json").write_text(UNFINISHED)
    _runs(mini).mkdir()
    (_runs(mini) / "mini_v1").symlink_to(elsewhere)
    _refused(mini, "submission_runs/mini_v1")
    assert [p.name for p in elsewhere.iterdir()] == ["run_manifest.json"]
    assert (elsewhere / "run_manifest.json").read_text() == UNFINISHED
    assert [p.name for p in _runs(mini).iterdir()] == ["mini_v1"]  # no lock, no mini_v2


def test_a_symlinked_file_in_the_run_to_mark_is_refused(mini: MiniProject, tmp_path: Path) -> None:
    target = tmp_path / "analysis.md"
    target.write_text("someone else's file\n")
    unfinished = _runs(mini) / "mini_v1"
    unfinished.mkdir(parents=True)
    (unfinished / "run_manifest.json").write_text(UNFINISHED)
    (unfinished / "failure_analysis.md").symlink_to(target)
    _refused(mini, "submission_runs/mini_v1/failure_analysis.md")
    assert target.read_text() == "someone else's file\n"
    assert (unfinished / "run_manifest.json").read_text() == UNFINISHED


def test_a_symlinked_runs_folder_is_refused(mini: MiniProject) -> None:
    (mini.path / "real_runs").mkdir()
    _runs(mini).symlink_to(mini.path / "real_runs")
    _refused(mini, "submission_runs")
    assert list((mini.path / "real_runs").iterdir()) == []


def test_a_symlinked_lock_file_is_refused(mini: MiniProject, tmp_path: Path) -> None:
    _runs(mini).mkdir()
    (_runs(mini) / ".mini.lock").symlink_to(tmp_path / "elsewhere.lock")
    _refused(mini, "submission_runs/.mini.lock")
    assert not (tmp_path / "elsewhere.lock").exists()


# --- sessions side by side ----------------------------------------------------------------------

OTHER_SESSION = """
import sys
from pathlib import Path

from filelock import FileLock

runs = Path(sys.argv[1])
with FileLock(runs / ".other.lock"):
    print("locked", flush=True)
    sys.stdin.readline()
    (runs / "other_v1").mkdir(exist_ok=True)
    (runs / "other_v1" / "training_log.txt").write_text("step 1\\n")
    print("written", flush=True)
    sys.stdin.readline()
"""


class OtherSession:
    """Another milestone's session in its own process: it holds ``.other.lock`` and writes into
    ``other_v1`` when told, then ends when told."""

    def __init__(self, runs: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", OTHER_SESSION, str(runs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.readline() == "locked"

    def readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def tell(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def write(self) -> None:
        self.tell()
        assert self.readline() == "written"

    def end(self) -> None:
        self.tell()
        assert self.process.wait(timeout=60) == 0


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed repository whose ``submission_runs/`` holds run folders, as a project's does."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "repo"
    root.mkdir()
    (root / "code.py").write_text("X = 1\n")
    for args in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    identity = ["-c", "user.name=tests", "-c", "user.email=tests@tunix-rt.invalid"]
    subprocess.run(["git", *identity, "commit", "-q", "-m", "initial"], cwd=root, check=True)
    return root


@pytest.fixture
def run(repo: Path) -> MilestoneRun:
    """This session's smoke run in ``repo``, allowed its folder and its lock file."""
    smoke: Milestone = MilestoneRegistry(ROOT).load("smoke")
    runs = repo / "submission_runs"
    run_dir = bundle.allocate_run_dir(runs, "smoke")
    (runs / ".smoke.lock").touch()
    return MilestoneRun(smoke, repo, run_dir, RunOptions(allowed_outputs=(run_dir, runs / ".smoke.lock")))


@pytest.fixture
def other(repo: Path) -> Iterator[OtherSession]:
    session = OtherSession(repo / "submission_runs")
    yield session
    session.process.kill()
    session.process.wait(timeout=60)


def test_writes_of_a_session_live_at_the_start_are_left_to_it(
    run: MilestoneRun, other: OtherSession
) -> None:
    assert check_before(run) == []
    other.write()
    other.end()  # it finishes before this session's check: its lock is free again
    assert check_after(run) == []
    recorded = bundle.read_json(run.run_dir / "guardrails.json")
    assert recorded["before"]["other_sessions_live"] == ["other"]
    assert recorded["after"]["other_sessions_live"] == ["none"]
    assert recorded["after"]["left_to_other_sessions"] == [
        "submission_runs/.other.lock",
        "submission_runs/other_v1",
    ]


def test_writes_of_a_session_that_came_and_went_are_left_to_it(run: MilestoneRun) -> None:
    assert check_before(run) == []
    other = OtherSession(run.run_dir.parent)
    other.write()
    other.end()
    assert check_after(run) == []


def test_every_other_write_still_fails_the_guardrail(
    run: MilestoneRun, other: OtherSession, repo: Path
) -> None:
    runs = repo / "submission_runs"
    finished = bundle.allocate_run_dir(runs, "quiet")
    (finished / "run_manifest.json").write_text('{"session_finished": true}\n')
    (runs / ".quiet.lock").touch()
    earlier_own = runs / "smoke_v0"
    earlier_own.mkdir()
    assert check_before(run) == []
    other.write()
    (repo / "stray.txt").write_text("written by this session\n")
    (finished / "stray.txt").write_text("no session of quiet is running\n")
    (earlier_own / "stray.txt").write_text("an earlier run of this milestone\n")
    assert check_after(run) == [
        "output outside the run folder added: stray.txt",
        "output outside the run folder added: submission_runs/quiet_v1/stray.txt",
        "output outside the run folder added: submission_runs/smoke_v0/stray.txt",
    ]


@pytest.mark.slow
def test_a_session_beside_another_milestones_training_passes_its_guardrails(
    mini: MiniProject,
) -> None:
    pytest.importorskip("torch")
    training = mini.start_long_training()  # mini-long keeps training (and writing) meanwhile
    try:
        result = mini.run("--milestone", "mini")
    finally:
        training.kill()
        training.wait(timeout=60)
    result.assert_outcomes(passed=7)
    after = bundle.read_json(mini.bundle("mini_v1") / "guardrails.json")["after"]
    assert "submission_runs/mini-long_v1" in after["left_to_other_sessions"]
