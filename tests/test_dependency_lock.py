"""A dependency lock that is not a lock is refused in one line that quotes none of its content."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.spec.dependency_lock import LockFileError, read_lock

if TYPE_CHECKING:
    from tests.conftest import MiniProject

NOT_A_LOCK = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def test_a_file_that_is_no_lock_is_named_not_quoted(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text(NOT_A_LOCK)
    with pytest.raises(LockFileError) as caught:
        read_lock(passwd)
    message = str(caught.value)
    assert message == f"{passwd}:1: not a dependency lock ('name==version' lines)"
    assert "root" not in message.replace(str(tmp_path), "")


def test_a_binary_file_is_no_lock(tmp_path: Path) -> None:
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(LockFileError, match=r"weights\.bin: cannot read lock file"):
        read_lock(blob)


def test_a_spec_naming_a_file_that_is_no_lock_is_refused_when_it_loads(mini: MiniProject) -> None:
    passwd = mini.path.parent / "passwd"
    passwd.write_text(NOT_A_LOCK)
    spec = mini.path / "configs" / "milestones" / "mini.yaml"
    spec.write_text(
        spec.read_text().replace(
            "guardrails: {clean_tree: true}",
            f"guardrails: {{clean_tree: true, dependency_lock: {passwd}}}",
        )
    )
    mini.commit("a lock that is no lock")
    result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*mini.yaml: key 'guardrails.dependency_lock': *passwd:1: not a dependency lock*"]
    )
    assert "root:x" not in result.stderr.str() + result.stdout.str()
    assert not (mini.path / "submission_runs" / "mini_v1").exists()
