"""The check of docs/tpu.md's install lines (``python -m tools.install_lines``, run by ``make
test``): which lines it reads, what it hands pip for the project, the doc's jax pin against the
project's, and a one-line failure where the package index cannot be reached. The resolution
itself needs the network and runs in ``make test``, not here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tools.install_lines import InstallLine, install_lines, main, pip_arguments

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

DOC = """\
# Install

```bash
sudo apt-get install -y python3.11
pip install -e '.[jax]' 'jax[tpu]==0.10.2'   # the pins
```

Not in a shell block: pip install nothing

```yaml
run: pip install nothing
```

```console
$ python3.11 -m pip install --quiet \\
    '.[torch,dev]'
```
"""


def test_the_install_lines_of_shell_blocks_are_read_with_their_line_numbers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC, encoding="utf-8")
    assert [(line.lineno, line.text) for line in install_lines(doc)] == [
        (5, "pip install -e '.[jax]' 'jax[tpu]==0.10.2'   # the pins"),
        (15, "$ python3.11 -m pip install --quiet      '.[torch,dev]'"),
    ]


def test_the_project_stands_for_the_requirements_pyproject_declares(tmp_path: Path) -> None:
    first, second = install_lines(_doc(tmp_path))
    extras = PROJECT["optional-dependencies"]
    assert pip_arguments(first) == [*PROJECT["dependencies"], *extras["jax"], "jax[tpu]==0.10.2"]
    assert pip_arguments(second) == [*PROJECT["dependencies"], *extras["torch"], *extras["dev"]]


def test_an_extra_the_project_lacks_is_named() -> None:
    line = InstallLine(Path("doc.md"), 3, "pip install '.[cuda]'")
    with pytest.raises(ValueError, match="^pyproject.toml has no extra cuda$"):
        pip_arguments(line)


def test_the_tpu_docs_install_line_pins_the_projects_jax() -> None:
    """The drift the resolver would also catch, caught without the network."""
    lines = install_lines(ROOT / "docs" / "tpu.md")
    assert lines, "docs/tpu.md has no pip install line left to check"
    pin = next(req for req in PROJECT["optional-dependencies"]["jax"] if req.startswith("jax=="))
    named = [found for line in lines for found in re.findall(r"jax\[tpu\]==([\w.]+)", line.text)]
    assert named
    assert set(named) == {pin.removeprefix("jax==")}


def test_without_the_package_index_the_check_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on this machine refuses the connection: an index that cannot be reached.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    doc = _doc(tmp_path)
    assert main([str(doc)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(
        f"{doc}: install lines not checked: cannot reach http://127.0.0.1:9/simple ("
    )


def test_a_doc_without_install_lines_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "empty.md"
    doc.write_text("# nothing to install\n", encoding="utf-8")
    assert main([str(doc)]) == 1
    assert capsys.readouterr().err == f"{doc}: no pip install line to check\n"


def _doc(tmp_path: Path) -> Path:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC, encoding="utf-8")
    return doc
