"""Verify a bundle, now or later on another machine: required files, schemas, real values,
checksums and the summary's closing statement. Used by the evidence phase, baselines and
``python -m harness verify``."""

from __future__ import annotations

import json
import os
import re
import stat
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import jsonschema

from harness.evidence import bundle
from harness.hashing import sha256_of
from harness.spec.phase_order import EVALUATE, EVALUATE_BASE, TRAIN

CHECKSUMS = bundle.SHA256SUMS
SCHEMAS_DIR = Path(__file__).parent / "schemas"
FREEZE_MANIFEST = "freeze_manifest.json"
SCHEMA_FILES = (
    bundle.RUN_MANIFEST,
    bundle.TRAINING_METRICS,
    bundle.EVALUATION_RESULTS,
    bundle.BASE_EVALUATION_RESULTS,
)
# The base model's results are evaluation results like any other, and are checked as such.
SCHEMA_OF = {bundle.BASE_EVALUATION_RESULTS: bundle.EVALUATION_RESULTS}
PLACEHOLDER = re.compile(r"^\s*(TODO|TBD|null|none|n/a|<[^>]*>)?\s*$", re.IGNORECASE)
# Far deeper than any evidence file; deeper input would exhaust the recursion of the
# placeholder and schema checks instead of being reported.
MAX_JSON_DEPTH = 32
# The last path component is opened without following a link (the folders above it are checked
# first), and without blocking on a FIFO. Windows has neither flag; there the checks alone guard.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# The statuses of a phase the session started (a blocked one too: it was set up, then skipped).
RAN = ("passed", "failed", "skipped")
JSON_TYPES = {dict: "object", list: "list", str: "string", int: "number", float: "number",
              bool: "boolean", type(None): "null"}


class Unreadable(Exception):
    """A file of the bundle that is not read; ``str()`` is the one-line problem naming it."""


class Missing(Unreadable):
    """The file is not there as a regular file."""


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of an evidence file (``a.json`` -> ``harness/schemas/a.schema.json``)."""
    path = SCHEMAS_DIR / name.replace(".json", ".schema.json")
    return json.loads(path.read_text(encoding="utf-8"))


def shown(name: str) -> str:
    """``name`` as one printable line: a file name with control or undecodable characters is
    quoted, so a crafted name can neither break the one-line report nor the terminal."""
    return name if name.isprintable() else ascii(name)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None


def link_problem(root: Path, relative: str) -> str:
    """The problem line for a symlink in the bundle; naming the target does not follow it."""
    try:
        target = shown(os.readlink(root / relative))
    except OSError as error:
        target = f"? ({error.strerror})"
    return f"{shown(relative)}: a symlink to {target}; a bundle holds no symlinks, none is followed"


def outside(name: str) -> str | None:
    """Why the bundle path ``name`` points outside the bundle, or None where it stays inside."""
    relative = PurePosixPath(name)
    if relative.is_absolute():
        return "an absolute path"
    if ".." in relative.parts:
        return "a path through '..'"
    return None


def outside_line(name: str, why: str) -> str:
    return f"{shown(name)}: {why}, outside the bundle; not read"


def open_file(run_dir: Path, name: str) -> BinaryIO:
    """``name`` of the bundle opened for reading, after checking that the path stays inside the
    bundle and that no folder or file on its way is a symlink: nothing outside is ever opened."""
    if why := outside(name):
        raise Unreadable(outside_line(name, why))
    root = run_dir.resolve()
    path = root
    for part in PurePosixPath(name).parts:
        path = path / part
        info = _lstat(path)
        if info is None:
            raise Missing(f"{shown(name)}: missing")
        if stat.S_ISLNK(info.st_mode):
            raise Unreadable(link_problem(root, path.relative_to(root).as_posix()))
    if not path.resolve().is_relative_to(root):  # the last word, whatever the checks above missed
        raise Unreadable(f"{shown(name)}: resolves outside the bundle; not read")
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as error:
        raise Unreadable(f"{shown(name)}: unreadable ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Missing(f"{shown(name)}: missing")  # a folder or a device is not an evidence file
    return os.fdopen(fd, "rb")


def read_text(run_dir: Path, name: str) -> str:
    """The UTF-8 text of the bundle file ``name``; raises ``Unreadable`` with the problem."""
    with open_file(run_dir, name) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{shown(name)}: not UTF-8 text") from None


def read_object(run_dir: Path, name: str) -> dict[str, Any]:
    """The JSON object in the bundle file ``name``; raises ``Unreadable`` with the problem."""
    too_deep = f"{shown(name)}: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        data = json.loads(read_text(run_dir, name))
    except json.JSONDecodeError as error:
        raise Unreadable(f"{shown(name)}: not valid JSON ({error})") from None
    except RecursionError:
        raise Unreadable(too_deep) from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise Unreadable(too_deep)
    if not isinstance(data, dict):
        raise Unreadable(f"{shown(name)}: expected a JSON object, got {JSON_TYPES[type(data)]}")
    return data


def _depth(data: Any) -> int:
    """How deeply ``data`` nests, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict | list):
            children = value.values() if isinstance(value, dict) else value
            stack += [(child, depth + 1) for child in children]
    return deepest


