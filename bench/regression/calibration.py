"""The regression check's calibration (python -m bench.regress_calibration): the working tree against
itself, as is and made slower, trial after trial; the rates of false alarms and of slowdowns caught.
The task registry's names are the caller's to pass (`task_names`): this library imports no task."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Iterator

from bench.core.errors import UserError
from bench.core.results import write_json_atomic
from bench.regression.cases import EXAMPLE_CASE, SUITE_ROOT, RegressConfig, parse_cases
from bench.regression.check import check_writable
from bench.regression.decision import decide
from bench.regression.sides import measure_interleaved, workers

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


def calibrate(args, task_names) -> int:
    """The calibration of python -m bench.regress_calibration's parsed `args`; `task_names` gives the task
    registry's names."""
    cfg = RegressConfig(**{f.name: getattr(args, f.name) for f in fields(RegressConfig)})
    if cfg.ref or cfg.baseline or cfg.save_baseline or cfg.markdown:
        raise UserError("The calibration compares the working tree with itself; drop --ref, --baseline, "
                        "--save-baseline and --markdown.")
    if args.trials < 1:
        raise UserError(f"--trials must be at least 1, got {args.trials}.")
    check_writable(cfg.json, "--json")
    cases = parse_cases(args.cases or [EXAMPLE_CASE], task_names)
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
