"""``python -m harness verify | compare | score | derive``: check a bundle, set bundles side by
side, score a predictions file again, later or on another machine; or derive a milestone of your
own from a shipped one, naming another model, dataset or evalset (e.g. under /kaggle/input)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.evidence import bundle
from harness.evidence.compare import compare, refusals
from harness.evidence.compare_report import write_comparison
from harness.evidence.rescoring import Source, rescoring_document, rescoring_lines
from harness.evidence.verify import bundle_files, verify_bundle
from harness.record.rescoring import ANSWER_KEY, ID_KEY, read_answers, rescore
from harness.spec.data import DataError, load_evalset
from harness.spec.derived import Changes, derive
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError


def verify(args: argparse.Namespace) -> int:
    found = verify_bundle(args.path) if args.path.is_dir() else ["not a folder"]
    for problem in found:
        print(f"{args.path}: {problem}")
    if found:
        print(f"{len(found)} problem(s): {args.path} does not verify", file=sys.stderr)
        return 1
    print(f"ok: {args.path} verifies ({len(bundle_files(args.path))} files)")
    return 0


def default_out(paths: list[Path]) -> Path:
    """``comparison-<first>-vs-<second>...`` in the current folder, named after the bundles."""
    return Path("comparison-" + "-vs-".join(path.resolve().name for path in paths))


def compare_bundles(args: argparse.Namespace) -> int:
    paths = [args.first, *args.others]
    out = args.out or default_out(paths)
    inside = [path for path in paths if out.resolve().is_relative_to(path.resolve())]
    if inside:
        print(f"--out {out}: inside the compared bundle {inside[0]}, which stays untouched",
              file=sys.stderr)
        return 2
    refused = refusals(paths)
    if refused:
        print("\n".join(refused), file=sys.stderr)
        return 1
    try:
        written = write_comparison(compare(paths), out)
    except OSError as error:
        print(f"--out {out}: cannot write ({error.strerror or error})", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
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


def add_derive(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    derive_.set_defaults(handler=derive_milestone)


def derive_milestone(args: argparse.Namespace) -> int:
    changes = Changes(args.model, args.dataset, args.evalset, args.breakdown)
    try:
        path = derive(MilestoneRegistry(Path.cwd()), args.milestone, args.new_id, changes)
    except SpecError as error:
        print(f"python -m harness derive: {error}", file=sys.stderr)
        return 2
    print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    return 0



def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = found.add_subparsers(dest="command", required=True)
    checked = commands.add_parser("verify", help="verify an evidence bundle folder")
    checked.add_argument("path", type=Path, help="a bundle folder, e.g. submission_runs/smoke_v1")
    checked.set_defaults(handler=verify)
    compared = commands.add_parser(
        "compare", help="verify bundles, then write an HTML page and a markdown table of them"
    )
    compared.add_argument("first", type=Path, help="the bundle the others are held against")
    compared.add_argument("others", type=Path, nargs="+", help="one or more bundles to compare")
    compared.add_argument("--out", type=Path, help="the folder to write into (default: "
                          "comparison-<first>-vs-<second>... in the current folder)")
    compared.set_defaults(handler=compare_bundles)
    scored = commands.add_parser("score", help="score a predictions file against an evalset")
    scored.add_argument("predictions", type=Path, help="JSON Lines, one prediction per line")
    scored.add_argument("--evalset", type=Path, required=True, help="the evalset .jsonl file")
    scored.add_argument("--id-key", default=ID_KEY, help=f"dotted path of each line's item id "
                        f"(default: {ID_KEY})")
    scored.add_argument("--answer-key", default=ANSWER_KEY, help="dotted path of the model's "
                        f"output, e.g. meta.final_answer (default: {ANSWER_KEY})")
    scored.add_argument("--out", type=Path, help="also write the results to this JSON file")
    scored.set_defaults(handler=score)
    add_derive(commands)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
