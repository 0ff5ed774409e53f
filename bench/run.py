"""Train and evaluate one (task, model) pair, or list what can run.

    accelerate launch bench/run.py --task digits --model gmlp
    python bench/run.py --task fashion-mnist --model resmlp --epochs 3
    python bench/run.py --list
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the suite importable from a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.config import as_dict, build_parser, configs_from_args  # noqa: E402
from bench.errors import PairError, UserError  # noqa: E402
from bench.results import SCHEMA_VERSION, result_filename, write_json_atomic  # noqa: E402

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def parse_args(argv=None):
    parser = build_parser(__doc__.strip().splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every task, model and size, and which pairs run")
    return parser, parser.parse_args(argv)


def listing() -> str:
    """Tasks, models with sizes and parameter counts (on each modality's reference task), and runnable pairs."""
    import tasks  # noqa: F401  (registers every task)
    from bench.config import DataConfig
    from bench.models import model_entries, list_models, resolve
    from tasks.base import TASKS

    data_cfg = DataConfig()
    lines = ["Tasks:"]
    specs = {}
    for name in TASKS:
        task = TASKS.get(name)
        try:
            spec = task.spec(data_cfg)
            specs[name] = spec
            shape = spec.describe()
        except UserError:
            shape = "needs --data-dir"
        lines.append(f"  {name:<14} {shape:<44} {task.description}")
    lines.append("")
    lines.append("Models (parameters on each modality's reference task):")
    reference = _reference_specs(specs)
    for family in list_models():
        for entry in model_entries(family):
            ref = reference.get(entry.modalities[0])
            sizes = []
            for size in entry.sizes:
                if ref is None:
                    sizes.append(size)
                    continue
                try:
                    resolve(family, size, ref)
                    model = entry.build(ref, entry.sizes[size])
                    sizes.append(f"{size} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M)")
                except PairError:
                    sizes.append(f"{size} (n/a on {ref.name})")
            tag = " [baseline]" if entry.baseline else ""
            lines.append(f"  {family:<12} {'/'.join(entry.modalities):<12} {', '.join(sizes)}{tag}")
    lines.append("")
    lines.append("Pairs that run (task: model-size for every size that fits):")
    for name, spec in specs.items():
        runnable = []
        for family in list_models():
            for entry in model_entries(family):
                if spec.modality not in entry.modalities:
                    continue
                for size in entry.sizes:
                    try:
                        resolve(family, size, spec)
                        runnable.append(f"{family}-{size}")
                    except PairError:
                        pass
        lines.append(f"  {name:<14} {', '.join(runnable) or '(none)'}")
    return "\n".join(lines)


def _reference_specs(specs):
    """One task per modality to count parameters on: ImageNet-sized images, the default text tasks."""
    from tasks.base import TaskSpec

    ref = {"image": TaskSpec("imagenet", "image", "top1", image_size=(3, 224, 224), num_classes=1000)}
    for spec in specs.values():
        ref.setdefault(spec.modality, spec)
    return ref


def run(configs) -> dict:
    """One run from validated configs; returns the result dict (also written by the main process)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    import tasks  # noqa: F401
    from bench import loop
    from bench.models import resolve
    from bench.results import capture_environment
    from tasks.base import get_task

    run_cfg, optim_cfg, data_cfg, measure_cfg = configs["run"], configs["optim"], configs["data"], configs["measure"]
    task = get_task(run_cfg.task)
    spec = task.spec(data_cfg)
    entry, size = resolve(run_cfg.model, run_cfg.size, spec)  # a bad pair fails here, before data loads
    out_path = Path(run_cfg.output_dir) / result_filename(task.name, entry.family, size, run_cfg.seed, run_cfg.precision)
    check_output(out_path, run_cfg.overwrite)

    accelerator = Accelerator(
        mixed_precision=MIXED_PRECISION[run_cfg.precision], gradient_accumulation_steps=optim_cfg.grad_accum
    )
    set_seed(run_cfg.seed)
    started = time.perf_counter()
    environment = capture_environment(accelerator, run_cfg.precision)
    task.configure(optim_cfg)
    data = task.load(data_cfg, run_cfg.seed)
    model = entry.build(data.spec, entry.sizes[size])
    params = sum(p.numel() for p in model.parameters())
    train_loader, eval_loader = loop.make_loaders(data, optim_cfg, data_cfg, run_cfg.seed)
    optimizer = torch.optim.AdamW(loop.param_groups(model, optim_cfg.weight_decay), lr=optim_cfg.lr)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)

    status, error, metrics, stats = "ok", None, {}, None
    if run_cfg.mode == "train":
        try:
            stats = loop.train(accelerator, task, model, optimizer, train_loader, optim_cfg)
            metrics = loop.evaluate(accelerator, task, model, eval_loader, data)
        except loop.Diverged as e:
            status, error = "diverged", f"Training diverged: {e}."
    measurements = {}
    if status == "ok" and (measure_cfg.measure or run_cfg.mode == "bench"):
        measurements = measure_run(accelerator, task, model, train_loader, optim_cfg, measure_cfg, run_cfg.precision)
        if stats is not None:
            measurements["throughput"].update(stats.loop)
    primary = metrics.get(spec.metric)
    result = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "task": task.name,
        "model": entry.family,
        "size": size,
        "seed": run_cfg.seed,
        "modality": spec.modality,
        "baseline": entry.baseline,
        "config": as_dict(configs),
        "environment": environment,
        "metrics": metrics,
        "primary_metric": {"name": spec.metric, "value": primary, "higher_is_better": spec.higher_is_better},
        "params": params,
        "train": None if stats is None else {
            "steps": stats.steps, "epochs": round(stats.epochs, 4), "samples": stats.samples,
            "final_loss": stats.final_loss, "seconds": round(stats.seconds, 3),
        },
        "wall_time_s": round(time.perf_counter() - started, 3),
        **{key: measurements.get(key) for key in ("flops", "throughput", "latency_ms", "memory", "mfu")},
    }
    if accelerator.is_main_process:
        write_json_atomic(out_path, result)
        result["path"] = str(out_path)
    accelerator.wait_for_everyone()
    return result


def measure_run(accelerator, task, model, train_loader, optim_cfg, measure_cfg, precision) -> dict:
    """Throughput, latency, memory, FLOPs and MFU on one training batch, apart from training.

    Inference is timed as the task's forward pass with its loss, under inference_mode.
    """
    import torch

    from bench.measure import measure_model

    batch = next(iter(train_loader))
    tokens = task.tokens(batch)
    return measure_model(
        accelerator.unwrap_model(model),
        batch,
        task.loss,
        task.loss,
        lambda params: torch.optim.AdamW(params, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay),
        measure_cfg,
        precision,
        accelerator.device,
        tokens_per_sample=None if tokens is None else tokens / task.batch_size(batch),
        accelerator=accelerator,
    )


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse to clobber an earlier result, and fail now (not after training) on an unwritable folder."""
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it, or another --output-dir.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".write-test-{path.name}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"Cannot write results to {path.parent} ({e.strerror}); choose another --output-dir.") from None


def summary_line(result: dict) -> str:
    metric = result["primary_metric"]
    value = "n/a" if metric["value"] is None else f"{metric['value']:.4f}"
    return (
        f"{result['task']} {result['model']}-{result['size']} seed {result['seed']}: "
        f"{metric['name']} {value}, {result['params'] / 1e6:.2f}M params, {result['wall_time_s']:.1f}s, "
        f"status {result['status']}"
    )


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        if args.list:
            print(listing())
            return 0
        result = run(configs_from_args(args))
    except UserError as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    if "path" in result:
        print(summary_line(result))
        print(f"result: {result['path']}")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
