"""Run a grid of (task, model, size, seed) from a TOML file, each run in its own process.

    python -m bench.sweep sweeps/quickstart.toml
    python -m bench.sweep sweeps/leaderboard.toml --jobs 2   # two runs at a time, one CPU thread each

A crash or out-of-memory in one run does not stop the rest; runs whose result file already
exists are skipped and an interrupted run resumes from its checkpoints (or starts again when it
saved none), so a sweep stopped with Ctrl-C continues where it stopped when rerun. Each run's output goes
to OUTPUT_DIR/logs/. The file's keys:

    output_dir = "runs/x"          # where result JSONs go
    tasks = ["digits"]             # task names
    models = ["gmlp", "vit"]       # model families
    sizes = ["mini"]               # optional; default: each family's size for the task
    seeds = [0, 1, 2]
    args_from = "leaderboard.toml" # optional: take [args] and [task_args] from another sweep file
                                   # (relative to this one); this file's tables override them key by key
    launcher = ["accelerate", "launch"]   # optional: how to start bench/run.py (default: this python)
    [args]                         # flags for every run (--name value; true for switches)
    epochs = 10
    [task_args.wordnet]            # flags for one task's runs, over [args]
    max-steps = 300
    [variants]                     # optional: per model, the variants to run (bench.config.VariantConfig
    resmlp = ["", "norm=none"]     # names; "" is the family's default); unlisted models run their default
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.config import VariantConfig  # noqa: E402
from bench.errors import PairError, UserError, run_command  # noqa: E402
from bench.results import ResultError, checkpoint_folder, load_result, result_filename  # noqa: E402

RUN_SCRIPT = Path(__file__).resolve().parent / "run.py"
INTERRUPTED_EXIT_CODES = (130, 143)  # bench/run.py stopped by SIGINT / SIGTERM
KNOWN_KEYS = {
    "output_dir", "tasks", "models", "sizes", "seeds", "launcher", "args", "task_args", "args_from", "variants",
}


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
    unlisted = set(grid.get("variants", {})) - set(grid["models"])
    if unlisted:
        raise UserError(f"The sweep file {path} lists variants of {sorted(unlisted)}, which are not in its models.")
    if "args_from" in grid:
        base = read_toml(path.parent / grid["args_from"])
        grid["args"] = {**base.get("args", {}), **grid.get("args", {})}
        tasks = set(base.get("task_args", {})) | set(grid.get("task_args", {}))
        grid["task_args"] = {
            t: {**base.get("task_args", {}).get(t, {}), **grid.get("task_args", {}).get(t, {})} for t in tasks
        }
    return grid


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


def plan(grid: dict) -> list[dict]:
    """Every run of the grid with its result path; bad names fail here, before any run."""
    import tasks  # noqa: F401
    from bench.config import DataConfig
    from bench.models import resolve
    from tasks.base import get_task

    runs = []
    sizes = grid.get("sizes") or [None]
    variants = {
        family: [VariantConfig.parse(name) for name in grid.get("variants", {}).get(family, [""])]
        for family in grid["models"]
    }
    args, specs = {}, {}  # per task: its flags, and the spec they give
    for task_name in grid["tasks"]:
        args[task_name] = {**grid.get("args", {}), **grid.get("task_args", {}).get(task_name, {})}
        data_keys = {k.replace("-", "_"): v for k, v in args[task_name].items()}
        data_cfg = DataConfig(**{k: v for k, v in data_keys.items() if k in DataConfig.__dataclass_fields__})
        specs[task_name] = get_task(task_name).spec(data_cfg)
    # Seeds outermost: a sweep stopped early still has every pair at its first seeds.
    for seed, task_name, family, size in itertools.product(grid["seeds"], grid["tasks"], grid["models"], sizes):
        for variant in variants[family]:
            try:
                _, resolved = resolve(family, size, specs[task_name], variant)
            except PairError as e:
                if seed == grid["seeds"][0]:  # say it once, not once per seed
                    print(f"skip: {e}")
                continue
            runs.append(planned_run(grid, args[task_name], seed, task_name, family, resolved, variant))
    return runs


def planned_run(grid: dict, args: dict, seed: int, task_name: str, family: str, size: str, variant: VariantConfig):
    """One run of the grid: its name, result path and bench/run.py arguments."""
    precision = args.get("precision", "fp32")
    path = Path(grid["output_dir"]) / result_filename(task_name, family, size, seed, precision, variant.name())
    variant_args = {key.replace("_", "-"): value for key, value in variant.given().items()}
    argv = ["--task", task_name, "--model", family, "--size", size, "--seed", str(seed),
            "--output-dir", grid["output_dir"], *flags(args), *flags(variant_args)]
    if checkpoint_folder(path).is_dir():
        argv.append("--resume")  # an interrupted run continues from its last checkpoint
    elif path.exists():
        argv.append("--overwrite")  # an interrupted run that saved no checkpoint starts again
    return {"name": path.stem, "path": path, "argv": argv}


def finished(result_path: Path) -> bool:
    """Whether a run is done: its result exists and is not that of an interrupted run, which reruns."""
    if not result_path.exists():
        return False
    try:
        return load_result(result_path)["status"] != "interrupted"
    except ResultError:
        return True  # not ours to overwrite; the table leaves it out


def run_one(run: dict, launcher: list[str], log_dir: Path, threads: int | None) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if threads is not None:
        # Parallel runs each get their share of the cores; oversubscribed OpenMP threads would
        # spin against each other and make every run (and its throughput figures) far slower.
        env["OMP_NUM_THREADS"] = str(threads)
    with open(log_dir / f"{run['name']}.log", "w") as log:
        return subprocess.run([*launcher, str(RUN_SCRIPT), *run["argv"]], stdout=log, stderr=subprocess.STDOUT, env=env).returncode


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
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("grid", type=Path, help="sweep TOML file")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and exit")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time; each then gets cores/jobs CPU threads (default 1: all threads)")
    args = parser.parse_args(argv)
    interrupted = ("Interrupted; rerun the same command to continue: finished runs are skipped, "
                   "interrupted ones resume from their checkpoints.")
    return run_command(lambda: sweep(args), interrupted)


def sweep(args) -> int:
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}.")
    grid = load_grid(args.grid)
    runs = plan(grid)
    launcher = grid.get("launcher") or [sys.executable]
    log_dir = Path(grid["output_dir"]) / "logs"
    threads = None if args.jobs == 1 else max(1, (os.cpu_count() or 1) // args.jobs)
    todo = []
    for i, run in enumerate(runs, 1):
        run["prefix"] = f"[{i}/{len(runs)}] {run['name']}"
        if finished(run["path"]):
            print(f"{run['prefix']}: result exists, skipped")
        elif args.dry_run:
            print(f"{run['prefix']}: would run bench/run.py {' '.join(run['argv'])}")
        else:
            todo.append(run)

    def execute(run: dict) -> bool:
        start = time.perf_counter()
        print(f"{run['prefix']}: running...", flush=True)
        code = run_one(run, launcher, log_dir, threads)
        seconds = time.perf_counter() - start
        if code == 0 and run["path"].exists():
            value = json.loads(run["path"].read_text())["primary_metric"]
            print(f"{run['prefix']}: {value['name']} {value['value']:.4f} in {seconds:.0f}s", flush=True)
            return True
        if code in INTERRUPTED_EXIT_CODES:
            kept = "resumes from its checkpoint" if checkpoint_folder(run["path"]).is_dir() else "starts again"
            print(f"{run['prefix']}: interrupted after {seconds:.0f}s; it {kept} when the sweep reruns")
        else:
            print(f"{run['prefix']}: failed with exit code {code} after {seconds:.0f}s; see {log_dir / (run['name'] + '.log')}")
        return False

    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        failed = sum(not ok for ok in pool.map(execute, todo))
    finally:
        # On Ctrl-C, which reaches the running runs too (one process group) so that they save a
        # checkpoint and stop: wait for them, start no more.
        pool.shutdown(wait=True, cancel_futures=True)
    if not args.dry_run:
        print()
        print(table([r["path"] for r in runs if r["path"].exists()]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
