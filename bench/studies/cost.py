"""The cost pass's composition (python -m bench.cost is its command, whose docstring says what a pass is): the
sweep file's runs of a task, every model built as its run builds it on one batch of the task's data, and the pass
over a sweep file's tasks. bench.measure.cost times the cases; the command passes the task registry's create_task
in."""

from __future__ import annotations

import time
from pathlib import Path

from bench.core.errors import UserError
from bench.measure.cost import Case, cost_pass_done, cost_path, summarise, time_rounds


def planned_cases(grid: dict, task_name: str, create_task) -> list[dict]:
    """The sweep file's runs of one task (every seed), as bench/run.py's validated configs."""
    from bench.sweeps.grid import run_configs
    from bench.sweeps.plan import plan

    runs = plan(grid, create_task, [task_name], report=False)
    if not runs:
        raise UserError(f"The sweep file plans no run of {task_name}, so there is nothing to time.")
    return [run_configs(run["argv"], f"The flags of {run['name']} are refused:") for run in runs]


def build_cases(task_name: str, planned: list[dict], create_task):
    """(task, batch, cases): every planned model built as its run builds it, and one batch of the task's
    training data (the first batch of a seed-0 loader), the same for every case."""
    import torch
    from accelerate.utils import set_seed

    from bench.training.loop import make_loaders
    from bench.models import resolve
    from bench.core.recipes import suite_optim

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


def cost_pass(grid: dict, grid_path: Path, task_name: str, rounds: int, steps: int, warmup: int,
              create_task) -> dict:
    """Build and time one task's models; the cost-pass file's content."""
    import os

    import torch

    from bench.core.machine import MEASURE_LOCK_ENV, measuring
    from bench.core.results import build_cost_pass, capture_environment

    torch.set_num_threads(1)  # the process clock is step time only on one thread
    environment = capture_environment()  # the code as it is when the pass starts
    planned = planned_cases(grid, task_name, create_task)
    print(f"{task_name}: building {len(planned)} models...", flush=True)
    task, batch, cases = build_cases(task_name, planned, create_task)
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
        task=task_name, sweep_file=as_recorded(grid_path), batch_size=task.batch_size(batch),
        tokens_per_sample=tokens_per_sample, settings={"rounds": rounds, "steps": steps, "warmup": warmup,
                                                        "clock": "process", "threads": 1, "precision": "fp32"},
        summary=summarise(cases, rates, tokens_per_sample),
        environment=environment, load_average=[load_before, load_after],
        wall_time_s=time.perf_counter() - started, cpu_time_s=time.process_time() - cpu_started,
    )


def as_recorded(grid_path: Path) -> str:
    """The sweep file's path as the pass records it: relative to the working directory where it lies
    beneath it (the sweep hands a pass the absolute path, so that a cluster job finds the file, and a
    published pass must not carry the machine's folders), else as given."""
    try:
        return str(grid_path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(grid_path)


def cost_passes(grid: dict, grid_path: Path, task_names: list[str], rounds: int, steps: int, warmup: int,
                overwrite: bool, create_task) -> None:
    """Each task's pass into OUTPUT_DIR/cost/TASK.json, but a task whose file exists (unless `overwrite`)."""
    from bench.core.results import write_json_atomic

    for task_name in task_names:
        path = cost_path(grid["output_dir"], task_name)
        if not overwrite and cost_pass_done(path):
            print(f"{task_name}: {path} exists, skipped (--overwrite measures it again)")
            continue
        result = cost_pass(grid, grid_path, task_name, rounds, steps, warmup, create_task)
        write_json_atomic(path, result)
        for model in result["models"]:
            train, infer = model["train"], model["infer"]
            print(f"{task_name} {model['model']}-{model['size']}: train {train['samples_per_s']:.4g} samples/s "
                  f"(seed spread {train['seed_spread']:.1%}), infer {infer['samples_per_s']:.4g} "
                  f"(seed spread {infer['seed_spread']:.1%})")
        print(f"result: {path}", flush=True)
