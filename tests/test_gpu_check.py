"""examples/gpu_check.sh and bench/timm_compare.py, and the checks that only a CUDA GPU can make.

Here (CPU): the script parses, is executable and refuses to start without a GPU in one sentence
(exit 2); the comparison with timm's benchmark timing runs end to end at a tiny size; the GPU
leaderboard's sweep file plans its twelve runs. Marked `gpu` (skipped without CUDA; the script
runs them with `pytest -m gpu`): CUDA memory figures in a bench-mode result, bf16 / fp16 autocast
reaching the model in measurement and in a training step, pinned memory in the training loader,
and the out-of-memory halving on a real CUDA out-of-memory.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "gpu_check.sh"
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device; torch.cuda.is_available() is False")


def run_command(argv, env=None, timeout=300, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout, **kwargs)


# --------------------------------------------------------------------------- the script, on CPU


def test_script_is_executable_parses_and_says_how_to_run_it():
    assert SCRIPT.is_file()
    assert os.access(SCRIPT, os.X_OK)
    syntax = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    header = text.split("set -euo pipefail")[0]
    assert "examples/gpu_check.sh" in header and "leaderboard/pages/gpu" in header


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: ") and line.endswith(".") and line.count(". ") == 0, line
    return line


def test_script_without_a_gpu_exits_2_in_one_sentence(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides any GPU from torch, so this holds on a GPU machine too.
    done = run_command([str(SCRIPT)], env={"CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable,
                                           "GPU_CHECK_OUT": str(tmp_path / "out")}, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs a CUDA GPU" in one_sentence(done.stderr)
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_script_checks_torch_when_nvidia_smi_finds_a_gpu(tmp_path):
    """nvidia-smi lists a GPU that torch cannot use: the script still refuses, naming torch."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'GPU 0: Not A Real GPU (UUID: GPU-0)'\n")
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": "",
           "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path / "out")}
    done = run_command([str(SCRIPT)], env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "torch.cuda.is_available() is False" in one_sentence(done.stderr)


def test_gpu_sweep_file_plans_the_four_minis_three_seeds():
    done = run_command([sys.executable, "-m", "bench.sweep", "sweeps/gpu.toml", "--dry-run"], timeout=120)
    assert done.returncode == 0, done.stderr
    planned = [line for line in done.stdout.splitlines() if "would run" in line]
    assert len(planned) == 12, done.stdout
    for family in ("gmlp", "resmlp", "mixer", "vit"):
        runs = [line for line in planned if f"--model {family} " in line]
        assert len(runs) == 3 and all("--task fashion-mnist" in r and "--size mini" in r for r in runs)
        assert {r.split("--seed ")[1].split()[0] for r in runs} == {"0", "1", "2"}
    assert all("--precision bf16" in line for line in planned)


# --------------------------------------------------------------------------- timm comparison, tiny, on CPU

TINY = ["--device", "cpu", "--precision", "fp32", "--image-size", "32", "--batch-size", "2", "--num-classes", "10",
        "--rounds", "2", "--warmup", "1", "--steps", "1", "--repeats", "1", "--latency-samples", "1",
        "--peak-gemm-size", "64"]


@pytest.mark.slow
def test_timm_compare_runs_tiny_on_cpu_and_writes_ratios(tmp_path):
    out = tmp_path / "compare.json"
    # one of ours by our name, one by timm's
    done = run_command([sys.executable, "-m", "bench.timm_compare", *TINY, "--models", "mixer-s16",
                        "vit_small_patch16_224", "--json", str(out)], timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name, timm_name in (("mixer-s16", "mixer_s16_224"), ("vit-s", "vit_small_patch16_224")):
        [line] = [line for line in lines if line.startswith(f"{name} vs {timm_name} ")]
        assert "inference ours" in line and "training ours" in line and "fp32 MFU" in line
        assert line.count("ratio ") == 2
        rounds = [line for line in lines if line.startswith(f"  {name} round ")]
        assert len(rounds) == 2 and "(ours first)" in rounds[0] and "(timm first)" in rounds[1]  # interleaved
        [row] = [line.split() for line in lines if line.startswith(f"{name} ") and " vs " not in line]  # the table
        assert len(row) == 9 and all(float(cell) > 0 for cell in row[1:])
    payload = json.loads(out.read_text())
    assert payload["environment"]["device_type"] == "cpu"
    assert payload["settings"]["batch_size"] == 2
    assert [m["name"] for m in payload["models"]] == ["mixer-s16", "vit-s"]
    for entry in payload["models"]:
        assert "error" not in entry
        for phase in ("infer", "train"):
            assert entry["ratio"][phase] > 0
            assert entry["ours_samples_per_s"][phase] > 0 and entry["timm_samples_per_s"][phase] > 0
            assert entry["ratio"][phase] == pytest.approx(
                entry["ours_samples_per_s"][phase] / entry["timm_samples_per_s"][phase])
            assert entry["mfu"][phase] > 0
        assert entry["mfu"]["peak_source"] == "measured-gemm:64"
        assert entry["params"] > 1e7 and entry["ours_batch_sizes"] == [2]
        assert [r["first"] for r in entry["rounds"]] == ["ours", "timm"]


def test_timm_compare_refuses_unknown_models_in_one_sentence():
    done = run_command([sys.executable, "-m", "bench.timm_compare", "--models", "resnet50", "--device", "cpu"], timeout=120)
    assert done.returncode == 2
    assert "Unknown model 'resnet50'" in one_sentence(done.stderr)


def test_every_pair_matches_timm_in_parameters():
    """The comparison's timm side has our model's shape (at 224 px, 1000 classes): same parameter count."""
    from bench.models import create_model
    from bench.studies.timm_compare import PAIRS, timm_model
    from bench.core.spec import TaskSpec

    spec = TaskSpec("imagenet", "image", "top1", image_size=(3, 224, 224), num_classes=1000)
    assert {p.name for p in PAIRS} == {"mixer-s16", "gmlp-s", "resmlp-s12", "vit-s", "mixer-b16", "gmlp-b",
                                       "resmlp-b24", "vit-b"}
    for pair in PAIRS:
        with torch.device("meta"):
            ours = sum(p.numel() for p in create_model(pair.family, pair.size, spec).parameters())
            theirs = sum(p.numel() for p in timm_model(pair, 224, 1000).parameters())
        assert ours == theirs, pair.name


# --------------------------------------------------------------------------- on a CUDA GPU

BENCH = ["--task", "imagenet", "--mode", "bench", "--precision", "bf16", "--bench-warmup-steps", "1",
         "--bench-steps", "2", "--bench-repeats", "2", "--latency-samples", "5"]


def bench_result(tmp_path, *argv) -> dict:
    done = run_command([sys.executable, "-m", "bench.run", *BENCH, *argv, "--output-dir", str(tmp_path)], timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    [path] = tmp_path.glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.gpu
@needs_cuda
def test_bench_mode_records_cuda_memory(tmp_path):
    result = bench_result(tmp_path, "--model", "mixer", "--size", "s16", "--batch-size", "32")
    assert result["status"] == "ok"
    assert result["environment"]["device_type"] == "cuda"
    memory = result["memory"]
    assert memory["kind"] == "cuda"
    assert memory["train_peak_mb"] > 0 and memory["infer_peak_mb"] > 0
    assert memory["train_reserved_mb"] >= memory["train_peak_mb"]
    assert memory["train_peak_mb"] > memory["infer_peak_mb"]  # gradients, optimizer state, activations kept
    assert result["throughput"]["inputs"] == "synthetic"
    assert result["mfu"]["train"] > 0


def record_dtypes(model) -> list:
    """(training, dtype) of every Linear output of `model` (and of deep copies of it) from now on."""
    seen = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda m, inputs, output: seen.append((m.training, output.dtype)))
    return seen


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def mini_mixer_and_batch(n=8):
    from bench.core.config import DataConfig
    from bench.models import create_model
    from tasks import create_task

    task = create_task("digits")
    spec = task.spec(DataConfig())
    torch.manual_seed(0)
    model = create_model("mixer", "mini", spec).cuda()
    batch = tuple(t.cuda() for t in task.synthetic_batch(spec, n, torch.Generator().manual_seed(0)))
    return task, model, batch


@pytest.fixture
def fresh_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_reaches_the_model_in_measurement(precision):
    from bench.core.config import MeasureConfig
    from bench.measure.timing import measure_model

    task, model, batch = mini_mixer_and_batch()
    seen = record_dtypes(model)  # forward hooks are copied with the model measure_model deep-copies
    cfg = MeasureConfig(bench_warmup_steps=1, bench_steps=2, bench_repeats=2, latency_samples=3)
    result = measure_model(model, batch, task.loss, task.loss, lambda p: torch.optim.AdamW(p, lr=1e-3), cfg,
                           precision, torch.device("cuda"))
    assert result["memory"]["kind"] == "cuda"
    assert {training for training, _ in seen} == {True, False}  # inference and training both ran
    assert {dtype for _, dtype in seen} == {DTYPES[precision]}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_reaches_the_model_in_a_training_step(precision, fresh_accelerate):
    """As bench.runs.phases.make_accelerator builds the Accelerator and bench.training.loop.train steps: the
    prepared model autocasts."""
    from accelerate import Accelerator

    from bench.runs.phases import MIXED_PRECISION

    task, model, batch = mini_mixer_and_batch()
    accelerator = Accelerator(mixed_precision=MIXED_PRECISION[precision])
    assert accelerator.native_amp
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    seen = record_dtypes(model)
    model.train()
    with accelerator.accumulate(model):
        loss = task.loss(model, batch)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert torch.isfinite(loss)
    assert seen and {dtype for _, dtype in seen} == {DTYPES[precision]}
    assert next(accelerator.unwrap_model(model).parameters()).dtype == torch.float32  # weights stay fp32


@pytest.mark.gpu
@needs_cuda
def test_training_loader_uses_pinned_memory(fresh_accelerate):
    from accelerate import Accelerator, DataLoaderConfiguration

    from bench.core.config import DataConfig, OptimConfig
    from bench.training.loop import make_loaders
    from tasks import create_task

    data_cfg = DataConfig()
    data = create_task("digits").load(data_cfg, 0)
    train_loader, eval_loader = make_loaders(data, OptimConfig(batch_size=16), data_cfg)
    assert train_loader.pin_memory and eval_loader.pin_memory
    images, labels = next(iter(train_loader))
    assert images.is_pinned() and labels.is_pinned()
    # bench.runs.phases.make_accelerator's Accelerator: the prepared loader keeps pinning and copies without blocking
    accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=0,
                                                                         non_blocking=True))
    prepared = accelerator.prepare(train_loader)
    assert prepared.pin_memory
    images, labels = next(iter(prepared))
    assert images.device.type == "cuda" and labels.device.type == "cuda"


@pytest.mark.gpu
@needs_cuda
def test_bench_mode_halves_the_batch_on_a_real_cuda_out_of_memory(tmp_path):
    # 2^20 ImageNet images are 630 GB in fp32 before the model even starts: no GPU holds them.
    huge = 2**20
    result = bench_result(tmp_path, "--model", "vit", "--size", "b", "--batch-size", "8", "--bench-batch-size",
                          str(huge), "--bench-warmup-steps", "0", "--bench-steps", "1", "--bench-repeats", "1",
                          "--latency-samples", "1")
    assert result["status"] == "ok", result["error"]
    throughput = result["throughput"]
    assert throughput["requested_batch_size"] == huge
    assert throughput["oom_retries"] > 0
    assert 1 <= throughput["batch_size"] < huge
    assert throughput["batch_size"] == huge >> throughput["oom_retries"]
    assert result["memory"]["kind"] == "cuda"