def required_files(manifest: dict[str, Any]) -> list[str]:
    """The files a bundle must hold, given the phase outcomes its manifest records."""
    phases = manifest.get("phases")
    phases = phases if isinstance(phases, dict) else {}  # a malformed one is the schema's to report

    def status(phase: str) -> Any:
        outcome = phases.get(phase)
        return outcome.get("status") if isinstance(outcome, dict) else None

    files = [bundle.ENV_SNAPSHOT, bundle.GPU_SNAPSHOT, bundle.RUN_MANIFEST]
    files.append(bundle.summary_name(str(manifest.get("milestone", "?"))))
    if any(status(phase) in RAN for phase in phases):
        files += [bundle.RESOURCES, bundle.RESOURCES_PLOT]  # sampled while every phase ran
    if manifest.get("steps_completed") or status(TRAIN) == "passed":
        files += [bundle.TRAINING_LOG, bundle.TRAINING_METRICS]
    if status(TRAIN) == "passed":
        checkpoint = bundle.CHECKPOINT_DIR
        files += [f"{checkpoint}/config.json", f"{checkpoint}/model.safetensors"]
    if status(EVALUATE) == "passed":
        files += [bundle.PREDICTIONS, bundle.EVALUATION_RESULTS, bundle.EVALUATION_SUMMARY]
    if status(EVALUATE_BASE) == "passed":
        files += [bundle.BASE_PREDICTIONS, bundle.BASE_EVALUATION_RESULTS]
    if any(status(phase) != "passed" for phase in phases):
        files.append(bundle.FAILURE_ANALYSIS)
    return files


