"""A sweep shows each running run's progress: phase, step / total and time left, at a fixed interval."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.training import progress as progress_module
from bench.training.progress import PROGRESS_ENV, Progress, describe, duration, read_progress

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent


def test_describe_says_phase_step_and_time_left():
    assert describe(None, 3) == "starting, 3s elapsed"
    assert describe({"phase": "loading", "step": 0, "total": None}, 65) == "loading, 1m05s elapsed"
    training = {"phase": "training", "step": 40, "total": 300, "start_step": 0, "phase_elapsed_s": 10.0}
    assert describe(training, 12) == "training step 40/300, 12s elapsed, about 1m05s left in training"
    resumed = {**training, "start_step": 20}  # 20 steps in 10 s since the resume: 0.5 s a step
    assert describe(resumed, 12) == "training step 40/300, 12s elapsed, about 2m10s left in training"
    assert describe({**training, "step": 0}, 2) == "training step 0/300, 2s elapsed, time left not known yet"
    assert describe({"phase": "evaluation"}, 7200) == "evaluation, 2h00m elapsed"
    assert duration(3599.6) == "1h00m"


def test_progress_is_written_atomically_and_at_most_every_two_seconds(tmp_path, monkeypatch):
    path = tmp_path / "run.progress.json"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    clock = [100.0]
    monkeypatch.setattr(progress_module, "_clock", lambda: clock[0])
    progress = Progress()
    progress.phase("training", 0, 50)
    assert read_progress(path)["phase"] == "training" and read_progress(path)["total"] == 50
    clock[0] += 1
    progress.step(1, 50)
    assert read_progress(path)["step"] == 0, "not two seconds yet"
    clock[0] += 1.5
    progress.step(2, 50)
    assert json.loads(path.read_text()) == {"phase": "training", "step": 2, "total": 50, "start_step": 0,
                                            "elapsed_s": 2.5, "phase_elapsed_s": 2.5}
    progress.phase("evaluation")  # a new phase is written at once
    assert read_progress(path)["phase"] == "evaluation"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left"
    progress.enabled = False  # processes other than the main one write nothing
    progress.phase("measurement")
    assert read_progress(path)["phase"] == "evaluation"


def test_a_sweep_prints_the_running_runs_step_and_time_left(tmp_path):
    out = tmp_path / "out"
    grid = tmp_path / "grid.toml"
    grid.write_text(f'output_dir = "{out}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    '[args]\nbatch-size = 32\nmax-steps = 100000\nmeasure = false\ncheckpoint-every = "none"\n')
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(grid), "--progress-every", "0.5"], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "training step" in line and "left in training" in line:
                break
            assert time.monotonic() < deadline, "no progress line within 300 s"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        rest, err = proc.communicate(timeout=120)
    line = seen[-1]
    name = "digits__gmlp-mini__fp32__seed0"
    assert line.startswith(f"[1/1] {name}: training step ") and "/100000, " in line and " elapsed, about " in line
    assert any(f"[1/1] {name}: starting" in s or f"[1/1] {name}: loading" in s for s in seen), seen
    assert proc.returncode == 143, err
    assert not (out / "logs" / f"{name}.progress.json").exists(), "the progress file goes with its run"
