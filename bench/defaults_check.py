"""Measure what the suite's process defaults (bench/core/process.py) change, against the runtimes' own.

Part "threads": each mini model trains on digits for `--max-steps` steps, with PyTorch's default
threads, on an idle machine and beside a busy core (another process spinning on one CPU), under
three setups: the runtimes' own defaults (MLPBENCH_RUNTIME_DEFAULTS=1: a waiting OpenMP thread
spins for about 3 ms, plain LayerNorm, MKL free to split reductions), the suite's, and the
suite's with one thread. The figure is the training loop's wall time (`train.seconds` of the
result): wall time, because a loaded machine costs a run its time slices. Idle runs are repeated `--rounds` times in an order
that rotates per round; the median is shown.

Part "allocator": one thread, CPU time (`--bench-clock process`), glibc malloc as shipped against
the suite's thresholds: bench mode (inference timed first in a fresh process) and a short training
run (the training loop, evaluation, then the same measurement after training), with the minor
page faults of each process.

    python -m bench.defaults_check                        # both parts, the four minis (~30 minutes)
    python -m bench.defaults_check --part allocator --models gmlp
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core.process import RUNTIME_DEFAULTS, USER_SETTINGS

EXAMPLES = __doc__.rsplit("\n\n", 1)[1]
ROOT = Path(__file__).resolve().parent.parent
# The setups: environment variables added to the child's; the suite's own defaults apply to what is unset.
THREAD_SETUPS = {
    "runtime defaults": {RUNTIME_DEFAULTS: "1"},
    "suite defaults": {},
    "suite, one thread": {"OMP_NUM_THREADS": "1"},
}
# glibc's default tcache size: a malloc tunable set to what it already is, so the suite leaves malloc alone
ALLOCATOR_SETUPS = {
    "glibc as shipped": {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7", "OMP_NUM_THREADS": "1"},
    "suite thresholds": {"OMP_NUM_THREADS": "1"},
}


def run_child(args: list[str], extra_env: dict[str, str], out: Path) -> tuple[dict, int]:
    """Run bench.run with `args`; return its result and the child's minor page faults."""
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS and not k.startswith("MALLOC_")}
    env.update(extra_env, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    command = [sys.executable, "-m", "bench.run", "--task", "digits", "--size", "mini", "--output-dir", str(out),
               "--overwrite", "--checkpoint-every", "none", *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {stderr.strip().splitlines()[-1:]}")
    model = args[args.index("--model") + 1]
    (result,) = [json.loads(p.read_text()) for p in out.glob(f"digits__{model}-mini__*.json")]
    return result, usage.ru_minflt


class BusyCore:
    """Another process spinning on one CPU for as long as the block lasts."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def threads_part(models, max_steps: int, rounds: int, out: Path) -> list[str]:
    args = ["--no-measure", "--max-steps", str(max_steps)]
    lines = [f"Training {max_steps} steps on digits, wall seconds (median of {rounds} idle rounds; one run beside a "
             "busy core).", "", "| model | setup | idle s | beside a busy core s | busy / idle | idle / runtime default |",
             "|---|---|---:|---:|---:|---:|"]
    names = list(THREAD_SETUPS)
    for model in models:
        idle = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                result, _ = run_child([*args, "--model", model], THREAD_SETUPS[name], out)
                idle[name].append(result["train"]["seconds"])
                print(f"{model} {name} idle: {idle[name][-1]:.1f} s", file=sys.stderr)
        busy = {}
        with BusyCore():
            for name in names:
                result, _ = run_child([*args, "--model", model], THREAD_SETUPS[name], out)
                busy[name] = result["train"]["seconds"]
                print(f"{model} {name} beside a busy core: {busy[name]:.1f} s", file=sys.stderr)
        base = statistics.median(idle[names[0]])
        for name in names:
            median = statistics.median(idle[name])
            lines.append(f"| {model} | {name} | {median:.1f} | {busy[name]:.1f} | {busy[name] / median:.2f}x "
                         f"| {median / base:.3f} |")
    return lines


def allocator_part(models, max_steps: int, out: Path) -> list[str]:
    measure = ["--bench-clock", "process"]
    lines = ["One thread, samples per CPU-second; bench mode times inference first in a fresh process, the training "
             f"run ({max_steps} steps) measures after training. Faults: minor page faults of the whole process.", "",
             "| model | malloc | bench infer | bench train | faults | after training: infer | train | MFU train "
             "| training loop samples/s | faults |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, model in enumerate(models):
        names = list(ALLOCATOR_SETUPS)[:: 1 if i % 2 == 0 else -1]  # alternate which setup runs first
        rows = {}
        for name in names:
            bench, bench_faults = run_child([*measure, "--mode", "bench", "--model", model], ALLOCATOR_SETUPS[name], out)
            train, train_faults = run_child([*measure, "--max-steps", str(max_steps), "--model", model],
                                            ALLOCATOR_SETUPS[name], out)
            b, t = bench["throughput"], train["throughput"]
            rows[name] = (f"| {model} | {name} | {b['infer_samples_per_s']:.0f} | {b['train_samples_per_s']:.0f} "
                          f"| {bench_faults:,} | {t['infer_samples_per_s']:.0f} | {t['train_samples_per_s']:.0f} "
                          f"| {train['mfu']['train']:.1%} | {t['loop_samples_per_s']:.0f} | {train_faults:,} |")
            print(rows[name], file=sys.stderr)
        lines += [rows[name] for name in ALLOCATOR_SETUPS]
    return lines


def main(argv=None) -> int:
    from bench.core.config import command_parser
    from bench.models import compared_families

    compared = compared_families("image")
    parser = command_parser("python -m bench.defaults_check", __doc__.split("\n\n")[0], EXAMPLES)
    parser.add_argument("--part", choices=["threads", "allocator", "both"], default="both")
    parser.add_argument("--models", default=",".join(compared), help="comma-separated image model families")
    parser.add_argument("--max-steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="idle repeats per setup in the threads part")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = sorted(set(models) - set(compared))
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} is not one of {', '.join(compared)}")
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"Machine load average at the start: {os.getloadavg()[0]:.2f}.", ""]
        if args.part in ("threads", "both"):
            lines += threads_part(models, args.max_steps, args.rounds, Path(tmp)) + [""]
        if args.part in ("allocator", "both"):
            lines += allocator_part(models, args.max_steps, Path(tmp))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from bench.core.errors import run_command

    sys.exit(run_command(main))
