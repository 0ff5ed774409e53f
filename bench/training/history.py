"""The learning curve of a run, and the experiment trackers it can be sent to.

Every result holds a `history`: one entry per evaluation, with the optimizer step, the epoch, the
samples seen, the mean training loss since the previous entry and the metrics. Without
--eval-every it has one entry, the final evaluation; with it, the validation split is also scored
every N steps, so the result carries the curve a budget is chosen from. The test split is never
scored during training.

Trackers (--log-with tensorboard, wandb, mlflow, ...) are Accelerate's: they receive the run's
settings, the training loss and learning rate at every step and each history entry.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from bench.core.errors import UserError


class History:
    """The evaluations made during and after training.

    Registered with Accelerate's checkpointing (state_dict / load_state_dict), so a resumed run
    keeps the entries of the steps it does not repeat."""

    def __init__(self, every: Optional[int], evaluate: Callable[[], dict[str, float]], split: str, train_size: int):
        self.every = every
        self.evaluate = evaluate  # scores the split named `split` with the model as it is
        self.split = split
        self.train_size = train_size  # samples in an epoch
        self.entries: list[dict[str, Any]] = []
        self._loss_sum = 0.0
        self._loss_steps = 0

    def add_loss(self, loss: float) -> None:
        self._loss_sum += loss
        self._loss_steps += 1

    def due(self, step: int, last: bool) -> bool:
        """Whether to evaluate during training at this step; the last step's evaluation is the run's own."""
        return bool(self.every) and step % self.every == 0 and not last

    def evaluate_now(self, accelerator, position) -> dict[str, Any]:
        """Score the split mid-training without changing what training draws next."""
        with preserved_rng():  # a DataLoader draws its base seed from the global generator
            metrics = self.evaluate()
        return self.record(accelerator, position, metrics)

    def record(self, accelerator, position, metrics: dict[str, float]) -> dict[str, Any]:
        mean = None
        if self._loss_steps:
            # every process saw its own share of the batches: the mean over processes
            local = torch.tensor(self._loss_sum / self._loss_steps, device=accelerator.device)
            mean = round(accelerator.reduce(local, "mean").item(), 6)
        entry = {
            "step": position.step,
            "epoch": round(position.samples / max(1, self.train_size), 4),
            "samples": position.samples,
            "train_loss": mean,
            "split": self.split,
            "metrics": metrics,
        }
        self.entries.append(entry)
        self._loss_sum, self._loss_steps = 0.0, 0
        logged = {f"{self.split}/{name}": value for name, value in metrics.items() if isinstance(value, (int, float))}
        if mean is not None:
            logged["train/mean_loss"] = mean
        accelerator.log(logged, step=position.step)
        return entry

    def state_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "loss_sum": self._loss_sum, "loss_steps": self._loss_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = list(state["entries"])
        self._loss_sum, self._loss_steps = float(state["loss_sum"]), int(state["loss_steps"])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global generators (CPU and CUDA) on the way out."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def check_trackers(log_with: Optional[str]) -> list[str]:
    """The tracker names of --log-with, each one Accelerate knows and this environment has installed."""
    if not log_with:
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    names = [name.strip() for name in log_with.split(",") if name.strip()]
    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise UserError(f"--log-with {name} is not a tracker Accelerate knows; choose from "
                            f"{', '.join(sorted(LOGGER_TYPE_TO_CLASS))}.")
        if name not in available:
            raise UserError(f"--log-with {name} needs the {name} package, which is not installed "
                            f"(pip install {PACKAGES.get(name, name)}).")
    return names


PACKAGES = {"tensorboard": "tensorboard", "comet_ml": "comet-ml", "wandb": "wandb", "mlflow": "mlflow"}


def tracker_config(config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The run's settings flattened to scalars ("optim/lr": 0.002), as every tracker accepts them."""
    flat = {}
    for concern, values in config.items():
        for key, value in values.items():
            flat[f"{concern}/{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat
