"""The C runtime settings every process of the suite starts with, unless the user chose their own.

Importing `bench` applies them (bench/__init__.py), before PyTorch loads OpenMP, which reads its
settings once, when it is loaded. `python -m bench.defaults_check` measures what they change.

- OpenMP threads: where this process may run on fewer CPUs than the machine has (`taskset`,
  cgroup cpusets), as many threads as it may use; PyTorch's own default counts the machine's cores,
  and more threads than CPUs wait on each other at every parallel region. And a thread that
  finishes its share of a parallel region spins for 3,000 rounds (GOMP_SPINCOUNT, about 30 us)
  before it sleeps, not libgomp's default 300,000 (about 3 ms): a spinning thread holds a core
  that another job, or the sibling thread it waits for, needs, and with one core busy a mini
  model's run took 3-4x its idle time (up to 9x in longer runs). Sleeping at once
  (OMP_WAIT_POLICY=PASSIVE) degrades best under load but costs an idle run 30-50%: waking a
  thread for every small parallel region is slow. The figures are in docs/measurement.md ("Process defaults").
- glibc malloc: freed memory stays with the process (trim threshold 1 GiB) and blocks up to the
  largest mmap threshold glibc allows (32 MiB) come from the heap. With glibc's defaults a process
  hands activation-sized blocks back to the OS after every step and faults them in again, so the
  first phase a fresh process times (inference, in bench mode) runs up to about half speed.
- MKL matrix products in strict conditional numerical reproducibility (MKL_CBWR=AUTO,STRICT): the
  same bits whatever the number of threads. Without it a product with a small output and a long
  reduction (ViT's classifier gradient: 10 x 128 over the batch) splits the reduction between
  threads. With the models' LayerNorm and convolutions (bench/models/thread_invariant.py) a run
  then gives the same bits on one thread or several.

- Reproducible mode (MLPBENCH_REPRODUCIBLE=1): the same bits across Intel CPUs with AVX2. MKL, oneDNN
  and PyTorch's own vector kernels (softmax, LayerNorm, GELU) each pick their code for the CPU they
  find, so an AVX-512 CPU and an AVX2 one give different last bits, which over a run can move a
  metric (ViT-mini on digits: 0.9304 top-1 on an AVX2 AMD EPYC, 0.9136 on an AVX-512 Intel Xeon).
  The mode pins all three to AVX2 (MKL_CBWR=AVX2,STRICT, ONEDNN_MAX_CPU_ISA=AVX2,
  ATEN_CPU_CAPABILITY=avx2); results record it (environment.reproducible). MKL's pinned branch holds
  on Intel CPUs only (on others it takes its AUTO branch: ViT-mini 0.9304 on an AMD EPYC, 0.9248 on
  an Intel Xeon, both in the mode; docs/reproducibility.md). Its speed cost is in docs/measurement.md.

A user setting always wins: OMP_NUM_THREADS, OMP_WAIT_POLICY or GOMP_SPINCOUNT, MKL_CBWR, and for
malloc any MALLOC_* variable, a glibc.malloc tunable in GLIBC_TUNABLES, or another allocator in
LD_PRELOAD. MLPBENCH_RUNTIME_DEFAULTS=1 turns all of this off, the LayerNorm included: the
runtimes' own defaults, as measured against.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

RUNTIME_DEFAULTS = "MLPBENCH_RUNTIME_DEFAULTS"
REPRODUCIBLE = "MLPBENCH_REPRODUCIBLE"
# The instruction set every x86-64 CPU of the last decade runs, for each library that dispatches on it
PINNED_ISA = {"MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SPIN_COUNT = 3000  # libgomp's rounds of spinning before a waiting thread sleeps
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
# The variables through which a user (or a measurement of the runtimes' defaults) chooses for themselves
USER_SETTINGS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_CBWR", "GLIBC_TUNABLES", "LD_PRELOAD",
                 RUNTIME_DEFAULTS, REPRODUCIBLE, "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
TRIM_THRESHOLD = 1 << 30
MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)


def runtime_defaults() -> bool:
    """True when the user asked for the runtimes' own defaults (MLPBENCH_RUNTIME_DEFAULTS=1)."""
    return os.environ.get(RUNTIME_DEFAULTS, "") not in ("", "0")


def reproducible(env=os.environ) -> bool:
    """True when the user asked for the same bits across CPUs (MLPBENCH_REPRODUCIBLE=1; Intel CPUs only, above)."""
    return env.get(REPRODUCIBLE, "") not in ("", "0")


def pinned_isa(env=os.environ) -> dict[str, str] | None:
    """What a result records of reproducible mode: the pinned variables as this process has them, or
    None outside the mode."""
    return {name: env.get(name, "") for name in PINNED_ISA} if reproducible(env) else None


def reproducible_env() -> dict[str, str]:
    """The variables that start a child process in reproducible mode, whatever this process has."""
    return {REPRODUCIBLE: "1", **PINNED_ISA}


def user_chose_openmp(env) -> bool:
    return any(name in env for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))


def user_chose_malloc(env) -> bool:
    if any(name.startswith("MALLOC_") for name in env):
        return True
    if "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        return True
    return any(name in env.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc"))


def thread_defaults(env) -> dict[str, str]:
    """The OpenMP and MKL variables to add to `env`: none that the user set."""
    added = {}
    # the CPUs this process may use; no affinity mask outside Linux (macOS has no sched_getaffinity)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if "OMP_NUM_THREADS" not in env and usable and usable < (os.cpu_count() or usable):
        added["OMP_NUM_THREADS"] = str(usable)
    if not user_chose_openmp(env):
        added["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    if reproducible(env):
        added.update({name: value for name, value in PINNED_ISA.items() if name not in env})
    elif "MKL_CBWR" not in env:
        added["MKL_CBWR"] = "AUTO,STRICT"
    return added


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds in this process; False where there is no glibc malloc."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False  # not glibc (musl, macOS): its mallopt, if any, means something else
    # mallopt returns 1 on success; a fixed threshold also stops glibc adjusting it as blocks are freed
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def configure() -> None:
    """Apply the defaults above to this process (and, through the environment, the processes it starts)."""
    if runtime_defaults():
        return
    if "torch" not in sys.modules:  # once PyTorch has loaded OpenMP and MKL, their settings are fixed
        os.environ.update(thread_defaults(os.environ))
    if sys.platform.startswith("linux") and not user_chose_malloc(os.environ):
        keep_freed_memory()
