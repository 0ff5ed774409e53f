"""bench.measure.timing: FLOP counts against hand counts, OOM retry, memory, throughput, latency, MFU."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import MixerBlock, MlpMixer
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from bench.measure import timing as measure
from bench.core.config import MeasureConfig
from bench.core.errors import UserError
from bench.measure.timing import LoopTimer, PeakMemory, count_flops, count_params, measure_model, resize_batch

CPU = torch.device("cpu")
FAST = MeasureConfig(bench_warmup_steps=1, bench_steps=2, bench_repeats=3, latency_samples=20, peak_gemm_size=1024)


pytestmark = pytest.mark.usefixtures("one_thread")


def classify(model, batch):
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def forward(model, batch):
    return model(batch[0])


def adamw(params):
    return torch.optim.AdamW(params, lr=1e-3)


def tiny_mixer():
    torch.manual_seed(0)
    return MlpMixer(num_classes=10, img_size=16, patch_size=4, num_blocks=2, embed_dim=32)


def image_batch(n=8):
    return torch.randn(n, 3, 16, 16), torch.randint(0, 10, (n,))


# --------------------------------------------------------------------------- FLOPs


def test_linear_flops_match_hand_count():
    batch, n_in, n_out = 4, 24, 10
    x = torch.randn(batch, n_in)
    lone = count_flops(nn.Linear(n_in, n_out), (x,), lambda m, b: m(b[0]).sum(), forward)
    assert lone["forward_per_sample"] == 2 * n_in * n_out
    # Backward computes the weight gradient, as many FLOPs as the forward; the batch's input
    # needs no gradient, so a first layer stops there.
    assert lone["train_per_sample"] == 2 * (2 * n_in * n_out)
    # A layer whose input does need a gradient computes it too: 3x its forward.
    stacked = count_flops(nn.Sequential(nn.Linear(n_in, n_in), nn.Linear(n_in, n_out)), (x,),
                          lambda m, b: m(b[0]).sum(), forward)
    assert stacked["forward_per_sample"] == 2 * n_in * n_in + 2 * n_in * n_out
    assert stacked["train_per_sample"] == 2 * (2 * n_in * n_in) + 3 * (2 * n_in * n_out)


def test_mixer_block_flops_match_hand_count():
    tokens, dim = 16, 32
    block = MixerBlock(dim, tokens)  # token MLP hidden dim/2, channel MLP hidden 4*dim
    token_mlp = 2 * (2 * dim * tokens * (dim // 2))  # two matmuls, over each of `dim` channels
    channel_mlp = 2 * (2 * tokens * dim * (4 * dim))  # two matmuls, over each of `tokens` tokens
    x = torch.randn(3, tokens, dim)
    flops = count_flops(block, (x,), lambda m, b: m(b[0]).sum(), forward)
    assert flops["forward_per_sample"] == token_mlp + channel_mlp
    # norm1 has weights, so even the first matmul needs its input gradient: 3x throughout.
    assert flops["train_per_sample"] == 3 * (token_mlp + channel_mlp)


def test_vit_flops_include_attention():
    dim, depth, patches = 64, 2, (32 // 4) ** 2
    tokens = patches + 1  # + class token
    model = VisionTransformer(img_size=32, patch_size=4, embed_dim=dim, depth=depth, num_heads=2, num_classes=10)
    flops = count_flops(model, (torch.randn(2, 3, 32, 32),), lambda m, b: m(b[0]).sum(), forward)
    linear = depth * tokens * 2 * (12 * dim * dim)  # qkv 3C^2, proj C^2, MLP 8C^2 per token
    attention = depth * 2 * (2 * tokens * tokens * dim)  # q @ k^T and attn @ v
    patch_embed = patches * 2 * (3 * 4 * 4) * dim
    head = 2 * dim * 10
    assert flops["forward_per_sample"] == linear + attention + patch_embed + head


def test_count_params_counts_shared_weights_once():
    layer = nn.Linear(5, 5)
    assert count_params(nn.Sequential(layer, layer)) == 30


# --------------------------------------------------------------------------- batches


def test_resize_batch_slices_and_cycles_dicts_and_tuples():
    batch = {"ids": torch.arange(6).view(3, 2), "mask": torch.ones(2), "n": 3}
    small = resize_batch(batch, 2)
    assert small["ids"].tolist() == [[0, 1], [2, 3]]
    assert small["mask"].shape == (2,) and small["n"] == 3  # not per-sample: passed through
    big = resize_batch((torch.arange(3), torch.arange(3) * 10), 5)
    assert big[0].tolist() == [0, 1, 2, 0, 1] and big[1].tolist() == [0, 10, 20, 0, 10]


# --------------------------------------------------------------------------- measure_model


@pytest.fixture(scope="module")
def measured():
    model = tiny_mixer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = measure_model(model, image_batch(), classify, forward, adamw, FAST, "fp32", CPU, tokens_per_sample=16)
    return model, before, result


def test_result_has_exactly_the_schema_keys(measured):
    _, _, result = measured
    assert set(result) == {"flops", "throughput", "latency_ms", "memory", "mfu"}
    assert set(result["flops"]) == {"forward_per_sample", "train_per_sample"}
    assert set(result["throughput"]) == {
        "batch_size", "requested_batch_size", "oom_retries",
        "infer_samples_per_s", "train_samples_per_s", "infer_tokens_per_s", "train_tokens_per_s",
        "infer_spread", "train_spread", "loop_samples_per_s", "data_wait_fraction", "stable", "unstable_reason",
        "remeasured",
    }
    assert set(result["latency_ms"]) == {"p50", "p90", "p99"}
    assert set(result["memory"]) == {"kind", "train_peak_mb", "infer_peak_mb", "train_reserved_mb", "infer_reserved_mb"}
    assert set(result["mfu"]) == {"train", "infer", "peak_flops", "peak_source", "note"}


def test_throughput_is_positive_and_tokens_scale_with_samples(measured):
    _, _, result = measured
    t = result["throughput"]
    assert t["batch_size"] == t["requested_batch_size"] == 8 and t["oom_retries"] == 0
    assert t["infer_samples_per_s"] > 0 and t["train_samples_per_s"] > 0
    assert t["infer_tokens_per_s"] == pytest.approx(16 * t["infer_samples_per_s"])
    assert t["train_tokens_per_s"] == pytest.approx(16 * t["train_samples_per_s"])
    assert t["infer_spread"] >= 0 and t["train_spread"] >= 0


def test_latency_percentiles_are_ordered(measured):
    _, _, result = measured
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]


def test_memory_is_the_models_own_on_cpu(measured):
    model, _, result = measured
    memory = result["memory"]
    assert memory["kind"] == "cpu_tensors"
    params_mb = count_params(model) * 4 / 2**20
    # Inference: the weights and the activations, not the process (hundreds of MB of libraries).
    assert params_mb < memory["infer_peak_mb"] < 10 * params_mb
    # Training: weights, gradients and AdamW's two moments at least, and the activations.
    assert 4 * params_mb < memory["train_peak_mb"] < 20 * params_mb
    assert memory["infer_peak_mb"] < memory["train_peak_mb"]
    assert memory["train_reserved_mb"] is None and memory["infer_reserved_mb"] is None


def test_mfu_is_a_plausible_fraction_of_the_measured_gemm(measured):
    _, _, result = measured
    mfu = result["mfu"]
    assert mfu["peak_source"] == "measured-gemm:1024" and mfu["peak_flops"] > 1e8
    assert 0 < mfu["infer"] < 1.5 and 0 < mfu["train"] < 1.5
    flops, throughput = result["flops"], result["throughput"]
    assert mfu["train"] == pytest.approx(flops["train_per_sample"] * throughput["train_samples_per_s"] / mfu["peak_flops"])


def test_the_measured_model_is_left_untouched(measured):
    model, before, _ = measured
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_bench_batch_size_grows_the_batch():
    cfg = MeasureConfig(bench_warmup_steps=0, bench_steps=1, bench_repeats=1, latency_samples=1,
                        bench_batch_size=12, peak_gemm_size=64)
    result = measure_model(tiny_mixer(), image_batch(4), classify, forward, adamw, cfg, "fp32", CPU)
    assert result["throughput"]["batch_size"] == result["throughput"]["requested_batch_size"] == 12


# --------------------------------------------------------------------------- OOM


def oom_above(limit, seen):
    def loss_fn(model, batch):
        seen.append(len(batch[0]))
        if len(batch[0]) > limit:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return classify(model, batch)

    return loss_fn


def test_oom_halves_the_batch_until_it_fits():
    cfg = MeasureConfig(bench_warmup_steps=0, bench_steps=1, bench_repeats=1, latency_samples=1, peak_gemm_size=64)
    seen = []
    result = measure_model(tiny_mixer(), image_batch(16), oom_above(3, seen), forward, adamw, cfg, "fp32", CPU)
    t = result["throughput"]
    assert (t["batch_size"], t["requested_batch_size"], t["oom_retries"]) == (2, 16, 3)
    assert seen[:3] == [16, 8, 4] and set(seen[3:]) == {2}


def test_oom_at_batch_one_propagates():
    cfg = MeasureConfig(bench_warmup_steps=0, bench_steps=1, bench_repeats=1, latency_samples=1, peak_gemm_size=64)
    seen = []
    with pytest.raises(torch.OutOfMemoryError):
        measure_model(tiny_mixer(), image_batch(4), oom_above(0, seen), forward, adamw, cfg, "fp32", CPU)
    assert seen == [4, 2, 1]


def test_oom_propagates_at_the_requested_batch_when_smaller_batches_are_refused():
    cfg = MeasureConfig(bench_warmup_steps=0, bench_steps=1, bench_repeats=1, latency_samples=1, peak_gemm_size=64)
    seen = []
    with pytest.raises(torch.OutOfMemoryError):
        measure_model(tiny_mixer(), image_batch(4), oom_above(1, seen), forward, adamw, cfg, "fp32", CPU,
                      retry_smaller=False)
    assert seen == [4]


def test_other_errors_are_not_retried():
    calls = []

    def broken(model, batch):
        calls.append(len(batch[0]))
        raise ValueError("a real bug")

    with pytest.raises(ValueError, match="a real bug"):
        measure_model(tiny_mixer(), image_batch(8), broken, forward, adamw, FAST, "fp32", CPU)
    assert calls == [8]


# --------------------------------------------------------------------------- compile, channels_last


def test_compile_and_channels_last_apply_to_the_measured_copy(monkeypatch):
    compiled, layouts = [], []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)  # the real one takes a minute on CPU
    monkeypatch.setattr(measure, "MAX_REMEASURES", 0)  # one measurement, however noisy the machine

    def forward_noting_layout(model, batch):
        layouts.append(batch[0].is_contiguous(memory_format=torch.channels_last))
        return model(batch[0])

    model = tiny_mixer()
    cfg = MeasureConfig(bench_warmup_steps=0, bench_steps=1, bench_repeats=1, latency_samples=1,
                        compile=True, channels_last=True, peak_gemm_size=64)
    measure_model(model, image_batch(), classify, forward_noting_layout, adamw, cfg, "fp32", CPU)
    assert len(compiled) == 2 and all(m is not model for m in compiled)  # inference and training
    assert compiled[0].stem.proj.weight.is_contiguous(memory_format=torch.channels_last)
    assert layouts and all(layouts)
    assert model.stem.proj.weight.is_contiguous()  # the original keeps its layout


# --------------------------------------------------------------------------- memory


def mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                         nn.Linear(width, 10))


def vector_batch(n=32):
    return torch.randn(n, 16), torch.randint(0, 10, (n,))


def cpu_memory(model, batch=None) -> dict:
    cfg = MeasureConfig(bench_warmup_steps=2, bench_steps=1, bench_repeats=1, latency_samples=1, peak_gemm_size=64)
    return measure_model(model, batch or vector_batch(), classify, forward, adamw, cfg, "fp32", CPU)["memory"]


def test_cpu_memory_grows_with_the_model():
    """Four times the parameters (the width x width layer dominates), at least three times the memory."""
    small, large = mlp(256), mlp(512)
    assert count_params(large) > 3.5 * count_params(small)
    small_mb, large_mb = cpu_memory(small), cpu_memory(large)
    assert large_mb["train_peak_mb"] >= 3 * small_mb["train_peak_mb"]
    assert large_mb["infer_peak_mb"] >= 3 * small_mb["infer_peak_mb"]
    for memory in (small_mb, large_mb):
        assert memory["infer_peak_mb"] < memory["train_peak_mb"]


def test_cpu_memory_does_not_depend_on_what_the_process_held_before():
    alone = cpu_memory(mlp(256))
    held = torch.ones(64 * 2**18)  # 64 MB, live through the measurement
    beside = cpu_memory(mlp(256))
    del held
    assert beside == alone


def train_steps_peak_mb(make_optimizer, warmup_steps: int) -> tuple[float, float]:
    """Peak MB of two training steps of mlp(256) taken after `warmup_steps`, and its parameter MB."""
    model = mlp(256)
    images, labels = vector_batch()
    optimizer = make_optimizer(model.parameters())

    def step():
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup_steps):
        step()
    with PeakMemory(CPU) as memory:
        step()
        step()
    return memory.peak_mb, count_params(model) * 4 / 2**20


def test_cpu_memory_counts_the_optimizer_state_whenever_it_was_made():
    """AdamW makes its two moments at its first step; made inside the block or before it, they count."""
    sgd = lambda params: torch.optim.SGD(params, lr=0.1)  # noqa: E731  (no state)
    adam_inside, params_mb = train_steps_peak_mb(adamw, warmup_steps=0)
    adam_before, _ = train_steps_peak_mb(adamw, warmup_steps=2)
    sgd_inside, _ = train_steps_peak_mb(sgd, warmup_steps=0)
    sgd_before, _ = train_steps_peak_mb(sgd, warmup_steps=2)
    assert adam_before == adam_inside and sgd_before == sgd_inside
    # SGD: weights, gradients and the activations of a 32-sample batch (under a tenth of the weights).
    assert 2 * params_mb < sgd_inside < 2.5 * params_mb
    # AdamW: its two moments more, and the temporaries of its update.
    assert adam_inside - sgd_inside > 1.95 * params_mb


def test_cpu_peak_is_per_block_and_counts_only_what_the_block_touches():
    untouched = torch.ones(32 * 2**18)  # 32 MB the blocks never use

    def block(allocate_mb):
        with PeakMemory(CPU) as memory:
            x = torch.ones(allocate_mb * 2**18)  # 4-byte floats
            del x
        return memory.peak_mb

    small_before, big, small_after = block(1), block(64), block(1)
    assert small_before == small_after == pytest.approx(1)
    assert big == pytest.approx(64)  # an earlier, larger block does not hide a later one, nor the reverse
    with PeakMemory(CPU) as memory:
        untouched.sum()
    assert memory.peak_mb == pytest.approx(32, abs=0.01)  # now it is used: counted
    assert memory.kind == "cpu_tensors"


# --------------------------------------------------------------------------- MFU peak table


@pytest.mark.parametrize(
    "name, precision, tf32, expected",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", False, (989.4e12, "table:H100 SXM")),
        ("NVIDIA H100 PCIe", "fp32", True, (378e12, "table:H100 PCIe")),
        ("NVIDIA H100 PCIe", "fp32", False, (51.2e12, "table:H100 PCIe")),
        ("NVIDIA A100-SXM4-80GB", "fp16", False, (312e12, "table:A100")),
        ("NVIDIA L4", "bf16", False, (121e12, "table:L4")),
        ("NVIDIA L40S", "bf16", False, None),  # not an L4
        ("Tesla T4", "bf16", False, None),  # no bf16 tensor cores: measured instead
        ("Tesla V100-SXM2-16GB", "fp32", True, (15.7e12, "table:V100 SXM2")),  # no TF32 before Ampere
    ],
)
def test_gpu_peak_table(name, precision, tf32, expected):
    assert measure.table_peak_flops(name, precision, tf32) == expected


# --------------------------------------------------------------------------- LoopTimer


def test_loop_timer_splits_data_wait_from_compute():
    def slow_loader():
        for _ in range(5):
            time.sleep(0.03)
            yield torch.zeros(4, 2)

    timer = LoopTimer()
    for _ in timer.batches(slow_loader()):
        time.sleep(0.03)
    summary = timer.summary()
    assert timer.samples == 20
    assert 0.3 < summary["data_wait_fraction"] < 0.7
    assert 4 / 0.06 / 3 < summary["loop_samples_per_s"] <= 4 / 0.06  # sleeps never end early


def test_loop_timer_does_not_count_a_step_left_with_break():
    timer = LoopTimer()
    for i, _ in enumerate(timer.batches([torch.zeros(3)] * 10)):
        if i == 2:
            break
    assert timer.samples == 6


# --------------------------------------------------------------------------- clocks


def test_process_clock_does_not_count_time_the_process_waits():
    """A step that mostly sleeps, as a step on a busy machine mostly waits for a core."""
    a = torch.randn(256, 256)

    def step():
        time.sleep(0.02)
        a @ a

    cfg = MeasureConfig(bench_steps=3, bench_repeats=2)
    wall = measure.timed_rates(step, 1, cfg, CPU, clock=measure.CLOCKS["wall"])
    process = measure.timed_rates(step, 1, cfg, CPU, clock=measure.CLOCKS["process"])
    assert max(wall) < 1 / 0.02  # the sleep counts
    assert min(process) > 5 * max(wall)  # it does not


def test_process_clock_is_refused_with_several_threads():
    torch.set_num_threads(2)  # the one_thread fixture restores the count
    cfg = MeasureConfig(bench_clock="process")
    with pytest.raises(UserError, match=r"^--bench-clock process times CPU runs with one thread \(OMP_NUM_THREADS=1\), "
                                         r"but this run uses cpu with 2 threads\.$"):
        measure_model(tiny_mixer(), image_batch(), classify, forward, adamw, cfg, "fp32", CPU)
    with pytest.raises(UserError, match="but this run uses cuda with 2 threads"):
        measure.check_clock(cfg, torch.device("cuda"))
    measure.check_clock(MeasureConfig(bench_clock="wall"), torch.device("cuda"))  # wall time is always fine


def test_process_clock_measures_a_single_threaded_run():
    cfg = MeasureConfig(bench_warmup_steps=1, bench_steps=2, bench_repeats=2, latency_samples=5, peak_gemm_size=64,
                        bench_clock="process")
    result = measure_model(tiny_mixer(), image_batch(), classify, forward, adamw, cfg, "fp32", CPU)
    assert result["throughput"]["infer_samples_per_s"] > result["throughput"]["train_samples_per_s"] > 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [
        ("bench_batch_size", 0),
        ("bench_warmup_steps", -1),
        ("bench_steps", 0),
        ("bench_repeats", 0),
        ("latency_samples", 0),
        ("peak_gemm_size", 8),
        ("bench_clock", "cpu"),
    ],
)
def test_measure_config_rejects_bad_values_with_a_sentence(field, value):
    with pytest.raises(UserError) as error:
        MeasureConfig(**{field: value})
    message = str(error.value)
    assert message.startswith("--" + field.replace("_", "-")) and message.endswith(".")
    assert str(value) in message


# --------------------------------------------------------------------------- two processes

TWO_PROCESS_SCRIPT = """
import json, sys
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from timm.models.mlp_mixer import MlpMixer
from bench.core.config import MeasureConfig
from bench.measure.timing import measure_model

