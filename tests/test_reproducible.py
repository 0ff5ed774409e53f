"""The same command and seed give the same metric on the same machine, loaded or idle, with one
thread or two.

Nothing in a run depends on timing: these runs train the quickstart's four minis twice, once with a
process keeping a core busy beside them, and compare the bits. Nor on the thread count: PyTorch's
CPU LayerNorm backward sums its weight and bias gradients in per-thread partial sums, and on CPUs
with AVX-512 oneDNN's convolution backward its weight gradient, which the models' LayerNorm and
convolutions avoid (bench/models/thread_invariant.py), so one thread and two give the same bits.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent
RUN = ["--task", "digits", "--size", "mini", "--max-steps", "8", "--batch-size", "64", "--lr", "0.002",
       "--max-eval-samples", "96", "--no-measure"]
SPIN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"


def train(model: str, out: Path, threads: int, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-m", "bench.run", *RUN, "--model", model, "--output-dir", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [path] = [p for p in out.glob("*.json") if not p.name.endswith(".model.json")]
    return json.loads(path.read_text())


@pytest.mark.parametrize("model", ["gmlp", "resmlp", "mixer", "vit"])
def test_a_busy_core_changes_no_bit_of_the_run(model, tmp_path):
    idle = train(model, tmp_path / "idle", threads=2)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        loaded = train(model, tmp_path / "loaded", threads=2)
    finally:
        spinner.kill()
        spinner.wait()
    assert loaded["metrics"] == idle["metrics"]
    assert loaded["train"]["final_loss"] == idle["train"]["final_loss"]
    assert loaded["environment"]["cpu_threads"] == idle["environment"]["cpu_threads"] == 2


@pytest.mark.parametrize("model", ["gmlp", "resmlp", "mixer", "vit"])
def test_one_thread_and_two_give_the_same_bits(model, tmp_path):
    # the trained weights themselves, which differ from the first step where any gradient does
    one = train(model, tmp_path / "one", 1, "--save-model")
    two = train(model, tmp_path / "two", 2, "--save-model")
    assert (one["environment"]["cpu_threads"], two["environment"]["cpu_threads"]) == (1, 2)
    [weights_one], [weights_two] = (list((tmp_path / name).glob("*.safetensors")) for name in ("one", "two"))
    assert weights_two.read_bytes() == weights_one.read_bytes()
    assert two["metrics"] == one["metrics"]


def gradients(module, input_shape, threads: int):
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
    module.zero_grad()
    x = torch.randn(input_shape, generator=g, requires_grad=True)
    out = module(x)
    out.backward(torch.randn(out.shape, generator=g))
    return [out.detach(), x.grad] + [p.grad.clone() for p in module.parameters()]


THREAD_DEPENDENT = {  # a module whose plain CPU backward reduces a weight gradient per thread, and an input
    "layer norm": (lambda: torch.nn.LayerNorm(128, eps=1e-6), (128, 65, 128)),
    "patch embedding": (lambda: torch.nn.Conv2d(3, 128, 4, stride=4), (128, 3, 32, 32)),
    "1-d convolution": (lambda: torch.nn.Conv1d(128, 128, 3, padding=1), (64, 128, 65)),
}


@pytest.mark.parametrize("kind", THREAD_DEPENDENT)
def test_thread_invariant_gradients_are_a_one_thread_runs(kind):
    from bench.models.thread_invariant import make_thread_invariant

    make, shape = THREAD_DEPENDENT[kind]
    threads = torch.get_num_threads()
    try:
        reference = gradients(make(), shape, 1)
        for n in (1, 2, 3):
            assert all(torch.equal(a, b) for a, b in zip(gradients(make_thread_invariant(make()), shape, n), reference))
    finally:
        torch.set_num_threads(threads)
