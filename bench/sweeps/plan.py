"""The sweep's runs: the grid as declared, its tuning phase (the [tune] grid, its extensions beyond the grid's
ends, the choice on validation) and its test runs at the chosen settings, at each budget; which are done,
and whether an existing result was made with other settings. The task registry is the caller's to pass
(`create_task`): this library imports no task."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Optional

from bench.core.config import VariantConfig
from bench.core.errors import PairError, UserError
from bench.core.results import TUNE_ENV, ResultError, load_result, result_filename, setting_differences
from bench.scale_out.launch import resumed_argv
from bench.sweeps.grid import EXTEND, flags, run_configs, task_flags

def plan(grid: dict, create_task, task_names: list[str] | None = None, phase: str | None = None,
         chosen: dict | None = None, report: bool = True, budget: int = 1) -> list[dict]:
    """Runs of the grid with their result paths; bad names fail here, before any run. A pair that
    cannot run is left out, and said so with `report`.

    phase None: the grid as declared. "tune": every learning rate (x warm-up) of [tune] at the tuning
    seed, scored on validation. "test": every seed at the setting (lr, warm-up or None) `chosen` for its
    (task, family, size, variant), scored on test; a pair with no choice is left out; with `budget` k > 1,
    trained k times as long (longer_budget()), into OUTPUT_DIR/budget-<k>x/. `create_task`: the task
    registry's, which gives each task's spec.
    """
    from bench.core.config import DataConfig
    from bench.models import resolve

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


def planned_config(run: dict, create_task) -> dict:
    """The config bench/run.py will record for `run` ({concern: {field: value}}), from its flags."""
    from bench.core.config import as_dict
    from bench.core.recipes import run_recipe

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


def refuse_other_settings(runs: list[dict], create_task) -> None:
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
        differences = setting_differences(recorded, planned_config(run, create_task))
        if differences:
            conflicts.append((run["path"], differences))
    if conflicts:
        path, differences = conflicts[0]
        more = f" (and {len(conflicts) - 1} other results)" if len(conflicts) > 1 else ""
        raise UserError(
            f"{path}{more} was made with other settings than this sweep's ({'; '.join(differences)}); "
            f"delete it or choose another output_dir, as it would be kept as this sweep's result or replaced."
        )


def tune(grid: dict, task_name: str, execute_all, create_task) -> tuple[dict[tuple, dict], int]:
    """A task's tuning phase: its grid, then the extensions its choices call for (extensions()), round by
    round, each round's runs given to `execute_all` (which runs those not finished and returns how many
    failed); select()'s final choices, and the failures."""
    tuning = number(plan(grid, create_task, [task_name], "tune"), f"{task_name} tune")
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
