"""Frozen configs, one per concern, validated when made (Config) and turned into argparse flags.

A flag is generated from its field (name, type, default, help, choices), so the two never drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, get_type_hints

from bench.core.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
MODES = ("train", "bench")
EVAL_SPLITS = ("test", "validation")
CLOCKS = ("wall", "process")
NORMS = ("affine", "layernorm", "batchnorm", "none")
TOKEN_MIXINGS = ("linear", "mlp", "conv3x3", "dwconv")
SGU_INITS = ("paper", "default")
MAX_SEED = 2**32 - 1  # numpy's limit; accelerate's set_seed seeds numpy with it
MIN_VOCAB = 300  # a trained tokenizer is byte-level BPE (tasks/text.py): 256 bytes and up to 7 special tokens


def flag(default: Any, help: str, choices: tuple | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


def require(ok: bool, sentence: str) -> None:
    if not ok:
        raise UserError(sentence)


class Config:
    """What every config checks when it is made: each float field is a finite number (inf and nan
    pass range checks such as lr > 0, or fail them with a misleading sentence), then the class's own
    ranges and combinations (`validate`)."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            require(not isinstance(value, float) or math.isfinite(value),
                    f"{flag_name(f.name)} must be a finite number, got {value}.")
        self.validate()

    def validate(self) -> None:
        pass

    def given(self) -> dict[str, Any]:
        """The fields set to other than their default, as {field name: value}."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


@dataclass(frozen=True)
class RunConfig(Config):
    """What to run and where the result goes."""

    task: str = flag("digits", "task name (see --list)")
    model: str = flag("gmlp", "model family (see --list)")
    size: Optional[str] = flag(None, "model size; default: the family's size for the task's input")
    seed: int = flag(0, "random seed for weights, data order and masking")
    mode: str = flag("train", "train: train and evaluate, then measure; bench: measure only", MODES)
    precision: Optional[str] = flag(
        None, "autocast precision (default: accelerate launch's --mixed_precision or config file, else fp32)", PRECISIONS
    )
    output_dir: str = flag("runs", "folder for the result JSON and checkpoints")
    overwrite: bool = flag(False, "start the run over: replace its result and remove its checkpoints")
    resume: bool = flag(False, "continue from the run's latest checkpoint (and replace its result)")
    checkpoint_every: Optional[int] = flag(
        0, "also save a checkpoint every N optimizer steps; one is always saved at each epoch's end, "
        "the end of training and on SIGINT/SIGTERM (none: never save)"
    )
    eval_every: Optional[int] = flag(
        None, "also score the validation split every N optimizer steps, for the learning curve in the result's "
        "history (needs --eval-split validation: the test split is scored once, at the end)"
    )
    log_with: Optional[str] = flag(
        None, "experiment trackers through Accelerate, comma-separated: tensorboard, wandb, mlflow, ... "
        "(local logs go to OUTPUT_DIR/logs)"
    )
    save_model: bool = flag(
        False, "keep the final weights as RESULT.safetensors, with RESULT.model.json to rebuild the model "
        "(bench.models.load_saved)"
    )
    debug: bool = flag(False, "show full tracebacks")

    def validate(self):
        require(0 <= self.seed <= MAX_SEED, f"--seed must be from 0 to {MAX_SEED}, got {self.seed}.")
        require(self.eval_every is None or self.eval_every >= 1, f"--eval-every must be at least 1, got {self.eval_every}.")
        require(self.mode in MODES, f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        require(
            self.precision is None or self.precision in PRECISIONS,
            f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.",
        )
        require(
            self.checkpoint_every is None or self.checkpoint_every >= 0,
            f"--checkpoint-every must be >= 0 or none, got {self.checkpoint_every}.",
        )
        require(
            not (self.resume and self.overwrite),
            "--resume continues a run and --overwrite starts it over; pass only one of them.",
        )


@dataclass(frozen=True)
class OptimConfig(Config):
    """Optimisation: batch, steps and accumulation; the values left unset are the recipe's (--recipe)."""

    batch_size: int = flag(128, "batch size per process (the global batch is this x processes x accumulation)")
    lr: Optional[float] = flag(
        None, "peak learning rate, used as given (default: the recipe's, scaled with the global batch by its rule)"
    )
    weight_decay: Optional[float] = flag(None, "weight decay (default: the recipe's)")
    epochs: Optional[float] = flag(None, "training epochs, ignored when --max-steps is given (default: the recipe's)")
    max_steps: Optional[int] = flag(None, "optimizer steps to train; overrides --epochs")
    warmup_fraction: Optional[float] = flag(
        None, "fraction of the steps spent warming the learning rate up (default: the recipe's warm-up)"
    )
    label_smoothing: Optional[float] = flag(
        None, "label smoothing of the training loss (default: the recipe's; the suite recipe takes the task's: 0.1 "
        "for images, as DeiT, and translation, as the Transformer; 0 for masked LM, as BERT)"
    )
    grad_accum: int = flag(1, "batches accumulated per optimizer step")
    grad_clip: Optional[float] = flag(None, "clip the gradient norm to this value, 0 for no clipping (default: the recipe's)")
    eval_batch_size: Optional[int] = flag(None, "evaluation batch size per process (default: --batch-size)")

    def validate(self):
        require(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}.")
        require(self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}.")
        require(self.weight_decay is None or self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}.")
        require(self.epochs is None or self.epochs > 0, f"--epochs must be positive, got {self.epochs}.")
        require(self.max_steps is None or self.max_steps >= 1, f"--max-steps must be at least 1, got {self.max_steps}.")
        require(
            self.warmup_fraction is None or 0 <= self.warmup_fraction < 1,
            f"--warmup-fraction must be in [0, 1), got {self.warmup_fraction}.",
        )
        require(
            self.label_smoothing is None or 0 <= self.label_smoothing < 1,
            f"--label-smoothing must be in [0, 1), got {self.label_smoothing}.",
        )
        require(self.grad_accum >= 1, f"--grad-accum must be at least 1, got {self.grad_accum}.")
        require(self.grad_clip is None or self.grad_clip >= 0, f"--grad-clip must be >= 0, got {self.grad_clip}.")
        require(
            self.eval_batch_size is None or self.eval_batch_size >= 1,
            f"--eval-batch-size must be at least 1, got {self.eval_batch_size}.",
        )

    def recipe_overrides(self) -> dict[str, Any]:
        """The recipe values given as flags, as {Recipe field: value}: --grad-clip 0 is no clipping,
        and --lr is used as given (not scaled)."""
        given = {name: getattr(self, name) for name in RECIPE_OPTIM_FIELDS if getattr(self, name) is not None}
        if "grad_clip" in given and given["grad_clip"] == 0:
            given["grad_clip"] = None
        if "lr" in given:
            given["lr_scaling"] = "none"
        return given


# The OptimConfig fields that are recipe values (bench.core.recipes.Recipe fields of the same names).
RECIPE_OPTIM_FIELDS = ("lr", "weight_decay", "epochs", "warmup_fraction", "label_smoothing", "grad_clip")
OPTIMIZERS = ("adamw", "lamb", "sgd")


@dataclass(frozen=True)
class RecipeConfig(Config):
    """Training recipe (bench.core.recipes): a named set of values; a flag given overrides one of them."""

    recipe: Optional[str] = flag(None, "training recipe: suite, plain, deit, paper (default: the task's: paper for "
                                       "imagenet, suite for the rest)")
    optimizer: Optional[str] = flag(None, "optimizer (default: the recipe's)", OPTIMIZERS)
    warmup_epochs: Optional[float] = flag(None, "warm-up in epochs (default: the recipe's warm-up)")
    mixup: Optional[float] = flag(None, "Mixup alpha, 0 for none (images; default: the recipe's)")
    cutmix: Optional[float] = flag(None, "CutMix alpha, 0 for none (images; default: the recipe's)")
    mix_prob: Optional[float] = flag(None, "probability of mixing a batch (images; default: the recipe's)")
    switch_prob: Optional[float] = flag(None, "probability of CutMix rather than Mixup when both are on (images)")
    rand_augment: Optional[str] = flag(None, "RandAugment policy (timm's, e.g. rand-m9-mstd0.5-inc1), off for none "
                                             "(images; default: the recipe's)")
    re_prob: Optional[float] = flag(None, "random-erasing probability (images; default: the recipe's)")
    drop_path: Optional[float] = flag(None, "stochastic depth rate of the last block, rising linearly from 0 over depth "
                                            "(images; default: the recipe's for the family and size)")
    repeated_aug: Optional[int] = flag(None, "repeats of each image per epoch, 1 for none (images; default: the recipe's)")
    ema_decay: Optional[float] = flag(None, "EMA of the weights, evaluated in their place; 0 for none "
                                            "(images; default: the recipe's)")

    def validate(self):
        require(
            self.optimizer is None or self.optimizer in OPTIMIZERS,
            f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.",
        )

    def overrides(self) -> dict[str, Any]:
        """The recipe values given, as {Recipe field: value}: off and 0 turn a part off."""
        given = {name: value for name, value in self.given().items() if name != "recipe"}
        if given.get("rand_augment") == "off":
            given["rand_augment"] = None
        if given.get("ema_decay") == 0:
            given["ema_decay"] = None
        return given


