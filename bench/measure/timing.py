"""The one place that measures: params, FLOPs, throughput, latency, peak memory and MFU.

`measure_model` works on a deep copy of the model with a fresh optimizer, so a training run's
weights and optimizer state are untouched by it. Its phases, for one batch size:

    FLOPs       torch.utils.flop_counter on the uncompiled copy: one inference forward and one
                forward+backward, divided by the batch size.
    inference   eval mode, inference_mode: warm-up steps, a memory pass, then timed repeats.
    latency     batch-1 inference, each call timed alone: p50 / p90 / p99 in ms.
    training    train mode, forward + backward + optimizer step: as for inference.
    MFU         achieved FLOP/s over the device's peak (`peak_flops`).

Timed steps run with the device synchronised at both ends of each repeat; the median over repeats
is reported with its spread, (max - min) / median. Memory is measured in a pass of its own, so the
CPU's per-operation bookkeeping of live tensors (PeakMemory) never slows the timed steps.

A batch size that runs out of memory is retried at half the size, down to 1 (unless the caller
needs the batch it asked for: retry_smaller=False); any other error propagates. In a multi-process run every process calls `measure_model`; throughput is summed over
processes (a global figure), while latency and memory are this process's own.
"""

from __future__ import annotations

import copy
import gc
import math
import random
import re
import statistics
import sys
import time
import weakref
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Iterator

import torch
from accelerate.utils import broadcast_object_list
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from bench.core.config import MeasureConfig
from bench.core.errors import UserError

Batch = Any  # a tensor, or a dict / tuple / list of them, samples along the first dimension
LossFn = Callable[[nn.Module, Batch], torch.Tensor]  # forward + loss -> scalar
InferFn = Callable[[nn.Module, Batch], Any]  # forward only
MakeOptimizer = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
GEMM_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Steps in the memory pass: the second runs with the optimizer state the first created.
MEMORY_STEPS = 2

# Dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets, matched against
# torch.cuda.get_device_name in order. bf16/fp16/tf32 are tensor-core figures, fp32 is not;
# tf32 applies to fp32 matmuls when TF32 is enabled. A GPU or precision missing here falls back
# to a GEMM measured in the run.
GPU_PEAK_TFLOPS = (
    (r"h100.*(hbm3|sxm)", "H100 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"h100.*pcie", "H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    (r"h200(?!.*nvl)", "H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"a100", "A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    # The A10 datasheet's figures; AWS publishes none for its A10G variant.
    (r"a10g", "A10G", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    (r"\bl4\b", "L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    (r"rtx 4090", "RTX 4090", {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    (r"v100-sxm", "V100 SXM2", {"fp16": 125.0, "fp32": 15.7}),
    (r"v100-pcie", "V100 PCIe", {"fp16": 112.0, "fp32": 14.0}),
    (r"\bt4\b", "T4", {"fp16": 65.0, "fp32": 8.1}),
)

# CPU attention runs a fused kernel that torch's FLOP counter does not know; it does the same
# matmuls as the GPU kernels the counter does know, so it gets their formulas.
def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


_CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
}


def count_params(model: nn.Module) -> int:
    """Parameters of the model, each shared parameter counted once."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Batches


def _map_tensors(batch: Batch, fn: Callable[[torch.Tensor], Any]) -> Batch:
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return {key: _map_tensors(value, fn) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map_tensors(value, fn) for value in batch)
    return batch


def batch_size_of(batch: Batch) -> int:
    """Samples in a batch: the first dimension of its first tensor."""
    sizes: list[int] = []

    def note(t: torch.Tensor) -> torch.Tensor:
        if t.dim():
            sizes.append(t.shape[0])
        return t

    _map_tensors(batch, note)
    if not sizes:
        raise ValueError("the batch holds no tensor with a batch dimension")
    return sizes[0]


def resize_batch(batch: Batch, n: int) -> Batch:
    """The first n samples of a batch, cycling through it again when n exceeds its size.

    Only tensors whose first dimension is the batch size are resized; anything else (a shared
    mask, a scalar) passes through.
    """
    size = batch_size_of(batch)

    def resize(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0 or t.shape[0] != size:
            return t
        if n <= size:
            return t[:n]
        return t[torch.arange(n, device=t.device) % size]

    return _map_tensors(batch, resize)


def _channels_last(batch: Batch) -> Batch:
    return _map_tensors(batch, lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)


# ---------------------------------------------------------------------------------------------
# Pieces


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str):
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def count_flops(model: nn.Module, batch: Batch, loss_fn: LossFn, infer_fn: InferFn, precision: str = "fp32") -> dict:
    """FLOPs per sample of an inference forward and of a training forward+backward.

    Counts matmuls, convolutions and attention (what torch's counter counts); elementwise work,
    norms and the optimizer step are not FLOPs here. Leaves the model's gradients unset.
    """
    device = next(model.parameters()).device
    n = batch_size_of(batch)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as forward:
        with torch.inference_mode(), _autocast(device, precision):
            infer_fn(model, batch)
    model.train()
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as train:
        with _autocast(device, precision):
            loss = loss_fn(model, batch)
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {"forward_per_sample": forward.get_total_flops() / n, "train_per_sample": train.get_total_flops() / n}


def head_flops_share(model: nn.Module, batch: Batch, loss_fn: LossFn, scored_positions: int) -> float:
    """Masked LM: the output head's share of the forward FLOPs of `loss_fn` on this batch. FLOPs of
    the head's linear maps on the scored positions (`model.lm_head`: the tied projection of the MLP
    families; RoBERTa's dense + decoder) over the whole forward, both as torch's FLOP counter counts
    them (count_flops), so it is a share of the measured forward FLOPs."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as counter, torch.inference_mode():
        loss_fn(model, batch)
    model.train(was_training)
    head = sum(2 * scored_positions * m.in_features * m.out_features for m in model.lm_head.modules()
               if isinstance(m, nn.Linear))
    return head / counter.get_total_flops()


class PeakMemory:
    """Peak memory of the code in a `with` block, in MB, in `peak_mb` (and `reserved_mb` on CUDA).

    `kind` names the figure (`memory_kind`):
    "cuda": the allocator's peak allocated and reserved bytes, reset on entry (after emptying the
    cache, so an earlier phase's cached blocks do not count as reserved): every tensor on the device.
    "cpu_tensors" (on CPU; "<type>_tensors" on other devices): the peak, over the block, of the
    bytes of the live tensor storages on the device that the block's operations use or make: the
    model's parameters and buffers, the batch, activations, gradients and the optimizer's state,
    each storage once. A dispatch mode (_LiveStorages) sees every operation; a storage counts from
    the first operation that uses or makes it until it is freed. Memory the block never touches (the
    interpreter, libraries, other models, the process's earlier peaks) does not count, so the figure
    is the model's own and comparable across runs. A tensor made before the block and first used
    late in a step (the optimizer's state, read at its step) counts from then on, so run two steps:
    in the second, everything a step uses is counted from its start (MEMORY_STEPS). Not counted:
    scratch memory a kernel allocates and frees within one operation. torch.compile steps aside
    while a dispatch mode is active, so a compiled model's block runs eagerly here.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = memory_kind(device)
        self.peak_mb: float | None = None
        self.reserved_mb: float | None = None
        self._tracker: _LiveStorages | None = None

    def __enter__(self) -> "PeakMemory":
        _sync(self.device)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._tracker = _LiveStorages(self.device.type)
            self._tracker.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        _sync(self.device)
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.reserved_mb = torch.cuda.max_memory_reserved(self.device) / 2**20
        else:
            self._tracker.__exit__(*exc)
            self.peak_mb = self._tracker.peak_bytes / 2**20
            self._tracker = None


def memory_kind(device: torch.device) -> str:
    """What PeakMemory measures on `device`: "cuda" (the CUDA allocator) or "cpu_tensors" (live tensors)."""
    return "cuda" if device.type == "cuda" else f"{device.type}_tensors"


class _LiveStorages(TorchDispatchMode):
    """Bytes of the live storages on one device type that the operations run under it used or made,
    and their peak. A storage is known by its StorageImpl; a finalizer on its Python object, which
    torch keeps alive as long as the storage, takes it off when it is freed."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type
        self.live_bytes = 0
        self.peak_bytes = 0
        self._sizes: dict[int, int] = {}  # StorageImpl address -> bytes
        self._finalizers: dict[int, weakref.finalize] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_leaves((args, kwargs, out)):
            if isinstance(value, torch.Tensor) and value.device.type == self.device_type:
                self._note(value)
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return out

    def _note(self, tensor: torch.Tensor) -> None:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse and opaque tensors have no storage
            return
        key, size = storage._cdata, storage.nbytes()
        known = self._sizes.get(key)
        if known is None:
            self._finalizers[key] = weakref.finalize(storage, self._freed, key)
        elif known == size:
            return
        self._sizes[key] = size  # new, or resized (out= arguments)
        self.live_bytes += size - (known or 0)

    def _freed(self, key: int) -> None:
        self.live_bytes -= self._sizes.pop(key, 0)
        self._finalizers.pop(key, None)

    def __exit__(self, *exc):
        for finalizer in self._finalizers.values():  # storages that outlive the block need no more counting
            finalizer.detach()
        self._finalizers.clear()
        self._sizes.clear()
        return super().__exit__(*exc)


def peak_flops(
    device: torch.device, precision: str, gemm_size: int = 2048, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, str]:
    """The device's peak FLOP/s for `precision`, and where the figure comes from.

    A known GPU's datasheet figure ("table:<name>"); otherwise, and on CPU, the best of a few
    square matmuls of side `gemm_size` timed now, with the current thread count, in the
    precision's dtype, on `clock`: the clock the throughput was timed with, so that MFU divides
    like by like ("measured-gemm:<n>").
    """
    if device.type == "cuda":
        tf32 = torch.backends.cuda.matmul.fp32_precision == "tf32"
        known = table_peak_flops(torch.cuda.get_device_name(device), precision, tf32)
        if known is not None:
            return known
    return _measured_gemm_flops(gemm_size, GEMM_DTYPES[precision], device, clock), f"measured-gemm:{gemm_size}"


def table_peak_flops(device_name: str, precision: str, tf32: bool) -> tuple[float, str] | None:
    """(FLOP/s, "table:<name>") for a GPU in GPU_PEAK_TFLOPS, or None if it or the precision is missing."""
    for pattern, label, tflops in GPU_PEAK_TFLOPS:
        if re.search(pattern, device_name.lower()):
            key = "tf32" if precision == "fp32" and tf32 and "tf32" in tflops else precision
            return (tflops[key] * 1e12, f"table:{label}") if key in tflops else None
    return None


def _measured_gemm_flops(
    n: int, dtype: torch.dtype, device: torch.device, clock: Callable[[], float] = time.perf_counter, tries: int = 5
) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    # b.t(): nn.Linear's layout. For half precision on CPUs without native support it takes a
    # kernel several times faster than a plain a @ b, the one the model's layers run on.
    torch.mm(a, b.t(), out=out)  # warm-up: thread pool, kernel choice
    best = math.inf
    for _ in range(tries):
        _sync(device)
        start = clock()
        torch.mm(a, b.t(), out=out)
        _sync(device)
        best = min(best, clock() - start)
    return 2 * n**3 / best


def _per_process(values: list[float], accelerator) -> torch.Tensor:
    """(processes, len(values)): every process's values; one row when running alone."""
    local = torch.tensor(values, dtype=torch.float64)
    if accelerator is None or accelerator.num_processes == 1:
        return local[None]
    gathered = accelerator.gather(local.to(accelerator.device))
    return gathered.view(accelerator.num_processes, -1).cpu()


def _wait_for_everyone(accelerator) -> None:
    if accelerator is not None and accelerator.num_processes > 1:
        accelerator.wait_for_everyone()


def timed_rates(
    step: Callable[[], Any], n: int, cfg: MeasureConfig, device: torch.device, accelerator=None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Global samples/s of each of `cfg.bench_repeats` repeats of `cfg.bench_steps` steps of `n` samples.

    The device is synchronised at both ends of a repeat; no warm-up here, the caller warms up.
    `clock` is wall time; a single-threaded CPU caller may pass time.process_time, which time
    slices given to other jobs on a shared machine do not advance.
    """
    rates = []
    for _ in range(cfg.bench_repeats):
        _wait_for_everyone(accelerator)  # processes time the same stretch, so their rates add up
        _sync(device)
        start = clock()
        for _ in range(cfg.bench_steps):
            step()
        _sync(device)
        rates.append(cfg.bench_steps * n / (clock() - start))
    return _per_process(rates, accelerator).sum(0).tolist()


def median_with_interval(values: list[float], resamples: int = 2000) -> tuple[float, float, float]:
    """The median and a 95% bootstrap interval of it."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return statistics.median(values), medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


# --bench-clock. CPU time measures a step's own work: on a shared machine the time slices other jobs
# take do not count. It sums over threads, so it equals step time only with one thread.
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def check_clock(cfg: MeasureConfig, device: torch.device) -> None:
    """Refuse a clock that cannot time this run, before any training."""
    if cfg.bench_clock == "process" and (device.type != "cpu" or torch.get_num_threads() != 1):
        raise UserError(
            f"--bench-clock process times CPU runs with one thread (OMP_NUM_THREADS=1), but this run uses "
            f"{device.type} with {torch.get_num_threads()} threads."
        )


def _time_phase(step: Callable[[], Any], n: int, cfg: MeasureConfig, device: torch.device, accelerator) -> dict:
    """Warm up, measure peak memory, then time repeats: global samples/s (median, spread), memory."""
    for _ in range(cfg.bench_warmup_steps):
        step()
    with PeakMemory(device) as memory:
        for _ in range(MEMORY_STEPS):
            step()
    global_rates = timed_rates(step, n, cfg, device, accelerator, CLOCKS[cfg.bench_clock])
    median = statistics.median(global_rates)
    return {
        "samples_per_s": median,
        "spread": (max(global_rates) - min(global_rates)) / median,
        "peak_mb": memory.peak_mb,
        "reserved_mb": memory.reserved_mb,
    }


def _latency_ms(step: Callable[[], Any], cfg: MeasureConfig, device: torch.device) -> dict:
    for _ in range(cfg.bench_warmup_steps):
        step()
    clock, times = CLOCKS[cfg.bench_clock], []
    for _ in range(cfg.latency_samples):
        _sync(device)
        start = clock()
        step()
        _sync(device)
        times.append((clock() - start) * 1e3)
    times.sort()

    def nearest_rank(p: float) -> float:
        return times[max(0, math.ceil(p / 100 * len(times)) - 1)]

    return {"p50": nearest_rank(50), "p90": nearest_rank(90), "p99": nearest_rank(99)}


def _for_training(model: nn.Module, device: torch.device, accelerator) -> nn.Module:
    """Multi-process training all-reduces gradients every step; the timed copy does it too."""
    if accelerator is None or accelerator.num_processes == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


# ---------------------------------------------------------------------------------------------
# The entry point


def measure_model(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    infer_fn: InferFn,
    make_optimizer: MakeOptimizer,
    cfg: MeasureConfig,
    precision: str,
    device: torch.device,
    tokens_per_sample: float | None = None,
    accelerator=None,
    retry_smaller: bool = True,
) -> dict:
    """Measure a model; returns the result keys flops, throughput, latency_ms, memory and mfu.

    `model` is the bare module (unwrapped from DDP) on `device`; `batch` one batch on `device`,
    resized to `cfg.bench_batch_size` when that is set (cycling through it to grow).
    `loss_fn(model, batch)` runs forward + loss, `infer_fn(model, batch)` the forward only (it is
    called under inference_mode). `make_optimizer(params)` builds the optimizer the run uses.
    `tokens_per_sample` adds tokens/s for text tasks. The throughput keys loop_samples_per_s and
    data_wait_fraction are None here: the training loop's `LoopTimer.summary()` fills them.
    `retry_smaller=False` lets an out-of-memory error propagate at the requested batch size instead
    of halving it (a comparison across input sizes needs one batch size throughout).
    """
    check_clock(cfg, device)
    requested = cfg.bench_batch_size or batch_size_of(batch)
    size, retries = requested, 0
    while True:
        try:
            result = _measure_at(size, model, batch, loss_fn, infer_fn, make_optimizer, cfg, precision, device, accelerator)
            break
        except torch.OutOfMemoryError:
            if size == 1 or not retry_smaller:
                raise
        # Outside the except block the failed attempt's traceback, and the tensors it holds, are gone.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        size, retries = max(1, size // 2), retries + 1

    problem = _agreed(inconsistency(*result[1:], size), accelerator)
    remeasured = 0
    while problem is not None and remeasured < MAX_REMEASURES:
        result, remeasured = _measure_at(size, model, batch, loss_fn, infer_fn, make_optimizer, cfg, precision, device,
                                         accelerator), remeasured + 1
        problem = _agreed(inconsistency(*result[1:], size), accelerator)
    if problem is not None and (accelerator is None or accelerator.is_main_process):
        print(f"warning: unstable measurement after {remeasured + 1} tries: {problem}; the result says so and the "
              f"leaderboard leaves it out of speed and memory ratios.", file=sys.stderr)
    flops, infer, train, latency = result
    peak, peak_source = peak_flops(device, precision, cfg.peak_gemm_size, CLOCKS[cfg.bench_clock])
    processes = 1 if accelerator is None else accelerator.num_processes
    return {
        "flops": flops,
        "throughput": {
            "batch_size": size,
            "requested_batch_size": requested,
            "oom_retries": retries,
            "infer_samples_per_s": infer["samples_per_s"],
            "train_samples_per_s": train["samples_per_s"],
            "infer_tokens_per_s": None if tokens_per_sample is None else infer["samples_per_s"] * tokens_per_sample,
            "train_tokens_per_s": None if tokens_per_sample is None else train["samples_per_s"] * tokens_per_sample,
            "infer_spread": infer["spread"],
            "train_spread": train["spread"],
            "loop_samples_per_s": None,
            "data_wait_fraction": None,
            "stable": problem is None,
            "unstable_reason": problem,
            "remeasured": remeasured,
        },
        "latency_ms": latency,
        "memory": None
        if infer["peak_mb"] is None
        else {
            "kind": memory_kind(device),
            "train_peak_mb": train["peak_mb"],
            "infer_peak_mb": infer["peak_mb"],
            "train_reserved_mb": train["reserved_mb"],
            "infer_reserved_mb": infer["reserved_mb"],
        },
        "mfu": mfu(flops, infer["samples_per_s"], train["samples_per_s"], peak, peak_source, processes),
    }


# A measurement checks itself: repeats that disagree by more than MAX_SPREAD ((max - min) / median),
# training a sample faster than inferring it, or a batch-1 latency above the time of a whole
# batch can only come from a disturbed machine. Such a measurement is taken again, up to
# MAX_REMEASURES times, and is recorded as unstable if it stays bad.
MAX_SPREAD = 0.15
MAX_REMEASURES = 2


def inconsistency(infer: dict, train: dict, latency: dict, batch_size: int) -> str | None:
    """Why a phase's figures cannot be trusted, or None."""
    for name, phase in (("inference", infer), ("training", train)):
        if phase["spread"] > MAX_SPREAD:
            return f"{name} repeats spread {phase['spread']:.0%} (more than {MAX_SPREAD:.0%})"
    if train["samples_per_s"] > infer["samples_per_s"]:
        return (f"training ran {train['samples_per_s']:.4g} samples/s, faster than inference "
                f"({infer['samples_per_s']:.4g}), although it does the forward pass and more")
    batch_ms = 1e3 * batch_size / infer["samples_per_s"]
    if latency["p50"] > batch_ms * (1 + MAX_SPREAD):
        return f"batch-1 latency p50 {latency['p50']:.3g} ms is above a whole batch's {batch_ms:.3g} ms"
    return None


def _agreed(problem: str | None, accelerator) -> str | None:
    """The main process's verdict, on every process. Latency is timed per process, so two processes
    can judge one measurement differently; one that measured again alone would wait forever in the
    collective calls of a measurement the others never start."""
    if accelerator is None or accelerator.num_processes == 1:
        return problem
    verdict = [problem]
    broadcast_object_list(verdict, from_process=0)
    return verdict[0]


def mfu(flops: dict, infer_rate: float, train_rate: float, peak: float, peak_source: str, processes: int = 1) -> dict:
    """Achieved FLOP/s over the peak: global throughput over one device's peak times the processes.
    Above 1 only when the peak was itself measured and came out low (noise, or a model whose
    matmuls beat the square GEMM); the result then says so instead of publishing a utilisation."""
    values = {
        "train": flops["train_per_sample"] * train_rate / (peak * processes),
        "infer": flops["forward_per_sample"] * infer_rate / (peak * processes),
    }
    above = [phase for phase, value in values.items() if value > 1]
    return {
        **values,
        "peak_flops": peak,
        "peak_source": peak_source,
        "note": None if not above else (
            f"MFU above 1 in {' and '.join(above)}: the measured peak ({peak_source}) is below what the model "
            f"achieved, so it is not a utilisation; time on an idle machine or with --bench-clock process."
        ),
    }


def _measure_at(size, model, batch, loss_fn, infer_fn, make_optimizer, cfg, precision, device, accelerator):
    """FLOPs, inference, latency and training at one batch size; raises OutOfMemoryError if it does not fit."""
    sized = resize_batch(batch, size)
    measured = copy.deepcopy(model)
    if cfg.channels_last:
        measured = measured.to(memory_format=torch.channels_last)
        sized = _channels_last(sized)
    flops = count_flops(measured, sized, loss_fn, infer_fn, precision)
    steps = phase_steps(measured, sized, loss_fn, infer_fn, make_optimizer, cfg, precision, device, accelerator)
    measured.eval()
    inference = _time_phase(steps["infer"], size, cfg, device, accelerator)
    latency = _latency_ms(steps["latency"], cfg, device)
    measured.train()
    train = _time_phase(steps["train"], size, cfg, device, accelerator)
    return flops, inference, train, latency


def phase_steps(model, batch, loss_fn, infer_fn, make_optimizer, cfg, precision, device, accelerator=None) -> dict:
    """The steps the phases time, on `model` itself (compiled when `cfg.compile`), as argument-free calls.

    "infer": the forward on `batch` under inference_mode; "latency": the same on its first sample;
    "train": forward + backward + optimizer step. Put the model in eval / train mode before timing
    a phase: the steps leave the mode alone, so switching it is never timed.
    """
    single = resize_batch(batch, 1)
    if cfg.channels_last:
        single = _channels_last(single)
    compile_ = torch.compile if cfg.compile else (lambda m: m)
    infer_model = compile_(model)
    train_model = compile_(_for_training(model, device, accelerator))
    optimizer = make_optimizer(model.parameters())

    def infer(inputs):
        with torch.inference_mode(), _autocast(device, precision):
            infer_fn(infer_model, inputs)

    def train_step():
        with _autocast(device, precision):
            loss = loss_fn(train_model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return {"infer": lambda: infer(batch), "latency": lambda: infer(single), "train": train_step}


# ---------------------------------------------------------------------------------------------
# The training loop's own throughput


class LoopTimer:
    """Real throughput of a training loop, data loading included, and the share spent waiting for data.

        timer = LoopTimer()
        for batch in timer.batches(loader):   # once per epoch is fine
            ...step...
        result["throughput"].update(timer.summary(accelerator))

    A step runs from one request for a batch to the next, so it covers loading and compute; the
    wait is the time inside next(). A step the loop leaves with `break` is not counted, and the
    time between calls to `batches` (evaluation, checkpoints) is not either. On CUDA the host may
    run ahead of the device; over many steps it cannot, so the rate holds, and a wait that
    overlaps device work is rightly not a bottleneck.
    """

    def __init__(self):
        self.samples = 0
        self.step_s = 0.0
        self.wait_s = 0.0

    def batches(self, iterable: Iterable[Batch]) -> Iterator[Batch]:
        iterator = iter(iterable)
        previous = None  # (start, wait, samples) of the step in progress
        while True:
            start = time.perf_counter()
            if previous is not None:
                self.step_s += start - previous[0]
                self.wait_s += previous[1]
                self.samples += previous[2]
            try:
                batch = next(iterator)
            except StopIteration:
                return
            previous = (start, time.perf_counter() - start, batch_size_of(batch))
            yield batch

    def summary(self, accelerator=None) -> dict:
        """{"loop_samples_per_s", "data_wait_fraction"}: summed over processes / this process's; None before a step ends."""
        if self.step_s == 0:
            return {"loop_samples_per_s": None, "data_wait_fraction": None}
        processes = _per_process([self.samples / self.step_s], accelerator)
        return {"loop_samples_per_s": processes.sum().item(), "data_wait_fraction": self.wait_s / self.step_s}
