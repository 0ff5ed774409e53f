"""Run a grid of (task, model, size, seed) from a TOML file, each run in its own process.

    python -m bench.sweep sweeps/quickstart.toml
    python -m bench.sweep sweeps/leaderboard.toml --jobs 2   # two runs at a time, one CPU thread each

A crash or out-of-memory in one run does not stop the rest; runs whose result file already
exists are skipped and an interrupted run resumes from its checkpoints (or starts again when it
saved none), so a sweep stopped with Ctrl-C continues where it stopped when rerun. Each run's output goes
to OUTPUT_DIR/logs/. SIGINT (Ctrl-C) or SIGTERM reaches the running runs through the sweep, which
started each in a process group of its own: they save a checkpoint and stop, no other run starts,
and the sweep exits 130 / 143 once they have. Every --progress-every seconds (default 30) it prints
each running run's phase, step and time left in training. A result already in output_dir that was
made with other outcome-changing settings (bench.core.results.OUTCOME_SETTINGS) than the sweep's would be
skipped as done, or replaced: the sweep refuses to start. The file's keys, checked for type and shape
before anything runs (flags the sweep sets per run, such as seed or output-dir, are refused in args;
the flags each task's runs get are checked as bench/run.py checks them, the data flags the task
reads included; a grid of which no pair can run is refused):

    output_dir = "runs/x"          # where result JSONs go
    tasks = ["digits"]             # task names
    models = ["gmlp", "vit"]       # model families
    sizes = ["mini"]               # optional; default: each family's size for the task
    seeds = [0, 1, 2]
    args_from = "leaderboard.toml" # optional: take [args] and [task_args] from another sweep file
                                   # (relative to this one); this file's tables override them key by key
    launcher = ["accelerate", "launch"]   # optional: how to start bench/run.py (default: this python)
    gpus_per_run = 1               # optional: GPUs each run uses (default: 1 where CUDA is, else 0: CPU runs);
                                   # with several, each run is started by accelerate launch --num_processes N
    runs_per_gpu = 1               # optional: runs that may share a GPU (or group) at a time; they then take turns
                                   # measuring (default 1: each concurrent run has its own)
    reproducible = true            # optional: runs in reproducible mode, the same bits across Intel CPUs
                                   # (bench/core/process.py; default false)
    [args]                         # flags for every run (--name value; true for switches)
    epochs = 10
    [task_args.wordnet]            # flags for one task's runs, over [args]
    max-steps = 300
    [variants]                     # optional: per model, the variants to run (bench.core.config.VariantConfig
    resmlp = ["", "norm=none"]     # names; "" is the family's default); unlisted models run their default
    [tune]                         # optional: tune the learning rate on validation before the seeds
    lr = [1e-3, 2e-3, 4e-3]        # the grid, the same for every architecture; with recipes, it may be a table
                                   # of recipes ({plain = [...], deit = [...]}): each recipe's own grid
    warmup = [0.05, 0.3]           # optional: warm-up fractions tuned with it (the grid is lr x warmup)
    extend = 2                     # optional (default 2): learning rates the sweep may try beyond an end of lr
    seed = 0                       # optional: the tuning seed (default: the first of seeds)
    eval_every = {digits = 50}     # optional: per task, its tuning runs also score validation every N steps
                                   # (--eval-every): each setting's learning curve, in its result's history
    budgets = [1, 4]               # optional, with [tune]: each model's tuned setting also trained at these
                                   # multiples of its task's budget (max-steps or epochs), into OUTPUT_DIR/budget-4x/;
                                   # or a table naming each task ({wordnet = [1, 4], digits = [1]}): per task
    [cost]                         # optional: after a task's runs, time its models side by side
    rounds = 15                    # (bench/cost.py; these keys are its flags)
    [slurm]                        # optional: the jobs of --executor slurm (its flags of the same names win)
    partition = "gpu"              # also time-min, cpus-per-run, mem-gb, account
    recipes = ["plain", "deit"]    # optional: the whole grid once per training recipe (--recipe), each
                                   # into OUTPUT_DIR/<recipe>/, so that no page ranks two recipes together

With [tune], each task runs in two phases. Tuning: every (model, lr) of the grid at the tuning
seed, scored on the validation split (--eval-split validation: carved from the training data),
into OUTPUT_DIR/tune/lr-<lr>/; with a warmup list, every (model, lr, warm-up) into
OUTPUT_DIR/tune/lr-<lr>-warmup-<w>/. Per model, the setting with the best validation metric is
chosen (a failed run counts as worst; ties go to the first tried). Where its lr is the lowest or
highest that model tried, the grid follows it: the next lr beyond that end (the grid's own factor
there: the ratio of its two outermost values on that side) runs at the chosen warm-up, and the
choice is made again, until the best lr is inside what was tried or `extend` steps were taken on
that side. Then every seed runs at the chosen setting, scored once on the test split, into
OUTPUT_DIR; with budgets, then again at each longer budget (the task's max-steps, or its epochs,
times the multiple; the warm-up, a fraction, grows with it), into OUTPUT_DIR/budget-<k>x/, so that a
page shows whether a ranking at the tuned budget holds when every model trains longer. Nothing in the tuning phase reads the test split. Each tuning run's result records the
declared [tune] grid (its "tune" key), so a page tells the grid from its extensions.

With [cost], once a task's runs are done the sweep runs its cost pass (python -m bench.cost: every
model of the task at every seed, timed side by side in one process, alone on the machine) into
OUTPUT_DIR/cost/TASK.json, unless that file exists; the leaderboard takes the task's speed figures
from it.

Where the runs go (docs/scale-out.md): with CUDA, each run the sweep has going at once gets its own
GPU, or its own gpus_per_run of them (bench.scale_out.launch), and the result records which. With --executor
slurm each run is a Slurm job, submitted through submitit and waited for; the phases, the choice on
validation, resuming and the results are the same. A preempted or timed-out job is requeued and
resumes its run from its checkpoint. --executor local runs the same jobs through submitit's local
executor, on this machine.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from bench.core.config import SlurmConfig, add_flags, command_parser
from bench.core.errors import run_command
from bench.sweeps.execute import EXECUTORS, RunProcesses, SweepStopped, sweep


def create_task(name: str):
    """The task registry's create_task, which the sweep's library is given: imported when a task is first
    needed, as the task package imports torch."""
    from tasks import create_task as create

    return create(name)


def main(argv=None) -> int:
    parser = command_parser("python -m bench.sweep", __doc__.strip(), "  python -m bench.sweep sweeps/quickstart.toml")
    parser.add_argument("grid", type=Path, help="sweep TOML file (its keys are described above)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and exit")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at a time (default 1; with --executor slurm, 256). On CPU each then gets cores/jobs "
                             "threads (one where its flags time with --bench-clock process); with CUDA each gets its own GPU, or gpus_per_run of them")
    parser.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                        help="print each running run's phase, step and time left this often (0: never)")
    parser.add_argument("--executor", choices=EXECUTORS, default="processes",
                        help="processes: each run a process of this sweep, on this machine; slurm: each run a Slurm "
                             "job, through submitit; local: submitit's local executor, the slurm path run on this "
                             "machine without sbatch")
    add_flags(parser, SlurmConfig, unset_absent=True)  # unset: the sweep file's [slurm] value, or the default
    args = parser.parse_args(argv)
    interrupted = ("Interrupted; rerun the same command to continue: finished runs are skipped, "
                   "interrupted ones resume from their checkpoints.")
    processes = RunProcesses()

    def body() -> int:
        with processes.stop_signals():
            try:
                return sweep(args, create_task, processes)
            except SweepStopped as e:  # the running runs had the signal and have stopped
                by = "" if e.signum == signal.SIGINT else f" by {signal.Signals(e.signum).name}"
                print(f"error: Interrupted{by}; {interrupted.partition('; ')[2]}", file=sys.stderr)
                return 128 + e.signum

    return run_command(body, interrupted)


if __name__ == "__main__":
    sys.exit(main())
