"""Throughput regression check: is the working tree slower than a git ref, or than a stored baseline?

    python -m bench.regress                          # the working tree against main
    python -m bench.regress --ref HEAD~3 --case gmlp-mini:digits:32:fp32:train
    python -m bench.regress --save-baseline base.json   # measure the working tree, keep the samples
    python -m bench.regress --baseline base.json        # compare the working tree with them

A/B: the ref is checked out in a temporary git worktree; each side runs in its own long-lived
worker process, its own checkout's `python -m bench.regress_worker` started in that checkout, so
each measures its own code with its own worker: a ref from before a change of the suite's
structure is timed as its own runner ran. A ref older than the check itself (no
bench/regress_worker.py) is refused. Rounds alternate between the sides (which goes first is drawn per round),
so a burst of load from other jobs hits both alike; each round times every case through
`bench.measure.timing` and yields one seconds-per-step sample per repeat.

Decision per case, as asv decides: ratio = median(new) / median(base) of seconds per step; a
regression iff the ratio exceeds 1 + tolerance AND a one-sided Mann-Whitney U test says the new
samples are larger with p < alpha. The size threshold keeps real but harmless noise (a process
that happens to run 2% slower) from failing a build; the test keeps one unlucky burst from doing so.

Exit codes: 0 no regression, 1 a regression, 2 could not measure (bad ref, worker failure,
missing, corrupt or mismatched baseline, bad flags), 130 / 143 stopped by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from bench.core.config import add_flags, command_parser
from bench.core.errors import run_command
from bench.regression.cases import EXAMPLE_CASE, CouldNotMeasure, RegressConfig
from bench.regression.check import run
from bench.regression.sides import signals


def task_names() -> list[str]:
    """The task registry's names, which the check's library is given: imported when first needed, as the
    task package imports torch."""
    from tasks import TASKS

    return list(TASKS)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m bench.regress", __doc__.strip().splitlines()[0],
                            "  python -m bench.regress --ref HEAD --case gmlp-mini:digits:32:fp32:infer")
    parser.add_argument(
        "--case", action="append", dest="cases", metavar="MODEL-SIZE:TASK:BATCH:PRECISION:PHASE",
        help="a case to time, repeatable; phase is infer or train (default: inference of every image family "
             "that is no relative of another at its mini size on digits, batch 32, fp32, and training of the "
             f"first; e.g. {EXAMPLE_CASE})",
    )
    add_flags(parser, RegressConfig)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def compare() -> int:
        return run(RegressConfig(**{f.name: getattr(args, f.name) for f in fields(RegressConfig)}), args.cases,
                   task_names)

    # A fault of the check itself is still one sentence, and "could not measure".
    with signals.installed():
        return run_command(compare, "Interrupted; nothing was compared.", CouldNotMeasure.exit_code)


if __name__ == "__main__":
    sys.exit(main())
