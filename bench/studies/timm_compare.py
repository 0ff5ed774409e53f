"""The timm comparison's library (python -m bench.timm_compare is its command, whose docstring says what is
compared): the pairs of our models and timm's, timm's side timed as its benchmark.py times it, our side by
measure_model, the interleaved rounds and the table. The command passes the task registry's create_task in."""

from __future__ import annotations

import gc
import json
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

from bench.core.errors import UserError
from bench.core.results import check_output_file


@dataclass(frozen=True)
class Pair:
    """Our (family, size) and timm's model of the same shape."""

    name: str  # ours, as bench/run.py names it: family-size
    family: str
    size: str
    timm_name: str  # timm's registered model; with timm_kwargs, the one whose recipe is followed
    timm_kwargs: dict = field(default_factory=dict)  # set: timm's class built with these arguments instead

    @property
    def timm_label(self) -> str:
        if not self.timm_kwargs:
            return self.timm_name
        return f"timm MlpMixer as {self.timm_name} at width {self.timm_kwargs['embed_dim']}"


# The paper sizes of the four image families, each equal in parameters to timm's model (checked
# for every pair before timing, as tests/test_image_models.py checks it at 224 px).
PAIRS = (
    Pair("mixer-s16", "mixer", "s16", "mixer_s16_224"),
    Pair("gmlp-s", "gmlp", "s", "gmlp_s16_224"),
    Pair("resmlp-s12", "resmlp", "s12", "resmlp_12_224"),
    Pair("vit-s", "vit", "s", "vit_small_patch16_224"),
    Pair("mixer-b16", "mixer", "b16", "mixer_b16_224"),
    Pair("gmlp-b", "gmlp", "b", "gmlp_b16_224"),
    # timm registers ResMLP-B24 only with 8x8 patches (resmlp_big_24_224, 4x the tokens); the paper's
    # B24/16 is timm's MlpMixer built as resmlp_24_224 builds it, at width 768 (ResMLP-B24's init 1e-6).
    Pair("resmlp-b24", "resmlp", "b24", "resmlp_24_224", {"embed_dim": 768, "init_values": 1e-6}),
    Pair("vit-b", "vit", "b", "vit_base_patch16_224"),
)
BY_NAME = {p.name: p for p in PAIRS} | {p.timm_name: p for p in PAIRS if not p.timm_kwargs}
# timm's benchmark.py --precision for ours
TIMM_PRECISION = {"fp32": "float32", "bf16": "amp_bfloat16", "fp16": "amp"}
AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
PHASES = ("infer", "train")


