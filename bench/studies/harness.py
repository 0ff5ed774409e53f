"""The harness checks' library (python -m bench.harness_check is their command, whose docstring says what they
measure): the harness against bare steps, the training loop against a bare step, and the MFU with the matmul
share. The command passes the task registry's create_task in; every task is made as a run makes it."""

from __future__ import annotations

import copy
import random
import statistics

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

from bench.core.config import DataConfig, MeasureConfig, OptimConfig, VariantConfig
from bench.measure.timing import CLOCKS, measure_model, median_with_interval, phase_steps, timed_rates
from bench.models import compared_families, resized

TASK = "cifar10"  # 3x32x32 images, 10 classes: the mini sizes' patch is 4, 64 tokens
CPU = torch.device("cpu")
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def make_task(name: str, optim_cfg: OptimConfig, create_task):
    """The task as a run with these flags makes it under the suite recipe, so its loss is the one runs
    train and measure."""
    from bench.core.recipes import suite_optim

    return create_task(name, label_smoothing=suite_optim(optim_cfg, create_task(name)).label_smoothing)


def build(family: str, width: int, depth: int, spec):
    """The family's mini size at this width and depth, for the task's images."""
    entry, size = resized(family, "mini", spec, dim=width, depth=depth)
    return entry.build(spec, size, VariantConfig())


def make_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3)


def bare_steps(model, batch, loss_fn) -> dict:
    """Plain inference and training steps, written as anyone would without the harness."""
    optimizer = make_optimizer(model.parameters())

    def infer():
        with torch.inference_mode():
            loss_fn(model, batch)

    def train():
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return {"infer": infer, "train": train}


def compare(name, width, depth, batch_size, pairs, steps, clock, create_task) -> tuple[float, float]:
    """Median over pairs of harness / bare samples/s, for inference and training.

    The harness side is what `measure_model` times: the steps of `bench.measure.timing.phase_steps`
    in the loop of `bench.measure.timing.timed_rates`. The bare side is `bare_steps` in a
    `torch.utils.benchmark.Timer`. Each side has its own copy of the model and its own optimizer.
    """
    task = make_task(TASK, OptimConfig(), create_task)
    spec = task.spec(DataConfig())
    model = build(name, width, depth, spec)
    batch = task.synthetic_batch(spec, batch_size, torch.Generator().manual_seed(0))
    cfg = MeasureConfig(bench_steps=steps, bench_repeats=1, bench_clock=clock)
    harness_model, bare_model = copy.deepcopy(model), copy.deepcopy(model)
    harness = phase_steps(harness_model, batch, task.loss, task.loss, make_optimizer, cfg, "fp32", CPU)
    bare = bare_steps(bare_model, batch, task.loss)
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


def loop_vs_bare(family: str, rounds: int, steps: int, batch_size: int, create_task) -> float:
    """Median over rounds of the training loop's samples/s on digits / a bare training step's."""
    from accelerate import Accelerator

    from bench.training import loop
    from bench.models import create_model

    from bench.core.recipes import suite_optim

    data_cfg, optim_cfg = DataConfig(), OptimConfig(batch_size=batch_size, max_steps=steps)
    task = make_task("digits", optim_cfg, create_task)
    optim_cfg = suite_optim(optim_cfg, task)
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


def matmul_share(model, batch, loss_fn) -> float:
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


def check(args, create_task) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width}, depth {args.depth}, "
          f"{TASK} images, {args.clock} clock")
    compared = compared_families("image")

    if args.pairs:
        print(f"\nharness / bare, batch {args.batch_size}, {args.pairs} pairs of {args.steps} step(s) per side:")
        ratios = [r for name in compared for r in compare(name, args.width, args.depth, args.batch_size, args.pairs,
                                                          args.steps, args.clock, create_task)]
        print(f"largest deviation of a ratio from 1: {max(abs(r - 1) for r in ratios):.1%}")

    if args.loop_rounds:
        print(f"\ntraining loop with data loading / bare training step, digits, batch {args.batch_size}:")
        ratios = [loop_vs_bare(name, args.loop_rounds, args.loop_steps, args.batch_size, create_task) for name in compared]
        print(f"lowest loop / bare ratio: {min(ratios):.3f}")

    if args.mfu_batch_size:
        cfg = MeasureConfig(bench_warmup_steps=2, bench_steps=5, bench_repeats=3, latency_samples=5)
        task = make_task(TASK, OptimConfig(), create_task)
        spec = task.spec(DataConfig())
        batch = task.synthetic_batch(spec, args.mfu_batch_size, torch.Generator().manual_seed(0))
        print(f"\nMFU at batch {args.mfu_batch_size}:")
        for name in compared:
            model = build(name, args.width, args.depth, spec)
            mfu = measure_model(model, batch, task.loss, task.loss, make_optimizer, cfg, "fp32", CPU)["mfu"]
            print(f"{name:7s} infer {mfu['infer']:.1%}  train {mfu['train']:.1%}  of {mfu['peak_flops'] / 1e9:.1f}"
                  f" GFLOP/s ({mfu['peak_source']}); matmul share of a training step's time"
                  f" {matmul_share(model, batch, task.loss):.0%}", flush=True)
    return 0

