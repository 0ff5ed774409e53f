"""The cost-scaling study's library (python -m bench.scaling is its command, whose docstring says what the
study measures): the series, the study's configuration, its points and their plan, one point measured under its
caps, in a child process or in this one, and the study that keeps, skips or runs each point. The command passes
the task registry's create_task in (a point's task gives its shape, loss and synthetic batch)."""

from __future__ import annotations

import _thread
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional

from bench.core.config import CLOCKS, PRECISIONS, flag, require
from bench.core.errors import UnknownNameError, UserError
from bench.training.progress import duration
from bench.core.results import (
    POINT_KIND, POINT_SCHEMA_VERSION, ResultError, check_output_folder, load_point, point_filename, write_json_atomic,
)

LENGTHS = (128, 256, 512, 1024, 2048, 4096)
IMAGE_TOKENS = (4, 16, 64, 256, 1024)


@dataclass(frozen=True)
class Series:
    """One sweep of the number of tokens: a modality, the task whose shape the inputs take, the token
    counts, and for images the patch (the image side is patch x sqrt(tokens))."""

    modality: str
    task: str
    grid: tuple[int, ...]
    patch: Optional[int] = None
    description: str = ""

    def check_tokens(self, name: str, tokens: int) -> None:
        """UserError when this series cannot have `tokens` tokens."""
        if self.patch is None:
            require(tokens >= 8, f"--tokens {tokens}: series {name} needs sequences of at least 8 tokens.")
            return
        side = math.isqrt(tokens)
        require(side * side == tokens,
                f"--tokens {tokens}: series {name} needs square numbers, as its patches tile a square image.")
        require(self.patch * side >= 8, f"--tokens {tokens}: series {name} would need images under 8 pixels.")

    def data_config(self, tokens: int):
        """The task's DataConfig for this input size."""
        from bench.core.config import DataConfig

        if self.patch is None:
            return DataConfig(seq_len=tokens)
        return DataConfig(image_size=self.patch * math.isqrt(tokens))

    def size_fields(self, tokens: int) -> dict[str, int]:
        """The fields of the family's named size that follow the input: the patch of an image size,
        the longest input of a text size (its width and depth stay)."""
        return {"patch_size": self.patch} if self.patch is not None else {"max_len": tokens}

    def spec(self, tokens: int, create_task):
        """The registered task's spec at this input size (its shape only: no data is loaded)."""
        return create_task(self.task).spec(self.data_config(tokens))

    def input(self, spec) -> dict[str, Any]:
        if self.patch is not None:
            return {"image_side": spec.image_size[1], "patch": self.patch}
        return {"seq_len": spec.seq_len, "target_len": spec.target_len}


SERIES = {
    "image-p16": Series("image", "imagenet", IMAGE_TOKENS, patch=16,
                        description="square images of 32 to 512 pixels at 16x16 patches"),
    "image-p4": Series("image", "imagenet", IMAGE_TOKENS, patch=4,
                       description="square images of 8 to 128 pixels at 4x4 patches"),
    "mlm": Series("mlm", "wordnet", LENGTHS, description="masked-LM blocks (an encoder)"),
    "seq2seq": Series("seq2seq", "wmt14-de-en", LENGTHS,
                      description="sources and targets of the same length (an encoder and a causal decoder)"),
}

# The settings a point's figures depend on: a point made with others is not this study's.
MEASUREMENT_SETTINGS = ("size", "batch_size", "bench_warmup_steps", "bench_steps", "bench_repeats",
                        "latency_samples", "bench_clock", "peak_gemm_size")
# A failure status and the cap that caused it: raising the cap runs the point again.
CAP_OF_STATUS = {"timeout": "time_cap", "oom": "memory_cap"}
GRACE_S = 30  # CPU seconds past the time cap after which the study kills a point that never returns
WATCH_INTERVAL_S = 0.25  # how often the time cap's watchdog reads the clock