torch.set_num_threads(1)
accelerator = Accelerator()
if sys.argv[2] == "rank1-disagrees":
    # Latency is timed per process, so one process can find a measurement inconsistent alone.
    import bench.measure.timing
    verdict = None if accelerator.process_index == 0 else "rank 1's own verdict"
    bench.measure.timing.inconsistency = lambda *args: verdict
torch.manual_seed(0)
model = MlpMixer(num_classes=10, img_size=16, patch_size=4, num_blocks=2, embed_dim=32)
batch = (torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,)))
cfg = MeasureConfig(bench_warmup_steps=1, bench_steps=2, bench_repeats=2, latency_samples=2, peak_gemm_size=64)
result = measure_model(model, batch, lambda m, b: F.cross_entropy(m(b[0]), b[1]), lambda m, b: m(b[0]),
                       lambda p: torch.optim.AdamW(p), cfg, "fp32", accelerator.device, accelerator=accelerator)
# One file per process: two processes printing to one pipe can interleave their lines.
with open(sys.argv[1] + f".rank{accelerator.process_index}.json", "w") as f:
    json.dump({"processes": accelerator.num_processes, **result["throughput"]}, f)
"""


def _run_two_processes(tmp_path, mode: str) -> list[dict]:
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS_SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script),
         str(tmp_path / "out"), mode],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads((tmp_path / f"out.rank{rank}.json").read_text()) for rank in (0, 1)]
    assert len(results) == 2 and all(r["processes"] == 2 for r in results)
    return results


@pytest.mark.slow
def test_two_processes_report_one_global_throughput(tmp_path):
    results = _run_two_processes(tmp_path, "plain")
    # Gathered and summed: both processes hold the same global figures.
    assert results[0]["train_samples_per_s"] == results[1]["train_samples_per_s"] > 0
    assert results[0]["infer_samples_per_s"] == results[1]["infer_samples_per_s"] > 0


@pytest.mark.slow
def test_two_processes_measure_again_together_or_not_at_all(tmp_path):
    """A process that judged a measurement bad alone would time a repeat the other never joins, and
    the run would hang or crash in its collectives; the main process's verdict holds for both."""
    results = _run_two_processes(tmp_path, "rank1-disagrees")
    assert [r["remeasured"] for r in results] == [0, 0]
    assert [r["stable"] for r in results] == [True, True]


