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

from bench.config import as_dict, build_parser, configs_from_args, flag_name  # noqa: E402
from bench.errors import PairError, UserError  # noqa: E402
from bench.results import SCHEMA_VERSION, checkpoint_folder, result_filename, write_json_atomic  # noqa: E402

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
DEBUG_HINT = "Rerun with --debug for the traceback."


def parse_args(argv=None):
    description, _, examples = __doc__.strip().partition("\n\n")
    parser = build_parser(description, examples)
    parser.add_argument("--list", action="store_true", help="print every task, model and size, and which pairs run")
    return parser, parser.parse_args(argv)


def listing() -> str:
    """Tasks, models with sizes and parameter counts (on each modality's reference task), and runnable pairs."""
    import torch

    import tasks  # noqa: F401  (registers every task)
    from bench.config import DataConfig, VariantConfig
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
                    with torch.device("meta"):  # shapes only: counting needs no memory and no init
                        model = entry.build(ref, entry.sizes[size], VariantConfig())
                    sizes.append(f"{size} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M)")
                except PairError:
                    sizes.append(f"{size} (n/a on {ref.name})")
            tag = " [baseline]" if entry.baseline else ""
            if entry.variants:
                tag += f"; variants: {', '.join(flag_name(name) for name in entry.variants)}"
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


def run(configs) -> tuple[dict, int]:
    """One run from validated configs: (the result, the exit code). The main process writes the result.

    Failures during training, evaluation and measurement still leave a result saying what happened.
    """
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import send_to_device, set_seed

    import tasks  # noqa: F401
    from bench import loop, measure
    from bench.checkpoint import Checkpoints
    from bench.machine import measuring
    from bench.models import resolve
    from bench.results import capture_environment
    from tasks.base import get_task

    run_cfg, optim_cfg, data_cfg, measure_cfg = configs["run"], configs["optim"], configs["data"], configs["measure"]
    variant = configs["variant"]
    task = get_task(run_cfg.task)
    spec = task.spec(data_cfg)
    entry, size = resolve(run_cfg.model, run_cfg.size, spec, variant)  # a bad pair fails here, before data loads
    out_path = Path(run_cfg.output_dir) / result_filename(
        task.name, entry.family, size, run_cfg.seed, run_cfg.precision, variant.name()
    )
    checkpoint_root = checkpoint_folder(out_path)
    check_output(out_path, checkpoint_root, run_cfg)

    accelerator = Accelerator(
        mixed_precision=MIXED_PRECISION[run_cfg.precision],
        gradient_accumulation_steps=optim_cfg.grad_accum,
        step_scheduler_with_optimizer=False,  # see loop.make_scheduler
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True,  # the data order is a function of (seed, epoch): the same after a resume
            data_seed=run_cfg.seed,
            non_blocking=torch.cuda.is_available(),  # from pinned memory, copies to the GPU overlap compute
        ),
    )
    if measure_cfg.measure or run_cfg.mode == "bench":
        measure.check_clock(measure_cfg, accelerator.device)
    if accelerator.device.type == "cuda" and spec.modality == "image":
        torch.backends.cudnn.benchmark = True  # image shapes never change: pick the fastest kernels once
    if run_cfg.size is None and accelerator.is_main_process:
        print(f"Model: {entry.family}-{size}, the family's default for {spec.describe()} (--size chooses another).")
    set_seed(run_cfg.seed)
    started = time.perf_counter()
    environment = capture_environment(accelerator, run_cfg.precision)
    optim_cfg = task.configure(optim_cfg)
    configs = {**configs, "optim": optim_cfg}  # the result and checkpoints record the value used
    if synthetic_inputs(run_cfg, data_cfg):  # bench mode without data: random inputs of the task's shape
        data = None
        model = accelerator.prepare(entry.build(spec, entry.sizes[size], variant))
        params = sum(p.numel() for p in model.parameters())
        generator = torch.Generator().manual_seed(run_cfg.seed)
        bench_batch = send_to_device(task.synthetic_batch(spec, optim_cfg.batch_size, generator), accelerator.device)
    else:
        with accelerator.main_process_first():  # one process fills the caches (tokenizer, datasets) the others read
            data = task.load(data_cfg, run_cfg.seed)
        model = entry.build(data.spec, entry.sizes[size], variant)
        params = sum(p.numel() for p in model.parameters())
        train_loader, eval_loader = loop.make_loaders(data, optim_cfg, data_cfg)
        optimizer = torch.optim.AdamW(loop.param_groups(model, optim_cfg.weight_decay), lr=optim_cfg.lr)
        model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
        scheduler = accelerator.prepare(loop.make_scheduler(optimizer, optim_cfg, len(train_loader)))
        bench_batch = None  # the first training batch, taken when measuring

        identity = {
            "--task": task.name, "--model": entry.family, "--size": size, "--seed": run_cfg.seed,
            "--precision": run_cfg.precision, "processes": accelerator.num_processes, "parameters": params,
            "training samples": len(data.train),
            **{flag_name(key): value for key, value in as_dict(configs)["optim"].items()},
            # only the flags given, so checkpoints written before variants existed still match a default run
            **{flag_name(key): value for key, value in variant.given().items()},
        }
        checkpoints = Checkpoints(checkpoint_root, identity, run_cfg.checkpoint_every)
        start = None
        if run_cfg.resume:
            folder, start = checkpoints.load(accelerator)
            if accelerator.is_main_process:
                print(f"Resuming from {folder} at step {start.step}.")
        elif run_cfg.overwrite:
            checkpoints.clear(accelerator)

    status, error, exit_code, metrics, stats, measurements = "ok", None, 0, {}, None, {}
    phase = "training"
    try:
        if run_cfg.mode == "train":
            stats = loop.train(accelerator, task, model, optimizer, scheduler, train_loader, optim_cfg, checkpoints, start)
            phase = "evaluation"
            metrics = loop.evaluate(accelerator, task, model, eval_loader, data)
            metrics["eval_samples"] = len(data.eval)  # the scored split's size, printed beside the scores
        if measure_cfg.measure or run_cfg.mode == "bench":
            phase = "measurement"
            if bench_batch is None:
                bench_batch = next(iter(train_loader))
            with measuring():  # one measurement at a time, nothing else of the sweep running beside it
                measurements = measure_run(accelerator, task, model, bench_batch, optim_cfg, measure_cfg,
                                           run_cfg.precision)
            measurements["throughput"]["inputs"] = "dataset" if data is not None else "synthetic"
            if stats is not None:
                measurements["throughput"].update(stats.loop)
    except loop.Stopped as e:
        status, error, exit_code = e.status, str(e), e.exit_code
    except Exception as e:  # a bug or an unforeseen failure: the result still says what happened
        if run_cfg.debug:
            traceback.print_exc()
        status, error, exit_code = "error", f"Unexpected {type(e).__name__} during {phase}: {first_line(e)}.", 1
    primary = metrics.get(spec.metric)
    result = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "task": task.name,
        "model": entry.family,
        "size": size,
        "variant": variant.name(),
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
            "resumed_from_step": stats.resumed_from_step, "checkpoint": stats.checkpoint,
        },
        "wall_time_s": round(time.perf_counter() - started, 3),
        **{key: measurements.get(key) for key in ("flops", "throughput", "latency_ms", "memory", "mfu")},
    }
    if accelerator.is_main_process:
        write_json_atomic(out_path, result)
        result["path"] = str(out_path)
    accelerator.wait_for_everyone()
    return result, exit_code