def placeholder_paths(value: Any, path: str = "$") -> list[str]:
    """JSON paths whose value is null, empty or a placeholder ("TODO", "TBD", "<...>")."""
    if value is None:
        return [path]
    if isinstance(value, str):
        return [path] if PLACEHOLDER.match(value) else []
    if isinstance(value, dict):
        if not value:
            return [path]
        return [p for key, item in value.items() for p in placeholder_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        if not value:
            return [path]
        return [p for i, item in enumerate(value) for p in placeholder_paths(item, f"{path}[{i}]")]
    return []


def problems(run_dir: Path, files: list[str]) -> list[str]:
    """What is missing, empty, invalid or a placeholder among ``files`` of ``run_dir``."""
    found = []
    for name in files:
        try:
            with open_file(run_dir, name) as handle:
                size = os.fstat(handle.fileno()).st_size
        except Unreadable as error:
            found.append(str(error))
            continue
        if size == 0:
            found.append(f"{name}: empty")
        elif name in SCHEMA_FILES:
            found += _json_problems(run_dir, name)
    return found


def _json_problems(run_dir: Path, name: str) -> list[str]:
    try:
        data = read_object(run_dir, name)
    except Unreadable as error:
        return [str(error)]
    return [f"{name}: {where} is empty or a placeholder" for where in placeholder_paths(data)]


def schema_problems(run_dir: Path) -> list[str]:
    """Where the bundle's JSON evidence files break their JSON Schemas (in ``harness/schemas``)."""
    found = []
    for name in SCHEMA_FILES:
        try:
            data = read_object(run_dir, name)
        except Unreadable:
            continue  # reported by problems() where the file is required
        against = FREEZE_MANIFEST if data.get("kind") == "freeze" else SCHEMA_OF.get(name, name)
        checker = jsonschema.Draft202012Validator(schema(against))
        for error in sorted(checker.iter_errors(data), key=lambda e: list(e.absolute_path)):
            steps = (f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            where = "$" + "".join(steps)
            found.append(f"{name}: {where}: {error.message}")
    return found


def bundle_sha256(run_dir: Path, name: str) -> str:
    """The sha256 of the bundle file ``name``, read only after ``open_file``'s checks."""
    with open_file(run_dir, name) as handle:
        return sha256_of(handle)


def walk(run_dir: Path) -> tuple[list[str], list[str]]:
    """(every regular file by relative POSIX path, dot files included; a problem line for every
    symlink, other non-file and unreadable folder). Symlinks are named, never followed."""
    files: list[str] = []
    found: list[str] = []

    def unreadable(error: OSError) -> None:
        where = Path(str(error.filename)).relative_to(run_dir).as_posix()
        found.append(f"{shown(where)}: unreadable folder ({error.strerror})")

    for top, folders, names in os.walk(run_dir, onerror=unreadable):
        for name in sorted(folders + names):
            relative = (Path(top) / name).relative_to(run_dir).as_posix()
            info = _lstat(run_dir / relative)
            if info is None or stat.S_ISDIR(info.st_mode):
                continue  # a folder is walked into; a vanished entry is nothing to check
            if stat.S_ISLNK(info.st_mode):
                found.append(link_problem(run_dir.resolve(), relative))
            elif stat.S_ISREG(info.st_mode):
                files.append(relative)
            else:
                found.append(f"{shown(relative)}: not a regular file")
    return sorted(files), found


def bundle_files(run_dir: Path) -> list[str]:
    """Every regular file of the bundle by relative POSIX path, dot files included, but not the
    checksum list itself. Nothing is left out on its name: a file SHA256SUMS does not cover is
    a file verify cannot vouch for."""
    return [name for name in walk(run_dir)[0] if name != CHECKSUMS]


def write_checksums(run_dir: Path) -> Path:
    """``SHA256SUMS`` in ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` checks it too."""
    lines = [f"{bundle_sha256(run_dir, name)}  {name}\n" for name in bundle_files(run_dir)]
    # Not write_text: redaction would rewrite file names that contain a secret's value
    # ("loss_curve.png" for a secret "loss"), and the list holds only our names and digests.
    return bundle.write_bytes(run_dir / CHECKSUMS, "".join(lines).encode("utf-8"))


def checksum_problems(run_dir: Path, files: list[str]) -> list[str]:
    """Entries of ``SHA256SUMS`` that are unsafe, missing or changed, and ``files`` it omits."""
    try:
        text = read_text(run_dir, CHECKSUMS)
    except Unreadable as error:
        return [str(error)]
    listed: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return [f"{CHECKSUMS}:{number}: not a '<sha256>  <path>' line"]
        listed[name] = (number, digest)
    found = []
    for name, (number, digest) in sorted(listed.items()):
        if why := outside(name):
            found.append(f"{CHECKSUMS}:{number}: {outside_line(name, why)}")
            continue
        try:
            actual = bundle_sha256(run_dir, name)
        except Missing:
            found.append(f"{shown(name)}: listed in {CHECKSUMS} but missing")
            continue
        except Unreadable as error:
            found.append(str(error))
            continue
        if actual != digest:
            found.append(f"{shown(name)}: content differs from its {CHECKSUMS} entry")
    found += [f"{shown(name)}: not listed in {CHECKSUMS}" for name in files if name not in listed]
    return found


def verify_bundle(run_dir: Path, *, checksums: bool = True) -> list[str]:
    """Every problem with the bundle in ``run_dir``, one line each; an empty list means it
    verifies. Nothing outside the bundle is opened, and no symlink is followed."""
    files, found = walk(run_dir)
    try:
        manifest = read_object(run_dir, bundle.RUN_MANIFEST)
    except Unreadable as error:
        return list(dict.fromkeys([*found, str(error)]))
    found += problems(run_dir, required_files(manifest)) + schema_problems(run_dir)
    found += _statement_problems(run_dir, manifest)
    if checksums:
        found += checksum_problems(run_dir, [name for name in files if name != CHECKSUMS])
    # A symlink is met by the walk and by every read through it: one line for it is enough.
    return list(dict.fromkeys(found))


def _statement_problems(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    statement = str(manifest.get("closing_statement", ""))
    if not statement:
        return []
    summary = bundle.summary_name(str(manifest.get("milestone", "?")))
    try:
        text = read_text(run_dir, summary)
    except Missing:
        return []  # a required file: problems() reports it
    except Unreadable as error:
        return [str(error)]
    return [] if statement in text else [f"{shown(summary)}: does not carry the closing statement"]
