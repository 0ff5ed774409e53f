"""Running a sweep (python -m bench.sweep): its lock on the output folder, its runs each in a process group of
its own (or as submitit jobs), the signals passed on to them, the progress lines, the cost passes, and the
table at the end. The task registry is the caller's to pass (`create_task`): this library imports no task."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from bench.core.config import SlurmConfig
from bench.core.errors import UserError
from bench.core.machine import MEASURE_LOCK_ENV
from bench.core.process import reproducible_env
from bench.core.results import ProcessLock, ResultError, checkpoint_folder, load_result
from bench.measure.cost import cost_pass_done, cost_path
from bench.scale_out.launch import (RUN_SCRIPT, DeviceSlots, Job, JobExecutor, device_groups, run_launcher,
                                    start_process, visible_gpus)
from bench.sweeps.grid import EXTEND, SLURM_KEYS, flags, load_grid, per_recipe, task_budgets, task_flags
from bench.sweeps.plan import (budget_folder, describe_choice, finished, longer_budget, number, plan,
                               refuse_other_settings, tune)
from bench.training.progress import PROGRESS_ENV, describe, read_progress

SWEEP_LOCK = ".sweep.lock"  # in output_dir, held by the sweep running on it
EXECUTORS = ("processes", "local", "slurm")
SLURM_JOBS = 256  # --executor slurm's default --jobs: runs queued at a time (each a waiting thread here)
# bench/run.py stopped by SIGINT / SIGTERM (negative: killed by it before its handlers were installed)
INTERRUPTED_EXIT_CODES = (130, 143, -2, -15)


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
        if not slurm and not self.gpus_per_run and any(
                task_flags(grid, task_name).get("bench-clock") == "process" for task_name in grid.get("tasks", [])):
            # The process clock sums over threads, so its runs take one thread each (bench.measure.timing.check_clock),
            # whatever share of the cores --jobs would leave them.
            self.env["OMP_NUM_THREADS"] = "1"
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


def sweep(args, create_task, processes: Optional[RunProcesses] = None) -> int:
    """The sweep of python -m bench.sweep's parsed `args`; `create_task`: the task registry's. 1 if a run failed."""
    processes = processes or RunProcesses()
    if args.jobs is None:
        args.jobs = SLURM_JOBS if args.executor == "slurm" else 1
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}.")
    if not (math.isfinite(args.progress_every) and args.progress_every >= 0):
        raise UserError(f"--progress-every must be a finite number of seconds >= 0, got {args.progress_every}.")
    grid = load_grid(args.grid, create_task)
    given = {name: getattr(args, name) for name in SLURM_KEYS if hasattr(args, name)}
    args.slurm = SlurmConfig(**{**{k.replace("-", "_"): v for k, v in grid.get("slurm", {}).items()}, **given})
    if args.executor == "slurm" and not args.dry_run and shutil.which("sbatch") is None:
        raise UserError("--executor slurm submits jobs with Slurm's sbatch, which is not a command here; run the sweep "
                        "on a machine of the cluster (a login node), or use --executor processes.")
    failed = 0
    for one in per_recipe(grid):
        if "recipes" in grid:
            print(f"recipe {one['args']['recipe']}: into {one['output_dir']}", flush=True)
        failed |= sweep_one(args, one, processes, create_task)
    return failed


def sweep_one(args, grid: dict, processes: RunProcesses, create_task) -> int:
    """The runs of a grid of one recipe (or of the recipes its runs' flags choose); 1 if any failed."""
    declared = plan(grid, create_task, report="tune" not in grid)  # the tuning phase reports the pairs it skips itself
    if not declared:
        raise UserError(f"The sweep file {args.grid} plans no run: none of its models and sizes can run its tasks "
                        f"(bench/run.py --list shows the pairs that run).")
    output_dir = Path(grid["output_dir"])
    made = not output_dir.exists()
    lock = None if args.dry_run else hold_output_dir(output_dir, args.grid)
    try:
        return run_grid(args, grid, declared, processes, create_task)
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


def run_grid(args, grid: dict, declared: list[dict], processes: RunProcesses, create_task) -> int:
    """The sweep's runs (and tuning and cost passes) once its file is checked; 1 if any failed."""
    launch = Launcher(args, grid, processes)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    monitor = ProgressMonitor(args.progress_every)

    def execute_all(runs: list[dict]) -> int:
        """Run what is not finished yet; the number that failed."""
        refuse_other_settings(runs, create_task)
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
                choices, tuning_failed = tune(grid, task_name, execute_all, create_task)
                failed += tuning_failed
                longer = sorted(set(task_budgets(grid, task_name)) - {1})
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
                testing = number(plan(grid, create_task, [task_name], "test", chosen), f"{task_name} test")
                failed += execute_all(testing)
                failed += cost_pass(task_name)
                runs += testing
                for budget in longer:  # after the cost pass: the tuned budget's page is whole before these start
                    trained_longer = number(plan(grid, create_task, [task_name], "test", chosen, budget=budget),
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
