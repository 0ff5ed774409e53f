"""One run's phases, from validated configs to the result file: run() lists them (configure, make_accelerator,
apply_recipe, start, build_synthetic or load_and_build and resume, execute (train_and_evaluate, measure),
report_skipped, write_result), each filling in the Run it is handed. The task registry's create_task is the
command's to pass in (bench.run)."""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from pathlib import Path

from bench.core.config import as_dict, flag_name, resolve_precision
from bench.core.errors import DiskFullError, UserError, first_line
from bench.core.recipes import describe_start, get_recipe, run_recipe
from bench.core.results import (
    TUNE_ENV, build_result, check_output_folder, checkpoint_folder, model_paths, predictions_paths, result_filename,
    tune_record, write_json_atomic, write_text_atomic,
)
from bench.runs.output import check_output

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclasses.dataclass
class Run:
    """What the phases of one run hand each other: set by configure() and filled in, phase by phase."""

    configs: dict
    run_cfg: object
    optim_cfg: object
    data_cfg: object
    measure_cfg: object
    tune: dict | None
    variant: object
    task: object
    spec: object
    entry: object
    size: str
    out_path: Path
    checkpoint_root: Path
    trackers: list
    accelerator: object = None
    recipe: object = None
    recipe_record: dict | None = None
    drop_path: dict = dataclasses.field(default_factory=dict)
    started: float = 0.0  # perf_counter at the start of loading
    cpu_started: float = 0.0  # cpu_seconds() then
    environment: dict | None = None
    data: object = None
    model: object = None
    params: int = 0
    bench_batch: object = None
    train_loader: object = None
    eval_loader: object = None
    optimizer: object = None
    scheduler: object = None
    ema: object = None
    scored: object = None
    history: object = None
    checkpoints: object = None
    start: object = None
    phase: str = "training"  # what the run is doing, named in an unexpected error
    status: str = "ok"
    error: str | None = None
    exit_code: int = 0
    metrics: dict = dataclasses.field(default_factory=dict)
    stats: object = None
    train_scored: dict | None = None  # --score-train: the metrics on the training samples
    measurements: dict = dataclasses.field(default_factory=dict)
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0
    skipped: dict | None = None


def cpu_seconds() -> float:
    """The CPU time of this process (all its threads) and of its finished child processes (DataLoader workers,
    which end with each pass over the data), user + system."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run(configs, create_task) -> tuple[dict | None, Path | None, int]:
    """One run from validated configs: (the result and the file it was written to, both None but on
    the main process, which writes it; the exit code). `create_task`: the task registry's (tasks.create_task),
    which the command passes in.

    Failures during training, evaluation and measurement still leave a result saying what happened.
    """
    r = configure(configs, create_task)
    make_accelerator(r)
    apply_recipe(r, create_task)
    start(r)
    if synthetic_inputs(r.run_cfg, r.data_cfg):  # bench mode without data: random inputs of the task's shape
        build_synthetic(r)
    else:
        load_and_build(r)
        resume(r)
    execute(r)
    report_skipped(r)
    result, written = write_result(r)
    r.accelerator.wait_for_everyone()
    if r.trackers:
        r.accelerator.end_training()
    return result, written, r.exit_code


def configure(configs, create_task) -> Run:
    """Check the configs against the task and model before anything is created or loaded: the task, the
    recipe's name, the data flags, the (model, size) pair, the output file, the precision and trackers."""
    from bench.models import resolve
    from bench.training.history import check_trackers

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
    return Run(configs=configs, run_cfg=run_cfg, optim_cfg=optim_cfg, data_cfg=data_cfg, measure_cfg=measure_cfg,
               tune=tune, variant=variant, task=task, spec=spec, entry=entry, size=size, out_path=out_path,
               checkpoint_root=checkpoint_root, trackers=trackers)


