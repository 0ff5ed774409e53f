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
    reproducible = true            # optional: runs in reproducible mode, the same bits on any x86-64 CPU
                                   # (bench/core/process.py; default false)
    [args]                         # flags for every run (--name value; true for switches)
    epochs = 10
    [task_args.wordnet]            # flags for one task's runs, over [args]
    max-steps = 300
    [variants]                     # optional: per model, the variants to run (bench.core.config.VariantConfig
    resmlp = ["", "norm=none"]     # names; "" is the family's default); unlisted models run their default
    [tune]                         # optional: tune the learning rate on validation before the seeds
    lr = [1e-3, 2e-3, 4e-3]        # the grid, the same for every architecture
    warmup = [0.05, 0.3]           # optional: warm-up fractions tuned with it (the grid is lr x warmup)
    extend = 2                     # optional (default 2): learning rates the sweep may try beyond an end of lr
    seed = 0                       # optional: the tuning seed (default: the first of seeds)
    eval_every = {digits = 50}     # optional: per task, its tuning runs also score validation every N steps
                                   # (--eval-every): each setting's learning curve, in its result's history
    budgets = [1, 4]               # optional, with [tune]: each model's tuned setting also trained at these
                                   # multiples of its task's budget (max-steps or epochs), into OUTPUT_DIR/budget-4x/
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

import dataclasses
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from bench.core.config import CONCERNS, MAX_SEED, SlurmConfig, VariantConfig, add_flags, command_parser, field_kinds
from bench.measure.cost import cost_pass_done, cost_path
from bench.core.errors import PairError, UserError, run_command
from bench.scale_out.launch import (RUN_SCRIPT, DeviceSlots, Job, JobExecutor, device_groups, resumed_argv, run_launcher,
                          start_process, visible_gpus)
from bench.core.machine import MEASURE_LOCK_ENV
from bench.core.process import reproducible_env
from bench.training.progress import PROGRESS_ENV, describe, read_progress
from bench.core.results import (
    TUNE_ENV, ProcessLock, ResultError, check_output_folder, checkpoint_folder, load_result, result_filename,
    setting_differences,
)