def check_args(args) -> list[Pair]:
    unknown = [name for name in args.models if name not in BY_NAME]
    if unknown:
        raise UserError(f"Unknown model {unknown[0]!r} for the comparison; known: {', '.join(BY_NAME)}.")
    for name in ("batch_size", "rounds", "steps", "repeats", "latency_samples", "num_classes"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {args.warmup}.")
    if args.image_size < 16 or args.image_size % 16:
        raise UserError(f"--image-size must be a multiple of 16 (the models' patch), got {args.image_size}.")
    if args.peak_gemm_size < 64:
        raise UserError(f"--peak-gemm-size must be at least 64, got {args.peak_gemm_size}.")
    return list({BY_NAME[name].name: BY_NAME[name] for name in args.models}.values())  # each pair once


def resolve_device(requested: Optional[str]):
    import torch

    name = requested or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu.")
    if device.type not in ("cuda", "cpu"):
        raise UserError(f"--device must be cuda or cpu, got {name!r}.")
    return device


# ---------------------------------------------------------------------------------------------
# timm's side: benchmark.py's runners, on a model already built


def timm_model(pair: Pair, image_size: int, num_classes: int):
    import timm

    if not pair.timm_kwargs:
        return timm.create_model(pair.timm_name, pretrained=False, img_size=image_size, num_classes=num_classes,
                                 drop_rate=0.0)
    from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

    kwargs = dict(pair.timm_kwargs)
    init = kwargs.pop("init_values")
    return MlpMixer(num_classes=num_classes, img_size=image_size, patch_size=16, num_blocks=24, mlp_ratio=4,
                    block_layer=partial(ResBlock, init_values=init), norm_layer=Affine, **kwargs)


class TimmBenchmark:
    """timm's benchmark.py on one model: InferenceBenchmarkRunner.run and TrainBenchmarkRunner.run.

    As there: the model in fp32 on the device (channels_last optional), autocast around the forward
    (and, for training, the loss and backward), random inputs made once, `num_warm_iter` untimed
    steps, then `num_bench_iter` steps timed from one timestamp to another, every step ending with a
    CUDA synchronize (cuda_timestamp(sync=True)); samples/s = samples / elapsed. Training zeroes the
    gradients, draws random targets, backpropagates a cross-entropy loss and steps the optimizer
    (create_optimizer_v2) in each step.
    """

    def __init__(self, model, device, precision: str, batch_size: int, image_size: int, warmup: int, steps: int,
                 channels_last: bool = False, compile: bool = False, opt: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 0.05, generator=None):
        import torch
        from timm.optim import create_optimizer_v2

        self.device = device
        self.dtype = None if AUTOCAST[precision] is None else getattr(torch, AUTOCAST[precision])
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=memory_format)
        self.num_classes = model.num_classes
        self.run_model = torch.compile(self.model) if compile else self.model
        self.optimizer = create_optimizer_v2(self.model, opt=opt, lr=lr, weight_decay=weight_decay)
        self.loss = torch.nn.CrossEntropyLoss().to(device)
        self.batch_size, self.warmup, self.steps = batch_size, warmup, steps
        inputs = torch.randn((batch_size, 3, image_size, image_size), generator=generator).to(device)
        self.inputs = inputs.contiguous(memory_format=memory_format)

    def time_fn(self, sync: bool = False) -> float:
        if sync and self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def autocast(self):
        import torch

        return nullcontext() if self.dtype is None else torch.autocast(self.device.type, dtype=self.dtype)

    def _rate(self, step: Callable[[], Any]) -> float:
        for _ in range(self.warmup):
            step()
        self.time_fn(True)  # the warm-up's last step synchronised already; so does an empty warm-up
        start = self.time_fn()
        for _ in range(self.steps):
            step()
        return self.batch_size * self.steps / (self.time_fn(True) - start)

    def infer(self) -> float:
        import torch

        def step():
            with self.autocast():
                self.run_model(self.inputs)
            self.time_fn(True)

        self.model.eval()
        with torch.no_grad():
            return self._rate(step)

    def train(self) -> float:
        import torch

        def step():
            self.optimizer.zero_grad()
            with self.autocast():
                output = self.run_model(self.inputs)
                if isinstance(output, tuple):
                    output = output[0]
                target = torch.empty((output.shape[0],), device=self.device, dtype=torch.long).random_(self.num_classes)
                self.loss(output, target).backward()
            self.optimizer.step()
            self.time_fn(True)

        self.model.train()
        return self._rate(step)


# ---------------------------------------------------------------------------------------------
# Our side: measure_model, as bench/run.py --mode bench calls it


class Ours:
    """Our model measured by bench.measure.timing.measure_model on synthetic ImageNet-shaped inputs."""

    def __init__(self, pair: Pair, args, device, create_task):
        import torch

        from bench.core.config import MeasureConfig
        from bench.models import create_model
        from bench.core.spec import TaskSpec

        self.task = create_task("imagenet")  # the run's defaults: label smoothing 0.1
        spec = TaskSpec("imagenet", "image", "top1", image_size=(3, args.image_size, args.image_size),
                        num_classes=args.num_classes)
        self.model = create_model(pair.family, pair.size, spec).to(device)
        generator = torch.Generator().manual_seed(args.seed)
        self.batch = tuple(t.to(device) for t in self.task.synthetic_batch(spec, args.batch_size, generator))
        self.cfg = MeasureConfig(
            bench_warmup_steps=args.warmup, bench_steps=args.steps, bench_repeats=args.repeats,
            latency_samples=args.latency_samples, compile=args.compile, channels_last=args.channels_last,
            peak_gemm_size=args.peak_gemm_size,
        )
        self.args, self.device = args, device

    def measure(self) -> dict:
        import torch

        from bench.measure.timing import measure_model

        args = self.args
        return measure_model(
            self.model, self.batch, self.task.loss, self.task.loss,
            lambda params: torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay),
            self.cfg, args.precision, self.device,
        )


