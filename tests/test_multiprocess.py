"""Two real processes (gloo on CPU) train the same run as one process given the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench import run as runner
from bench.core.results import load_result

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent
NAME = "digits__gmlp-mini__fp32__seed0"
RUN = ["--task", "digits", "--model", "gmlp", "--max-train-samples", "480", "--max-steps", "40",
       "--max-eval-samples", "128", "--no-measure"]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, one_thread):
    one, two = tmp_path / "one", tmp_path / "two"
    # One thread here, as each launched process has.
    assert runner.main([*RUN, "--batch-size", "16", "--output-dir", str(one)]) == 0
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "bench/run.py", *RUN, "--batch-size", "8", "--output-dir", str(two)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("result: ") == 1, "only the main process reports"
    single, double = load_result(one / f"{NAME}.json"), load_result(two / f"{NAME}.json")
    assert double["environment"]["num_processes"] == 2
    assert double["train"]["samples"] == single["train"]["samples"] == 40 * 16

    # Every global batch holds the same 16 samples (the sampler's order, dealt to the processes
    # 8 by 8) and DDP averages the two halves' gradients, so only the order of float sums differs:
    # after 40 steps the weights differed by at most 4e-7 and the evaluation loss not at all.
    # Tolerances: 1e-5 on losses and weights, one sample of 128 on top-1.
    assert abs(double["metrics"]["loss"] - single["metrics"]["loss"]) < 1e-5
    assert abs(double["metrics"]["top1"] - single["metrics"]["top1"]) <= 1 / 128
    assert abs(double["train"]["final_loss"] - single["train"]["final_loss"]) < 1e-5

    # Both processes saved into one checkpoint; the weights agree to float rounding.
    final = two / "checkpoints" / NAME / "step-00000040"
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors"} <= {p.name for p in final.iterdir()}
    expected = load_file(one / "checkpoints" / NAME / "step-00000040" / "model.safetensors")
    weights = load_file(final / "model.safetensors")
    assert weights.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(weights[name], expected[name], rtol=0, atol=1e-5, msg=name)
