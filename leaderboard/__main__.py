"""`python -m leaderboard RESULTS_DIR... --out DIR`: build the leaderboard from result JSON files."""

from __future__ import annotations

import shlex
import sys

from bench.core.config import command_parser
from bench.core.errors import UserError, run_command
from bench.core.results import check_output_folder
from leaderboard.build import build
from leaderboard.collect import collect, provenance_warnings
from leaderboard.study import collect_study


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = command_parser(
        "python -m leaderboard",
        "Markdown tables, a CSV and Pareto plots from the result JSON files of benchmark runs; the cost-scaling "
        "page from the point files of python -m bench.scaling.",
        "  python -m leaderboard results/leaderboard --out leaderboard/pages\n"
        "  python -m leaderboard results/leaderboard --study results/recipe-study --out leaderboard/pages\n"
        "  python -m leaderboard results/leaderboard-v3:wordnet,cmudict results/leaderboard:fashion-mnist --out leaderboard/pages",
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                        help="folders searched recursively for *.json; FOLDER:TASK[,TASK...] takes those tasks' "
                             "results alone from FOLDER (each task of a page from the folder of its publication)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder the pages are written to")
    parser.add_argument("--study", metavar="DIR", help="the recipe study's results folder (sweeps/recipe-study.toml): "
                                                        "its page, a line of the summary and a link on the index")
    args = parser.parse_args(argv)
    return run_command(lambda: publish(args, argv))


def publish(args, argv: list[str]) -> int:
    check_output_folder(args.out, "--out")
    try:
        collection = collect(args.results)
        for reason in collection.skipped:
            print(f"warning: skipped a file: {reason}", file=sys.stderr)
        for problem in provenance_warnings(collection):
            print(f"warning: {problem}", file=sys.stderr)
        study = None
        if args.study:
            study = collect_study(args.study)
            for reason in study.skipped:
                print(f"warning: skipped a file: {reason}", file=sys.stderr)
        build(collection, args.out, "python -m leaderboard " + shlex.join(argv), study)
    except OSError as e:
        raise UserError(f"could not read the results or write {args.out!r} ({e}).") from None
    if collection.runs or collection.failures or collection.tuning or collection.longer:
        print(
            f"Wrote {args.out}/index.md (finished runs: {len(collection.runs)}, failed runs: "
            f"{len(collection.failures)}, tuning runs: {len(collection.tuning)}, longer-budget runs: "
            f"{len(collection.longer)}, files skipped: {len(collection.skipped)})."
        )
    if collection.scaling:
        print(f"Wrote {args.out}/scaling.md (scaling points: {len(collection.scaling)}, files skipped: "
              f"{len(collection.skipped)}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