@dataclass(frozen=True)
class ScalingConfig:
    """The cost-scaling study: what to sweep, how to measure each point, and its caps."""

    series: str = flag(",".join(SERIES), "comma-separated series to run: " + ", ".join(SERIES))
    models: Optional[str] = flag(
        None, "comma-separated families (default: every family the registry lists for each series' modality)"
    )
    tokens: Optional[str] = flag(None, "comma-separated token counts to run instead of each series' grid")
    size: str = flag("mini", "the named size (width and depth) every family runs at")
    output_dir: str = flag("results/scaling", "folder of the point files")
    batch_size: int = flag(
        2, "samples per timed step, the same at every point so that memory compares across sizes (on a GPU "
        "a larger batch shows its costs better)"
    )
    precision: Optional[str] = flag(None, "autocast precision (default: fp32 on a CPU, bf16 on a GPU)", PRECISIONS)
    time_cap: float = flag(
        30.0, "seconds a point may take on the measurement clock (building, counting and measuring); "
        "a point over it is recorded as timeout"
    )
    memory_cap: Optional[float] = flag(
        8192.0, "MB of address space a point may add to its process on a CPU (none: no cap); a point that "
        "needs more is recorded as oom. On a GPU the GPU's own memory is the cap"
    )
    bench_warmup_steps: int = flag(1, "untimed steps before each timed phase")
    bench_steps: int = flag(2, "timed steps in one repeat")
    bench_repeats: int = flag(3, "repeats of the timed steps; the median is reported, the spread checked")
    latency_samples: int = flag(10, "batch-1 forward passes timed one by one for the latency percentiles")
    peak_gemm_size: int = flag(512, "side of the square matmul timed as the CPU's peak FLOP/s (MFU)")
    bench_clock: Optional[str] = flag(
        None, "clock of throughput and latency (default: process on a CPU with one thread, wall otherwise)", CLOCKS
    )
    isolate: bool = flag(True, "run each point in a child process, so that a crash or the kernel's "
                               "out-of-memory killer ends the point, not the study")
    overwrite: bool = flag(False, "measure every point again, replacing its file")

    def __post_init__(self):
        for name in self.series_names():
            if name not in SERIES:
                raise UnknownNameError(f"Unknown series {name!r}; valid series are: {', '.join(SERIES)}.")
        require(self.series_names() != [], "--series names no series.")
        for name in ("batch_size", "bench_steps", "bench_repeats", "latency_samples"):
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}.")
        require(self.bench_warmup_steps >= 0, f"--bench-warmup-steps must be >= 0, got {self.bench_warmup_steps}.")
        require(self.peak_gemm_size >= 64, f"--peak-gemm-size must be at least 64, got {self.peak_gemm_size}.")
        require(self.time_cap > 0, f"--time-cap must be positive, got {self.time_cap}.")
        require(self.memory_cap is None or self.memory_cap > 0,
                f"--memory-cap must be positive, got {self.memory_cap}.")
        require(self.precision is None or self.precision in PRECISIONS,
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        require(self.bench_clock is None or self.bench_clock in CLOCKS,
                f"--bench-clock must be one of {', '.join(CLOCKS)}, got {self.bench_clock!r}.")
        tokens = self.token_counts()
        if tokens is not None:
            require(tokens != [], "--tokens names no token count.")
            for name in self.series_names():
                for n in tokens:
                    SERIES[name].check_tokens(name, n)

    def series_names(self) -> list[str]:
        return [name.strip() for name in self.series.split(",") if name.strip()]

    def model_names(self) -> Optional[list[str]]:
        return None if self.models is None else [m.strip() for m in self.models.split(",") if m.strip()]

    def token_counts(self) -> Optional[list[int]]:
        if self.tokens is None:
            return None
        counts = []
        for text in self.tokens.split(","):
            try:
                counts.append(int(text))
            except ValueError:
                raise UserError(f"--tokens takes comma-separated whole numbers, got {text.strip()!r}.") from None
            require(counts[-1] >= 1, f"--tokens must be positive, got {counts[-1]}.")
        return sorted(set(counts))


@dataclass(frozen=True)
class Point:
    """One point of the study: a family at one input size of a series."""

    series: str
    family: str
    size: str
    tokens: int
    baseline: bool

    @property
    def label(self) -> str:
        return f"{self.series} {self.family}-{self.size} at {self.tokens:,} tokens"


@dataclass(frozen=True)
class Setup:
    """Where and how the study measures: resolved once, the same for every point."""

    device: str  # "cpu" or "cuda"
    precision: str
    clock: str

    def settings(self, cfg: ScalingConfig) -> dict[str, Any]:
        """What a point file records of the study's configuration."""
        values = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name in MEASUREMENT_SETTINGS}
        return {**values, "bench_clock": self.clock, "precision": self.precision, "time_cap": cfg.time_cap,
                "memory_cap": cfg.memory_cap if self.device == "cpu" else None}


