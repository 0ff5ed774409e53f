"""The sweep file (python -m bench.sweep): reading it, checking its keys for type and shape, and the flags
it gives each task's runs, checked as bench/run.py checks them. The task registry is the caller's to pass
(`create_task`): this library imports no task."""

from __future__ import annotations

import math
import shutil
import tomllib
from pathlib import Path

from bench.core.config import CONCERNS, MAX_SEED, SlurmConfig, VariantConfig, field_kinds
from bench.core.errors import UserError
from bench.core.results import check_output_folder

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
    def multiples(v) -> bool:
        return isinstance(v, list) and 1 in v and len(set(v)) == len(v) and all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in v)

    need("budgets", lambda v: multiples(v) or (isinstance(v, dict) and set(v) == set(grid.get("tasks", [])) and all(
        map(multiples, v.values()))), "a list of distinct integer multiples of the tasks' budgets that includes 1 "
         "([1, 4]), or a table of such lists naming each task once ({wordnet = [1, 4], digits = [1]})")
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


def load_grid(path: Path, create_task) -> dict:
    """The sweep file at `path`, checked (its runs' flags with `create_task`, the task registry's), with
    args_from's tables merged in."""
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
        lrs = tune.get("lr")  # check_schema has made tune a table
        if isinstance(lrs, dict) and set(lrs) != set(grid.get("recipes", [])):
            raise UserError(f"tune.lr in {path} is a table of recipes, so it must name each recipe of the sweep's "
                            f"recipes list once ({', '.join(grid.get('recipes', [])) or 'the file lists none'}), "
                            f"got {', '.join(sorted(lrs))}.")
        for one in per_recipe(grid):
            check_tune(one["tune"], path)
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
            if task_budgets(grid, task_name) != [1] and not {"max-steps", "epochs"} & set(task_flags(grid, task_name)):
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
            check_run_flags(task_name, {**one.get("args", {}), **one.get("task_args", {}).get(task_name, {})}, path,
                            create_task)
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


def task_budgets(grid: dict, task_name: str) -> list[int]:
    """The multiples of a task's budget its tuned settings train at: budgets, or the task's own list where
    budgets is a table of tasks; [1] without budgets."""
    budgets = grid.get("budgets", [1])
    return budgets[task_name] if isinstance(budgets, dict) else budgets


def per_recipe(grid: dict) -> list[dict]:
    """The grid as sweeps of one recipe each: with `recipes`, one per recipe, its runs given --recipe and
    its output in OUTPUT_DIR/<recipe>/ (the same result file names never meet), and its own learning-rate
    grid where tune.lr is a table of recipes (each recipe's rates are in its own optimizer's scale);
    without, the grid."""
    if "recipes" not in grid:
        return [grid]
    ones = []
    for name in grid["recipes"]:
        one = {**{k: v for k, v in grid.items() if k != "recipes"}, "output_dir": str(Path(grid["output_dir"]) / name),
               "args": {**grid.get("args", {}), "recipe": name}}
        if isinstance(grid.get("tune", {}).get("lr"), dict):
            one["tune"] = {**grid["tune"], "lr": grid["tune"]["lr"][name]}
        ones.append(one)
    return ones


def check_run_flags(task_name: str, args: dict, path: Path, create_task) -> None:
    """The flags the sweep gives a task's runs, checked as bench/run.py checks them (ranges, choices,
    the data flags the task reads) before any run starts."""
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


def task_flags(grid: dict, task_name: str) -> dict:
    """The flags of a task's runs: [args], and [task_args.TASK] over them."""
    return {**grid.get("args", {}), **grid.get("task_args", {}).get(task_name, {})}
