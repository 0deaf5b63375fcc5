"""YAML files read strictly (UTF-8, no key twice) and validated into typed models; every problem
is one line naming the file, the line or the key."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.text import first_line, printable
from trainers.config import UniqueKeyLoader


class SpecError(ValueError):
    """A spec or config problem; its message is one line naming the file and the key."""


def shown(path: Path) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it, with
    unprintable characters escaped so that a message stays on one line."""
    try:
        text = str(path.resolve().relative_to(Path.cwd()))
    except (OSError, RuntimeError, ValueError):  # outside it, or a NUL byte or symlink loop
        text = str(path)
    return printable(text)


ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file strictly (UTF-8, no key twice); any problem is a one-line SpecError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{shown(path)}: no such file") from None
    except OSError as error:
        raise SpecError(f"{shown(path)}: cannot read ({error.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise SpecError(f"{shown(path)}:{line}: not valid UTF-8 (byte {byte:#04x})") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(str(exc))
        raise SpecError(f"{shown(path)}{where}: invalid YAML ({problem})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an impossible date, or nesting too deep
        problem = first_line(str(exc)) or type(exc).__name__
        raise SpecError(f"{shown(path)}: invalid YAML ({problem})") from None


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model``; any problem is a one-line SpecError."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{shown(path)}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, model) for error in exc.errors())
        raise SpecError(f"{shown(path)}: {problems}") from None


def _describe(error: Any, model: type[BaseModel]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return f"missing key '{key}'"
    message = error["msg"].removeprefix("Value error, ")
    if not key:
        return message
    value = error.get("input")
    got = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"key '{key}': {message}{got}"


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The valid key names of the (nested) model found at ``loc``."""
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
