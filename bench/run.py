"""Train and evaluate one (task, model) pair, or list what can run.

    accelerate launch bench/run.py --task digits --model gmlp
    python -m bench.run --task fashion-mnist --model resmlp --epochs 3
    python -m bench.run --list
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
import traceback
from pathlib import Path

from bench.config import as_dict, build_parser, configs_from_args, flag_name, resolve_precision
from bench.errors import DEBUG_HINT, DiskFullError, PairError, UserError, first_line, report, run_command
from bench.recipes import describe_start, get_recipe, list_recipes, run_recipe
from bench.results import (
    TUNE_ENV, build_result, check_output_folder, checkpoint_folder, model_paths, predictions_paths, result_filename,
    tune_record, write_json_atomic, write_text_atomic,
)

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
_LOCKS: list = []  # the result lock this process holds (bench.results.RunLock), released as main() ends
_MADE: list[Path] = []  # output folders this process made, deepest first; removed as main() ends if still empty


def parse_args(argv=None):
    description, _, examples = __doc__.strip().partition("\n\n")
    parser = build_parser(description, examples)
    parser.add_argument("--list", action="store_true", help="print every task, model and size, and which pairs run")
    return parser, parser.parse_args(argv)


def listing() -> str:
    """Tasks, models with sizes and parameter counts (on each modality's reference task), and runnable pairs."""
    import torch

    from bench.config import DataConfig, VariantConfig
    from bench.models import model_entries, list_models, resolve
    from tasks import create_task, list_tasks

    data_cfg = DataConfig()
    lines = ["Tasks:"]
    specs = {}
    for name in list_tasks():
        task = create_task(name)
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
    lines.append("Recipes (--recipe; the task's default: paper for imagenet, suite for the rest):")
    for name in list_recipes():
        lines.append(f"  {name:<14} {get_recipe(name).description}")
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
    from bench.spec import TaskSpec

    ref = {"image": TaskSpec("imagenet", "image", "top1", image_size=(3, 224, 224), num_classes=1000)}
    for spec in specs.values():
        ref.setdefault(spec.modality, spec)
    return ref


def run(configs) -> tuple[dict | None, Path | None, int]:
    """One run from validated configs: (the result and the file it was written to, both None but on
    the main process, which writes it; the exit code).

    Failures during training, evaluation and measurement still leave a result saying what happened.
    """
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import send_to_device, set_seed

    from bench import loop, measure
    from bench.checkpoint import Checkpoints, Position
    from bench.history import History, check_trackers, tracker_config
    from bench.machine import measuring
    from bench.models import resolve, save_model
    from bench.progress import progress
    from bench.results import capture_environment
    from tasks import create_task

    configs = {**configs, "run": resolve_precision(configs["run"])}
    run_cfg, optim_cfg, data_cfg, measure_cfg = configs["run"], configs["optim"], configs["data"], configs["measure"]
    check_output_folder(run_cfg.output_dir, "--output-dir")
    tune = tune_record(os.environ.get(TUNE_ENV))  # a sweep's tuning run: the tuning it belongs to
    variant = configs["variant"]
    task = create_task(run_cfg.task)  # its default recipe and label smoothing; remade with the recipe below
    get_recipe(configs["recipe"].recipe or task.default_recipe)  # an unknown name fails here, listing the recipes
    task.check_data_flags(data_cfg)
    spec = task.spec(data_cfg)
    entry, size = resolve(run_cfg.model, run_cfg.size, spec, variant)  # a bad pair fails here, before data loads
    out_path = Path(run_cfg.output_dir) / result_filename(
        task.name, entry.family, size, run_cfg.seed, run_cfg.precision, variant.name()
    )
    checkpoint_root = checkpoint_folder(out_path)
    check_precision(run_cfg.precision)  # before anything is created or loaded
    trackers = check_trackers(run_cfg.log_with)
    if run_cfg.eval_every and (run_cfg.mode != "train" or data_cfg.eval_split != "validation"):
        raise UserError(
            "--eval-every scores the validation split while training; it needs --mode train and "
            "--eval-split validation (the test split is scored once, at the end)."
        )

    try:
        accelerator = Accelerator(
            mixed_precision=MIXED_PRECISION[run_cfg.precision],
            gradient_accumulation_steps=optim_cfg.grad_accum,
            step_scheduler_with_optimizer=False,  # see loop.make_scheduler
            log_with=trackers or None,
            project_dir=str(Path(run_cfg.output_dir) / "logs") if trackers else None,
            dataloader_config=DataLoaderConfiguration(
                use_seedable_sampler=True,  # the data order is a function of (seed, epoch): the same after a resume
                data_seed=run_cfg.seed,
                non_blocking=torch.cuda.is_available(),  # from pinned memory, copies to the GPU overlap compute
            ),
        )
    except ValueError as e:  # Accelerate refusing a mixed precision this device lacks
        if run_cfg.precision == "fp32":
            raise
        raise UserError(
            f"--precision {run_cfg.precision} cannot run here ({first_line(e)}); use --precision fp32."
        ) from None
    if accelerator.native_amp != (run_cfg.precision != "fp32"):  # what Accelerate really applies, whatever the device
        raise UserError(
            f"--precision {run_cfg.precision} would not be applied to training on {accelerator.device.type} "
            f"(Accelerate's autocast is {'on' if accelerator.native_amp else 'off'}); use --precision fp32."
        )
    # the recipe's values for this family and size, the learning rate scaled with the global batch;
    # the result and checkpoints record the values used
    optim_cfg, recipe, recipe_record = run_recipe(optim_cfg, configs["recipe"], task, spec.modality, entry.family, size,
                                                  accelerator.num_processes, entry.stochastic_depth)
    task = create_task(run_cfg.task, label_smoothing=recipe.label_smoothing, recipe=recipe,
                       recipe_name=recipe_record["name"])
    task.check_recipe(optim_cfg)
    configs = {**configs, "optim": optim_cfg, "recipe": dataclasses.replace(configs["recipe"], recipe=recipe_record["name"])}
    drop_path = {"drop_path_rate": recipe.drop_path} if entry.stochastic_depth else {}
    check_output(out_path, checkpoint_root, run_cfg, as_dict(configs), accelerator.is_main_process)
    if accelerator.is_main_process:
        print(describe_start(recipe_record, accelerator.num_processes, optim_cfg.batch_size, optim_cfg.grad_accum))
    progress.enabled = accelerator.is_main_process  # tells the sweep that started the run, if one did
    if trackers:
        accelerator.init_trackers(out_path.stem, config=tracker_config(as_dict(configs)))
    progress.phase("loading")
    if measure_cfg.measure or run_cfg.mode == "bench":
        measure.check_clock(measure_cfg, accelerator.device)
    if accelerator.device.type == "cuda" and spec.modality == "image":
        torch.backends.cudnn.benchmark = True  # image shapes never change: pick the fastest kernels once
    if run_cfg.size is None and accelerator.is_main_process:
        print(f"Model: {entry.family}-{size}, the family's default for {spec.describe()} (--size chooses another).")
    set_seed(run_cfg.seed)
    started = time.perf_counter()
    environment = capture_environment(accelerator, run_cfg.precision)
    history = None
    if synthetic_inputs(run_cfg, data_cfg):  # bench mode without data: random inputs of the task's shape
        data = None
        model = accelerator.prepare(entry.build(spec, entry.sizes[size], variant, **drop_path))
        params = sum(p.numel() for p in model.parameters())
        generator = torch.Generator().manual_seed(run_cfg.seed)
        bench_batch = send_to_device(task.synthetic_batch(spec, optim_cfg.batch_size, generator), accelerator.device)
    else:
        with accelerator.main_process_first():  # one process fills the caches (tokenizer, datasets) the others read
            data = task.load(data_cfg, run_cfg.seed)
        model = entry.build(data.spec, entry.sizes[size], variant, **drop_path)
        params = sum(p.numel() for p in model.parameters())
        train_loader, eval_loader = loop.make_loaders(data, optim_cfg, data_cfg, recipe, run_cfg.seed,
                                                      accelerator.num_processes, accelerator.process_index)
        optimizer = loop.make_optimizer(model, recipe, optim_cfg)
        model, optimizer, eval_loader = accelerator.prepare(model, optimizer, eval_loader)
        train_loader = loop.prepare_train_loader(accelerator, train_loader)
        scheduler = accelerator.prepare(loop.make_scheduler(optimizer, optim_cfg, len(train_loader)))
        bench_batch = None  # the first training batch, taken when measuring
        ema = None
        if recipe.ema_decay is not None:  # evaluated in place of the trained weights, and checkpointed
            from timm.utils import ModelEmaV3

            ema = ModelEmaV3(accelerator.unwrap_model(model), decay=recipe.ema_decay)
            accelerator.register_for_checkpointing(ema)
        scored = model if ema is None else ema.module
        history = History(run_cfg.eval_every, lambda: loop.evaluate(accelerator, task, scored, eval_loader, data),
                          data_cfg.eval_split, len(data.train))
        if run_cfg.eval_every:  # its entries so far are part of a checkpoint
            accelerator.register_for_checkpointing(history)

        identity = {
            "--task": task.name, "--model": entry.family, "--size": size, "--seed": run_cfg.seed,
            "--precision": run_cfg.precision, "processes": accelerator.num_processes, "parameters": params,
            "training samples": len(data.train),
            **{flag_name(key): value for key, value in as_dict(configs)["optim"].items()},
            # only the flags given, so checkpoints written before variants existed still match a default run
            **{flag_name(key): value for key, value in variant.given().items()},
            **({"--eval-every": run_cfg.eval_every} if run_cfg.eval_every else {}),
            "--recipe": recipe_record["name"],
            **{f"recipe {key}": value for key, value in recipe_record["values"].items()},
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
            stats = loop.train(accelerator, task, model, optimizer, scheduler, train_loader, optim_cfg, checkpoints, start,
                               history, ema)
            phase = "evaluation"
            progress.phase(phase)
            metrics = loop.evaluate(accelerator, task, scored, eval_loader, data)
            metrics["eval_samples"] = len(data.eval)  # the scored split's size, printed beside the scores
            history.record(accelerator, Position(step=stats.steps, samples=stats.samples), metrics)
        if measure_cfg.measure or run_cfg.mode == "bench":
            phase = "measurement"
            progress.phase(phase)
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
    except DiskFullError:
        raise  # no result, which would mark the run done: once space is freed it resumes from its checkpoints
    except Exception as e:  # a bug or an unforeseen failure: the result still says what happened
        if run_cfg.debug:
            traceback.print_exc()
        status, error, exit_code = "error", f"Unexpected {type(e).__name__} during {phase}: {first_line(e)}.", 1
    wall_time_s = time.perf_counter() - started
    skipped = ((data.extra or {}) if data is not None else {}).get("skipped_images")
    if skipped is not None:  # image files left out (unreadable at load, or failed to decode in a batch)
        skipped = skipped() if callable(skipped) else skipped
        if any(skipped.values()) and accelerator.is_main_process:
            print(f"Skipped image files: {skipped.get('train', 0)} of the training split, {skipped.get('eval', 0)} of "
                  f"the scored split (unreadable or undecodable; recorded in the result's data.skipped_images).")
    result, written = None, None
    if accelerator.is_main_process:
        if data is not None and "predictions" in (data.extra or {}):
            for path, lines in zip(predictions_paths(out_path), data.extra["predictions"]):
                write_text_atomic(path, "".join(line.replace("\n", " ") + "\n" for line in lines))
        saved_model = None
        if run_cfg.save_model and status == "ok" and stats is not None:
            weights, description = model_paths(out_path)
            save_model(accelerator.unwrap_model(scored), entry.family, size, data.spec, variant, weights, description)
            saved_model = description.name
        result = build_result(
            status=status, error=error, task=task.name, entry=entry, size=size, variant=variant.name(),
            seed=run_cfg.seed, spec=spec, config=as_dict(configs), environment=environment, metrics=metrics,
            params=params, train=stats, history=None if history is None else history.entries,
            wall_time_s=wall_time_s, measurements=measurements, skipped_images=skipped,
            skipped_entries=(data.extra or {}).get("skipped_entries") if data is not None else None,
            saved_model=saved_model, recipe=recipe_record, tune=tune,
        )
        written = write_json_atomic(out_path, result)
    accelerator.wait_for_everyone()
    if trackers:
        accelerator.end_training()
    return result, written, exit_code


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
    from bench.measure import head_flops_share, measure_model

    tokens = task.tokens(batch)
    try:
        measured = measure_model(
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
    if hasattr(task, "scored_positions"):  # masked LM: how much of the forward pass the output head is
        measured["flops"]["head_share"] = head_flops_share(
            accelerator.unwrap_model(model), batch, task.loss, task.scored_positions(batch))
    return measured


def check_precision(precision: str) -> None:
    """Refuse a precision that training would not really use, before anything is created or loaded.

    Accelerate autocasts fp16 only on accelerators (on a CPU it would train in fp32 while the
    measurements timed fp16), and bf16 on CPUs and on GPUs that support it. The runner checks
    Accelerate's own decision again once the Accelerator exists."""
    if precision == "fp32":
        return
    import torch
    from accelerate import PartialState

    device = PartialState().device
    if precision == "fp16" and device.type == "cpu":
        raise UserError(
            "--precision fp16 does not apply on a CPU (Accelerate would train in fp32); "
            "use --precision bf16 or fp32 there."
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16 is not supported by {torch.cuda.get_device_name(device)}; use fp16 or fp32.")


def check_output(path: Path, checkpoints: Path, run_cfg, config: dict | None = None, main_process: bool = True) -> None:
    """Refuse to clobber an earlier result or checkpoints, to resume without a checkpoint, and fail now
    (not after training) on an unwritable folder. The main process then holds the result's lock
    (bench.results.RunLock) until main() ends, so a second run of the same identity started meanwhile
    is refused instead of overwriting this one. `config` (as_dict of the run's configs) names the
    settings in which an existing result differs."""
    from bench.checkpoint import complete
    from bench.results import RunLock

    refuse_existing(path, run_cfg, config, announce=main_process)
    found = complete(checkpoints)
    if run_cfg.resume and not found:
        raise UserError(f"--resume found no checkpoint in {checkpoints}; run without --resume to start the run.")
    if found and not (run_cfg.resume or run_cfg.overwrite):
        raise UserError(
            f"{checkpoints} holds checkpoints of this run; pass --resume to continue it or --overwrite to start over."
        )
    try:
        made = list(itertools.takewhile(lambda folder: not folder.exists(), (path.parent, *path.parent.parents)))
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE.extend(made)
        probe = path.parent / f".write-test-{os.getpid()}-{path.name}"  # one per process: they check at once
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"Cannot write results to {path.parent} ({e.strerror}); choose another --output-dir.") from None
    if not main_process:
        return
    lock = RunLock(path)
    try:
        locked = lock.acquire()
    except OSError as e:
        raise UserError(f"Cannot write results to {path.parent} ({e.strerror}); choose another --output-dir.") from None
    if not locked:
        raise UserError(
            f"Another run (process {lock.holder()}) is writing {path} now; wait for it to end, "
            f"or choose another --output-dir."
        )
    _LOCKS.append(lock)
    if run_cfg.overwrite or run_cfg.resume:
        return
    try:
        refuse_existing(path, run_cfg, config, announce=False)  # again: a run holding the lock may have ended
    except UserError:
        release_locks()
        raise


def refuse_existing(path: Path, run_cfg, config: dict | None, announce: bool = True) -> None:
    """An existing result is replaced only with --overwrite or --resume; say which settings differ
    (and, with `announce`, that --overwrite replaces a result made with other settings)."""
    from bench.results import ResultError, load_result, setting_differences

    if not path.exists():
        return
    differences = []
    if config is not None:
        try:
            differences = setting_differences(load_result(path).get("config") or {}, config)
        except ResultError:
            pass
    made = f", made with other settings ({'; '.join(differences)})" if differences else ""
    if not (run_cfg.overwrite or run_cfg.resume):
        raise UserError(f"{path} already exists{made}; pass --overwrite to replace it, or another --output-dir.")
    if differences and run_cfg.overwrite and announce:
        print(f"Replacing {path}, which was made with other settings ({'; '.join(differences)}).")


def release_locks() -> None:
    while _LOCKS:
        _LOCKS.pop().release()


def remove_made_folders() -> None:
    """Remove the output folders this run made and left empty (it was refused, or ended before
    writing anything), so that a mistake leaves nothing behind."""
    while _MADE:
        try:
            _MADE.pop(0).rmdir()
        except OSError:  # not empty, and so neither is any folder above it
            _MADE.clear()


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
    try:
        return run_command(lambda: _main(args), debug=args.debug)
    finally:
        release_locks()  # the result is written (or the run refused): another run of it may start
        remove_made_folders()


def _main(args) -> int:
    from bench.loop import signals

    with signals.installed():
        if args.list:
            print(listing())
            return 0
        result, path, exit_code = run(configs_from_args(args))
    if path is not None:
        print(summary_line(result))
        print(f"result: {path}")
        if result["error"]:
            hint = f" {DEBUG_HINT}" if result["status"] == "error" and not args.debug else ""
            report(f"error: {result['error']}{hint}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
