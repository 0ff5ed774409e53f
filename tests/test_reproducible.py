"""The same command and seed give the same metric on the same machine, loaded or idle.

What can change a metric is the number of threads, not the load: PyTorch's CPU LayerNorm backward
sums its weight and bias gradients in per-thread partial sums, so one thread and two threads
differ in the last bits from the first step (README, Reproducibility). At a fixed thread count
nothing in a run depends on timing: these runs train the quickstart's four minis twice, once
with a process keeping a core busy beside them, and compare the bits.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ["--task", "digits", "--size", "mini", "--max-steps", "8", "--batch-size", "64", "--lr", "0.002",
       "--max-eval-samples", "96", "--no-measure"]
SPIN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"


def train(model: str, out: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "bench/run.py", *RUN, "--model", model, "--output-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [path] = out.glob("*.json")
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
