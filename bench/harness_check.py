"""Check the measurement harness against a bare timing loop, and report MFU on this device.

For each of the four vision families (timm's MlpMixer with gMLP / ResMLP / Mixer blocks, and a
VisionTransformer), at a small size, it times inference and training throughput twice per round:
once through `bench.measure.measure_model`, once with a bare `torch.utils.benchmark.Timer` loop on
the same model and batch. Rounds interleave the two, so drift in the machine's speed hits both
alike; the ratio harness / bare of the medians should be within a few percent of 1.

Then, on the embedded image default (digits), it compares the real training loop (`bench.loop.train`:
data loading, gradient clipping, scheduler and progress bar included) with a bare training step on
a batch from the same loader, interleaved the same way; the ratio shows whether data is a bottleneck.

Last, it measures MFU for Mixer and ResMLP at a large batch against the device's peak (on CPU a
GEMM timed in the same run), with the share of step time spent in matmuls, which bounds the MFU.

    python bench/harness_check.py --batch-size 64
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import GatedMlp
from timm.models.mlp_mixer import Affine, MixerBlock, MlpMixer, ResBlock, SpatialGatingBlock
from timm.models.vision_transformer import VisionTransformer
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

if __package__ in (None, ""):  # run as a script: make the suite importable from a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.config import MeasureConfig  # noqa: E402
from bench.measure import measure_model  # noqa: E402

IMG, PATCH, CLASSES = 32, 4, 10

MODELS = {
    "gmlp": lambda width, depth: MlpMixer(
        num_classes=CLASSES, img_size=IMG, patch_size=PATCH, num_blocks=depth, embed_dim=width,
        mlp_ratio=6, block_layer=SpatialGatingBlock, mlp_layer=GatedMlp,
    ),
    "resmlp": lambda width, depth: MlpMixer(
        num_classes=CLASSES, img_size=IMG, patch_size=PATCH, num_blocks=depth, embed_dim=width,
        mlp_ratio=4, block_layer=partial(ResBlock, init_values=0.1), norm_layer=Affine,
    ),
    "mixer": lambda width, depth: MlpMixer(
        num_classes=CLASSES, img_size=IMG, patch_size=PATCH, num_blocks=depth, embed_dim=width,
        block_layer=MixerBlock,
    ),
    "vit": lambda width, depth: VisionTransformer(
        num_classes=CLASSES, img_size=IMG, patch_size=PATCH, depth=depth, embed_dim=width, num_heads=width // 64,
    ),
}
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def loss_fn(model, batch):
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def infer_fn(model, batch):
    return model(batch[0])


def make_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3)


def image_batch(n: int):
    return torch.randn(n, 3, IMG, IMG), torch.randint(0, CLASSES, (n,))


def bare_rates(model, batch, cfg: MeasureConfig) -> tuple[float, float]:
    """Inference and training samples/s of a plain loop, median over the same repeats as the harness."""
    optimizer = make_optimizer(model.parameters())
    images, labels = batch

    def infer():
        with torch.inference_mode():
            model(images)

    def train():
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rates = []
    for mode, step in ((False, infer), (True, train)):
        model.train(mode)
        for _ in range(cfg.bench_warmup_steps):
            step()
        timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
        seconds = [timer.timeit(cfg.bench_steps).median for _ in range(cfg.bench_repeats)]
        rates.append(len(images) / statistics.median(seconds))
    return rates[0], rates[1]


def compare(name, width, depth, batch_size, rounds, cfg) -> tuple[float, float]:
    """Median over rounds of harness / bare samples/s, for inference and training."""
    model = MODELS[name](width, depth)
    batch = image_batch(batch_size)
    harness, bare = [], []
    for _ in range(rounds):
        t = measure_model(model, batch, loss_fn, infer_fn, make_optimizer, cfg, "fp32", torch.device("cpu"))["throughput"]
        harness.append((t["infer_samples_per_s"], t["train_samples_per_s"]))
        # A fresh copy and optimizer, as the harness takes: both start from the same state.
        bare.append(bare_rates(copy.deepcopy(model), batch, cfg))
    # Each round's ratio pairs two measurements taken moments apart, so drift in the machine's
    # speed cancels out of it; the median over rounds discards the rounds a burst of load hit.
    # Load only ever slows a round down, so the fastest rounds' ratio is shown beside it.
    line = [f"{name:7s}"]
    ratios = []
    for i, phase in enumerate(("infer", "train")):
        per_round = [h[i] / b[i] for h, b in zip(harness, bare)]
        ratios.append(statistics.median(per_round))
        fastest = max(h[i] for h in harness) / max(b[i] for b in bare)
        line.append(
            f"{phase} {statistics.median(h[i] for h in harness):8.1f} vs {statistics.median(b[i] for b in bare):8.1f}"
            f" samples/s, ratio {ratios[-1]:.3f} (rounds {min(per_round):.2f}-{max(per_round):.2f},"
            f" fastest rounds {fastest:.3f})"
        )
    print(" | ".join(line), flush=True)
    return ratios[0], ratios[1]


def loop_vs_bare(family: str, rounds: int, steps: int, batch_size: int) -> float:
    """Median over rounds of the training loop's samples/s on digits / a bare training step's."""
    from accelerate import Accelerator

    import tasks  # noqa: F401  (registers every task)
    from bench import loop
    from bench.config import DataConfig, OptimConfig
    from bench.models import create_model
    from tasks.base import get_task

    task = get_task("digits")
    data_cfg, optim_cfg = DataConfig(), OptimConfig(batch_size=batch_size, max_steps=steps)
    task.configure(optim_cfg)
    data = task.load(data_cfg, seed=0)
    accelerator = Accelerator(step_scheduler_with_optimizer=False)
    model = create_model(family, "mini", data.spec)
    train_loader, _ = loop.make_loaders(data, optim_cfg, data_cfg)
    optimizer = torch.optim.AdamW(loop.param_groups(model, optim_cfg.weight_decay), lr=optim_cfg.lr)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    scheduler = accelerator.prepare(loop.make_scheduler(optimizer, optim_cfg, len(train_loader)))
    batch = next(iter(train_loader))

    def bare_step():
        task.loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    loop.train(accelerator, task, model, optimizer, scheduler, train_loader, optim_cfg)  # warm-up
    timer = Timer("step()", globals={"step": bare_step}, num_threads=torch.get_num_threads())
    in_loop, bare, waits = [], [], []
    for _ in range(rounds):
        summary = loop.train(accelerator, task, model, optimizer, scheduler, train_loader, optim_cfg).loop
        in_loop.append(summary["loop_samples_per_s"])
        waits.append(summary["data_wait_fraction"])
        bare.append(batch_size / timer.timeit(steps).median)
    per_round = [a / b for a, b in zip(in_loop, bare)]
    ratio = statistics.median(per_round)
    print(f"{family:7s} loop {statistics.median(in_loop):8.1f} vs bare step {statistics.median(bare):8.1f} samples/s,"
          f" ratio {ratio:.3f} (rounds {min(per_round):.2f}-{max(per_round):.2f}),"
          f" waiting for data {statistics.median(waits):.1%} of the loop", flush=True)
    return ratio


def matmul_share(model, batch) -> float:
    """Share of one training step's CPU time spent in matmuls, convolutions and attention kernels."""
    optimizer = make_optimizer(model.parameters())
    model.train()

    def train_step():
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_step()  # creates the optimizer state; profile a step that has it
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for the harness / bare comparison")
    parser.add_argument("--width", type=int, default=128, help="embedding width of every model")
    parser.add_argument("--depth", type=int, default=4, help="blocks in every model")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved harness / bare rounds per model (0 skips)")
    parser.add_argument("--loop-rounds", type=int, default=5, help="interleaved loop / bare rounds on digits per model (0 skips)")
    parser.add_argument("--loop-steps", type=int, default=20, help="training steps per loop round")
    parser.add_argument("--mfu-batch-size", type=int, default=512, help="batch size for the MFU measurement (0 skips it)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width}, depth {args.depth}, "
          f"{IMG}x{IMG} images, patch {PATCH}")

    # The GEMM peak is not part of this comparison; a small one keeps the rounds short.
    # One repeat per round: the rounds are the repeats, interleaved as finely as they can be.
    cfg = MeasureConfig(bench_warmup_steps=2, bench_steps=5, bench_repeats=1, latency_samples=5, peak_gemm_size=128)
    if args.rounds:
        print(f"\nharness / bare, batch {args.batch_size}, {args.rounds} interleaved rounds:")
        ratios = [r for name in MODELS for r in compare(name, args.width, args.depth, args.batch_size, args.rounds, cfg)]
        print(f"largest deviation of a ratio from 1: {max(abs(r - 1) for r in ratios):.1%}")

    if args.loop_rounds:
        print(f"\ntraining loop with data loading / bare training step, digits, batch {args.batch_size}:")
        ratios = [loop_vs_bare(name, args.loop_rounds, args.loop_steps, args.batch_size) for name in MODELS]
        print(f"lowest loop / bare ratio: {min(ratios):.3f}")

    if args.mfu_batch_size:
        cfg = MeasureConfig(bench_warmup_steps=2, bench_steps=5, bench_repeats=3, latency_samples=5)
        print(f"\nMFU at batch {args.mfu_batch_size}:")
        for name in ("mixer", "resmlp"):
            model = MODELS[name](args.width, args.depth)
            batch = image_batch(args.mfu_batch_size)
            mfu = measure_model(model, batch, loss_fn, infer_fn, make_optimizer, cfg, "fp32", torch.device("cpu"))["mfu"]
            print(f"{name:7s} infer {mfu['infer']:.1%}  train {mfu['train']:.1%}  of {mfu['peak_flops'] / 1e9:.1f}"
                  f" GFLOP/s ({mfu['peak_source']}); matmul share of a training step's time"
                  f" {matmul_share(model, batch):.0%}", flush=True)


if __name__ == "__main__":
    main()