@dataclass(frozen=True)
class DataConfig(Config):
    """Where the task's data comes from and how much of it to use."""

    data_dir: Optional[str] = flag(None, "local dataset folder (ImageFolder layout for image tasks)")
    data_files: Optional[str] = flag(None, "local data files, comma-separated (text tasks)")
    hub_id: Optional[str] = flag(None, "override the task's datasets hub id")
    val_fraction: float = flag(0.2, "held-out fraction when a source has no test split")
    eval_split: str = flag(
        "test", "the held-out split to score: test, or validation (a fixed part carved from the training data, which "
        "training never sees whichever split is scored): tune on validation, report test", EVAL_SPLITS
    )
    max_train_samples: Optional[int] = flag(None, "use at most this many training samples")
    max_eval_samples: Optional[int] = flag(None, "use at most this many evaluation samples")
    score_train: bool = flag(
        False, "image tasks: after training, also score the training images (without augmentation, the evaluation "
        "transform) and record the metrics, so a result shows the gap between training and held-out accuracy"
    )
    num_workers: int = flag(0, "DataLoader worker processes (0 loads in the main process)")
    tokenizer: Optional[str] = flag(None, "local tokenizer folder (text tasks); default: train one and cache it")
    vocab_size: int = flag(8000, "vocabulary size of a trained tokenizer (text tasks)")
    image_size: Optional[int] = flag(None, "image side in pixels for folder tasks (default 224)")
    seq_len: int = flag(128, "tokens per MLM block / maximum source length (text tasks)")
    source_field: str = flag("source", "source field of a pairs file (seq2seq)")
    target_field: str = flag("target", "target field of a pairs file (seq2seq)")

    def validate(self):
        require(0 < self.val_fraction < 1, f"--val-fraction must be in (0, 1), got {self.val_fraction}.")
        require(
            self.eval_split in EVAL_SPLITS,
            f"--eval-split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}.",
        )
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}.")
        require(self.num_workers >= 0, f"--num-workers must be >= 0, got {self.num_workers}.")
        require(self.vocab_size >= MIN_VOCAB, f"--vocab-size must be at least {MIN_VOCAB} (a byte-level BPE vocabulary "
                                              f"holds the 256 bytes and the special tokens), got {self.vocab_size}.")
        require(self.image_size is None or self.image_size >= 8, f"--image-size must be at least 8, got {self.image_size}.")
        require(self.seq_len >= 8, f"--seq-len must be at least 8, got {self.seq_len}.")


@dataclass(frozen=True)
class MeasureConfig(Config):
    """Measurement: throughput, latency, peak memory, FLOPs and MFU, timed apart from training."""

    measure: bool = flag(True, "after training, also measure throughput, latency and memory (bench mode always does)")
    bench_batch_size: Optional[int] = flag(None, "batch size for throughput and memory (default: --batch-size)")
    bench_warmup_steps: int = flag(5, "untimed steps before each timed phase (compilation, allocator, caches)")
    bench_steps: int = flag(20, "timed steps in one repeat")
    bench_repeats: int = flag(5, "repeats of the timed steps; the median is reported, the spread beside it")
    latency_samples: int = flag(100, "batch-1 forward passes timed one by one for the latency percentiles")
    compile: bool = flag(False, "torch.compile the measured copy of the model before timing")
    channels_last: bool = flag(False, "use channels_last memory format for the model and image inputs")
    peak_gemm_size: int = flag(2048, "side of the square matmul timed as the peak FLOP/s where no table entry exists (MFU)")
    bench_clock: str = flag(
        "wall", "clock of throughput and latency: wall, or process (this process's CPU time, which other jobs on a "
        "shared machine do not advance; CPU with one thread only)", CLOCKS
    )

    def validate(self):
        require(
            self.bench_batch_size is None or self.bench_batch_size >= 1,
            f"--bench-batch-size must be at least 1, got {self.bench_batch_size}.",
        )
        require(self.bench_warmup_steps >= 0, f"--bench-warmup-steps must be >= 0, got {self.bench_warmup_steps}.")
        require(self.bench_steps >= 1, f"--bench-steps must be at least 1, got {self.bench_steps}.")
        require(self.bench_repeats >= 1, f"--bench-repeats must be at least 1, got {self.bench_repeats}.")
        require(self.latency_samples >= 1, f"--latency-samples must be at least 1, got {self.latency_samples}.")
        require(self.peak_gemm_size >= 64, f"--peak-gemm-size must be at least 64, got {self.peak_gemm_size}.")
        require(self.bench_clock in CLOCKS, f"--bench-clock must be one of {', '.join(CLOCKS)}, got {self.bench_clock!r}.")


