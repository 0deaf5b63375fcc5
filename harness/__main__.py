"""``python -m harness verify PATH``: re-check a bundle later or on another machine.
``python -m harness derive ID --as NEW --dataset PATH ...``: a milestone of your own from a shipped
one, naming another model, dataset or evalset (e.g. under /kaggle/input)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.evidence.verify import bundle_files, verify_bundle
from harness.spec.derived import Changes, derive
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify an evidence bundle folder")
    verify.add_argument("path", type=Path, help="a bundle folder, e.g. submission_runs/smoke_v1")
    _add_derive(commands)
    args = parser.parse_args(argv)
    return _verify(args.path) if args.command == "verify" else _derive(args)


def _verify(path: Path) -> int:
    found = verify_bundle(path) if path.is_dir() else ["not a folder"]
    for problem in found:
        print(f"{path}: {problem}")
    if found:
        print(f"{len(found)} problem(s): {path} does not verify", file=sys.stderr)
        return 1
    print(f"ok: {path} verifies ({len(bundle_files(path))} files)")
    return 0


def _add_derive(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    derive_ = commands.add_parser(
        "derive",
        help="write configs/milestones/NEW.yaml: the milestone ID with another model or data",
        description="Write NEW.yaml beside the spec of ID with the given keys replaced, and check "
        "it as any spec is checked. Record-count criteria of a replaced dataset or evalset are set "
        "to the new file's count. Run it from the project's root.",
    )
    derive_.add_argument("milestone", metavar="ID", help="the milestone to start from, e.g. m38")
    derive_.add_argument("--as", dest="new_id", metavar="NEW", required=True, help="the new id")
    derive_.add_argument(
        "--model", help="a model source, e.g. kaggle:/kaggle/input/gemma/flax/2b/2"
    )
    derive_.add_argument("--dataset", help="a .jsonl file or a folder, e.g. /kaggle/input/my-data")
    derive_.add_argument("--evalset", help="a .jsonl file or a folder holding one")
    derive_.add_argument(
        "--breakdown",
        action="append",
        metavar="KEY",
        help="a key of the evalset's own to break the scores down by (repeat for more)",
    )


def _derive(args: argparse.Namespace) -> int:
    changes = Changes(args.model, args.dataset, args.evalset, args.breakdown)
    try:
        path = derive(MilestoneRegistry(Path.cwd()), args.milestone, args.new_id, changes)
    except SpecError as error:
        print(f"python -m harness derive: {error}", file=sys.stderr)
        return 2
    print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