# ---------------------------------------------------------------------------------------------


def compare(pair: Pair, args, device, say: Callable[[str], None], create_task) -> dict:
    """Interleaved rounds of ours and timm's on one pair; the figures of both and their ratios."""
    import torch

    torch.manual_seed(args.seed)
    ours = Ours(pair, args, device, create_task)
    torch.manual_seed(args.seed)
    timm_side = TimmBenchmark(
        timm_model(pair, args.image_size, args.num_classes), device, args.precision, args.batch_size,
        args.image_size, args.warmup, args.steps * args.repeats, args.channels_last, args.compile, args.timm_opt,
        args.lr, args.weight_decay, torch.Generator().manual_seed(args.seed + 1),
    )
    params = {"ours": sum(p.numel() for p in ours.model.parameters()),
              "timm": sum(p.numel() for p in timm_side.model.parameters())}
    if params["ours"] != params["timm"]:
        raise UserError(f"{pair.name} has {params['ours']:,} parameters and {pair.timm_label} {params['timm']:,}: "
                        f"not the same shape, so their speeds do not compare.")
    rounds = []
    for index in range(args.rounds):
        figures: dict[str, Any] = {}

        def run_ours(figures=figures):
            result = ours.measure()
            figures["ours"] = {
                "infer": result["throughput"]["infer_samples_per_s"],
                "train": result["throughput"]["train_samples_per_s"],
            }
            figures["result"] = result

        def run_timm(figures=figures):
            figures["timm"] = {"infer": timm_side.infer(), "train": timm_side.train()}

        order = (("ours", run_ours), ("timm", run_timm))
        if index % 2:
            order = order[::-1]
        for _, run in order:
            run()
            gc.collect()
        result = figures.pop("result")
        figures["first"] = order[0][0]
        figures["batch_size"] = result["throughput"]["batch_size"]
        figures["stable"] = result["throughput"]["stable"]
        figures["mfu"] = {phase: result["mfu"][phase] for phase in PHASES}
        figures["mfu"]["peak_source"] = result["mfu"]["peak_source"]
        rounds.append((figures, result))
        say(f"  {pair.name} round {index + 1}/{args.rounds} ({figures['first']} first): "
            f"ours {figures['ours']['infer']:.1f} / {figures['ours']['train']:.1f}, "
            f"timm {figures['timm']['infer']:.1f} / {figures['timm']['train']:.1f} samples/s (inference / training)")
    ours_rate = {phase: statistics.median(r["ours"][phase] for r, _ in rounds) for phase in PHASES}
    timm_rate = {phase: statistics.median(r["timm"][phase] for r, _ in rounds) for phase in PHASES}
    last = rounds[-1][1]
    mfu = {phase: statistics.median(r["mfu"][phase] for r, _ in rounds) for phase in PHASES}
    batch_sizes = {r["batch_size"] for r, _ in rounds}
    return {
        "name": pair.name,
        "timm": pair.timm_label,
        "params": params["ours"],
        "batch_size": args.batch_size,
        "ours_batch_sizes": sorted(batch_sizes),  # measure_model halves a batch that runs out of memory
        "ours_samples_per_s": ours_rate,
        "timm_samples_per_s": timm_rate,
        "ratio": {phase: ours_rate[phase] / timm_rate[phase] for phase in PHASES},
        "mfu": {**mfu, "peak_flops": last["mfu"]["peak_flops"], "peak_source": last["mfu"]["peak_source"],
                "note": last["mfu"]["note"]},
        "flops": last["flops"],
        "stable": all(r["stable"] for r, _ in rounds),
        "rounds": [{key: r[key] for key in ("first", "ours", "timm", "batch_size", "stable", "mfu")} for r, _ in rounds],
    }


