"""The process defaults of bench/core/process.py: what they add, that a user's own setting wins, and what
they change in a real process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import process

ROOT = Path(__file__).resolve().parent.parent
SUITE = {"GOMP_SPINCOUNT": "3000", "MKL_CBWR": "AUTO,STRICT"}
# Where a fresh process's 24 MiB block comes from, and whether the heap still holds it once freed
BLOCK = """
import ctypes, ctypes.util
import bench
import torch
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def heap():
    (line,) = [line for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
    return [int(end, 16) for end in line.split()[0].split("-")]
block = libc.malloc(24 << 20)
low, high = heap()
in_heap = low <= block < high
libc.free(block)
print(in_heap, heap()[1] >= block + (24 << 20))
"""
SHOW = "import os, bench; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('MKL_CBWR'), os.environ.get('OMP_NUM_THREADS'))"


def child(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in process.USER_SETTINGS and not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_the_defaults_fill_only_what_the_user_left_unset(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(os.cpu_count())))
    assert process.thread_defaults({}) == SUITE
    assert process.thread_defaults({"OMP_WAIT_POLICY": "ACTIVE"}) == {"MKL_CBWR": "AUTO,STRICT"}
    assert process.thread_defaults({"GOMP_SPINCOUNT": "1000", "MKL_CBWR": "COMPATIBLE"}) == {}
    assert process.thread_defaults({"OMP_NUM_THREADS": "3"}) == SUITE


def test_threads_follow_the_cpus_the_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert process.thread_defaults({})["OMP_NUM_THREADS"] == "3"
    assert process.thread_defaults({"OMP_NUM_THREADS": "8"}).get("OMP_NUM_THREADS") is None


@pytest.mark.parametrize("env, chose", [
    ({}, False), ({"MALLOC_ARENA_MAX": "2"}, True), ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, True),
    ({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}, False), ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, True),
])
def test_a_users_malloc_setting_is_recognised(env, chose):
    assert process.user_chose_malloc(env) is chose


def test_importing_the_suite_sets_the_defaults_for_its_child_processes():
    assert child(SHOW) == "3000 AUTO,STRICT None"
    assert child(SHOW, GOMP_SPINCOUNT="100", OMP_NUM_THREADS="1") == "100 AUTO,STRICT 1"
    assert child(SHOW, **{process.RUNTIME_DEFAULTS: "1"}) == "None None None"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_memory_stays_with_the_process():
    # the suite's thresholds: from the heap, and kept there after free() for the next step to reuse
    assert child(BLOCK) == "True True"
    # glibc as shipped (a malloc tunable set to its default, so the suite leaves malloc alone): a
    # block of this size is mapped for itself and handed back to the OS on free()
    assert child(BLOCK, GLIBC_TUNABLES="glibc.malloc.tcache_count=7") == "False False"


def test_reproducible_mode_pins_every_library_to_avx2():
    """MLPBENCH_REPRODUCIBLE=1: MKL, oneDNN and PyTorch's own kernels all run their AVX2 code, whatever
    the CPU, a user's own choice of one of them still wins, and results record the mode."""
    pinned = {"MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    assert process.thread_defaults({process.REPRODUCIBLE: "1"}) == {"GOMP_SPINCOUNT": "3000", **pinned}
    assert "MKL_CBWR" not in process.thread_defaults({process.REPRODUCIBLE: "1", "MKL_CBWR": "COMPATIBLE"})
    assert process.thread_defaults({process.REPRODUCIBLE: "0"}) == SUITE
    code = ("import bench, torch; from bench.core.results import capture_environment; e = capture_environment(); "
            "print(torch.backends.cpu.get_cpu_capability(), e['reproducible'] == dict(" +
            ", ".join(f"{k}={v!r}" for k, v in pinned.items()) + "))")
    assert child(code, **{process.REPRODUCIBLE: "1"}) == "AVX2 True"


@pytest.mark.slow
def test_a_sweep_file_can_run_its_runs_in_reproducible_mode(tmp_path):
    """`reproducible = true` in a sweep file (the quickstart's): its runs pin every library to AVX2, even
    though the sweep itself runs with the suite's default MKL setting, and their results say so."""
    out = tmp_path / "out"
    grid = tmp_path / "s.toml"
    grid.write_text(f'output_dir = "{out}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\nreproducible = true\n'
                    '[args]\nmax-steps = 2\nbatch-size = 32\nno-measure = true\ncheckpoint-every = "none"\n')
    clean = {k: v for k, v in os.environ.items() if k not in process.USER_SETTINGS}
    subprocess.run([sys.executable, "-m", "bench.sweep", str(grid), "--progress-every", "0"], cwd=ROOT,
                   env={**clean, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)
    (result,) = out.glob("*.json")
    environment = json.loads(result.read_text())["environment"]
    assert environment["reproducible"] == process.PINNED_ISA
    assert environment["cpu_capability"] == "AVX2"
