"""What a task is: its data, its loss and its metrics; the shape it gives a model is bench.core.spec.TaskSpec.

The training loop only talks to this interface, so image, MLM and seq2seq tasks run through
the same loop and the same measurement code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from accelerate.utils import find_batch_size

from bench.core.config import flag_name
from bench.core.errors import UserError
from bench.core.registry import Registry
from bench.core.spec import TaskSpec

# The data flags (bench.core.config.DataConfig fields) every task reads; each task adds its own (Task.data_flags).
COMMON_DATA_FLAGS = ("eval_split", "max_train_samples", "max_eval_samples", "num_workers")

# The validation split (--eval-split validation) of a source without one: this fraction of its
# training data, chosen by a fixed seed or a hash, never by the run's seed. It is removed from
# training whichever split a run scores, so tuning runs and reported runs train on the same data.
VALIDATION_FRACTION = 0.1


@dataclass
class TaskData:
    """A loaded task: datasets, how to batch them, and the final spec (e.g. the tokenizer's vocabulary)."""

    spec: TaskSpec
    train: Any  # a torch Dataset
    eval: Any
    collate: Optional[Callable] = None
    extra: Optional[dict] = None  # task-specific state (a tokenizer, ...)
    # --score-train: the training samples as the evaluation sees them (no augmentation), scored after training
    train_scored: Any = None


class Task(ABC):
    """One registered task. Subclasses fill in the data; a modality base fills in loss and metrics.

    The registry holds the classes; each run makes its own task (`create_task`) with the settings
    its loss takes, which never change afterwards, so every consumer of the same flags (the runner,
    the regression check's worker, the harness check) times and trains the same loss."""

    name: str = ""
    description: str = ""
    offline: bool = False  # True when the default source needs no network
    default_label_smoothing: float = 0.0  # the modality's usual value; --label-smoothing overrides it
    default_recipe: str = "suite"  # the training recipe (bench.core.recipes) of a run that names none
    data_flags: tuple[str, ...] = ()  # the DataConfig fields it can read besides COMMON_DATA_FLAGS
    modality_data_flags: tuple[str, ...] = ()  # those every task of its modality reads

    def __init__(self, label_smoothing: Optional[float] = None, recipe=None, recipe_name: Optional[str] = None):
        """label_smoothing: of the training loss; None, the task's default. `recipe`: the run's
        bench.core.recipes.Recipe, whose augmentation and mixing an image task applies; None trains without.
        `recipe_name`: its name (None: the task's default recipe)."""
        self.label_smoothing = self.default_label_smoothing if label_smoothing is None else label_smoothing
        self.recipe = recipe
        self.recipe_name = recipe_name or self.default_recipe

    def check_data_flags(self, data_cfg) -> None:
        """Refuse a data flag given (other than its default) that this task never reads: ignored,
        it would leave the user believing the run used it (--data-dir on digits)."""
        reads = (*self.data_flags, *self.modality_data_flags, *COMMON_DATA_FLAGS)
        unused = [flag_name(name) for name in data_cfg.given() if name not in reads]
        if unused:
            raise UserError(
                f"--task {self.name} does not use {' or '.join(unused)} (it reads "
                f"{', '.join(map(flag_name, reads))}); drop {'it' if len(unused) == 1 else 'them'}."
            )

    def check_recipe(self, optim_cfg) -> None:
        """Refuse, with one sentence, a recipe this task cannot train with (image tasks check theirs)."""

    @abstractmethod
    def spec(self, data_cfg) -> TaskSpec:
        """The spec, from the config alone: cheap, no data loaded."""

    @abstractmethod
    def load(self, data_cfg, seed: int) -> TaskData:
        """Load (or build) the datasets; raise DataError with one sentence when they are missing."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Training loss of one batch (with the task's label smoothing)."""

    @abstractmethod
    def eval_outputs(self, model: torch.nn.Module, batch: Any, spec: TaskSpec) -> dict[str, torch.Tensor]:
        """Per-sample tensors (first dim = batch) that gather_for_metrics can collect across processes;
        `spec` is the loaded data's (TaskData.spec)."""

    @abstractmethod
    def compute_metrics(self, outputs: dict[str, torch.Tensor], data: TaskData) -> dict[str, float]:
        """Metrics from the concatenated per-sample outputs of the whole evaluation set."""

    def synthetic_batch(self, spec: TaskSpec, batch_size: int, generator: torch.Generator) -> Any:
        """A batch of random inputs of the task's full shape, as its collate would give it: what
        bench mode measures when no data is given (as timm's benchmark.py times a model)."""
        raise NotImplementedError(f"Task {self.name!r} cannot make synthetic inputs.")

    def batch_size(self, batch: Any) -> int:
        return find_batch_size(batch)

    def tokens(self, batch: Any) -> Optional[int]:
        """Non-pad tokens in a batch, for tokens/s; None for images."""
        return None


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: registers the task class under `cls.name`."""
    return TASKS.register(cls.name)(cls)


def create_task(name: str, **flags) -> Task:
    """A fresh task for one run. `flags`: the settings its loss and data take (label_smoothing, None for the
    task's default; recipe, bench.core.recipes.run_recipe's); UnknownNameError listing the tasks if none is `name`."""
    return TASKS.get(name)(**flags)


def list_tasks() -> list[str]:
    return TASKS.names()