def make_accelerator(r: Run) -> None:
    """The Accelerator for the run's precision, batch accumulation, trackers and seeded data order; a
    precision this device cannot apply is refused."""
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration

    run_cfg = r.run_cfg
    try:
        r.accelerator = Accelerator(
            mixed_precision=MIXED_PRECISION[run_cfg.precision],
            gradient_accumulation_steps=r.optim_cfg.grad_accum,
            step_scheduler_with_optimizer=False,  # see loop.make_scheduler
            log_with=r.trackers or None,
            project_dir=str(Path(run_cfg.output_dir) / "logs") if r.trackers else None,
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
    accelerator = r.accelerator
    if accelerator.native_amp != (run_cfg.precision != "fp32"):  # what Accelerate really applies, whatever the device
        raise UserError(
            f"--precision {run_cfg.precision} would not be applied to training on {accelerator.device.type} "
            f"(Accelerate's autocast is {'on' if accelerator.native_amp else 'off'}); use --precision fp32."
        )


def apply_recipe(r: Run, create_task) -> None:
    """The recipe's values for this family and size (the learning rate scaled with the global batch), the
    task remade with them, the output checked against them; the run announced and its trackers started."""
    from bench.training.history import tracker_config
    from bench.training.progress import progress

    accelerator, run_cfg, entry = r.accelerator, r.run_cfg, r.entry
    # the result and checkpoints record the values used
    r.optim_cfg, r.recipe, r.recipe_record = run_recipe(r.optim_cfg, r.configs["recipe"], r.task, r.spec.modality,
                                                        entry.family, r.size, accelerator.num_processes,
                                                        entry.stochastic_depth)
    r.task = create_task(run_cfg.task, label_smoothing=r.recipe.label_smoothing, recipe=r.recipe,
                         recipe_name=r.recipe_record["name"])
    r.task.check_recipe(r.optim_cfg)
    r.configs = {**r.configs, "optim": r.optim_cfg,
                 "recipe": dataclasses.replace(r.configs["recipe"], recipe=r.recipe_record["name"])}
    r.drop_path = {"drop_path_rate": r.recipe.drop_path} if entry.stochastic_depth else {}
    check_output(r.out_path, r.checkpoint_root, run_cfg, as_dict(r.configs), accelerator.is_main_process)
    if accelerator.is_main_process:
        print(describe_start(r.recipe_record, accelerator.num_processes, r.optim_cfg.batch_size, r.optim_cfg.grad_accum))
    progress.enabled = accelerator.is_main_process  # tells the sweep that started the run, if one did
    if r.trackers:
        accelerator.init_trackers(r.out_path.stem, config=tracker_config(as_dict(r.configs)))


def start(r: Run) -> None:
    """The loading phase begins: the measurement clock checked, the seed set, the clock started and the
    environment recorded."""
    import torch
    from accelerate.utils import set_seed

    from bench.core.results import capture_environment
    from bench.measure import timing as measure
    from bench.training.progress import progress

    accelerator, run_cfg = r.accelerator, r.run_cfg
    progress.phase("loading")
    if r.measure_cfg.measure or run_cfg.mode == "bench":
        measure.check_clock(r.measure_cfg, accelerator.device)
    if accelerator.device.type == "cuda" and r.spec.modality == "image":
        torch.backends.cudnn.benchmark = True  # image shapes never change: pick the fastest kernels once
    if run_cfg.size is None and accelerator.is_main_process:
        print(f"Model: {r.entry.family}-{r.size}, the family's default for {r.spec.describe()} (--size chooses another).")
    set_seed(run_cfg.seed)
    r.started, r.cpu_started = time.perf_counter(), cpu_seconds()
    r.environment = capture_environment(accelerator, run_cfg.precision)


def build_synthetic(r: Run) -> None:
    """Bench mode without data: the model prepared, and one batch of random inputs of the task's shape."""
    import torch
    from accelerate.utils import send_to_device

    accelerator = r.accelerator
    r.model = accelerator.prepare(r.entry.build(r.spec, r.entry.sizes[r.size], r.variant, **r.drop_path))
    r.params = sum(p.numel() for p in r.model.parameters())
    generator = torch.Generator().manual_seed(r.run_cfg.seed)
    r.bench_batch = send_to_device(r.task.synthetic_batch(r.spec, r.optim_cfg.batch_size, generator), accelerator.device)


def load_and_build(r: Run) -> None:
    """The task's data loaded, the model built, its loaders, optimizer and scheduler prepared by
    Accelerate, the EMA of its weights (where the recipe keeps one) and the metric history."""
    from bench.training import loop
    from bench.training.history import History

    accelerator, run_cfg, recipe, optim_cfg = r.accelerator, r.run_cfg, r.recipe, r.optim_cfg
    with accelerator.main_process_first():  # one process fills the caches (tokenizer, datasets) the others read
        r.data = data = r.task.load(r.data_cfg, run_cfg.seed)
    model = r.entry.build(data.spec, r.entry.sizes[r.size], r.variant, **r.drop_path)
    r.params = sum(p.numel() for p in model.parameters())
    train_loader, eval_loader = loop.make_loaders(data, optim_cfg, r.data_cfg, recipe, run_cfg.seed,
                                                  accelerator.num_processes, accelerator.process_index)
    optimizer = loop.make_optimizer(model, recipe, optim_cfg)
    r.model, r.optimizer, r.eval_loader = accelerator.prepare(model, optimizer, eval_loader)
    r.train_loader = loop.prepare_train_loader(accelerator, train_loader)
    r.scheduler = accelerator.prepare(loop.make_scheduler(r.optimizer, optim_cfg, len(r.train_loader)))
    r.bench_batch = None  # the first training batch, taken when measuring
    r.ema = None
    if recipe.ema_decay is not None:  # evaluated in place of the trained weights, and checkpointed
        from timm.utils import ModelEmaV3

        r.ema = ModelEmaV3(accelerator.unwrap_model(r.model), decay=recipe.ema_decay)
        accelerator.register_for_checkpointing(r.ema)
    r.scored = scored = r.model if r.ema is None else r.ema.module
    task, eval_loader = r.task, r.eval_loader
    r.history = History(run_cfg.eval_every, lambda: loop.evaluate(accelerator, task, scored, eval_loader, data),
                        r.data_cfg.eval_split, len(data.train))
    if run_cfg.eval_every:  # its entries so far are part of a checkpoint
        accelerator.register_for_checkpointing(r.history)


def resume(r: Run) -> None:
    """The run's checkpoints, named by what identifies the run: loaded with --resume, cleared with --overwrite."""
    from bench.training.checkpoint import Checkpoints

    accelerator, run_cfg, recipe_record = r.accelerator, r.run_cfg, r.recipe_record
    identity = {
        "--task": r.task.name, "--model": r.entry.family, "--size": r.size, "--seed": run_cfg.seed,
        "--precision": run_cfg.precision, "processes": accelerator.num_processes, "parameters": r.params,
        "training samples": len(r.data.train),
        **{flag_name(key): value for key, value in as_dict(r.configs)["optim"].items()},
        # only the flags given, so checkpoints written before variants existed still match a default run
        **{flag_name(key): value for key, value in r.variant.given().items()},
        **({"--eval-every": run_cfg.eval_every} if run_cfg.eval_every else {}),
        "--recipe": recipe_record["name"],
        **{f"recipe {key}": value for key, value in recipe_record["values"].items()},
    }
    r.checkpoints = Checkpoints(r.checkpoint_root, identity, run_cfg.checkpoint_every)
    r.start = None
    if run_cfg.resume:
        folder, r.start = r.checkpoints.load(accelerator)
        if accelerator.is_main_process:
            print(f"Resuming from {folder} at step {r.start.step}.")
    elif run_cfg.overwrite:
        r.checkpoints.clear(accelerator)


def execute(r: Run) -> None:
    """Train and evaluate (--mode train), then measure (--measure or --mode bench); a stop or failure on
    the way is recorded in the run's status, error and exit code, not raised (but a full disk)."""
    from bench.training import loop

    r.phase = "training"
    try:
        if r.run_cfg.mode == "train":
            train_and_evaluate(r)
        if r.measure_cfg.measure or r.run_cfg.mode == "bench":
            measure(r)
    except loop.Stopped as e:
        r.status, r.error, r.exit_code = e.status, str(e), e.exit_code
    except DiskFullError:
        raise  # no result, which would mark the run done: once space is freed it resumes from its checkpoints
    except Exception as e:  # a bug or an unforeseen failure: the result still says what happened
        if r.run_cfg.debug:
            traceback.print_exc()
        r.status, r.error, r.exit_code = "error", f"Unexpected {type(e).__name__} during {r.phase}: {first_line(e)}.", 1
    r.wall_time_s, r.cpu_time_s = time.perf_counter() - r.started, cpu_seconds() - r.cpu_started


def train_and_evaluate(r: Run) -> None:
    """The training loop, then the scored split evaluated (with the EMA's weights where there is one)."""
    from bench.training import loop
    from bench.training.checkpoint import Position
    from bench.training.progress import progress

    accelerator = r.accelerator
    r.stats = loop.train(accelerator, r.task, r.model, r.optimizer, r.scheduler, r.train_loader, r.optim_cfg,
                         r.checkpoints, r.start, r.history, r.ema)
    r.phase = "evaluation"
    progress.phase(r.phase)
    r.metrics = loop.evaluate(accelerator, r.task, r.scored, r.eval_loader, r.data)
    r.metrics["eval_samples"] = len(r.data.eval)  # the scored split's size, printed beside the scores
    r.history.record(accelerator, Position(step=r.stats.steps, samples=r.stats.samples), r.metrics)
    if r.data.train_scored is not None:  # --score-train; its loader is made now, after the last checkpoint
        loader = loop.scoring_loader(r.data.train_scored, r.data, r.optim_cfg, r.data_cfg)
        loader = accelerator.prepare_data_loader(loader)
        r.train_scored = {**loop.evaluate(accelerator, r.task, r.scored, loader, r.data),
                          "samples": len(r.data.train_scored)}


def measure(r: Run) -> None:
    """The model's cost measured on one batch (the first training batch, or the synthetic one), holding
    the machine's measurement lock; the training loop's own throughput added where it trained."""
    from bench.core.machine import measuring
    from bench.training.progress import progress

    r.phase = "measurement"
    progress.phase(r.phase)
    if r.bench_batch is None:
        r.bench_batch = next(iter(r.train_loader))
    with measuring():  # one measurement at a time, nothing else of the sweep running beside it
        r.measurements = measure_run(r.accelerator, r.task, r.model, r.bench_batch, r.optim_cfg, r.measure_cfg,
                                     r.run_cfg.precision)
    r.measurements["throughput"]["inputs"] = "dataset" if r.data is not None else "synthetic"
    if r.stats is not None:
        r.measurements["throughput"].update(r.stats.loop)


def report_skipped(r: Run) -> None:
    """Image files the data left out (unreadable at load, or failed to decode in a batch), said and kept
    for the result."""
    data, accelerator = r.data, r.accelerator
    skipped = ((data.extra or {}) if data is not None else {}).get("skipped_images")
    if skipped is not None:  # image files left out (unreadable at load, or failed to decode in a batch)
        skipped = skipped() if callable(skipped) else skipped
        if any(skipped.values()) and accelerator.is_main_process:
            print(f"Skipped image files: {skipped.get('train', 0)} of the training split, {skipped.get('eval', 0)} of "
                  f"the scored split (unreadable or undecodable; recorded in the result's data.skipped_images).")
    r.skipped = skipped


def write_result(r: Run) -> tuple[dict | None, Path | None]:
    """On the main process: the predictions, the trained weights (--save-model) and the result file
    written; (the result, its path), both None on the other processes."""
    from bench.models import save_model

    accelerator, run_cfg, data = r.accelerator, r.run_cfg, r.data
    result, written = None, None
    if accelerator.is_main_process:
        if data is not None and "predictions" in (data.extra or {}):
            for path, lines in zip(predictions_paths(r.out_path), data.extra["predictions"]):
                write_text_atomic(path, "".join(line.replace("\n", " ") + "\n" for line in lines))
        saved_model = None
        if run_cfg.save_model and r.status == "ok" and r.stats is not None:
            weights, description = model_paths(r.out_path)
            save_model(accelerator.unwrap_model(r.scored), r.entry.family, r.size, data.spec, r.variant, weights,
                       description)
            saved_model = description.name
        result = build_result(
            status=r.status, error=r.error, task=r.task.name, entry=r.entry, size=r.size, variant=r.variant.name(),
            seed=run_cfg.seed, spec=r.spec, config=as_dict(r.configs), environment=r.environment, metrics=r.metrics,
            params=r.params, train=r.stats, train_scored=r.train_scored,
            history=None if r.history is None else r.history.entries,
            wall_time_s=r.wall_time_s, cpu_time_s=r.cpu_time_s, measurements=r.measurements, skipped_images=r.skipped,
            skipped_entries=(data.extra or {}).get("skipped_entries") if data is not None else None,
            saved_model=saved_model, recipe=r.recipe_record, tune=r.tune,
        )
        written = write_json_atomic(r.out_path, result)
    return result, written


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

    from bench.training.loop import OutOfMemory
    from bench.measure.timing import head_flops_share, measure_model

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

