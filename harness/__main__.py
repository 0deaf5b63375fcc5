"""``python -m harness verify | score``: check a bundle, or score a predictions file again, later
or on another machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.evidence import bundle
from harness.evidence.rescoring import Source, rescoring_document, rescoring_lines
from harness.evidence.verify import bundle_files, verify_bundle
from harness.record.rescoring import ANSWER_KEY, ID_KEY, read_answers, rescore
from harness.spec.data import DataError, load_evalset


def verify(args: argparse.Namespace) -> int:
    found = verify_bundle(args.path) if args.path.is_dir() else ["not a folder"]
    for problem in found:
        print(f"{args.path}: {problem}")
    if found:
        print(f"{len(found)} problem(s): {args.path} does not verify", file=sys.stderr)
        return 1
    print(f"ok: {args.path} verifies ({len(bundle_files(args.path))} files)")
    return 0


def score(args: argparse.Namespace) -> int:
    source = Source(args.predictions, args.evalset, args.id_key, args.answer_key)
    try:
        items = load_evalset(args.evalset)
        answers = read_answers(args.predictions, args.id_key, args.answer_key)
        rescored = rescore(args.predictions, answers, items)
        if args.out:
            bundle.write_json(args.out, rescoring_document(rescored, source))
    except DataError as error:
        print(error, file=sys.stderr)
        return 2
    except OSError as error:
        print(f"--out {args.out}: cannot write ({error.strerror or error})", file=sys.stderr)
        return 2
    print("\n".join(rescoring_lines(rescored, source)))
    return 0


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = found.add_subparsers(dest="command", required=True)
    checked = commands.add_parser("verify", help="verify an evidence bundle folder")
    checked.add_argument("path", type=Path, help="a bundle folder, e.g. submission_runs/smoke_v1")
    checked.set_defaults(handler=verify)
    scored = commands.add_parser("score", help="score a predictions file against an evalset")
    scored.add_argument("predictions", type=Path, help="JSON Lines, one prediction per line")
    scored.add_argument("--evalset", type=Path, required=True, help="the evalset .jsonl file")
    scored.add_argument("--id-key", default=ID_KEY, help=f"dotted path of each line's item id "
                        f"(default: {ID_KEY})")
    scored.add_argument("--answer-key", default=ANSWER_KEY, help="dotted path of the model's "
                        f"output, e.g. meta.final_answer (default: {ANSWER_KEY})")
    scored.add_argument("--out", type=Path, help="also write the results to this JSON file")
    scored.set_defaults(handler=score)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
