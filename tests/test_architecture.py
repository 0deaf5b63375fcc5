"""The import graph keeps the layout's promises (docs/architecture.md): no import circles, imports
point down the layers only, trainers/ stands alone, and importing the harness loads no framework."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "trainers")

# Bottom to top: a module may import its own layer and the ones below it, never one above.
LAYERS = (
    ("trainers",),
    ("harness.hashing", "harness.text",),
    ("harness.spec",),
    ("harness.record",),
    ("harness.evidence",),
    ("harness.probes",),
    ("harness.phases",),
    ("harness.plugin",),
    ("harness.__main__", "harness.notebook"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imported(path: Path, known: set[str]) -> set[str]:
    """Every project module ``path`` imports, wherever the import stands (module level, inside a
    function or under TYPE_CHECKING): a circle broken only at runtime is still a circle."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, set(known)) - {name} for name, path in known.items()}


def layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer of docs/architecture.md")


def test_every_module_belongs_to_a_layer() -> None:
    for module in modules():
        if module != "harness":
            layer(module)


def test_imports_point_down_the_layers_only() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        if module != "harness"
        for target in targets
        if target != "harness" and layer(target) > layer(module)
    ]
    assert upward == []


def test_there_are_no_import_circles() -> None:
    edges = graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert [" -> ".join(circle) for circle in circles] == []


def test_trainers_never_import_the_harness_or_pytest() -> None:
    offending = []
    for path in (ROOT / "trainers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offending += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.split(".")[0] in ("harness", "pytest", "_pytest")
            ]
    assert offending == []


@pytest.mark.parametrize("module", ["harness", "harness.plugin.hooks", "trainers"])
def test_importing_loads_no_framework(module: str) -> None:
    """The unit tier stays fast and a JAX-only box still works: the frameworks are imported by
    the backend that needs them, when it is built."""
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(n for n in ('torch', 'jax', 'flax', 'tunix') if n in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