def resolve_setup(cfg: ScalingConfig) -> Setup:
    """The device, precision and clock, refused with one sentence where they cannot measure."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = cfg.precision or ("bf16" if device == "cuda" else "fp32")
    require(not (precision == "fp16" and device == "cpu"),
            "--precision fp16 does not apply on a CPU; use --precision bf16 or fp32 there.")
    threads = torch.get_num_threads()
    clock = cfg.bench_clock or ("process" if device == "cpu" and threads == 1 else "wall")
    require(
        clock == "wall" or (device == "cpu" and threads == 1),
        f"--bench-clock process times CPU runs with one thread (OMP_NUM_THREADS=1), but this study uses "
        f"{device} with {threads} threads.",
    )
    return Setup(device, precision, clock)


def families(modality: str) -> list[tuple[str, bool]]:
    """(family, is the baseline) of every family the registry has for a modality, but references
    (ModelEntry.reference: not among the architectures compared)."""
    from bench.models import list_models, model_entries

    found = []
    for family in list_models():
        for entry in model_entries(family):
            if modality in entry.modalities and not entry.reference:
                found.append((family, entry.baseline))
    return found


def plan(cfg: ScalingConfig) -> list[Point]:
    """Every point, series by series, shortest inputs first and every family at one size before the next."""
    from bench.models import model_entries

    wanted = cfg.model_names()
    if wanted is not None:
        require(wanted != [], "--models names no family.")
        for name in wanted:
            model_entries(name)  # UnknownNameError listing the families
    points = []
    for name in cfg.series_names():
        series = SERIES[name]
        members = [(f, b) for f, b in families(series.modality) if wanted is None or f in wanted]
        for tokens in cfg.token_counts() or series.grid:
            points += [Point(name, family, cfg.size, tokens, baseline) for family, baseline in members]
    if wanted is not None:
        used = {p.family for p in points}
        missing = [m for m in wanted if m not in used]
        require(not missing, f"--models {', '.join(missing)}: no series of {cfg.series} has that modality.")
    return points


# ---------------------------------------------------------------------------------------------
# One point


class OverTimeCap(Exception):
    """A point ran past its time cap."""


def vm_size_bytes() -> Optional[int]:
    """This process's address space now (Linux), or None where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@contextmanager
