"""YAML files read strictly (UTF-8, no key twice) and validated into typed models; every problem
is one line naming the file, the line or the key."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

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
    place = _place(model, tuple(str(part) for part in error["loc"]))
    key = ".".join(place.keys)
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = place.fields
        close = difflib.get_close_matches(place.keys[-1], valid, n=1)
        if close:
            return f"unknown key '{key}' (did you mean '{close[0]}'?)"
        reader = f": {place.tag} does not read it" if place.tag else ""
        return f"unknown key '{key}'{reader} (valid keys: {', '.join(valid)})"
    if kind == "missing":
        return f"missing key '{key}'"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag, tags = error["ctx"]["discriminator"].strip("'"), place.tags
        if kind == "union_tag_not_found":
            return f"missing key '{key}.{tag}' ({' or '.join(tags)})"
        given = str(error["ctx"]["tag"])
        close = difflib.get_close_matches(given, tags, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"key '{key}.{tag}': {given!r} is none of {', '.join(tags)}{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if not key:
        return message
    value = error.get("input")
    got = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"key '{key}': {message}{got}"


@dataclass(frozen=True)
class _Place:
    """Where an error's location points: the keys as the user wrote them (a union's tag, which
    pydantic puts in the location, left out), the valid keys of the section holding the last one,
    the tag that chose that section, and the tags of a union at the last key."""

    keys: tuple[str, ...]
    fields: list[str]
    tag: str | None
    tags: list[str]


def _place(model: type[BaseModel], loc: tuple[str, ...]) -> _Place:
    keys: list[str] = []
    current: type[BaseModel] | None = model
    holder: list[str] = list(model.model_fields)
    tag: str | None = None
    members: dict[str, type[BaseModel]] = {}
    for part in loc:
        if part in members:  # the tag pydantic adds after a discriminated union
            current, tag, members = members[part], part, {}
            continue
        keys.append(part)
        holder = list(current.model_fields) if current is not None else []
        field = current.model_fields.get(part) if current is not None else None
        annotation = _optional_of(field.annotation) if field else None
        members = _union_members(annotation) if field and field.discriminator else {}
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        current = annotation if is_model else None
        tag = None if members or is_model else tag
    return _Place(tuple(keys), holder, tag, list(members))


def _optional_of(annotation: Any) -> Any:
    """``Model`` for ``Model | None``; any other annotation as it is."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(args) == 1 and len(get_args(annotation)) == 2:
        return args[0]
    return annotation


def _union_members(annotation: Any) -> dict[str, type[BaseModel]]:
    """A discriminated union's members by their ``name`` tag."""
    members = {}
    for member in get_args(annotation):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        if "name" in member.model_fields:
            for tag in get_args(member.model_fields["name"].annotation):
                members[str(tag)] = member
    return members