def synthetic_inputs(run_cfg, data_cfg) -> bool:
    """Bench mode measures random inputs of the task's shape unless data is given (as timm's
    benchmark.py does), so it needs no dataset."""
    return run_cfg.mode == "bench" and not (data_cfg.data_dir or data_cfg.data_files)


def measure_run(accelerator, task, model, batch, optim_cfg, measure_cfg, precision) -> dict:
    """Throughput, latency, memory, FLOPs and MFU on one batch (the first training batch, or a
    synthetic one in bench mode), apart from training.

    Inference is timed as the task's forward pass with its loss, under inference_mode.
    """
    import torch

    from bench.loop import OutOfMemory
    from bench.measure import measure_model

    tokens = task.tokens(batch)
    try:
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
    except torch.OutOfMemoryError:  # measure_model already halved the batch down to 1
        raise OutOfMemory("Out of memory while measuring, even at batch size 1.") from None


def check_output(path: Path, checkpoints: Path, run_cfg) -> None:
    """Refuse to clobber an earlier result or checkpoints, to resume without a checkpoint, and fail now
    (not after training) on an unwritable folder."""
    from bench.checkpoint import complete

    if path.exists() and not (run_cfg.overwrite or run_cfg.resume):
        raise UserError(f"{path} already exists; pass --overwrite to replace it, or another --output-dir.")
    found = complete(checkpoints)
    if run_cfg.resume and not found:
        raise UserError(f"--resume found no checkpoint in {checkpoints}; run without --resume to start the run.")
    if found and not (run_cfg.resume or run_cfg.overwrite):
        raise UserError(
            f"{checkpoints} holds checkpoints of this run; pass --resume to continue it or --overwrite to start over."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".write-test-{path.name}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"Cannot write results to {path.parent} ({e.strerror}); choose another --output-dir.") from None


def first_line(error: BaseException) -> str:
    """An exception's message cut to one line, for a one-sentence report."""
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else "no message"


def summary_line(result: dict) -> str:
    metric = result["primary_metric"]
    value = "n/a" if metric["value"] is None else f"{metric['value']:.4f}"
    variant = f" [{result['variant']}]" if result["variant"] else ""
    return (
        f"{result['task']} {result['model']}-{result['size']}{variant} seed {result['seed']}: "
        f"{metric['name']} {value}, {result['params'] / 1e6:.2f}M params, {result['wall_time_s']:.1f}s, "
        f"status {result['status']}"
    )


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    from bench.loop import Stopped, signals

    with signals.installed():
        try:
            if args.list:
                print(listing())
                return 0
            result, exit_code = run(configs_from_args(args))
        except UserError as e:
            if args.debug:
                traceback.print_exc()
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        except Stopped as e:  # a signal before training: there is nothing to record yet
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        except Exception as e:
            if args.debug:
                traceback.print_exc()
            hint = "" if args.debug else f" {DEBUG_HINT}"
            print(f"error: Unexpected {type(e).__name__}: {first_line(e)}.{hint}", file=sys.stderr)
            return 1
    if "path" in result:
        print(summary_line(result))
        print(f"result: {result['path']}")
        if result["error"]:
            hint = f" {DEBUG_HINT}" if result["status"] == "error" and not args.debug else ""
            print(f"error: {result['error']}{hint}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