def model_line(entry: dict, precision: str) -> str:
    if "error" in entry:
        return f"{entry['name']} vs {entry['timm']}: error: {entry['error']}"
    ours, theirs, ratio, mfu = entry["ours_samples_per_s"], entry["timm_samples_per_s"], entry["ratio"], entry["mfu"]
    halved = "" if entry["ours_batch_sizes"] == [entry["batch_size"]] else \
        f" (ours ran out of memory and measured batch {entry['ours_batch_sizes']})"
    return (
        f"{entry['name']} vs {entry['timm']} ({entry['params'] / 1e6:.2f}M params, batch {entry['batch_size']}, "
        f"{precision}): inference ours {ours['infer']:.1f} samples/s, timm {theirs['infer']:.1f}, "
        f"ratio {ratio['infer']:.3f}; training ours {ours['train']:.1f} samples/s, timm {theirs['train']:.1f}, "
        f"ratio {ratio['train']:.3f}; our {precision} MFU inference {mfu['infer']:.3f}, training {mfu['train']:.3f} "
        f"(peak: {mfu['peak_source']}){halved}"
    )


def table(entries: list[dict]) -> str:
    rows = [("model", "ours infer/s", "timm infer/s", "ratio", "ours train/s", "timm train/s", "ratio",
             "MFU infer", "MFU train")]
    for e in entries:
        if "error" in e:
            rows.append((e["name"], "error", "", "", "", "", "", "", ""))
            continue
        o, t, r, m = e["ours_samples_per_s"], e["timm_samples_per_s"], e["ratio"], e["mfu"]
        rows.append((e["name"], f"{o['infer']:.1f}", f"{t['infer']:.1f}", f"{r['infer']:.3f}", f"{o['train']:.1f}",
                     f"{t['train']:.1f}", f"{r['train']:.3f}", f"{m['infer']:.3f}", f"{m['train']:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in rows)


def environment(device) -> dict:
    import timm
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"device_type": device.type, "device_name": name, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}


def compare_all(args, create_task) -> int:
    pairs = check_args(args)
    if args.json is not None:
        check_output_file(args.json, "--json")
    device = resolve_device(args.device)
    import torch

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as timm's benchmark.py, and bench/run.py for image tasks

    def say(line: str) -> None:
        print(line, flush=True)

    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    say(f"Comparing our harness (bench.measure.timing.measure_model) with timm's benchmark.py timing on {device.type}: "
        f"batch {args.batch_size}, {args.precision}, {args.image_size} px, {args.rounds} interleaved rounds of "
        f"{args.warmup} warm-up + {args.steps} x {args.repeats} timed steps"
        f"{', compiled' if args.compile else ''}{', channels_last' if args.channels_last else ''}.")
    entries = []
    for pair in pairs:
        started = time.perf_counter()
        try:
            entry = compare(pair, args, device, say, create_task)
        except UserError:
            raise
        except Exception as e:  # one model failing (out of memory on timm's side, ...) leaves the others
            message = str(e).strip().splitlines()[0] if str(e).strip() else "no message"
            entry = {"name": pair.name, "timm": pair.timm_label, "error": f"{type(e).__name__}: {message}"}
        entry["seconds"] = round(time.perf_counter() - started, 2)
        entries.append(entry)
        say(model_line(entry, args.precision))
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    say("")
    say("ratio = ours / timm's samples/s (1: the harness reports what timm's benchmark.py does); "
        f"MFU: ours, against the {args.precision} peak.")
    say(table(entries))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": settings, "environment": environment(device), "models": entries}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        say(f"Wrote {args.json}.")
    failed = [e["name"] for e in entries if "error" in e]
    if failed:
        print(f"error: {len(failed)} of {len(entries)} comparisons failed ({', '.join(failed)}).", file=sys.stderr)
        return 1
    return 0

