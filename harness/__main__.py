"""``python -m harness verify PATH``: re-check a bundle later or on another machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.evidence.verify import bundle_files, verify_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify an evidence bundle folder")
    verify.add_argument("path", type=Path, help="a bundle folder, e.g. submission_runs/smoke_v1")
    args = parser.parse_args(argv)
    found = verify_bundle(args.path) if args.path.is_dir() else ["not a folder"]
    for problem in found:
        print(f"{args.path}: {problem}")
    if found:
        print(f"{len(found)} problem(s): {args.path} does not verify", file=sys.stderr)
        return 1
    print(f"ok: {args.path} verifies ({len(bundle_files(args.path))} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
