"""Validated loading of trace datasets and evalsets stored as JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from harness import hashing
from harness.text import printable

TRACES_FILE = "traces.jsonl"
DATASETS_DIR = Path("datasets")
EVALSETS_DIR = Path("evalsets")

_EXPECTED_TYPES = {
    "int_type": "an integer",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "an object",
    "dict_type": "an object",
}
# bool first: it is a subclass of int.
_JSON_TYPES = (
    (bool, "boolean"),
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


class DataError(ValueError):
    """A dataset or evalset problem, its message one line naming file and line."""


class _Record(BaseModel):
    """Base for records: immutable, strictly typed, unknown keys rejected."""

    # strict: a JSON "3" or true must not silently become an integer.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _OwnKeysRecord(_Record):
    """A record whose known keys are strictly typed and whose other keys are the data's own
    (a ``section``, a ``difficulty``): kept as written, never rejected."""

    model_config = ConfigDict(extra="allow")

    @property
    def extra(self) -> dict[str, Any]:
        """The record's own keys beyond the ones this project reads."""
        return dict(self.model_extra or {})


class TraceStep(_Record):
    """One reasoning step of a trace."""

    i: int
    type: Literal["compute", "explain", "check"]
    content: str = Field(min_length=1)


class TraceMeta(BaseModel):
    """Where a trace comes from; generators may add keys of their own."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    dataset: str
    category: str
    task_type: str
    index: int


class Trace(_OwnKeysRecord):
    """A worked example: prompt, reasoning steps and final answer."""

    trace_version: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    final_answer: str = Field(min_length=1)
    steps: list[TraceStep] = Field(min_length=1)
    meta: TraceMeta


class EvalItem(_OwnKeysRecord):
    """One held-out question with its expected answer."""

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    expected_answer: str = Field(min_length=1)
    category: str = Field(min_length=1)


_Model = TypeVar("_Model", bound=BaseModel)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_Identified = TypeVar("_Identified", bound=_HasId)


def load_traces(path: Path) -> list[Trace]:
    """Load and validate every trace of a .jsonl file (or of a folder's ``traces.jsonl``)."""
    file = path / TRACES_FILE if path.is_dir() else path
    return [_validate(Trace, file, lineno, obj) for lineno, obj in _read_records(file)]


def load_evalset(path: Path, breakdown: Sequence[str] = ()) -> list[EvalItem]:
    """Load and validate an evalset .jsonl file; ids must be unique, and every item must hold each
    key of ``breakdown`` (the spec's ``evaluation.breakdown``) with a value to group by."""

    def read(lineno: int, obj: object) -> EvalItem:
        item = _validate(EvalItem, path, lineno, obj)
        if problem := _group_problem(item, breakdown):
            raise line_error(path, lineno, problem)
        return item

    return read_unique(path, read)


def read_unique(path: Path, read: Callable[[int, object], _Identified]) -> list[_Identified]:
    """Every line of a JSON Lines file made a record by ``read(line number, value)``; an id
    already seen on an earlier line is an error naming both lines."""
    records: list[_Identified] = []
    first_line: dict[str, int] = {}
    for lineno, obj in _read_records(path):
        record = read(lineno, obj)
        if record.id in first_line:
            first = first_line[record.id]
            raise line_error(path, lineno, f"duplicate id '{record.id}' (first on line {first})")
        first_line[record.id] = lineno
        records.append(record)
    return records


def _group_problem(item: EvalItem, keys: Sequence[str]) -> str | None:
    """Why ``item`` cannot be grouped by one of ``keys``, or None."""
    for key in keys:
        if key not in item.extra:
            return f"missing key '{key}' (named in the spec's evaluation.breakdown)"
        value = item.extra[key]
        if value is None or isinstance(value, list | dict):
            got = json_type(value)
            return f"key '{key}' must be a string, number or boolean to break down by, got {got}"
    return None


def dataset_file(root: Path, name: str) -> Path:
    """The file a spec's ``dataset`` names, resolved: an absolute path as written, else
    ``datasets/<name>`` of the project at ``root``; a file of any name, or a folder (its
    ``traces.jsonl``, else its only ``*.jsonl``)."""
    written = Path(name)
    place = _resolved(written if written.is_absolute() else root / DATASETS_DIR / name)
    return _input_file(place, "dataset", TRACES_FILE)


def evalset_file(root: Path, name: str) -> Path:
    """The file a spec's ``evalset`` names, resolved: an absolute path as written, else
    ``evalsets/<name>.jsonl`` of the project at ``root``, else ``evalsets/<name>``; a file of any
    name, or a folder holding one ``*.jsonl``."""
    written = Path(name)
    if written.is_absolute():
        return _input_file(_resolved(written), "evalset", None)
    conventional = _resolved(root / EVALSETS_DIR / f"{name}.jsonl")
    if probe(conventional.is_file):
        return conventional
    place = _resolved(root / EVALSETS_DIR / name)
    if not probe(place.exists):
        raise DataError(printable(f"no evalset file {conventional} or {place}"))
    return _input_file(place, "evalset", None)


def _input_file(place: Path, kind: str, conventional: str | None) -> Path:
    """``place`` if it is a file; for a folder, its ``conventional`` file or its only ``*.jsonl``.
    Anything else, an ambiguous folder included, is a one-line DataError naming the place."""
    if probe(place.is_file):
        return place
    if not probe(place.is_dir):
        raise DataError(printable(f"no {kind} file or folder {place}"))
    if conventional and probe((place / conventional).is_file):
        return _resolved(place / conventional)
    try:
        found = sorted(path for path in place.glob("*.jsonl") if probe(path.is_file))
    except OSError as err:
        why = f"cannot list the {kind} folder {place} ({err.strerror})"
        raise DataError(printable(why)) from None
    if len(found) == 1:
        return _resolved(found[0])
    if not found:
        raise DataError(printable(f"no .jsonl file in the {kind} folder {place}"))
    names = ", ".join(path.name for path in found)
    raise DataError(
        printable(f"the {kind} folder {place} holds {len(found)} .jsonl files ({names}): name one")
    )


def probe(test: Callable[[], bool]) -> bool:
    """A filesystem test such as ``path.is_file`` that takes an unusable path (a name too long,
    a NUL byte, no permission) for an absent one instead of raising."""
    try:
        return test()
    except (OSError, ValueError):
        return False


def _resolved(path: Path) -> Path:
    """``path`` absolute, ``..`` and symlinks followed: the place read is the place recorded."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, a NUL byte
        raise DataError(printable(f"{path}: cannot be resolved ({err})")) from None


def input_place(root: Path, path: Path, as_written: str) -> dict[str, str]:
    """Where an input was read: ``path`` (relative to the project at ``root`` when inside it, else
    absolute), ``resolved_path`` (absolute, symlinks followed) and the name ``as_written``."""
    project = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):  # changed into a symlink loop since the spec loaded
        resolved = path
    inside = resolved.is_relative_to(project)
    shown = resolved.relative_to(project).as_posix() if inside else str(resolved)
    return {"path": shown, "resolved_path": str(resolved), "as_written": as_written}


def count_records(path: Path) -> int:
    """Non-blank lines of a JSON Lines file, counted on bytes: a line not in UTF-8 still counts."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    if not path.is_file():
        raise DataError(printable(f"{path}: no such file"))
    return hashing.file_sha256(path)


def _read_records(path: Path) -> list[tuple[int, object]]:
    """Parse every line of a JSON Lines file into (line number, value)."""
    if not path.is_file():
        raise DataError(printable(f"{path}: no such file"))
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(printable(f"{path}: cannot read ({err.strerror})")) from err
    # Split on b"\n" only: str.splitlines would also break on characters
    # such as U+2028 that may legitimately sit inside a JSON string.
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        raise DataError(printable(f"{path}: no records"))
    return [(lineno, _parse_line(path, lineno, line)) for lineno, line in enumerate(lines, start=1)]


def _parse_line(path: Path, lineno: int, line: bytes) -> object:
    """Decode one line as a JSON value."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise line_error(path, lineno, "not valid UTF-8") from err
    if not text.strip():
        raise line_error(path, lineno, "blank line")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as err:
        raise line_error(path, lineno, f"duplicate key '{err.key}'") from err
    except json.JSONDecodeError as err:
        raise line_error(path, lineno, f"invalid JSON ({err.msg})") from err
    except RecursionError as err:
        raise line_error(path, lineno, "invalid JSON (nested too deeply)") from err
    except ValueError as err:
        raise line_error(path, lineno, f"invalid JSON ({err})") from err


class _DuplicateKeyError(Exception):
    """A JSON object repeats a key, which json.loads would silently collapse."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Build a JSON object, refusing repeated keys."""
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKeyError(key)
        obj[key] = value
    return obj


def _validate(model: type[_Model], path: Path, lineno: int, obj: object) -> _Model:
    """Validate one parsed line against a record model."""
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        raise line_error(path, lineno, _describe(err.errors(include_url=False)[0])) from err


def _describe(error: ErrorDetails) -> str:
    """Turn one pydantic error into a short phrase naming the dotted key."""
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"missing key '{key}'"
    if kind == "extra_forbidden":
        return f"unknown key '{key}'"
    subject = f"key '{key}'" if key else "record"
    if kind in _EXPECTED_TYPES:
        return f"{subject} must be {_EXPECTED_TYPES[kind]}, got {json_type(error['input'])}"
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "one of the allowed values")
        return f"{subject} must be {allowed}"
    if kind in ("string_too_short", "too_short"):
        return f"{subject} must not be empty"
    return f"{subject}: {error['msg']}"


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def line_error(path: Path, lineno: int, what: str) -> DataError:
    """A DataError located at a file line."""
    return DataError(printable(f"{path}:{lineno}: {what}"))

