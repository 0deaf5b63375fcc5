"""What the Kaggle notebooks call once the project is installed: name the milestone to run (a
derived one where the model or data is the user's, committed in the working copy), run it with
pytest as a user would, its progress printed into the cell, then show, verify and locate the
bundle. The notebooks stay a page of parameters and these calls."""

from __future__ import annotations

import html
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.evidence import bundle
from harness.phases.rehearsal import REHEARSAL_SUFFIX
from harness.probes.git import git
from harness.record.failures import Cause
from harness.spec.derived import Changes, derive
from harness.spec.registry import MilestoneRegistry

RUNS_DIR = "submission_runs"  # the project's ini value runs_dir
DERIVED_SUFFIX = "-notebook"
# The working copy's own commits: a notebook has no git identity of its own.
IDENTITY = ("-c", "user.name=tunix-rt notebook", "-c", "user.email=notebook@tunix-rt.invalid")
MEMORY_LINE = "preflight: memory "


@dataclass(frozen=True)
class NotebookRun:
    """One pytest session of one milestone: its exit status, its bundle, what it printed."""

    milestone: str
    status: int
    bundle: Path
    output: tuple[str, ...]


def stream(command: Sequence[str], cwd: Path) -> tuple[int, list[str]]:
    """Run ``command`` in ``cwd``, printing each line of its output as it comes; its exit status
    and lines."""
    print("$", shlex.join(command), flush=True)
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    return process.returncode, lines


def milestone_to_run(
    project: Path,
    milestone: str,
    *,
    model: str | None = None,
    dataset: str | None = None,
    evalset: str | None = None,
    breakdown: Sequence[str] = (),
) -> str:
    """``milestone`` itself where nothing is named anew; else ``<milestone>-notebook`` derived
    from it and committed in the working copy, so that the run starts from a clean tree whose
    commit holds the spec that ran."""
    changes = Changes(model, dataset, evalset, list(breakdown) or None)
    if not changes.named():
        return milestone
    new_id = milestone + DERIVED_SUFFIX
    path = derive(MilestoneRegistry(project), milestone, new_id, changes)
    relative = str(path.relative_to(project))
    git(project, "add", "--", relative)
    if git(project, "diff", "--cached", "--quiet", "--", relative, check=False).returncode:
        message = f"{new_id}: {', '.join(changes.named())} named in the notebook"
        git(project, *IDENTITY, "commit", "-q", "-m", message, "--", relative)
    print(f"{new_id}: {relative}, committed in {project}")
    return new_id


def run_milestone(project: Path, milestone: str, *, rehearse: bool) -> NotebookRun:
    """``pytest acceptance --milestone ID`` in ``project`` (``--rehearse`` on a CPU), and the
    bundle it left."""
    series = milestone + (REHEARSAL_SUFFIX if rehearse else "")
    runs = project / RUNS_DIR
    before = set(bundle.run_dirs(runs, series))
    command = [sys.executable, "-m", "pytest", "acceptance", "--milestone", milestone, "-rs"]
    status, output = stream(command + (["--rehearse"] if rehearse else []), project)
    new = [path for path in bundle.run_dirs(runs, series) if path not in before]
    if not new:
        raise RuntimeError(f"pytest exited with {status} and left no bundle {series}_vN in {runs}")
    return NotebookRun(milestone, status, new[-1], tuple(output))


def show_report(run: NotebookRun) -> None:
    """The summary, then the self-contained report.html, inline in the notebook."""
    from IPython.display import HTML, Markdown, display

    summary = run.bundle / bundle.summary_name(run.milestone)
    display(Markdown(summary.read_text(encoding="utf-8")))
    report = html.escape((run.bundle / bundle.REPORT).read_text(encoding="utf-8"))
    frame = '<div><iframe srcdoc="{}" style="width:100%;height:720px;border:0"></iframe></div>'
    display(HTML(frame.format(report)))


def verify(project: Path, run: NotebookRun) -> None:
    """``python -m harness verify`` on the bundle; raises where it does not verify."""
    status, _ = stream([sys.executable, "-m", "harness", "verify", str(run.bundle)], project)
    if status:
        raise RuntimeError(f"{run.bundle} does not verify: the problems are listed above")


def memory_verdict(run: NotebookRun) -> str:
    """What pre-flight's memory guard said of this run, as markdown: its estimate against the free
    memory, or the refusal with its numbers from ``failure_analysis.md``."""
    manifest = bundle.read_manifest(run.bundle) or {}
    preflight = manifest.get("phases", {}).get("preflight", {})
    if preflight.get("cause") == Cause.INSUFFICIENT_MEMORY:
        analysis = (run.bundle / bundle.FAILURE_ANALYSIS).read_text(encoding="utf-8")
        return f"**The memory guard refused the run.**\n\n{analysis}"
    said = [line.partition(MEMORY_LINE)[2] for line in run.output if MEMORY_LINE in line]
    if said:
        return f"**The memory guard let the run start:** {said[-1]}"
    reason = preflight.get("reason", "the session did not record it")
    return f"**Pre-flight ended before the memory guard:** {preflight.get('status')}: {reason}"


def output_listing(run: NotebookRun, working: Path) -> str:
    """Where the bundle lies under ``working`` (the notebook's output) and what it holds, entry by
    entry with sizes; raises where it lies elsewhere, since Kaggle would not keep it."""
    if not run.bundle.resolve().is_relative_to(working.resolve()):
        raise RuntimeError(f"{run.bundle} is not under {working}: Kaggle would not keep it")
    lines = []
    total = 0
    for entry in sorted(run.bundle.iterdir()):
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        size = sum(path.stat().st_size for path in files)
        total += size
        what = f"{len(files)} files, {size:,} B" if entry.is_dir() else f"{size:,} B"
        lines.append(f"  {entry.name}{'/' if entry.is_dir() else ''}  {what}")
    return "\n".join([f"{run.bundle} ({total / 2**20:.1f} MiB):", *lines])


def verdict(run: NotebookRun) -> str:
    """The run's verdict as its manifest records it: ``passed``, or the first phase that was not."""
    manifest = bundle.read_manifest(run.bundle) or {}
    return str(manifest.get("verdict", "not recorded: the manifest is missing"))