def test_an_inconsistent_measurement_is_taken_again_then_flagged(monkeypatch, capsys):
    """Training faster than inference cannot be true: measured again, then recorded as unstable."""
    import bench.measure.timing as measure

    calls = []

    def forced(size, *args):
        calls.append(size)
        phase = {"spread": 0.01, "peak_mb": 1.0, "reserved_mb": None}
        flops = {"forward_per_sample": 1.0, "train_per_sample": 3.0}
        return flops, {**phase, "samples_per_s": 100.0}, {**phase, "samples_per_s": 300.0}, {"p50": 1, "p90": 1, "p99": 1}

    monkeypatch.setattr(measure, "_measure_at", forced)
    monkeypatch.setattr(measure, "peak_flops", lambda *a, **k: (1e9, "table:test"))
    out = measure.measure_model(torch.nn.Linear(2, 2), torch.zeros(4, 2), None, None, None,
                                MeasureConfig(), "fp32", torch.device("cpu"))
    assert len(calls) == 1 + measure.MAX_REMEASURES
    assert out["throughput"]["stable"] is False and out["throughput"]["remeasured"] == measure.MAX_REMEASURES
    assert "faster than inference" in out["throughput"]["unstable_reason"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: unstable measurement")


@pytest.mark.parametrize("infer, train, p50, spread, bad", [
    (100.0, 30.0, 5.0, 0.01, None),
    (100.0, 30.0, 5.0, 0.40, "spread"),
    (100.0, 30.0, 500.0, 0.01, "latency"),
])
def test_consistency_rules(infer, train, p50, spread, bad):
    from bench.measure.timing import inconsistency

    why = inconsistency({"samples_per_s": infer, "spread": spread}, {"samples_per_s": train, "spread": 0.01},
                        {"p50": p50}, batch_size=32)
    assert (why is None) if bad is None else (bad in why)