def memory_cap(mb: Optional[float]) -> Iterator[None]:
    """Allocations past `mb` MB more address space than the process has now fail (RLIMIT_AS): torch
    then raises its out-of-memory error instead of the kernel killing the process, or a neighbour."""
    now = vm_size_bytes()
    if mb is None or now is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = now + int(mb * 2**20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextmanager
def time_cap(seconds: float, clock: str) -> Iterator[None]:
    """Raise OverTimeCap in the block (run by the main thread) once it has taken `seconds` on
    `clock`: this process's CPU time ("process") or wall time ("wall").

    A watchdog thread reads the clock every WATCH_INTERVAL_S and interrupts the main thread with
    SIGUSR1's handler, again every second in case the first lands where Python swallows an exception
    (a finalizer). No kernel CPU timer is armed: with one (ITIMER_PROF, RLIMIT_CPU) Linux reads the
    process clock from a counter updated at scheduler ticks, too coarse to time a step."""
    now = time.process_time if clock == "process" else time.perf_counter
    deadline = now() + seconds
    message = f"over the time cap of {seconds:g} s ({clock} clock)"
    done = threading.Event()

    def over(*_):
        if not done.is_set():
            raise OverTimeCap(message)

    def watch():
        wait = WATCH_INTERVAL_S
        while not done.wait(wait):
            if now() >= deadline:
                _thread.interrupt_main(signal.SIGUSR1)
                wait = 1.0

    previous = signal.signal(signal.SIGUSR1, over)
    watchdog = threading.Thread(target=watch, name="time cap", daemon=True)
    watchdog.start()
    try:
        yield
        if now() >= deadline:  # the block ended between two looks of the watchdog: it was still over
            raise OverTimeCap(message)
    finally:
        done.set()
        watchdog.join()
        signal.signal(signal.SIGUSR1, previous)


def is_out_of_memory(error: BaseException, capped: bool) -> bool:
    """torch's out-of-memory error, Python's, or the CPU allocator's failure under an address-space
    cap; under a cap (`capped`) also oneDNN's failure to create a kernel, which is how its CPU
    kernels report an allocation that failed (the same kernels run uncapped)."""
    import torch

    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    return "can't allocate memory" in text or "not enough memory" in text or (
        capped and "could not create a primitive" in text)


def header(point: Point, cfg: ScalingConfig, setup: Setup, create_task) -> dict[str, Any]:
    """A point file's identity and settings, before any measurement."""
    series = SERIES[point.series]
    return {
        "kind": POINT_KIND,
        "schema_version": POINT_SCHEMA_VERSION,
        "status": None,
        "error": None,
        "series": point.series,
        "modality": series.modality,
        "task": series.task,
        "model": point.family,
        "size": point.size,
        "baseline": point.baseline,
        "tokens": point.tokens,
        "input": series.input(series.spec(point.tokens, create_task)),
        "batch_size": cfg.batch_size,
        "tokens_per_sample": None,
        "params": None,
        "flops": None,
        "throughput": None,
        "latency_ms": None,
        "memory": None,
        "mfu": None,
        "config": {"scaling": setup.settings(cfg)},
        "environment": None,
        "cpu_time_s": None,
        "wall_time_s": None,
    }


def environment(setup: Setup) -> dict[str, Any]:
    """capture_environment(), and how busy the machine was: its load averages now, its cores, and
    whether the point measures holding a sweep's measurement lock (MLPBENCH_MEASURE_LOCK)."""
    from bench.core.machine import MEASURE_LOCK_ENV
    from bench.core.results import capture_environment

    env = capture_environment(None, setup.precision)
    env["load_average"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    env["cpu_count"] = os.cpu_count()
    env["measure_lock"] = bool(os.environ.get(MEASURE_LOCK_ENV))
    return env


def measure_point(point: Point, cfg: ScalingConfig, setup: Setup, create_task) -> dict[str, Any]:
    """The point file of one point: measured, or why not (oom, timeout, error); never raises but
    KeyboardInterrupt."""
    from bench.core.machine import measuring

    started, cpu_started = time.perf_counter(), time.process_time()
    result = header(point, cfg, setup, create_task)
    capped = cfg.memory_cap if setup.device == "cpu" else None
    try:
        with measuring():  # one measurement at a time on the machine (MLPBENCH_MEASURE_LOCK)
            result["environment"] = environment(setup)
            with memory_cap(capped), time_cap(cfg.time_cap, setup.clock):
                result.update(_measure(point, cfg, setup, create_task))
        result["status"] = "ok"
    except OverTimeCap as e:
        result["status"], result["error"] = "timeout", f"Stopped {e}."
    except Exception as e:  # noqa: BLE001 (a point's failure is recorded, the study goes on)
        if is_out_of_memory(e, capped is not None):
            cap = f"the memory cap of {capped:g} MB" if capped else f"the {setup.device}'s memory"
            result["status"], result["error"] = "oom", f"Out of memory: needs more than {cap}."
        else:
            result["status"], result["error"] = "error", f"Unexpected {type(e).__name__}: {first_line(e)}."
    if result["environment"] is None:
        result["environment"] = environment(setup)
    result["cpu_time_s"] = round(time.process_time() - cpu_started, 3)
    result["wall_time_s"] = round(time.perf_counter() - started, 3)
    return result


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else "no message"


def build_point(point: Point, batch_size: int, create_task, device: str = "cpu", **size_overrides: Any):
    """(task, spec, entry, size config, model, batch) of a point, the model on `device` in train mode.
    `size_overrides` replace more fields of the size (tests shrink the width and depth)."""
    import torch
    from accelerate.utils import send_to_device

    from bench.core.config import VariantConfig
    from bench.models import resized

    series = SERIES[point.series]
    task = create_task(series.task)  # with the task's label smoothing, as a run's
    spec = series.spec(point.tokens, create_task)
    entry, size_cfg = resized(point.family, point.size, spec, **series.size_fields(point.tokens), **size_overrides)
    torch.manual_seed(0)
    model = entry.build(spec, size_cfg, VariantConfig()).to(device)
    batch = send_to_device(task.synthetic_batch(spec, batch_size, torch.Generator().manual_seed(0)), device)
    return task, spec, entry, size_cfg, model, batch


def analytic_flops(task, spec, entry, size_cfg, batch, batch_size: int) -> Optional[float]:
    """The family's registered formula for this input (masked LM: at the batch's scored positions)."""
    if entry.flops is None:
        return None
    scored = task.scored_positions(batch) / batch_size if hasattr(task, "scored_positions") else None
    return float(entry.flops(spec, size_cfg, scored))


def _measure(point: Point, cfg: ScalingConfig, setup: Setup, create_task) -> dict[str, Any]:
    import torch

    from bench.core.config import MeasureConfig
    from bench.measure.timing import count_params, measure_model

    task, spec, entry, size_cfg, model, batch = build_point(point, cfg.batch_size, create_task, setup.device)
    tokens = task.tokens(batch)
    # Images: the patches are the tokens.
    per_sample = point.tokens if tokens is None else tokens / cfg.batch_size
    measure_cfg = MeasureConfig(
        bench_warmup_steps=cfg.bench_warmup_steps, bench_steps=cfg.bench_steps, bench_repeats=cfg.bench_repeats,
        latency_samples=cfg.latency_samples, peak_gemm_size=cfg.peak_gemm_size, bench_clock=setup.clock,
    )
    measured = measure_model(
        model, batch, task.loss, task.loss,
        lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05),
        measure_cfg, setup.precision, torch.device(setup.device), tokens_per_sample=per_sample, retry_smaller=False,
    )
    measured["flops"]["analytic_forward_per_sample"] = analytic_flops(task, spec, entry, size_cfg, batch,
                                                                      cfg.batch_size)
    measured["throughput"]["inputs"] = "synthetic"
    return {"params": count_params(model), "tokens_per_sample": per_sample, **measured}


# ---------------------------------------------------------------------------------------------
# Running points in child processes


def _child(point: Point, cfg: ScalingConfig, setup: Setup, path: str, create_task) -> None:
    """A child process's work: measure one point and write its file."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a point killed leaves no core file
    try:
        result = measure_point(point, cfg, setup, create_task)
    except KeyboardInterrupt:
        os._exit(130)  # no file: the point runs again when the study is rerun
    write_json_atomic(path, result)


def cpu_seconds(pid: int) -> Optional[float]:
    """A process's CPU time (user + system) from /proc (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        utime, stime = stat.rpartition(")")[2].split()[11:13]  # fields 14 and 15
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_isolated(point: Point, cfg: ScalingConfig, setup: Setup, path: Path, create_task) -> dict[str, Any]:
    """Measure a point in a child process (forked on a CPU, spawned where CUDA runs) and return its
    file; a child that dies without writing one is recorded from its exit. On the process clock a
    child still running GRACE_S CPU seconds past its time cap (stuck where its own cap cannot
    interrupt it) is killed and recorded as over the cap."""
    context = multiprocessing.get_context("fork" if setup.device == "cpu" else "spawn")
    path.unlink(missing_ok=True)
    child = context.Process(target=_child, args=(point, cfg, setup, str(path), create_task), name=f"scaling {point.label}")
    started = time.perf_counter()
    child.start()
    killed = False
    try:
        while child.is_alive():
            child.join(1.0)
            used = cpu_seconds(child.pid) if setup.clock == "process" and child.is_alive() else None
            if used is not None and used > cfg.time_cap + GRACE_S:
                child.kill()
                child.join()
                killed = True
    except KeyboardInterrupt:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
        raise
    if child.exitcode == 130:
        raise KeyboardInterrupt
    if child.exitcode == 0 and path.exists():
        return load_point(path)
    result = header(point, cfg, setup, create_task)
    result["environment"] = environment(setup)
    result["wall_time_s"] = round(time.perf_counter() - started, 3)
    code = child.exitcode
    if killed:
        result["status"] = "timeout"
        result["error"] = f"Killed {GRACE_S} CPU seconds past the time cap of {cfg.time_cap:g} s."
    elif code == -signal.SIGKILL:
        result["status"] = "oom"
        result["error"] = "Killed (SIGKILL), most likely by the kernel's out-of-memory killer."
    else:
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        result["status"], result["error"] = "error", f"The point's process ended with {how} and wrote no result."
    write_json_atomic(path, result)
    return result


def run_point(point: Point, cfg: ScalingConfig, setup: Setup, path: Path, create_task) -> dict[str, Any]:
    if cfg.isolate:
        return run_isolated(point, cfg, setup, path, create_task)
    result = measure_point(point, cfg, setup, create_task)
    write_json_atomic(path, result)
    return result


# ---------------------------------------------------------------------------------------------
# The study


def existing(path: Path, point: Point, cfg: ScalingConfig, setup: Setup) -> Optional[dict[str, Any]]:
    """The point's file when it can stand for this study's point; None when the point must run (no
    file, a file that is no complete point, said so, a skipped point, an error, or a failure whose cap
    was raised since); UserError when it was
    measured with other settings."""
    if cfg.overwrite or not path.exists():
        return None
    try:
        data = load_point(path)
    except ResultError as e:  # cut short or corrupt: the point is measured again
        print(f"{e} It is measured again.", flush=True)
        return None
    recorded = (data.get("config") or {}).get("scaling") or {}
    planned = setup.settings(cfg)
    differences = [f"--{key.replace('_', '-')} {planned[key]} here, {recorded.get(key)} there"
                   for key in (*MEASUREMENT_SETTINGS, "precision") if recorded.get(key) != planned[key]]
    if differences:
        raise UserError(
            f"{path} was measured with other settings ({'; '.join(differences)}); pass --overwrite to measure "
            f"every point again, or choose another --output-dir."
        )
    status = data["status"]
    if status in ("skipped", "error"):
        return None
    cap = CAP_OF_STATUS.get(status)
    if cap is not None and _larger(planned[cap], recorded.get(cap)):
        return None
    return data


def _larger(new: Optional[float], old: Optional[float]) -> bool:
    """Whether cap `new` is above cap `old`; None is no cap."""
    if new is None:
        return old is not None
    return old is not None and new > old


def skipped(point: Point, cfg: ScalingConfig, setup: Setup, blocker: dict[str, Any], create_task) -> dict[str, Any]:
    result = header(point, cfg, setup, create_task)
    result["status"] = "skipped"
    what = "over the time cap" if blocker["status"] == "timeout" else "out of memory"
    result["error"] = f"Not run: at {blocker['tokens']:,} tokens the family was already {what}."
    result["environment"] = environment(setup)
    return result


def summary(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{result['status']}: {result['error']}"
    throughput, memory = result["throughput"], result["memory"]
    text = (f"ok, train {throughput['train_samples_per_s']:.4g} samples/s, "
            f"infer {throughput['infer_samples_per_s']:.4g} samples/s, "
            f"peak train memory {memory['train_peak_mb']:.4g} MB")
    return text if throughput["stable"] else f"{text} (unstable: {throughput['unstable_reason']})"


def study(cfg: ScalingConfig, create_task) -> int:
    """Run every point not already measured; 0, or 1 when a point failed with an error."""
    check_output_folder(cfg.output_dir, "--output-dir")
    setup = resolve_setup(cfg)
    points = plan(cfg)
    out = Path(cfg.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot write to {out} ({e.strerror}); choose another --output-dir.") from None
    paths = {p: out / point_filename(p.series, p.family, p.size, p.tokens, setup.device, setup.precision)
             for p in points}
    kept = {p: existing(paths[p], p, cfg, setup) for p in points}  # refuses other settings before measuring
    cap = f"{cfg.memory_cap:g} MB" if setup.device == "cpu" and cfg.memory_cap else "the device's memory"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "not known"
    print(f"{len(points)} points ({sum(v is not None for v in kept.values())} already measured) on {setup.device}, "
          f"{setup.precision}, {setup.clock} clock; time cap {cfg.time_cap:g} s, memory cap {cap}; "
          f"load average {load}.", flush=True)
    blockers: dict[tuple[str, str], dict[str, Any]] = {}  # (series, family) -> its first point over a cap
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for i, point in enumerate(points, 1):
        key = (point.series, point.family)
        result, note = kept[point], "kept"
        if result is None:
            if key in blockers:
                result, note = skipped(point, cfg, setup, blockers[key], create_task), "not run"
                write_json_atomic(paths[point], result)
            else:
                point_started = time.perf_counter()
                result = run_point(point, cfg, setup, paths[point], create_task)
                note = duration(time.perf_counter() - point_started)
        if result["status"] in CAP_OF_STATUS and key not in blockers:
            blockers[key] = result
        counts[result["status"]] = counts.get(result["status"], 0) + 1
        print(f"[{i}/{len(points)}] {point.label}: {summary(result)} ({note})", flush=True)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"Done in {duration(time.perf_counter() - started)}: {tally}. Points in {out}; the page: "
          f"python -m leaderboard {out} --out leaderboard/pages")
    return 1 if counts.get("error") else 0
