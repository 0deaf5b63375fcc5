"""``python -m tools.install_lines docs/tpu.md``: every ``pip install`` line of a doc's shell blocks
resolved by pip against the project's pins (``pip install --dry-run``, nothing installed), so that
a pin change which breaks the documented install fails CI.

The project itself (``.``, ``'.[jax]'``, with or without ``-e``) stands for the requirements
``pyproject.toml`` declares for it: the same set pip would resolve after building the project's
metadata, without a build. Needs the package index (PyPI unless PIP_INDEX_URL or pip's config
names another); without it the check fails in one line, it never passes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"
FENCE = re.compile(r"^\s*```\s*(\w*)")
SHELLS = {"", "bash", "sh", "shell", "console"}
INSTALL = re.compile(r"^(?:\$\s*|!)?(?:python[\d.]*\s+-m\s+)?pip3?\s+install\s")
PROJECT = re.compile(r"^\.(?:\[([\w,\s-]+)\])?$")  # ".", ".[jax]", ".[jax,dev]"
DROPPED = {"-e", "--editable", "-q", "--quiet", "-U", "--upgrade", "--user"}
SHOWN = ("jax", "jaxlib", "libtpu", "flax", "google-tunix", "torch")
NETWORK = (
    "NewConnectionError",
    "Failed to establish",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Could not fetch URL",
    "ConnectTimeout",
    "ReadTimeout",
)


@dataclass(frozen=True)
class InstallLine:
    """One ``pip install`` command of a doc: where it stands and what it asks for."""

    doc: Path
    lineno: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.lineno}"


def install_lines(doc: Path) -> list[InstallLine]:
    """The ``pip install`` commands in the doc's shell code blocks (continued lines joined)."""
    found: list[InstallLine] = []
    shell, pending, start = None, "", 0
    for lineno, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        if fence := FENCE.match(line):
            shell = None if shell is not None else fence.group(1) in SHELLS
            continue
        if not shell:
            continue
        start = start if pending else lineno
        pending += line.rstrip().removesuffix("\\") + " "
        if line.rstrip().endswith("\\"):
            continue
        command, pending = pending.strip(), ""
        if INSTALL.match(command):
            found.append(InstallLine(doc, start, command))
    return found


def project_requirements(extras: list[str]) -> list[str]:
    """What ``pyproject.toml`` asks for the project with ``extras``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise ValueError(f"pyproject.toml has no extra {', '.join(unknown)}")
    return [*project["dependencies"], *(req for extra in extras for req in optional[extra])]


def pip_arguments(line: InstallLine) -> list[str]:
    """The line's ``pip install`` arguments, the project replaced by its requirements and the
    options that only change how (not what) pip installs left out."""
    words = shlex.split(INSTALL.sub("", line.text), comments=True)
    arguments: list[str] = []
    for word in words:
        if word in DROPPED:
            continue
        if project := PROJECT.match(word):
            extras = [e.strip() for e in (project.group(1) or "").split(",") if e.strip()]
            arguments += project_requirements(extras)
        else:
            arguments.append(word)
    return arguments


def index_url() -> str:
    """The index pip reads: PIP_INDEX_URL, else pip's configured ``global.index-url``, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else PYPI


def unreachable(index: str) -> str | None:
    """Why the index cannot be read now, or None."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/pip/", timeout=15):
            return None
    except OSError as error:
        return str(getattr(error, "reason", error))


def resolve(arguments: Sequence[str]) -> str:
    """Resolve ``pip install`` arguments with pip's resolver, nothing installed: the versions of
    note it chose. Raises RuntimeError with pip's own reason, on one line."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--quiet", "--retries", "1", "--timeout", "30", "--report", str(report)]
        done = subprocess.run([*command, *arguments], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(reason(done.stdout + done.stderr))
        chosen = json.loads(report.read_text(encoding="utf-8"))["install"]
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in chosen}
    shown = [f"{name}=={versions[name]}" for name in SHOWN if name in versions]
    return f"{len(versions)} packages, {', '.join(shown)}"


def reason(output: str) -> str:
    """pip's reason for failing, squeezed onto one line."""
    if any(marker in output for marker in NETWORK):
        return "the package index could not be reached while resolving"
    errors = [
        line.removeprefix("ERROR: ").strip() for line in output.splitlines() if "ERROR" in line
    ]
    return " ".join(" ".join(errors or output.split()[-40:]).split())


def main(argv: list[str] | None = None) -> int:
    docs = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])] or [
        Path("docs/tpu.md")
    ]
    lines = [line for doc in docs for line in install_lines(doc)]
    if not lines:
        print(f"{', '.join(map(str, docs))}: no pip install line to check", file=sys.stderr)
        return 1
    index = index_url()
    if why := unreachable(index):
        print(
            f"{lines[0].doc}: install lines not checked: cannot reach {index} ({why}); "
            "this check needs the package index",
            file=sys.stderr,
        )
        return 1
    failed, resolved = 0, {}
    for line in lines:
        try:
            arguments = tuple(pip_arguments(line))
            if arguments not in resolved:  # the same command twice in a doc is resolved once
                resolved[arguments] = resolve(arguments)
            print(f"{line.where}: resolves against the project's pins ({resolved[arguments]})")
        except (RuntimeError, ValueError) as error:
            print(
                f"{line.where}: does not resolve against the project's pins: {error}",
                file=sys.stderr,
            )
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