@dataclass(frozen=True)
class VariantConfig(Config):
    """Architecture variants for ablations: one part of a family swapped (unset: the family's own choice)."""

    norm: Optional[str] = flag(None, "ResMLP normalisation (the paper's: affine)", NORMS)
    token_mixing: Optional[str] = flag(
        None, "ResMLP token mixing: linear (the paper's), mlp (Mixer's), conv3x3, dwconv "
        "(depthwise-separable 3x3); on text the convolutions are 1-D with kernel 3", TOKEN_MIXINGS
    )
    sgu_init: Optional[str] = flag(
        None, "gMLP / aMLP spatial gating init: paper (near-zero weights, unit bias) or default "
        "(the init of every other linear layer)", SGU_INITS
    )
    layer_scale_init: Optional[float] = flag(None, "ResMLP layer-scale initial value (default: the size's)")

    def validate(self):
        for name, choices in (("norm", NORMS), ("token_mixing", TOKEN_MIXINGS), ("sgu_init", SGU_INITS)):
            value = getattr(self, name)
            require(
                value is None or value in choices,
                f"{flag_name(name)} must be one of {', '.join(choices)}, got {value!r}.",
            )
        require(
            self.layer_scale_init is None or self.layer_scale_init > 0,
            f"--layer-scale-init must be positive, got {self.layer_scale_init}.",
        )

    def name(self) -> str:
        """Canonical short form, "" for the family's default: "norm=layernorm,layer-scale-init=0.0001"."""
        def text(value) -> str:
            return f"{value:g}" if isinstance(value, float) else value  # 1e-4 -> "0.0001", 1.0 -> "1"

        return ",".join(f"{key.replace('_', '-')}={text(value)}" for key, value in self.given().items())

    @classmethod
    def parse(cls, text: str) -> "VariantConfig":
        """The inverse of name(): "" or "key=value,key=value" with flag names (sweep files use it)."""
        values: dict[str, Any] = {}
        for item in filter(None, text.split(",")):
            key, _, value = item.partition("=")
            name = key.strip().replace("-", "_")
            require(
                name in cls.__dataclass_fields__ and value != "",
                f"Variant {text!r} is not of the form key=value,...; the keys are "
                f"{', '.join(n.replace('_', '-') for n in cls.__dataclass_fields__)}.",
            )
            try:
                values[name] = float(value) if name == "layer_scale_init" else value.strip()
            except ValueError:
                raise UserError(f"--layer-scale-init must be a number, got {value!r} in variant {text!r}.") from None
        return cls(**values)


@dataclass(frozen=True)
class SlurmConfig(Config):
    """Slurm jobs of a sweep (python -m bench.sweep --executor slurm); the sweep file's [slurm] table sets them too."""

    partition: Optional[str] = flag(None, "Slurm partition of the jobs (default: the cluster's)")
    time_min: int = flag(60, "time limit of a job, in minutes; a run still going then is requeued and resumes")
    cpus_per_run: int = flag(8, "CPUs per job (its runs' OpenMP threads and data workers share them)")
    mem_gb: Optional[int] = flag(None, "memory per job in GB (default: the partition's)")
    account: Optional[str] = flag(None, "Slurm account the jobs are charged to (default: yours)")

    def validate(self):
        require(self.time_min >= 1, f"--time-min must be at least 1, got {self.time_min}.")
        require(self.cpus_per_run >= 1, f"--cpus-per-run must be at least 1, got {self.cpus_per_run}.")
        require(self.mem_gb is None or self.mem_gb >= 1, f"--mem-gb must be at least 1, got {self.mem_gb}.")
        for name in ("partition", "account"):
            value = getattr(self, name)
            require(value is None or (value.strip() != "" and not any(c.isspace() for c in value)),
                    f"{flag_name(name)} must be a name without spaces, got {value!r}.")


