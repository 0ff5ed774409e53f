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
from dataclasses import asdict, fields
from typing import Iterator

from bench.core.errors import UserError, run_command
from bench.regress import (
    EXAMPLE_CASE, SUITE_ROOT, RegressConfig, build_parser, check_writable, decide, measure_interleaved, parse_cases,
    workers,
)
from bench.core.results import write_json_atomic

# Injected slowdown of each compared side; the check should flag 15% and pass 0% and 3%.
SIDES = {"A/A": 0.0, "+15%": 0.15, "+3%": 0.03}


def trials(count: int, cases, cfg: RegressConfig) -> Iterator[dict[str, dict[str, dict]]]:
    """{side: {case: verdict}} of each of `count` trials, all with the same four fresh workers."""
    sides = {"base": (SUITE_ROOT, 0.0)} | {label: (SUITE_ROOT, slowdown) for label, slowdown in SIDES.items()}
    with workers(sides, cases, cfg) as running:
        for worker in running.values():
            worker.ready()
        for _ in range(count):
            samples = measure_interleaved(running, cases, cfg)
            yield {
                label: {case.name: asdict(decide(samples["base"][case.name], samples[label][case.name],
                                                 cfg.tolerance, cfg.alpha)) for case in cases}
                for label in SIDES
            }


def calibrate(args) -> int:
    cfg = RegressConfig(**{f.name: getattr(args, f.name) for f in fields(RegressConfig)})
    if cfg.ref or cfg.baseline or cfg.save_baseline or cfg.markdown:
        raise UserError("The calibration compares the working tree with itself; drop --ref, --baseline, "
                        "--save-baseline and --markdown.")
    if args.trials < 1:
        raise UserError(f"--trials must be at least 1, got {args.trials}.")
    check_writable(cfg.json, "--json")
    cases = parse_cases(args.cases or [EXAMPLE_CASE])
    if args.trials_per_start < 1:
        raise UserError(f"--trials-per-start must be at least 1, got {args.trials_per_start}.")
    results = []
    while len(results) < args.trials:
        for result in trials(min(args.trials_per_start, args.trials - len(results)), cases, cfg):
            results.append(result)
            line = "; ".join(
                f"{label} {case}: ratio {v['ratio']:.3f} p {v['p_slower']:.2g} {v['status']}"
                for label, verdicts in result.items() for case, v in verdicts.items()
            )
            print(f"trial {len(results)}/{args.trials}: {line}", flush=True)

    print(f"\n{args.trials} trials, {len(cases)} case(s) each, tolerance {cfg.tolerance:.0%}, alpha {cfg.alpha}, "
          f"{cfg.rounds} rounds of {cfg.repeats} x {cfg.steps} steps per side:")
    rates = {}
    for label in SIDES:
        verdicts = [v for result in results for v in result[label].values()]
        flagged = sum(v["status"] == "regression" for v in verdicts)
        ratios = sorted(v["ratio"] for v in verdicts)
        rates[label] = {"flagged": flagged, "decisions": len(verdicts), "ratio_min": ratios[0], "ratio_max": ratios[-1]}
        print(f"  {label:5s} flagged {flagged}/{len(verdicts)} ({flagged / len(verdicts):.0%}); "
              f"ratios {ratios[0]:.3f}-{ratios[-1]:.3f}, median {ratios[len(ratios) // 2]:.3f}")
    if cfg.json:
        write_json_atomic(cfg.json, {"settings": asdict(cfg), "cases": [c.name for c in cases], "rates": rates,
                                     "trials": results})
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    parser.prog = parser.prog.replace("bench.regress", "bench.regress_calibration")
    parser.description = __doc__.strip().splitlines()[0]
    parser.epilog = "examples:\n  python -m bench.regress_calibration --trials 10 --case gmlp-mini:digits:32:fp32:infer"
    parser.add_argument("--trials", type=int, default=20, help="trials: independent comparisons of all sides")
    parser.add_argument("--trials-per-start", type=int, default=5,
                        help="trials run by one set of worker processes before fresh ones start")
    args = parser.parse_args(argv)
    return run_command(lambda: calibrate(args), unexpected_exit_code=2)


if __name__ == "__main__":
    sys.exit(main())
