"""Check the measurement harness against a bare timing loop, and report MFU on this device.

For each of the four vision families (timm's MlpMixer with gMLP / ResMLP / Mixer blocks, and a
VisionTransformer), at a small size, it times inference and training throughput as `measure_model`
does (the steps of `bench.measure.phase_steps` in the loop of `bench.measure.timed_rates`) and with
a bare `torch.utils.benchmark.Timer` loop on the same model and batch, in many short pairs, back to
back, in random order; the median of the ratios harness / bare, with a bootstrap interval, should
be within a few percent of 1. By default both sides run one thread and time this process's CPU
time (`--bench-clock process`), which other jobs on the machine do not advance; `--clock wall`
times wall clock instead.

Then, on the embedded image default (digits), it compares the real training loop (`bench.loop.train`:
data loading, gradient clipping, scheduler and progress bar included) with a bare training step on
a batch from the same loader, interleaved the same way, in wall time (loader workers are other
processes, whose time the process clock would miss); the ratio shows whether data is a bottleneck.

Last, it measures MFU for Mixer and ResMLP at a large batch against the device's peak (on CPU a
GEMM timed in the same run), with the share of step time spent in matmuls, which bounds the MFU.

    python bench/harness_check.py
"""

from __future__ import annotations

import copy
import random
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

from bench.config import MeasureConfig, command_parser  # noqa: E402
from bench.measure import CLOCKS, measure_model, phase_steps, timed_rates  # noqa: E402

IMG, PATCH, CLASSES = 32, 4, 10
CPU = torch.device("cpu")

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
        num_classes=CLASSES, img_size=IMG, patch_size=PATCH, depth=depth, embed_dim=width,
        num_heads=width // 64 if width % 64 == 0 else 1,  # DeiT's 64-wide heads where the width allows
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


def bare_steps(model, batch) -> dict:
    """Plain inference and training steps, written as anyone would without the harness."""
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

    return {"infer": infer, "train": train}


def median_with_interval(values: list[float], resamples: int = 2000) -> tuple[float, float, float]:
    """The median and a 95% bootstrap interval of it."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return statistics.median(values), medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def compare(name, width, depth, batch_size, pairs, steps, clock) -> tuple[float, float]:
    """Median over pairs of harness / bare samples/s, for inference and training.

    The harness side is what `measure_model` times: the steps of `bench.measure.phase_steps`
    in the loop of `bench.measure.timed_rates`. The bare side is `bare_steps` in a
    `torch.utils.benchmark.Timer`. Each side has its own copy of the model and its own optimizer.
    """
    model = MODELS[name](width, depth)
    batch = image_batch(batch_size)
    cfg = MeasureConfig(bench_steps=steps, bench_repeats=1, bench_clock=clock)
    harness_model, bare_model = copy.deepcopy(model), copy.deepcopy(model)
    harness = phase_steps(harness_model, batch, loss_fn, infer_fn, make_optimizer, cfg, "fp32", CPU)
    bare = bare_steps(bare_model, batch)
    rng = random.Random(0)
    line = [f"{name:7s}"]
    ratios = []
    for phase, training in (("infer", False), ("train", True)):
        harness_model.train(training)
        bare_model.train(training)
        for _ in range(cfg.bench_warmup_steps):
            harness[phase]()
            bare[phase]()
        timer = Timer("step()", globals={"step": bare[phase]}, timer=CLOCKS[clock], num_threads=torch.get_num_threads())
        sides = {
            "harness": lambda: timed_rates(harness[phase], batch_size, cfg, CPU, clock=CLOCKS[clock])[0],
            "bare": lambda: batch_size / timer.timeit(steps).mean,
        }
        # The machine's speed drifts by tens of percent over seconds (other tenants, clocks), so a
        # ratio pairs two measurements taken back to back, in an order drawn per pair so that
        # drift favours neither side, and the median over many pairs discards the unlucky ones.
        per_pair = []
        for _ in range(pairs):
            order = rng.sample(list(sides), 2)
            rate = {side: sides[side]() for side in order}
            per_pair.append(rate["harness"] / rate["bare"])
        ratio, low, high = median_with_interval(per_pair)
        ratios.append(ratio)
        line.append(f"{phase} ratio {ratio:.3f} (95% interval {low:.3f}-{high:.3f}; pairs {min(per_pair):.2f}-{max(per_pair):.2f})")
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
    parser = command_parser("python bench/harness_check.py", __doc__.splitlines()[0],
                            "  python bench/harness_check.py --pairs 50 --loop-rounds 0")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the harness / bare and loop / bare comparisons")
    parser.add_argument("--width", type=int, default=128, help="embedding width of every model")
    parser.add_argument("--depth", type=int, default=4, help="blocks in every model")
    parser.add_argument("--pairs", type=int, default=150, help="harness / bare pairs per model and phase (0 skips)")
    parser.add_argument("--steps", type=int, default=1, help="steps timed by each side of a pair")
    parser.add_argument("--loop-rounds", type=int, default=5, help="interleaved loop / bare rounds on digits per model (0 skips)")
    parser.add_argument("--loop-steps", type=int, default=20, help="training steps per loop round")
    parser.add_argument("--mfu-batch-size", type=int, default=512, help="batch size for the MFU measurement (0 skips it)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="process",
                        help="clock of the harness / bare comparison (process: CPU time, one thread only)")
    args = parser.parse_args(argv)
    if args.clock == "process" and args.threads != 1:
        parser.error("--clock process needs --threads 1: CPU time sums over threads")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width}, depth {args.depth}, "
          f"{IMG}x{IMG} images, patch {PATCH}, {args.clock} clock")

    if args.pairs:
        print(f"\nharness / bare, batch {args.batch_size}, {args.pairs} pairs of {args.steps} step(s) per side:")
        ratios = [r for name in MODELS for r in compare(name, args.width, args.depth, args.batch_size, args.pairs,
                                                         args.steps, args.clock)]
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
            mfu = measure_model(model, batch, loss_fn, infer_fn, make_optimizer, cfg, "fp32", CPU)["mfu"]
            print(f"{name:7s} infer {mfu['infer']:.1%}  train {mfu['train']:.1%}  of {mfu['peak_flops'] / 1e9:.1f}"
                  f" GFLOP/s ({mfu['peak_source']}); matmul share of a training step's time"
                  f" {matmul_share(model, batch):.0%}", flush=True)


if __name__ == "__main__":
    main()
