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
import time
from pathlib import Path

from bench.core.config import command_parser
from bench.core.errors import UserError, run_command
from bench.measure.cost import (DEFAULT_ROUNDS, DEFAULT_STEPS, DEFAULT_WARMUP, Case, cost_pass_done, cost_path,
                                summarise, time_rounds)


def planned_cases(grid: dict, task_name: str) -> list[dict]:
    """The sweep file's runs of one task (every seed), as bench/run.py's validated configs."""
    from bench.sweeps.grid import run_configs
    from bench.sweeps.plan import plan
    from tasks import create_task

    runs = plan(grid, create_task, [task_name], report=False)
    if not runs:
        raise UserError(f"The sweep file plans no run of {task_name}, so there is nothing to time.")
    return [run_configs(run["argv"], f"The flags of {run['name']} are refused:") for run in runs]


def build_cases(task_name: str, planned: list[dict]):
    """(task, batch, cases): every planned model built as its run builds it, and one batch of the task's
    training data (the first batch of a seed-0 loader), the same for every case."""
    import torch
    from accelerate.utils import set_seed

    from bench.training.loop import make_loaders
    from bench.models import resolve
    from bench.core.recipes import suite_optim
    from tasks import create_task

    first = planned[0]
    data_cfg, optim_cfg = first["data"], first["optim"]
    if any(c["data"] != data_cfg or c["optim"].batch_size != optim_cfg.batch_size for c in planned):
        raise UserError(f"The runs of {task_name} differ in their data flags or batch size; a cost pass times one batch "
                        f"for all of them, so give every model of the task the same.")
    optim_cfg = suite_optim(optim_cfg, create_task(task_name))
    task = create_task(task_name, label_smoothing=optim_cfg.label_smoothing)
    task.check_data_flags(data_cfg)
    data = task.load(data_cfg, seed=0)
    torch.manual_seed(0)
    batch = next(iter(make_loaders(data, optim_cfg, data_cfg)[0]))
    cases = []
    for configs in planned:
        run_cfg, optim = configs["run"], suite_optim(configs["optim"], task)
        entry, size = resolve(run_cfg.model, run_cfg.size, data.spec, configs["variant"])
        set_seed(run_cfg.seed)  # the initial weights of the run with this seed
        model = entry.build(data.spec, entry.sizes[size], configs["variant"])
        cases.append(Case(
            family=entry.family, size=size, variant=configs["variant"].name(), seed=run_cfg.seed,
            baseline=entry.baseline, relative_of=entry.relative_of,
            params=sum(p.numel() for p in model.parameters()), model=model,
            make_optimizer=lambda params, o=optim: torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay),
        ))
    return task, batch, cases


def cost_pass(grid: dict, grid_path: Path, task_name: str, rounds: int, steps: int, warmup: int) -> dict:
    """Build and time one task's models; the cost-pass file's content."""
    import os

    import torch

    from bench.core.machine import MEASURE_LOCK_ENV, measuring
    from bench.core.results import build_cost_pass, capture_environment

    torch.set_num_threads(1)  # the process clock is step time only on one thread
    environment = capture_environment()  # the code as it is when the pass starts
    planned = planned_cases(grid, task_name)
    print(f"{task_name}: building {len(planned)} models...", flush=True)
    task, batch, cases = build_cases(task_name, planned)
    tokens = task.tokens(batch)
    tokens_per_sample = None if tokens is None else tokens / task.batch_size(batch)
    Path(grid["output_dir"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(MEASURE_LOCK_ENV, str(Path(grid["output_dir"]).resolve() / ".measure.lock"))
    started, cpu_started = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with measuring():  # no run of a sweep trains beside the pass
        rates = time_rounds(cases, task, batch, rounds, steps, warmup, task_name)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return build_cost_pass(
        task=task_name, sweep_file=str(grid_path), batch_size=task.batch_size(batch),
        tokens_per_sample=tokens_per_sample, settings={"rounds": rounds, "steps": steps, "warmup": warmup,
                                                        "clock": "process", "threads": 1, "precision": "fp32"},
        summary=summarise(cases, rates, tokens_per_sample),
        environment=environment, load_average=[load_before, load_after],
        wall_time_s=time.perf_counter() - started, cpu_time_s=time.process_time() - cpu_started,
    )


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
    from bench.core.results import write_json_atomic
    from bench.sweep import create_task  # the sweep command's: imports the task package only once a task is needed
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
    for task_name in args.tasks or grid["tasks"]:
        path = cost_path(grid["output_dir"], task_name)
        if not args.overwrite and cost_pass_done(path):
            print(f"{task_name}: {path} exists, skipped (--overwrite measures it again)")
            continue
        result = cost_pass(grid, args.grid, task_name, args.rounds, args.steps, args.warmup)
        write_json_atomic(path, result)
        for model in result["models"]:
            train, infer = model["train"], model["infer"]
            print(f"{task_name} {model['model']}-{model['size']}: train {train['samples_per_s']:.4g} samples/s "
                  f"(seed spread {train['seed_spread']:.1%}), infer {infer['samples_per_s']:.4g} "
                  f"(seed spread {infer['seed_spread']:.1%})")
        print(f"result: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
