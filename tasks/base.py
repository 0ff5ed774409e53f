"""What a task is: the shape it gives a model (TaskSpec), its data, its loss and its metrics.

The training loop only talks to this interface, so image, MLM and seq2seq tasks run through
the same loop and the same measurement code.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from accelerate.utils import find_batch_size

from bench.config import flag_name
from bench.errors import UserError
from bench.registry import Registry

MODALITIES = ("image", "mlm", "seq2seq")

# The data flags (bench.config.DataConfig fields) every task reads; each task adds its own (Task.data_flags).
COMMON_DATA_FLAGS = ("eval_split", "max_train_samples", "max_eval_samples", "num_workers")

# The validation split (--eval-split validation) of a source without one: this fraction of its
# training data, chosen by a fixed seed or a hash, never by the run's seed. It is removed from
# training whichever split a run scores, so tuning runs and reported runs train on the same data.
VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class TaskSpec:
    """What a task gives a model. Known before any data is loaded, so bad pairs fail at once."""

    name: str
    modality: str  # one of MODALITIES
    metric: str  # the primary metric, ranked on by the leaderboard
    higher_is_better: bool = True
    image_size: Optional[tuple[int, int, int]] = None  # (C, H, W)
    num_classes: Optional[int] = None
    vocab_size: Optional[int] = None
    seq_len: Optional[int] = None  # MLM block length / maximum source length
    target_len: Optional[int] = None  # maximum target length (seq2seq)
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None  # decoder start token (seq2seq)
    eos_token_id: Optional[int] = None

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")

    @property
    def needs(self) -> str:
        """Which parts a model must have: an encoder, or an encoder and a causal decoder."""
        return "encoder-decoder" if self.modality == "seq2seq" else "encoder"

    def describe(self) -> str:
        if self.modality == "image":
            c, h, w = self.image_size
            return f"{c}x{h}x{w} images, {self.num_classes} classes"
        if self.modality == "mlm":
            return f"masked LM, {self.seq_len}-token blocks"
        return f"seq2seq, source <= {self.seq_len} / target <= {self.target_len} tokens"


@dataclass
class TaskData:
    """A loaded task: datasets, how to batch them, and the final spec (e.g. the tokenizer's vocabulary)."""

    spec: TaskSpec
    train: Any  # a torch Dataset
    eval: Any
    collate: Optional[Callable] = None
    extra: Optional[dict] = None  # task-specific state (a tokenizer, ...)


class Task(ABC):
    """One registered task. Subclasses fill in the data; a modality base fills in loss and metrics."""

    name: str = ""
    description: str = ""
    offline: bool = False  # True when the default source needs no network
    default_label_smoothing: float = 0.0  # the modality's usual value; --label-smoothing overrides it
    label_smoothing: float = 0.0  # the run's value, set by `configure`
    data_flags: tuple[str, ...] = ()  # the DataConfig fields it can read besides COMMON_DATA_FLAGS

    def check_data_flags(self, data_cfg) -> None:
        """Refuse a data flag given (other than its default) that this task never reads: ignored,
        it would leave the user believing the run used it (--data-dir on digits)."""
        reads = (*self.data_flags, *COMMON_DATA_FLAGS)
        unused = [flag_name(name) for name in data_cfg.given() if name not in reads]
        if unused:
            raise UserError(
                f"--task {self.name} does not use {' or '.join(unused)} (it reads "
                f"{', '.join(map(flag_name, reads))}); drop {'it' if len(unused) == 1 else 'them'}."
            )

    @abstractmethod
    def spec(self, data_cfg) -> TaskSpec:
        """The spec, from the config alone: cheap, no data loaded."""

    @abstractmethod
    def load(self, data_cfg, seed: int) -> TaskData:
        """Load (or build) the datasets; raise DataError with one sentence when they are missing."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Training loss of one batch (label smoothing etc. configured with `configure`)."""

    @abstractmethod
    def eval_outputs(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Per-sample tensors (first dim = batch) that gather_for_metrics can collect across processes."""

    @abstractmethod
    def compute_metrics(self, outputs: dict[str, torch.Tensor], data: TaskData) -> dict[str, float]:
        """Metrics from the concatenated per-sample outputs of the whole evaluation set."""

    def configure(self, optim_cfg):
        """Take the optimisation settings the loss needs (label smoothing); returns `optim_cfg`
        with the task's defaults in place of the settings left unset, as the run records them."""
        if optim_cfg.label_smoothing is None:
            optim_cfg = dataclasses.replace(optim_cfg, label_smoothing=self.default_label_smoothing)
        self.label_smoothing = optim_cfg.label_smoothing
        return optim_cfg

    def synthetic_batch(self, spec: TaskSpec, batch_size: int, generator: torch.Generator) -> Any:
        """A batch of random inputs of the task's full shape, as its collate would give it: what
        bench mode measures when no data is given (as timm's benchmark.py times a model)."""
        raise NotImplementedError(f"Task {self.name!r} cannot make synthetic inputs.")

    def batch_size(self, batch: Any) -> int:
        return find_batch_size(batch)

    def tokens(self, batch: Any) -> Optional[int]:
        """Non-pad tokens in a batch, for tokens/s; None for images."""
        return None


TASKS: Registry[Task] = Registry("task")


def register_task(cls):
    """Class decorator: registers one instance under `cls.name`."""
    TASKS.add(cls.name, cls())
    return cls


def get_task(name: str) -> Task:
    return TASKS.get(name)


def list_tasks() -> list[str]:
    return TASKS.names()
