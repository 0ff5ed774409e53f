"""Sanity checks: every compared family trained on every sanity task (tasks.sanity) within a stated
budget must reach a stated score; each run's learning curve says at which step it got there.

A family is each one registered for the task's modality that is no relative of another
(bench.models.compared_families), at size mini; --model names others. Each run is bench/run.py in
a process of its own with one CPU thread, scored on the validation split every `eval_every` steps
(the memorization tasks score their training set), into OUTPUT_DIR (its log in OUTPUT_DIR/logs/).
A table of every pair follows: the budget, the threshold, the final score, the first step of the
curve at or over the threshold, and pass or FAIL. The exit code is 1 if any pair failed, 2 for a
bad command line. The budgets and thresholds, with the reason for each, are CHECKS in bench/sanity.py
and in docs/sanity.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.core.config import DataConfig, VariantConfig, command_parser
from bench.core.errors import PairError, UserError, run_command
from bench.core.registry import Registry
from bench.core.results import ResultError, check_output_folder, load_result

SIZE = "mini"
EXAMPLES = """  python -m bench.sanity                             # every family on every sanity task
  python -m bench.sanity --model gmlp --task copy --task reverse"""  # every family's CPU-sized width (128 for text, the mini image models)


@dataclass(frozen=True)
class Check:
    """One sanity task's budget and threshold: `metric` (of the task's result) must reach `threshold`
    within `steps` optimizer steps of `batch_size`, at peak learning rate `lr` after `warmup_fraction`
    of the steps of warm-up (the suite recipe's AdamW and cosine otherwise). `why`: the reason for it."""

    task: str
    metric: str
    threshold: float
    steps: int
    eval_every: int
    lr: float
    why: str
    batch_size: int = 64
    warmup_fraction: float = 0.1
    seq_len: Optional[int] = None  # None: the task's default
    max_eval_samples: Optional[int] = None  # the curve's points score this many (a fixed sample), the final too

    def flags(self) -> dict:
        """bench/run.py's flags of the check, in bench.sweep's {flag: value} form."""
        optional = {"seq-len": self.seq_len, "max-eval-samples": self.max_eval_samples}
        return {
            "max-steps": self.steps, "batch-size": self.batch_size, "lr": self.lr,
            "warmup-fraction": self.warmup_fraction, "eval-every": self.eval_every, "eval-split": "validation",
            "measure": False, "checkpoint-every": "none",
            **{flag: value for flag, value in optional.items() if value is not None},
        }

    def budget(self) -> str:
        return f"{self.steps} x {self.batch_size}, lr {self.lr:g}"


CHECKS: Registry[Check] = Registry("sanity task")
for _check in (
    Check("copy", "bleu", 90.0, 600, 100, 2e-3, seq_len=24, max_eval_samples=200,
          why="BLEU 90 on unseen sentences: the model copies nearly every word of a sentence it never saw, "
              "which is attending to (or mixing in) the right source position; 600 steps: twice the slowest "
              "family's steps to 90 in the pilot (300), every family at 99.4 or more by its end"),
    Check("reverse", "bleu", 80.0, 1200, 100, 2e-3, seq_len=24, max_eval_samples=200,
          why="BLEU 80 on unseen sentences: reversing needs the source position counted from the end, which moves "
              "with the length, so it is harder than copying and its threshold lower; 1200 steps: at 600 in the "
              "pilot ResMLP (91.9) and gMLP (81.3, at step 500) passed, Mixer (33.1) and the Transformer (64.4) did "
              "not; with 1200, Mixer reaches 80 at step 500 (99.0 at the end), the Transformer at step 800 (87.7)"),
    Check("memorize-pairs", "exact_match", 0.95, 400, 50, 2e-3, seq_len=24,
          why="95% of 256 random pairs reproduced exactly: a model with 1M parameters must fit a small set whose "
              "targets nothing predicts; 400 steps (100 epochs): every family had them all by step 100 in the pilot"),
    Check("memorize-digits", "top1", 0.99, 800, 50, 2e-3,
          why="top-1 0.99 on the 256 randomly labelled images it trained on: fitting them is all there is; 800 steps "
              "(200 epochs): gMLP, Mixer and ViT fit them by step 250 of a 400-step pilot, ResMLP only by step 350 "
              "of 800 (0.87 at the end of 400)"),
    Check("motif", "mlm_accuracy", 0.9, 1200, 100, 2e-3, seq_len=32, max_eval_samples=200,
          why="90% of masked tokens, each visible one period away (the rest are BERT's random replacements and "
              "blocks whose copies are all masked); 1200 steps: in the pilot the MLPs passed 0.9 by step 150 of 400, "
              "the Transformer stood at 0.78 after 400 and reached 0.9 at step 500 of 1200 (0.97 at the end)"),
):
    CHECKS.add(_check.task, _check)


@dataclass
class Outcome:
    """A pair's run, judged: `value` the final score (None if the run failed), `reached` the first
    step of its curve at or over the threshold (None if none was)."""

    family: str
    check: Check
    status: str
    value: Optional[float]
    reached: Optional[int]

    @property
    def passed(self) -> bool:
        return self.status == "ok" and self.value is not None and self.value >= self.check.threshold


def judge(family: str, check: Check, result: Optional[dict]) -> Outcome:
    """The outcome of a pair from its result (None: the run left none)."""
    if result is None:
        return Outcome(family, check, "no result", None, None)
    value = (result.get("metrics") or {}).get(check.metric)
    reached = next((entry["step"] for entry in result.get("history") or []
                    if (entry["metrics"].get(check.metric) or float("-inf")) >= check.threshold), None)
    return Outcome(family, check, result["status"], value, reached)


def pairs(families: list[str], checks: list[Check]) -> list[tuple[str, Check]]:
    """(family, check) for each pair that runs: the compared families of each task's modality, or
    `families` where given; a pair that cannot run is said and left out; UserError if none can."""
    from bench.models import compared_families, model_entries, resolve
    from tasks import create_task

    for family in families:
        model_entries(family)  # an unknown name fails here, listing the families
    found = []
    for check in checks:
        spec = create_task(check.task).spec(DataConfig(**({"seq_len": check.seq_len} if check.seq_len else {})))
        for family in families or compared_families(spec.modality):
            try:
                resolve(family, SIZE, spec)
            except PairError as e:
                print(f"skip: {e}")
                continue
            found.append((family, check))
    if not found:
        raise UserError(f"No pair of --model {' '.join(families)} and the sanity tasks "
                        f"{', '.join(c.task for c in checks)} can run.")
    return found


def table(outcomes: list[Outcome]) -> str:
    rows = [("family", "task", "budget", "metric", "threshold", "final", "reached at step", "")]
    for o in outcomes:
        rows.append((o.family, o.check.task, o.check.budget(), o.check.metric, f">= {o.check.threshold:g}",
                     o.status if o.value is None else f"{o.value:.{1 if o.check.threshold > 1 else 3}f}",  # BLEU: 0-100
                     "-" if o.reached is None else str(o.reached),
                     "pass" if o.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def sanity(families: list[str], task_names: list[str], output_dir: Path, processes=None) -> list[Outcome]:
    """Run every pair (bench.sweep's way: one process each, with its log) and judge it."""
    from types import SimpleNamespace

    from bench.core.config import SlurmConfig
    from bench.sweeps.execute import Launcher, RunProcesses, execute
    from bench.sweeps.plan import number, planned_run

    checks = [CHECKS.get(name) for name in task_names or CHECKS.names()]  # an unknown name fails here
    check_output_folder(output_dir, "--output-dir")
    found = pairs(families, checks)
    runs = number([planned_run(check.flags(), output_dir, 0, check.task, family, SIZE, VariantConfig())
                   for family, check in found])
    # the sweep's launcher, one run at a time on the CPU, as local processes
    launch = Launcher(SimpleNamespace(executor="processes", slurm=SlurmConfig(), jobs=1, grid=Path("sanity"), dry_run=False),
                      {"output_dir": str(output_dir), "gpus_per_run": 0}, processes or RunProcesses())
    launch.env["OMP_NUM_THREADS"] = "1"  # the budgets are stated for one thread
    outcomes = []
    for run, (family, check) in zip(runs, found):
        execute(run, launch)
        try:
            result = load_result(run["path"]) if run["path"].exists() else None
        except ResultError:
            result = None
        outcomes.append(judge(family, check, result))
    return outcomes


def main(argv=None) -> int:
    parser = command_parser("python -m bench.sanity", __doc__.strip(), EXAMPLES)
    parser.add_argument("--model", action="append", default=[], metavar="FAMILY",
                        help="a family to check (repeat for more; default: every compared family)")
    parser.add_argument("--task", action="append", default=[], metavar="TASK",
                        help=f"a sanity task to run (repeat for more; default: all of {', '.join(CHECKS.names())})")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/sanity"), help="folder for the results")
    args = parser.parse_args(argv)

    def body() -> int:
        from bench.sweeps.execute import RunProcesses

        processes = RunProcesses()
        with processes.stop_signals():
            outcomes = sanity(args.model, args.task, args.output_dir, processes)
        print()
        print(table(outcomes))
        failed = [o for o in outcomes if not o.passed]
        print(f"{len(outcomes) - len(failed)} of {len(outcomes)} pairs passed"
              + (f"; failed: {', '.join(f'{o.family} on {o.check.task}' for o in failed)}." if failed else "."))
        return 1 if failed else 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
