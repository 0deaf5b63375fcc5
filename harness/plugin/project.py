"""Where a project keeps its milestones and bundles, from its pytest ini options."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.spec.milestones import MILESTONES_DIR
from harness.spec.registry import MilestoneRegistry


def _inside(config: pytest.Config, option: str, value: str, example: str) -> Path:
    """``value`` resolved against the project root; it must lie inside the project."""
    root = config.rootpath.resolve()
    folder = (root / value).resolve()
    if folder == root or not folder.is_relative_to(root):
        raise pytest.UsageError(
            f"{option} = {value}: the folder must lie inside the project {root}, such as {example}"
        )
    return folder


def runs_root(config: pytest.Config) -> Path:
    """The folder bundles go to (ini ``runs_dir``)."""
    return _inside(config, "runs_dir", str(config.getini("runs_dir")), "submission_runs")


def milestone_dirs(config: pytest.Config) -> list[Path]:
    """The folders holding ``<id>.yaml`` milestone specs (ini ``milestone_paths``)."""
    values = config.getini("milestone_paths") or [str(MILESTONES_DIR)]
    return [_inside(config, "milestone_paths", str(value), str(MILESTONES_DIR)) for value in values]


def registry(config: pytest.Config) -> MilestoneRegistry:
    """The project's milestones, as the ini options place them."""
    return MilestoneRegistry(config.rootpath.resolve(), milestone_dirs(config))