LAUNCHER_PRECISIONS = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}  # accelerate's names -> ours


def resolve_precision(run_cfg: RunConfig) -> RunConfig:
    """The run's precision: --precision, else what `accelerate launch` was given (its --mixed_precision
    or config file, passed to the run as ACCELERATE_MIXED_PRECISION), else fp32. The launcher's "no"
    is also its default, so only a launcher asking for bf16 or fp16 can disagree with --precision."""
    launched = LAUNCHER_PRECISIONS.get(os.environ.get("ACCELERATE_MIXED_PRECISION", ""))
    if run_cfg.precision is None:
        return dataclasses.replace(run_cfg, precision=launched or "fp32")
    require(
        launched in (None, "fp32", run_cfg.precision),
        f"--precision {run_cfg.precision} contradicts accelerate launch's mixed precision {launched}; give one of them.",
    )
    return run_cfg


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


CONCERNS = {
    "run": RunConfig, "optim": OptimConfig, "recipe": RecipeConfig, "data": DataConfig, "measure": MeasureConfig,
    "variant": VariantConfig,
}


def _parse_optional(kind):
    def parse(text: str):
        if text.lower() == "none":
            return None
        return kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error
    return parse


def field_kinds(cls) -> dict[str, tuple[type, bool]]:
    """{field name: (its type, whether it may be None)} of a config class."""
    hints = get_type_hints(cls)
    return {f.name: (_strip_optional(hints[f.name]), hints[f.name] != _strip_optional(hints[f.name])) for f in fields(cls)}


def add_flags(parser: argparse.ArgumentParser, cls, unset_absent: bool = False) -> None:
    """One flag per field of `cls`, named --field-name. `unset_absent`: a flag not given leaves its
    field out of the parsed arguments (for values that may also come from elsewhere, such as a file)."""
    kinds = field_kinds(cls)
    group = parser.add_argument_group(cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.__name__)
    for f in fields(cls):
        name = flag_name(f.name)
        kind, optional = kinds[f.name]
        # argparse formats help with %: a literal one ("10%") must be doubled
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS if unset_absent else f.default,
                                  "help": f.metadata["help"].replace("%", "%%")}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.metadata.get("choices"):  # unset means default; "none" may be a choice (--norm none)
            kwargs["type"] = kind
            kwargs["choices"] = f.metadata["choices"]
        else:
            kwargs["type"] = _parse_optional(kind) if optional else kind
            kwargs["metavar"] = f.name.upper()
        group.add_argument(name, **kwargs)


def _strip_optional(hint):
    args = getattr(hint, "__args__", None)
    if args and type(None) in args:
        return next(a for a in args if a is not type(None))
    return hint


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every default, and descriptions and examples keep their line breaks."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):  # unset, or the help says it already
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """A flag argparse refuses (unknown, a value of the wrong type, a choice not offered) is one
    sentence on stderr, as every other mistake, instead of the usage and a line."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help.\n")


def command_parser(spelling: str, description: str, examples: str) -> argparse.ArgumentParser:
    """The parser of one of the suite's commands. `spelling` is how a source checkout runs it
    ("python -m bench.sweep"); a console script (mlpbench-sweep) is named as it was called."""
    called = Path(sys.argv[0]).name
    prog = spelling if called.endswith(".py") or called in ("-m", "-c", "") else called
    return ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter,
                          epilog="examples:\n" + examples)


def build_parser(description: str, examples: str) -> argparse.ArgumentParser:
    parser = command_parser("bench/run.py", description, examples)
    for cls in CONCERNS.values():
        add_flags(parser, cls)
    return parser


def configs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """{"run": RunConfig, "optim": ..., "data": ..., "measure": ..., "variant": VariantConfig}, validated."""
    values = vars(args)
    return {key: cls(**{f.name: values[f.name] for f in fields(cls)}) for key, cls in CONCERNS.items()}


def as_dict(configs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: dataclasses.asdict(cfg) for key, cfg in configs.items()}
