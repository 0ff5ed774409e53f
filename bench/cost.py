"""The cost pass: a task's models timed side by side, in rounds, in one process.

    python -m bench.cost sweeps/leaderboard.toml                  # every task of the sweep file
    python -m bench.cost sweeps/leaderboard.toml --task cmudict --rounds 20

A run's own measurement times its model at one moment of the run. On a shared machine whose speed
drifts by tens of percent over minutes, the same model measured by its three seeds' runs differed
by up to 44%, which is no cost figure to rank architectures by. Here every model of the task that
the sweep file runs (each family, size and variant, at each seed of the file: its own initial
weights) is built once, on one batch of the task's training data taken as the runs take it, and
timed in rounds: each round times every case once, in an order drawn per round (a fresh copy of
the model, `--warmup` untimed steps, then `--steps` inference steps and `--steps` training steps:
forward, backward and the runs' AdamW step). One thread, and this process's CPU time, which the
time slices of other jobs do not advance; the pass holds the sweep's measurement lock
(bench.core.machine) throughout, so no run of a sweep trains beside it.

What one round measures shares the machine's speed of that moment. The round's speed is the
geometric mean of its rates over the cases; each rate is divided by its round's speed relative to
the median round's, which removes the drift common to a round (the rates stay in samples/s of the
median round). A case's figure is the median of its rounds; a model's is the median of all its
seeds' rounds, with a 95% bootstrap interval, and its seed spread is (max - min) / median of its
seeds' figures. The file keeps every raw rate and round speed beside them.

Writes OUTPUT_DIR/cost/TASK.json (bench.core.results.build_cost_pass), which the leaderboard reads for
the speed columns of the task's page, its Pareto plot and the summary's speed ratios. A task whose
file exists is skipped (`--overwrite` measures it again). `--rounds`, `--steps` and `--warmup`
default to the sweep file's [cost] table, where it has one. Every model must be built on this
machine: a pass needs the task's data, as its runs did.
"""


from __future__ import annotations

import sys
from pathlib import Path

from bench.core.config import command_parser
from bench.core.errors import UserError, run_command
from bench.measure.cost import DEFAULT_ROUNDS, DEFAULT_STEPS, DEFAULT_WARMUP


def create_task(name: str, **flags):
    """The task registry's create_task, which the cost pass's library is given: imported when a task is first
    needed, as the task package imports torch."""
    from tasks import create_task as create

    return create(name, **flags)


def main(argv=None) -> int:
    parser = command_parser("python -m bench.cost", __doc__.strip(),
                            "  python -m bench.cost sweeps/leaderboard.toml --task cmudict")
    parser.add_argument("grid", type=Path, help="the sweep TOML file whose runs' models are timed")
    parser.add_argument("--task", action="append", dest="tasks", metavar="NAME",
                        help="a task of the sweep file (repeatable; default: all of them)")
    # Defaults: the sweep file's [cost] table, else these.
    parser.add_argument("--rounds", type=int, help=f"rounds: every case timed once in each (default {DEFAULT_ROUNDS})")
    parser.add_argument("--steps", type=int, help=f"timed steps per phase, case and round (default {DEFAULT_STEPS})")
    parser.add_argument("--warmup", type=int, help=f"untimed steps before each timed phase (default {DEFAULT_WARMUP})")
    parser.add_argument("--overwrite", action="store_true", help="measure a task again whose cost file exists")
    args = parser.parse_args(argv)
    return run_command(lambda: _main(args), "Interrupted; nothing was written for the task being timed.")


def _main(args) -> int:
    from bench.studies.cost import cost_passes
    from bench.sweeps.grid import load_grid

    grid = load_grid(args.grid, create_task)
    table = {"rounds": DEFAULT_ROUNDS, "steps": DEFAULT_STEPS, "warmup": DEFAULT_WARMUP, **grid.get("cost", {})}
    for key, value in table.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.rounds < 3:
        raise UserError(f"--rounds must be at least 3 (a median and an interval need them), got {args.rounds}.")
    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}.")
    if args.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {args.warmup}.")
    unknown = [t for t in args.tasks or [] if t not in grid["tasks"]]
    if unknown:
        raise UserError(f"--task {unknown[0]} is not a task of {args.grid} ({', '.join(grid['tasks'])}).")
    cost_passes(grid, args.grid, args.tasks or grid["tasks"], args.rounds, args.steps, args.warmup, args.overwrite,
                create_task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
