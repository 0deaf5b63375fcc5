"""The build phase of a freeze milestone: the submission ZIP built from a verified bundle, then
compared with the frozen one (or, with --snapshot-update, left as the candidate to freeze)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from harness.evidence.submission_zip import (
    SUBMISSION_ZIP,
    ZIP_MANIFEST,
    ZipInput,
    build_zip,
    frozen_zip,
    zip_manifest,
)
from harness.evidence.verify import verify_bundle
from harness.hashing import file_sha256
from harness.record.failures import Cause, PhaseBlocked
from harness.record.run import MilestoneRun
from harness.spec.milestones import FreezeSpec


def zip_inputs(run: MilestoneRun, spec: FreezeSpec) -> list[ZipInput]:
    """The spec's files of the source bundle, then its repository files, by archive name."""
    source = run.root / spec.source
    inputs = [ZipInput(name, source / name) for name in spec.files]
    inputs += [ZipInput(name, run.root / name) for name in spec.extra_files]
    missing = [item.name for item in inputs if not item.source.is_file()]
    assert not missing, f"files named by the spec are missing: {', '.join(missing)}"
    return inputs


def build(run: MilestoneRun) -> str:
    """Freeze (with --snapshot-update) or rebuild into the run folder and compare with the frozen ZIP."""
    spec = run.milestone.spec
    assert isinstance(spec, FreezeSpec)
    source = run.root / spec.source
    if not source.is_dir():
        raise PhaseBlocked(
            Cause.SKIPPED,
            f"the source bundle {spec.source} is not on this machine; the frozen ZIP is still "
            "validated and held to its lock",
        )
    problems = verify_bundle(source)
    assert not problems, f"the source bundle {spec.source} does not verify: {'; '.join(problems)}"
    frozen = frozen_zip(run.run_dir.parent, spec.id)
    inputs = zip_inputs(run, spec)
    if run.options.update_snapshots:
        # Only a candidate here: validate installs it as the frozen ZIP once it passes.
        candidate = build_zip(inputs, run.run_dir / SUBMISSION_ZIP)
        return f"built {SUBMISSION_ZIP} to freeze (sha256 {file_sha256(candidate)})"
    if frozen.is_file() and (changed := changed_inputs(inputs, frozen)):
        raise PhaseBlocked(
            Cause.SKIPPED,
            f"the inputs here differ from the frozen ones ({', '.join(changed)}): no rebuild to compare; "
            "the frozen ZIP stays authoritative and is validated and held to its lock",
        )
    rebuilt = build_zip(inputs, run.run_dir / SUBMISSION_ZIP)
    if frozen.is_file():
        assert file_sha256(rebuilt) == file_sha256(frozen), (
            f"a rebuild from the same spec differs from the frozen {frozen.relative_to(run.root)}: "
            "its inputs changed since the freeze"
        )
    return f"rebuilt {SUBMISSION_ZIP} (sha256 {file_sha256(rebuilt)})"


def changed_inputs(inputs: list[ZipInput], frozen: Path) -> list[str]:
    """Names whose current content differs from the entry the frozen ZIP's manifest records."""
    try:
        with zipfile.ZipFile(frozen) as archive:
            recorded = {e["path"]: e["sha256"] for e in json.loads(archive.read(ZIP_MANIFEST))["files"]}
    except (zipfile.BadZipFile, KeyError, ValueError):
        return []  # an unreadable frozen ZIP is for validate and lock to report
    current = {entry["path"]: entry["sha256"] for entry in zip_manifest(inputs)["files"]}
    return sorted(name for name in current.keys() | recorded.keys() if current.get(name) != recorded.get(name))