SWEEP_LOCK = ".sweep.lock"  # in output_dir, held by the sweep running on it
EXECUTORS = ("processes", "local", "slurm")
SLURM_JOBS = 256  # --executor slurm's default --jobs: runs queued at a time (each a waiting thread here)
# bench/run.py stopped by SIGINT / SIGTERM (negative: killed by it before its handlers were installed)
INTERRUPTED_EXIT_CODES = (130, 143, -2, -15)
KNOWN_KEYS = {
    "output_dir", "tasks", "models", "sizes", "seeds", "launcher", "args", "task_args", "args_from", "variants",
    "tune", "cost", "gpus_per_run", "runs_per_gpu", "slurm", "reproducible", "recipes", "budgets",
}
SLURM_KEYS = field_kinds(SlurmConfig)
TUNE_KEYS = {"lr", "seed", "warmup", "extend", "eval_every"}
EXTEND = 2  # [tune] extend's default
COST_KEYS = {"rounds", "steps", "warmup"}
# Flags the sweep gives each run itself, which [args] / [task_args] must not set: what to use instead.
SET_PER_RUN = {
    "task": "the tasks list", "model": "the models list", "size": "the sizes list", "seed": "the seeds list",
    "output-dir": "output_dir", "resume": "nothing: the sweep resumes interrupted runs itself",
    "overwrite": "nothing: the sweep reruns interrupted runs itself",
}
# Every flag [args] / [task_args] may set: {field name: (type, may be "none")}, and how a value of each type is written.
RUN_FLAGS = {name: kind for cls in CONCERNS.values() for name, kind in field_kinds(cls).items()}
WRITTEN_AS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _names(value) -> bool:
    """A non-empty list of non-empty strings."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _of_kind(value, kind: type, optional: bool) -> bool:
    if optional and value == "none":
        return True
    if kind is bool or isinstance(value, bool):  # true is no number, 1 no switch
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


def check_flags(table, where: str, path: Path) -> None:
    """A table of bench/run.py flags: each a flag of a run, with a value of its type, none that the sweep sets per run."""
    if not isinstance(table, dict):
        raise UserError(f"{where} in the sweep file {path} must be a table of flags, got {_shown(table)}.")
    for name, value in table.items():
        flag = name.replace("_", "-")
        if flag in SET_PER_RUN:
            raise UserError(f"{where}.{name} in the sweep file {path} sets --{flag}, which the sweep sets for each "
                            f"run; use {SET_PER_RUN[flag]}.")
        field = flag.replace("-", "_")
        if field.startswith("no_") and RUN_FLAGS.get(field[3:]) == (bool, False):  # no-measure = true: --no-measure
            ok, written = value is True, f"true (or {flag[3:]} = false)"
        elif field in RUN_FLAGS:
            kind, optional = RUN_FLAGS[field]
            ok, written = _of_kind(value, kind, optional), WRITTEN_AS[kind] + (' or "none"' if optional else "")
        else:
            raise UserError(f"{where}.{name} in the sweep file {path} names no flag of bench/run.py "
                            f"(bench/run.py --help lists them).")
        if not ok:
            raise UserError(f"{where}.{name} in the sweep file {path} must be {written}, got {_shown(value)}.")


def check_schema(grid: dict, path: Path) -> None:
    """Types and shapes of every key of a sweep file; one sentence naming the file and the key."""
    def need(key, ok, expected):
        if key in grid and not ok(grid[key]):
            raise UserError(f"{key} in the sweep file {path} must be {expected}, got {_shown(grid[key])}.")

    need("output_dir", lambda v: isinstance(v, str) and v.strip(), "a non-empty string (a folder)")
    need("args_from", lambda v: isinstance(v, str) and v.strip(), "a non-empty string (a sweep file name)")
    for key in ("tasks", "models", "sizes"):
        need(key, _names, "a non-empty list of names (strings)")
    need("seeds", lambda v: isinstance(v, list) and bool(v) and all(map(_seed, v)),
         f"a non-empty list of integers from 0 to {MAX_SEED}")
    need("launcher", _names, "a non-empty list of strings (a command and its arguments)")
    need("variants", lambda v: isinstance(v, dict) and all(
        isinstance(names, list) and names and all(isinstance(n, str) for n in names) for names in v.values()),
        'a table of lists of variant names (resmlp = ["", "norm=none"])')
    need("task_args", lambda v: isinstance(v, dict), "a table of flag tables, one per task ([task_args.digits])")
    need("tune", lambda v: isinstance(v, dict), "a table ([tune])")
    need("gpus_per_run", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
         "an integer >= 0 (0: CPU runs)")
    need("runs_per_gpu", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")
    need("slurm", lambda v: isinstance(v, dict), "a table ([slurm])")
    need("reproducible", lambda v: isinstance(v, bool), "true or false")
    need("recipes", lambda v: _names(v) and len(set(v)) == len(v), "a non-empty list of distinct recipe names")
    need("budgets", lambda v: isinstance(v, list) and 1 in v and len(set(v)) == len(v) and all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in v),
        "a list of distinct integer multiples of the tasks' budgets that includes 1 ([1, 4])")
    if "args" in grid:
        check_flags(grid["args"], "args", path)
    for task_name, table in grid.get("task_args", {}).items():
        check_flags(table, f"task_args.{task_name}", path)
    seed = grid.get("tune", {}).get("seed")
    if seed is not None and not _seed(seed):
        raise UserError(f"tune.seed in the sweep file {path} must be an integer from 0 to {MAX_SEED}, got {_shown(seed)}.")


def _seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"Cannot read the sweep file {path} ({e.strerror}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"The sweep file {path} is not valid TOML ({e}).") from None


def load_grid(path: Path) -> dict:
    grid = read_toml(path)
    unknown = set(grid) - KNOWN_KEYS
    if unknown:
        raise UserError(f"The sweep file {path} has unknown keys {sorted(unknown)}; known keys are {sorted(KNOWN_KEYS)}.")
    for key in ("output_dir", "tasks", "models", "seeds"):
        if key not in grid:
            raise UserError(f"The sweep file {path} needs {key!r}.")
    check_schema(grid, path)
    unlisted = set(grid.get("variants", {})) - set(grid["models"])
    if unlisted:
        raise UserError(f"The sweep file {path} lists variants of {sorted(unlisted)}, which are not in its models.")
    for task_name in set(grid.get("task_args", {})) - set(grid["tasks"]):
        raise UserError(f"task_args.{task_name} in the sweep file {path} names a task not in its tasks "
                        f"({', '.join(grid['tasks'])}).")
    for family, names in grid.get("variants", {}).items():
        for name in names:
            try:
                VariantConfig.parse(name)
            except UserError as e:
                raise UserError(f"variants.{family} in the sweep file {path} is refused: {e}") from None
    if "launcher" in grid and grid.get("gpus_per_run", 1) > 1:
        raise UserError(f"The sweep file {path} sets both launcher and gpus_per_run = {grid['gpus_per_run']}; the sweep "
                        f"launches a run of several GPUs through accelerate launch itself: remove launcher.")
    for name, value in grid.get("slurm", {}).items():
        field = name.replace("-", "_")
        if field not in SLURM_KEYS:
            raise UserError(f"slurm.{name} in the sweep file {path} is no Slurm setting; the [slurm] table takes "
                            f"{', '.join(key.replace('_', '-') for key in SLURM_KEYS)}.")
        if not _of_kind(value, SLURM_KEYS[field][0], False):
            raise UserError(f"slurm.{name} in the sweep file {path} must be {WRITTEN_AS[SLURM_KEYS[field][0]]}, "
                            f"got {_shown(value)}.")
    if "launcher" in grid and shutil.which(grid["launcher"][0]) is None:
        raise UserError(f"launcher in the sweep file {path} starts {grid['launcher'][0]!r}, which is not a command here.")
    try:
        check_output_folder(grid["output_dir"], "output_dir")
    except UserError as e:
        raise UserError(f"In the sweep file {path}, {e}") from None
    cost = grid.get("cost")
    if cost is not None and not (isinstance(cost, dict) and set(cost) <= COST_KEYS and all(
            isinstance(v, int) and not isinstance(v, bool) for v in cost.values())):
        raise UserError(f"The [cost] table of {path} takes the keys {sorted(COST_KEYS)}, each an integer.")
    tune = grid.get("tune")
    if tune is not None:
        check_tune(tune, path)
        for task_name in set(tune.get("eval_every", {})) - set(grid["tasks"]):
            raise UserError(f"tune.eval_every in the sweep file {path} names {task_name!r}, which is not in its tasks "
                            f"({', '.join(grid['tasks'])}).")
        decided = ("lr", "eval-split") + (("warmup-fraction", "warmup-epochs") if "warmup" in tune else ())
        for key in decided:
            if key in grid.get("args", {}) or any(key in a for a in grid.get("task_args", {}).values()):
                raise UserError(f"{path} sets {key!r} in its args, which [tune] decides; remove it.")
    if "args_from" in grid:
        base_path = path.parent / grid["args_from"]
        base = read_toml(base_path)
        check_schema({key: base[key] for key in ("args", "task_args") if key in base}, base_path)
        grid["args"] = {**base.get("args", {}), **grid.get("args", {})}
        tasks = set(base.get("task_args", {})) | set(grid.get("task_args", {}))
        grid["task_args"] = {
            t: {**base.get("task_args", {}).get(t, {}), **grid.get("task_args", {}).get(t, {})} for t in tasks
        }
    if "budgets" in grid:
        if "tune" not in grid:
            raise UserError(f"The sweep file {path} has budgets but no [tune] table; the longer budgets train each "
                            f"model at its tuned setting: add [tune].")
        for task_name in grid["tasks"]:
            if not {"max-steps", "epochs"} & set(task_flags(grid, task_name)):
                raise UserError(f"The sweep file {path} has budgets, but the runs of {task_name} set neither "
                                f"max-steps nor epochs for them to multiply: set one in [args] or "
                                f"[task_args.{task_name}].")
    if "recipes" in grid:
        from bench.core.recipes import get_recipe

        for name in grid["recipes"]:
            try:
                get_recipe(name)
            except UserError as e:
                raise UserError(f"recipes in the sweep file {path} is refused: {e}") from None
        if "recipe" in grid.get("args", {}) or any("recipe" in a for a in grid.get("task_args", {}).values()):
            raise UserError(f"{path} sets 'recipe' in its args, which its recipes list decides; remove it.")
        if "cost" in grid:
            raise UserError(f"The sweep file {path} has recipes and a [cost] table; a cost pass times models "
                            f"whatever their recipe: run it from a sweep file without recipes.")
    for one in per_recipe(grid):
        for task_name in one["tasks"]:
            check_run_flags(task_name, {**one.get("args", {}), **one.get("task_args", {}).get(task_name, {})}, path)
    return grid


def check_tune(tune, path: Path) -> None:
    """The [tune] table's keys and values; one sentence naming the file and the key."""
    def finite(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not isinstance(tune, dict) or set(tune) - TUNE_KEYS:
        raise UserError(f"The [tune] table of {path} takes the keys {sorted(TUNE_KEYS)}.")
    lrs = tune.get("lr")
    if not isinstance(lrs, list) or len(lrs) < 2 or not all(finite(v) and v > 0 for v in lrs) or len(set(lrs)) < len(lrs):
        raise UserError(f"tune.lr in {path} must be a list of at least two positive learning rates, none repeated, "
                        f"got {lrs!r}.")
    warmups = tune.get("warmup", [0.0])
    if not isinstance(warmups, list) or not warmups or not all(finite(v) and 0 <= v < 1 for v in warmups) or len(
            set(warmups)) < len(warmups):
        raise UserError(f"tune.warmup in {path} must be a list of warm-up fractions, each in [0, 1), none repeated, "
                        f"got {_shown(warmups)}.")
    eval_every = tune.get("eval_every", {})
    if not isinstance(eval_every, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in eval_every.values()):
        raise UserError(f"tune.eval_every in {path} must be a table of tasks and step counts, each an integer >= 1 "
                        f"({{wordnet = 50}}), got {_shown(eval_every)}.")
    extend = tune.get("extend", EXTEND)
    if not isinstance(extend, int) or isinstance(extend, bool) or extend < 0:
        raise UserError(f"tune.extend in {path} must be an integer >= 0 (how many learning rates the sweep may try "
                        f"beyond an end of tune.lr; 0: never), got {_shown(extend)}.")


def per_recipe(grid: dict) -> list[dict]:
    """The grid as sweeps of one recipe each: with `recipes`, one per recipe, its runs given --recipe and
    its output in OUTPUT_DIR/<recipe>/ (the same result file names never meet); without, the grid."""
    if "recipes" not in grid:
        return [grid]
    return [{**{k: v for k, v in grid.items() if k != "recipes"}, "output_dir": str(Path(grid["output_dir"]) / name),
             "args": {**grid.get("args", {}), "recipe": name}} for name in grid["recipes"]]


def check_run_flags(task_name: str, args: dict, path: Path) -> None:
    """The flags the sweep gives a task's runs, checked as bench/run.py checks them (ranges, choices,
    the data flags the task reads) before any run starts."""
    from tasks import create_task

    task = create_task(task_name)
    refused = f"The flags the sweep file {path} gives the {task_name} runs are refused:"
    configs = run_configs(["--task", task_name, *flags(args)], refused)
    try:
        task.check_data_flags(configs["data"])
    except UserError as e:
        raise UserError(f"{refused} {e}") from None


def run_configs(argv: list[str], refused: str) -> dict:
    """The validated configs bench/run.py makes of `argv`, or a UserError: `refused` and the reason."""
    from bench.core.config import build_parser, configs_from_args

    def error(message):
        raise UserError(f"{message}.")

    parser = build_parser("", "")
    parser.error = error
    try:
        return configs_from_args(parser.parse_args(argv))
    except UserError as e:
        raise UserError(f"{refused} {e}") from None


def flags(args: dict) -> list[str]:
    out = []
    for name, value in args.items():
        if value is True:
            out.append(f"--{name}")
        elif value is False:
            out.append(f"--no-{name}")
        else:
            out += [f"--{name}", str(value)]
    return out


def plan(grid: dict, task_names: list[str] | None = None, phase: str | None = None,
         chosen: dict | None = None, report: bool = True, budget: int = 1) -> list[dict]:
    """Runs of the grid with their result paths; bad names fail here, before any run. A pair that
    cannot run is left out, and said so with `report`.

    phase None: the grid as declared. "tune": every learning rate (x warm-up) of [tune] at the tuning
    seed, scored on validation. "test": every seed at the setting (lr, warm-up or None) `chosen` for its
    (task, family, size, variant), scored on test; a pair with no choice is left out; with `budget` k > 1,
    trained k times as long (longer_budget()), into OUTPUT_DIR/budget-<k>x/.
    """
    from bench.core.config import DataConfig
    from bench.models import resolve
    from tasks import create_task

    task_names = task_names or grid["tasks"]
    runs = []
    sizes = grid.get("sizes") or [None]
    variants = {
        family: [VariantConfig.parse(name) for name in grid.get("variants", {}).get(family, [""])]
        for family in grid["models"]
    }
    tune = grid.get("tune", {})
    seeds = [tune.get("seed", grid["seeds"][0])] if phase == "tune" else grid["seeds"]
    args, specs = {}, {}  # per task: its flags, and the spec they give
    for task_name in task_names:
        args[task_name] = task_flags(grid, task_name)
        data_keys = {k.replace("-", "_"): v for k, v in args[task_name].items()}
        data_cfg = DataConfig(**{k: v for k, v in data_keys.items() if k in DataConfig.__dataclass_fields__})
        specs[task_name] = create_task(task_name).spec(data_cfg)
    # Seeds outermost: a sweep stopped early still has every pair at its first seeds.
    for seed, task_name, family, size in itertools.product(seeds, task_names, grid["models"], sizes):
        for variant in variants[family]:
            try:
                _, resolved = resolve(family, size, specs[task_name], variant)
            except PairError as e:
                if report and seed == seeds[0]:  # say it once, not once per seed
                    print(f"skip: {e}")
                continue
            if phase == "tune":
                for lr, warmup in itertools.product(tune["lr"], tune.get("warmup", [None])):
                    runs.append(tuning_run(grid, seed, task_name, family, resolved, variant, lr, warmup))
                continue
            run_args = args[task_name]
            if phase == "test":
                setting = (chosen or {}).get((task_name, family, resolved, variant.name()))
                if setting is None:
                    continue
                run_args = {**longer_budget(run_args, budget), **setting_flags(*setting), "eval-split": "test"}
            runs.append(planned_run(run_args, budget_folder(grid, budget), seed, task_name, family, resolved, variant))
    return runs


def task_flags(grid: dict, task_name: str) -> dict:
    """The flags of a task's runs: [args], and [task_args.TASK] over them."""
    return {**grid.get("args", {}), **grid.get("task_args", {}).get(task_name, {})}


def longer_budget(args: dict, budget: int) -> dict:
    """A task's flags with its training budget multiplied by `budget`: max-steps where it sets it (which
    overrides epochs), else epochs. A warm-up fraction is left as it is: it grows with the run."""
    if budget == 1:
        return args
    key = "max-steps" if "max-steps" in args else "epochs"
    return {**args, key: args[key] * budget}


def budget_folder(grid: dict, budget: int) -> Path:
    """Where the test runs of a budget go: output_dir at the tuned budget, output_dir/budget-<k>x/ at k times it."""
    output_dir = Path(grid["output_dir"])
    return output_dir if budget == 1 else output_dir / f"budget-{budget}x"


def setting_flags(lr: float, warmup: Optional[float]) -> dict:
    """The flags of a tuned setting: its learning rate, and its warm-up fraction where [tune] tunes warm-up."""
    return {"lr": lr, **({} if warmup is None else {"warmup-fraction": warmup})}


def tuning_run(grid: dict, seed: int, task_name: str, family: str, size: str, variant: VariantConfig, lr: float,
               warmup: Optional[float], extension: bool = False) -> dict:
    """One tuning run: the setting (lr, warm-up or None) at the tuning seed, scored on validation, into
    tune/lr-<lr>/ (tune/lr-<lr>-warmup-<w>/ where [tune] tunes warm-up). Its result records the declared
    [tune] grid (bench.core.results.TUNE_ENV); `extension`: its lr lies beyond the grid."""
    tune = grid["tune"]
    folder = f"lr-{lr:g}" + ("" if warmup is None else f"-warmup-{warmup:g}")
    curve = {"eval-every": tune["eval_every"][task_name]} if task_name in tune.get("eval_every", {}) else {}
    run_args = {**task_flags(grid, task_name), **setting_flags(lr, warmup), "eval-split": "validation",
                "measure": False, **curve}
    run = planned_run(run_args, Path(grid["output_dir"]) / "tune" / folder, seed, task_name, family, size, variant)
    record = {"lr": sorted(tune["lr"]), "warmup": tune.get("warmup"), "extend": tune.get("extend", EXTEND)}
    return {**run, "warmup": warmup, "extension": extension, "env": {TUNE_ENV: json.dumps(record)}}


def extensions(grid: dict, choices: dict[tuple, dict]) -> list[dict]:
    """The grid following the optimum: per (task, family, size, variant) of `choices` (select's) whose chosen
    lr is the lowest or highest it tried, a tuning run at the next lr beyond that end, at the grid's own
    factor there (the ratio of its two outermost values on that side) and the chosen warm-up, while fewer
    than [tune] extend were tried beyond the grid on that side."""
    tune = grid["tune"]
    declared, extend = sorted(tune["lr"]), tune.get("extend", EXTEND)
    seed = tune.get("seed", grid["seeds"][0])
    planned = []
    for (task_name, family, size, variant), entry in choices.items():
        if entry["chosen"] is None:
            continue
        lr, warmup = entry["chosen"]
        tried = sorted({tried_lr for tried_lr, _ in entry["values"]})
        sides = ((tried[0], [v for v in tried if v < declared[0]], declared[0] / declared[1]),
                 (tried[-1], [v for v in tried if v > declared[-1]], declared[-1] / declared[-2]))
        for end, beyond, factor in sides:
            next_lr = float(f"{lr * factor:.6g}")  # as its folder names it
            if lr == end and len(beyond) < extend and next_lr not in tried:
                planned.append(tuning_run(grid, seed, task_name, family, size, VariantConfig.parse(variant),
                                          next_lr, warmup, extension=True))
    return planned


def planned_run(args: dict, output_dir: Path, seed: int, task_name: str, family: str, size: str,
                variant: VariantConfig):
    """One run of the grid: its name, result path and bench/run.py arguments."""
    precision = args.get("precision", "fp32")
    path = output_dir / result_filename(task_name, family, size, seed, precision, variant.name())
    variant_args = {key.replace("_", "-"): value for key, value in variant.given().items()}
    # An interrupted run continues from its last checkpoint, or starts again when it saved none.
    argv = resumed_argv(["--task", task_name, "--model", family, "--size", size, "--seed", str(seed),
                         "--output-dir", str(output_dir), *flags(args), *flags(variant_args)], path)
    return {"name": path.stem, "path": path, "argv": argv, "task": task_name,
            "key": (task_name, family, size, variant.name()), "lr": args.get("lr")}


def select(tuning_runs: list[dict]) -> dict[tuple, dict]:
    """Per (task, family, size, variant): "values", the validation score of each setting (lr, warm-up or
    None) tried; "chosen", the setting of the best validation metric (a run that failed or has no metric
    counts as worst; ties go to the first tried), None when every run failed; "extended", the lrs tried
    beyond the grid. Reads only the tuning runs' results, which scored the validation split."""
    scores: dict[tuple, dict] = {}
    for run in tuning_runs:
        value, higher = None, True
        if run["path"].exists():
            try:
                result = load_result(run["path"])
            except ResultError:
                result = None
            if result is not None:
                if result["config"]["data"].get("eval_split") != "validation":
                    raise UserError(f"{run['path']} was not scored on the validation split; it cannot tune.")
                metric = result["primary_metric"]
                higher = metric["higher_is_better"]
                if result["status"] == "ok" and metric["value"] is not None and math.isfinite(metric["value"]):
                    value = metric["value"]
        entry = scores.setdefault(run["key"], {"values": {}, "higher_is_better": None, "extended": set()})
        if entry["higher_is_better"] is None or value is not None:  # a failed first run may name no metric
            entry["higher_is_better"] = higher
        entry["values"][(run["lr"], run.get("warmup"))] = value
        if run.get("extension"):
            entry["extended"].add(run["lr"])
    for entry in scores.values():
        sign = 1 if entry["higher_is_better"] else -1
        valid = [(setting, v) for setting, v in entry["values"].items() if v is not None]
        entry["chosen"] = max(valid, key=lambda item: sign * item[1])[0] if valid else None
    return scores


def finished(result_path: Path) -> bool:
    """Whether a run is done: its result exists and is not that of an interrupted run, which reruns."""
    if not result_path.exists():
        return False
    try:
        return load_result(result_path)["status"] != "interrupted"
    except ResultError:
        return True  # not ours to overwrite; the table leaves it out


class SweepStopped(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the sweep; the running runs were passed the signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class RunProcesses:
    """The runs a sweep has running, each started in a process group of its own, so that a signal reaches
    each run exactly once, from the sweep: SIGINT or SIGTERM to the sweep (alone, or to its whole
    group as Ctrl-C does) is passed to every running run's group (the run finishes its step, saves a
    checkpoint and stops), no run starts afterwards, and the sweep waits for them before it exits. A
    second signal is passed on too: runs then stop at once. Runs submitted as jobs are stopped
    through their executor (JobExecutor.stop), once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running: dict[int, subprocess.Popen] = {}
        self.jobs: dict[str, tuple[JobExecutor, object]] = {}
        self.stopping: Optional[int] = None

    def start(self, command: list[str], env: dict, log=None) -> Optional[subprocess.Popen]:
        """The started run, or None once the sweep is stopping."""
        with self.lock:
            if self.stopping is not None:
                return None
            proc = start_process(command, env, log)
            self.running[proc.pid] = proc
            return proc

    def call(self, command: list[str], env: dict, log=None) -> Optional[int]:
        """Start a process as a run and wait for it: its exit code, or None once the sweep is stopping."""
        proc = self.start(command, env, log)
        if proc is None:
            return None
        try:
            return proc.wait()
        finally:
            self.ended(proc)

    def ended(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.running.pop(proc.pid, None)

    def submit(self, executor: JobExecutor, job: Job, alone: bool = False):
        """The submitted job, or None once the sweep is stopping."""
        with self.lock:
            if self.stopping is not None:
                return None
            submitted = executor.submit(job, alone)
            self.jobs[submitted.job_id] = (executor, submitted)
            return submitted

    def job_ended(self, job) -> None:
        with self.lock:
            self.jobs.pop(job.job_id, None)

    def forward(self, signum: int) -> bool:
        """Pass `signum` to every running run; True for the sweep's first stop signal."""
        with self.lock:
            first = self.stopping is None
            if first:
                self.stopping = signum
            procs = list(self.running.values())
            jobs = list(self.jobs.values()) if first else []
        for executor, job in jobs:
            executor.stop(job)
        for proc in procs:
            try:
                os.killpg(proc.pid, signum)
            except (ProcessLookupError, PermissionError):  # ended meanwhile
                pass
        return first

    @contextmanager
    def stop_signals(self):
        """While inside: SIGINT and SIGTERM are passed to the runs, and the first raises SweepStopped."""
        def handle(signum, frame):
            if self.forward(signum):
                raise SweepStopped(signum)

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class ProgressMonitor:
    """Every `interval` seconds, one line per running run: its phase, step / total steps and time left
    in training, from the progress file it writes (bench.training.progress). Runs' own progress bars are off
    when the sweep's output is not a terminal, so without this a sweep says only "running..."."""

    def __init__(self, interval: float):
        self.interval = interval
        self.lock = threading.Lock()
        self.active: dict[str, tuple[str, Path, float]] = {}
        self.done = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def add(self, run: dict, path: Path, started: float) -> None:
        with self.lock:
            self.active[run["prefix"]] = (run["prefix"], path, started)

    def remove(self, run: dict) -> None:
        with self.lock:
            self.active.pop(run["prefix"], None)

    def __enter__(self):
        if self.interval > 0:
            self.thread = threading.Thread(target=self._report, name="sweep-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        if self.thread is not None:
            self.thread.join()

    def _report(self) -> None:
        while not self.done.wait(self.interval):
            with self.lock:
                active = sorted(self.active.values())
            for prefix, path, started in active:
                print(f"{prefix}: {describe(read_progress(path), time.perf_counter() - started)}", flush=True)


class Launcher:
    """How the sweep starts a command (a run of bench/run.py, a cost pass) and waits for it: as a process
    of its own (--executor processes), or as a submitit job (slurm; local: submitit's local executor,
    the same code without sbatch). On this machine each job takes a device group while it runs
    (bench.scale_out.launch.device_groups: its own GPUs, or nothing on CPU); Slurm gives each job its own."""

    def __init__(self, args, grid: dict, processes: RunProcesses):
        self.processes = processes
        self.executor = args.executor
        self.slurm = args.slurm
        slurm = args.executor == "slurm"
        gpus = [] if slurm else visible_gpus()
        self.gpus_per_run = grid.get("gpus_per_run", 1 if slurm or gpus else 0)
        self.command = run_launcher(grid.get("launcher"), self.gpus_per_run)
        shared = grid.get("runs_per_gpu", 1)
        self.slots = DeviceSlots([None] * args.jobs if slurm else
                                 device_groups(gpus, self.gpus_per_run, args.jobs, str(args.grid), shared))
        # the sweep file's reproducible mode wins over this process's own MKL setting, a default of its own
        self.env: dict[str, str] = reproducible_env() if grid.get("reproducible") else {}
        if slurm:
            self.env["OMP_NUM_THREADS"] = str(args.slurm.cpus_per_run)
        elif args.jobs > 1:
            # Parallel runs each get their share of the cores; oversubscribed OpenMP threads would
            # spin against each other and make every run (and its throughput figures) far slower.
            self.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
            if not self.gpus_per_run or shared > 1:
                # Measurements on a shared device (the CPU, or a GPU of runs_per_gpu > 1) take turns and
                # the other runs pause meanwhile (bench.core.machine).
                self.env[MEASURE_LOCK_ENV] = str(Path(grid["output_dir"]).resolve() / ".measure.lock")
        self.jobs = None
        if args.executor != "processes" and not args.dry_run:
            self.jobs = JobExecutor(args.executor, Path(grid["output_dir"]) / "submitit", args.slurm, self.gpus_per_run)

    def __call__(self, prefix: str, command: list[str], log: Optional[Path], env: dict,
                 result_path: Optional[Path] = None, alone: bool = False) -> tuple[Optional[int], Optional[str]]:
        """(its exit code, None); (None, why it has none) when the job failed; (None, None) when the sweep
        was stopped before it started. `log`: where its output goes (None: the sweep's own); `alone`:
        for timing, nothing else on its machine."""
        env = {**self.env, **env}
        if alone:
            env["OMP_NUM_THREADS"] = "1"
            env.pop(MEASURE_LOCK_ENV, None)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        with self.slots.take() as devices:
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = devices
            where = "" if devices is None else f" on GPU{'s' if ',' in devices else ''} {devices}"
            if self.jobs is None:
                print(f"{prefix}: running{where}...", flush=True)
                if log is None:
                    return self.processes.call(command, {**os.environ, **env}), None
                with open(log, "w") as out:
                    return self.processes.call(command, {**os.environ, **env}, out), None
            if log is not None:
                log.write_text("")  # the job appends: a requeued run's output follows its first part
            job = self.processes.submit(self.jobs, Job(command, env, log or Path(os.devnull), result_path), alone)
            if job is None:
                return None, None
            print(f"{prefix}: running{where} as job {job.job_id}...", flush=True)
            try:
                return self.jobs.outcome(job)
            finally:
                self.processes.job_ended(job)


def planned_config(run: dict) -> dict:
    """The config bench/run.py will record for `run` ({concern: {field: value}}), from its flags."""
    from bench.core.config import as_dict
    from bench.core.recipes import run_recipe
    from tasks import create_task

    configs = run_configs(run["argv"], f"bench/run.py would refuse the flags of {run['name']}:")
    task = create_task(run["task"])
    data_cfg = configs["data"]
    modality = task.spec(data_cfg).modality
    # one process: a launcher's process count is not known here (a recipe that scales the learning rate
    # with the global batch records the launched run's)
    _, family, size, _ = run["key"]
    optim, _, record = run_recipe(configs["optim"], configs["recipe"], task, modality, family, size, 1)
    recipe = dataclasses.replace(configs["recipe"], recipe=record["name"])
    return as_dict({**configs, "optim": optim, "recipe": recipe})


def refuse_other_settings(runs: list[dict]) -> None:
    """An existing result made with other outcome-changing settings (bench.core.results.setting_differences)
    than the sweep's for it would be skipped as done, or replaced: refuse, before any run starts."""
    conflicts = []
    for run in runs:
        if not run["path"].exists():
            continue
        try:
            recorded = load_result(run["path"]).get("config") or {}
        except ResultError:
            continue
        differences = setting_differences(recorded, planned_config(run))
        if differences:
            conflicts.append((run["path"], differences))
    if conflicts:
        path, differences = conflicts[0]
        more = f" (and {len(conflicts) - 1} other results)" if len(conflicts) > 1 else ""
        raise UserError(
            f"{path}{more} was made with other settings than this sweep's ({'; '.join(differences)}); "
            f"delete it or choose another output_dir, as it would be kept as this sweep's result or replaced."
        )


def table(paths: list[Path]) -> str:
    rows = [("task", "model", "seed", "metric", "value", "params", "time", "status")]
    for path in paths:
        try:
            r = load_result(path)
        except ResultError:
            continue
        m = r["primary_metric"]
        value = "-" if m["value"] is None else f"{m['value']:.4f}"
        model = f"{r['model']}-{r['size']}" + (f" [{r['variant']}]" if r.get("variant") else "")
        rows.append((r["task"], model, str(r["seed"]), m["name"], value,
                     f"{r['params'] / 1e6:.2f}M", f"{r['wall_time_s']:.0f}s", r["status"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def main(argv=None) -> int:
    parser = command_parser("python -m bench.sweep", __doc__.strip(), "  python -m bench.sweep sweeps/quickstart.toml")
    parser.add_argument("grid", type=Path, help="sweep TOML file (its keys are described above)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and exit")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at a time (default 1; with --executor slurm, 256). On CPU each then gets cores/jobs "
                             "threads; with CUDA each gets its own GPU, or gpus_per_run of them")
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
                return sweep(args, processes)
            except SweepStopped as e:  # the running runs had the signal and have stopped
                by = "" if e.signum == signal.SIGINT else f" by {signal.Signals(e.signum).name}"
                print(f"error: Interrupted{by}; {interrupted.partition('; ')[2]}", file=sys.stderr)
                return 128 + e.signum

    return run_command(body, interrupted)


def sweep(args, processes: Optional[RunProcesses] = None) -> int:
    processes = processes or RunProcesses()
    if args.jobs is None:
        args.jobs = SLURM_JOBS if args.executor == "slurm" else 1
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}.")
    if not (math.isfinite(args.progress_every) and args.progress_every >= 0):
        raise UserError(f"--progress-every must be a finite number of seconds >= 0, got {args.progress_every}.")
    grid = load_grid(args.grid)
    given = {name: getattr(args, name) for name in SLURM_KEYS if hasattr(args, name)}
    args.slurm = SlurmConfig(**{**{k.replace("-", "_"): v for k, v in grid.get("slurm", {}).items()}, **given})
    if args.executor == "slurm" and not args.dry_run and shutil.which("sbatch") is None:
        raise UserError("--executor slurm submits jobs with Slurm's sbatch, which is not a command here; run the sweep "
                        "on a machine of the cluster (a login node), or use --executor processes.")
    failed = 0
    for one in per_recipe(grid):
        if "recipes" in grid:
            print(f"recipe {one['args']['recipe']}: into {one['output_dir']}", flush=True)
        failed |= sweep_one(args, one, processes)
    return failed


def sweep_one(args, grid: dict, processes: RunProcesses) -> int:
    """The runs of a grid of one recipe (or of the recipes its runs' flags choose); 1 if any failed."""
    declared = plan(grid, report="tune" not in grid)  # the tuning phase reports the pairs it skips itself
    if not declared:
        raise UserError(f"The sweep file {args.grid} plans no run: none of its models and sizes can run its tasks "
                        f"(bench/run.py --list shows the pairs that run).")
    output_dir = Path(grid["output_dir"])
    made = not output_dir.exists()
    lock = None if args.dry_run else hold_output_dir(output_dir, args.grid)
    try:
        return run_grid(args, grid, declared, processes)
    finally:
        if lock is not None:
            lock.release()
        if made:
            try:
                output_dir.rmdir()  # a sweep refused before any run leaves no folder behind
            except OSError:  # not empty: it ran
                pass


def hold_output_dir(output_dir: Path, grid_path: Path) -> ProcessLock:
    """The sweep's lock on its output folder (SWEEP_LOCK in it), held while it runs: a second sweep on the
    same folder would run the same runs at once, one refused by the other's result locks. A sweep that
    died, however, holds nothing (bench.core.results.ProcessLock)."""
    lock = ProcessLock(output_dir / SWEEP_LOCK)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        locked = lock.acquire()
    except OSError as e:
        raise UserError(f"Cannot write to output_dir {output_dir} of the sweep file {grid_path} ({e.strerror}).") from None
    if not locked:
        raise UserError(f"Another sweep (process {lock.holder()}) is running on {output_dir} now; wait for it to end, "
                        f"or give this one another output_dir.")
    return lock


def run_grid(args, grid: dict, declared: list[dict], processes: RunProcesses) -> int:
    """The sweep's runs (and tuning and cost passes) once its file is checked; 1 if any failed."""
    launch = Launcher(args, grid, processes)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    monitor = ProgressMonitor(args.progress_every)

    def execute_all(runs: list[dict]) -> int:
        """Run what is not finished yet; the number that failed."""
        refuse_other_settings(runs)
        todo = []
        for run in runs:
            if finished(run["path"]):
                print(f"{run['prefix']}: result exists, skipped")
            elif args.dry_run:
                print(f"{run['prefix']}: would run bench/run.py {' '.join(run['argv'])}")
            else:
                todo.append(run)
        return sum(not ok for ok in pool.map(lambda run: execute(run, launch, monitor), todo))

    def cost_pass(task_name: str) -> int:
        """Time the task's models side by side once its runs are done; 1 if the pass failed."""
        if "cost" not in grid or args.dry_run or cost_pass_done(cost_path(grid["output_dir"], task_name)):
            return 0
        argv = [sys.executable, "-m", "bench.cost", str(args.grid.resolve()), "--task", task_name,
                *flags({key: value for key, value in grid["cost"].items()})]
        # As a job it runs on a node of its own, its output in a log; here, in the sweep's output.
        log = None if launch.jobs is None else Path(grid["output_dir"]) / "logs" / f"cost__{task_name}.log"
        code, problem = launch(f"{task_name}: cost pass (python -m bench.cost)", argv, log, {}, alone=True)
        if code is None:
            if problem:
                print(f"{task_name}: the cost pass failed: {problem}")
            return 1
        if code:
            print(f"{task_name}: the cost pass failed with exit code {code}" + (f"; see {log}" if log else ""))
        return int(code != 0)

    monitor.__enter__()
    try:
        if "tune" not in grid:
            runs = number(declared)
            failed = execute_all(runs)
            for task_name in grid["tasks"]:
                failed += cost_pass(task_name)
        else:
            runs, failed = [], 0
            for task_name in grid["tasks"]:  # task by task: a sweep stopped early has whole tasks done
                choices, tuning_failed = tune(grid, task_name, execute_all)
                failed += tuning_failed
                longer = sorted(set(grid.get("budgets", [1])) - {1})
                if args.dry_run:
                    extend = grid["tune"].get("extend", EXTEND)
                    if extend:
                        print(f"{task_name}: then, for a model whose best lr is an end of what it tried, up to "
                              f"{extend} more beyond that end; then its seeds at its best setting, on test")
                    for budget in longer:
                        scaled = longer_budget(task_flags(grid, task_name), budget)
                        key = "max-steps" if "max-steps" in scaled else "epochs"
                        print(f"{task_name}: then its seeds at its best setting at {budget}x the budget "
                              f"({key} {scaled[key]:g}), on test, into {budget_folder(grid, budget)}")
                    continue
                for key, entry in choices.items():
                    print(describe_choice(key, entry))
                chosen = {key: entry["chosen"] for key, entry in choices.items() if entry["chosen"] is not None}
                testing = number(plan(grid, [task_name], "test", chosen), f"{task_name} test")
                failed += execute_all(testing)
                failed += cost_pass(task_name)
                runs += testing
                for budget in longer:  # after the cost pass: the tuned budget's page is whole before these start
                    trained_longer = number(plan(grid, [task_name], "test", chosen, budget=budget),
                                            f"{task_name} test {budget}x")
                    failed += execute_all(trained_longer)
                    runs += trained_longer
    finally:
        # On SIGINT / SIGTERM, which RunProcesses passed to the running runs so that they save a
        # checkpoint and stop: wait for them, start no more.
        pool.shutdown(wait=True, cancel_futures=True)
        monitor.__exit__()
    if not args.dry_run:
        print()
        print(table([r["path"] for r in runs if r["path"].exists()]))
    return 1 if failed else 0


def tune(grid: dict, task_name: str, execute_all) -> tuple[dict[tuple, dict], int]:
    """A task's tuning phase: its grid, then the extensions its choices call for (extensions()), round by
    round, each round's runs given to `execute_all` (which runs those not finished and returns how many
    failed); select()'s final choices, and the failures."""
    tuning = number(plan(grid, [task_name], "tune"), f"{task_name} tune")
    failed = execute_all(tuning)
    choices = select(tuning)
    while beyond := number(extensions(grid, choices), f"{task_name} tune"):
        failed += execute_all(beyond)
        tuning += beyond
        choices = select(tuning)
    return choices, failed


def number(runs: list[dict], label: str = "") -> list[dict]:
    for i, run in enumerate(runs, 1):
        setting = " " + describe_setting(run["lr"], run["warmup"], run["extension"]) if "extension" in run else ""
        run["prefix"] = f"[{label + ' ' if label else ''}{i}/{len(runs)}] {run['name']}{setting}"
    return runs


def describe_setting(lr: float, warmup: Optional[float], extension: bool) -> str:
    return f"lr {lr:g}" + ("" if warmup is None else f" warm-up {warmup:g}") + (" (extended)" if extension else "")


def describe_choice(key: tuple, entry: dict) -> str:
    task_name, family, size, variant = key

    def setting(lr, warmup):
        return describe_setting(lr, warmup, lr in entry["extended"])

    scores = ", ".join(f"{setting(*tried)}: {'failed' if v is None else f'{v:.4f}'}" for tried, v in entry["values"].items())
    chosen = "none (every tuning run failed)" if entry["chosen"] is None else setting(*entry["chosen"])
    return f"{task_name} {family}-{size}{' [' + variant + ']' if variant else ''}: validation {scores}; chosen {chosen}"


def execute(run: dict, launch: Launcher, monitor: Optional[ProgressMonitor] = None) -> bool:
    start = time.perf_counter()
    log = run["path"].parent / "logs" / f"{run['name']}.log"
    progress_file = log.with_name(f"{run['name']}.progress.json")
    progress_file.unlink(missing_ok=True)  # a file left by a sweep that was killed
    if monitor is not None:
        monitor.add(run, progress_file, start)
    try:
        code, problem = launch(run["prefix"], [*launch.command, str(RUN_SCRIPT), *run["argv"]], log,
                               {PROGRESS_ENV: str(progress_file.resolve()), **run.get("env", {})}, run["path"])
    finally:
        if monitor is not None:
            monitor.remove(run)
        progress_file.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    if code is None:
        print(f"{run['prefix']}: failed after {seconds:.0f}s: {problem}" if problem else
              f"{run['prefix']}: not started, the sweep was stopped")
        return False
    if code == 0 and run["path"].exists():
        value = json.loads(run["path"].read_text())["primary_metric"]
        print(f"{run['prefix']}: {value['name']} {value['value']:.4f} in {seconds:.0f}s", flush=True)
        return True
    if code in INTERRUPTED_EXIT_CODES:
        kept = "resumes from its checkpoint" if checkpoint_folder(run["path"]).is_dir() else "starts again"
        print(f"{run['prefix']}: interrupted after {seconds:.0f}s; it {kept} when the sweep reruns")
    else:
        print(f"{run['prefix']}: failed with exit code {code} after {seconds:.0f}s; see {log}")
    return False


if __name__ == "__main__":
    sys.exit(main())
