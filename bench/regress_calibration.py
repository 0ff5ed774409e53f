"""How often does the regression check raise a false alarm, and how often does it catch a slowdown?

    python -m bench.regress_calibration --trials 20

Four workers run the working tree: a base, and three sides compared with it: the same code (A/A), and the same code made slower by the test-only hook in
`bench/regress_worker.py` (INJECT_SLOWDOWN_ENV) by 15% and by 3% of each step. Rounds interleave
all four in random order, then each side is judged against the base exactly as `bench.regress`
judges the working tree against a ref. Fresh processes every few trials (--trials-per-start),
so that a process that happens to run a little slower or faster than another (memory layout,
thread placement) varies between trials as it does between real runs, without paying a
start-up of four workers for every trial. The rates printed at the end are what docs/regression-checks.md reports.

Measurement flags are those of `bench.regress` (--case, --rounds, --repeats, --steps,
--tolerance, --alpha, ...); --json stores every trial's verdicts.
"""

from __future__ import annotations

import sys

from bench.core.errors import run_command
from bench.regress import build_parser, task_names
from bench.regression.calibration import calibrate


def main(argv=None) -> int:
    parser = build_parser()
    parser.prog = parser.prog.replace("bench.regress", "bench.regress_calibration")
    parser.description = __doc__.strip().splitlines()[0]
    parser.epilog = "examples:\n  python -m bench.regress_calibration --trials 10 --case gmlp-mini:digits:32:fp32:infer"
    parser.add_argument("--trials", type=int, default=20, help="trials: independent comparisons of all sides")
    parser.add_argument("--trials-per-start", type=int, default=5,
                        help="trials run by one set of worker processes before fresh ones start")
    args = parser.parse_args(argv)
    return run_command(lambda: calibrate(args, task_names), unexpected_exit_code=2)


if __name__ == "__main__":
    sys.exit(main())
