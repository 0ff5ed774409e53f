"""Find result files, validate them, and keep from each the fields the leaderboard shows.

A file that is not a result of this suite (malformed JSON, another tool's JSON, a field of the
wrong type) is skipped with a sentence naming it, so one bad file never hides the others.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bench.errors import UserError
from bench.results import ResultError, load_result

# Task names become page file names, so they may not carry path separators or name another page.
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_OTHER_PAGES = ("index", "summary", "ablations")


@dataclass(frozen=True)
class Identity:
    """Which run a result is: rows aggregate the seeds of equal (task, family, size, variant, device, precision)."""

    task: str
    family: str
    size: str
    variant: str  # "norm=layernorm", ...; "" for the family's default (and results written before variants)
    seed: int
    device: str  # the device name, prefixed by the process count when a run used several
    device_type: str
    precision: str

    @property
    def model(self) -> str:
        return model_label(self.family, self.variant)


def model_label(family: str, variant: str) -> str:
    """The model column: the family, and the variant in brackets when it is not the default."""
    return f"{family} [{variant}]" if variant else family


@dataclass(frozen=True)
class Run:
    """A finished run (status "ok"): its primary metric and measurements; None where not measured."""

    id: Identity
    metric_name: str
    higher_is_better: bool
    metric: Optional[float]  # None for a measure-only run
    params: int
    gflops: Optional[float]  # forward pass, per sample
    train_samples_per_s: Optional[float]
    infer_samples_per_s: Optional[float]
    train_tokens_per_s: Optional[float]
    infer_tokens_per_s: Optional[float]
    train_peak_mb: Optional[float]
    memory_kind: Optional[str]  # "cuda" or "cpu_rss"


@dataclass(frozen=True)
class Failure:
    """A run whose status is not "ok": listed with its reason, never ranked."""

    id: Identity
    status: str
    error: Optional[str]


@dataclass
class Collection:
    runs: list[Run]
    failures: list[Failure]
    skipped: list[str]  # one sentence per file not used, naming the file
    files_read: int


def result_files(folders: list[str]) -> list[Path]:
    """Every *.json under the folders, each file once, in a fixed order."""
    files: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise UserError(f"Results folder {folder!r} does not exist.")
        if not root.is_dir():
            raise UserError(f"{folder!r} is not a folder; give folders that hold result JSON files.")
        for path in sorted(root.rglob("*.json")):
            if path.resolve() not in seen:  # overlapping folders name a file twice
                seen.add(path.resolve())
                files.append(path)
    return files


def collect(folders: list[str]) -> Collection:
    files = result_files(folders)
    runs: list[Run] = []
    failures: list[Failure] = []
    skipped: list[str] = []
    first_file: dict[Identity, Path] = {}
    for path in files:
        try:
            data = load_result(path)
            entry = _failure(data, str(path)) if data["status"] != "ok" else _run(data, str(path))
        except ResultError as e:
            skipped.append(str(e))
            continue
        # A seed counted twice would shrink the spread and weigh one run double.
        if entry.id in first_file:
            skipped.append(
                f"{path} repeats the run in {first_file[entry.id]} (same task, model, size, variant, seed, device "
                "and precision); only the first is used."
            )
            continue
        first_file[entry.id] = path
        (runs if isinstance(entry, Run) else failures).append(entry)
    return Collection(runs, failures, skipped, len(files))


def _identity(data: dict[str, Any], source: str) -> Identity:
    task = _get(data, "task", str, source)
    if not _TASK_NAME.fullmatch(task) or task in _OTHER_PAGES:
        raise ResultError(
            f"{source} has task {task!r}; a task name is letters, digits, '_', '-' and '.', "
            f"and not {' or '.join(_OTHER_PAGES)}."
        )
    name = _get(data, "environment.device_name", str, source)
    processes = _get(data, "environment.num_processes", int, source, required=False) or 1
    return Identity(
        task=task,
        family=_get(data, "model", str, source),
        size=_get(data, "size", str, source),
        variant=_get(data, "variant", str, source, required=False) or "",
        seed=_get(data, "seed", int, source),
        device=name if processes == 1 else f"{processes}x {name}",
        device_type=_get(data, "environment.device_type", str, source),
        precision=_get(data, "environment.precision", str, source),
    )


def _failure(data: dict[str, Any], source: str) -> Failure:
    return Failure(_identity(data, source), data["status"], _get(data, "error", str, source, required=False))


def _run(data: dict[str, Any], source: str) -> Run:
    def number(key: str, required: bool = False) -> Optional[float]:
        return _get(data, key, (int, float), source, required)

    flops = number("flops.forward_per_sample")
    return Run(
        id=_identity(data, source),
        metric_name=_get(data, "primary_metric.name", str, source),
        higher_is_better=_get(data, "primary_metric.higher_is_better", bool, source),
        metric=number("primary_metric.value"),
        params=_get(data, "params", int, source),
        gflops=None if flops is None else flops / 1e9,
        train_samples_per_s=number("throughput.train_samples_per_s"),
        infer_samples_per_s=number("throughput.infer_samples_per_s"),
        train_tokens_per_s=number("throughput.train_tokens_per_s"),
        infer_tokens_per_s=number("throughput.infer_tokens_per_s"),
        train_peak_mb=number("memory.train_peak_mb"),
        memory_kind=_get(data, "memory.kind", str, source, required=False),
    )


def _get(data: dict[str, Any], dotted: str, kind, source: str, required: bool = True):
    """The value at a dotted path, checked against `kind`; None when absent or null and not required."""
    value: Any = data
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        if required:
            raise ResultError(f"{source} has no {dotted}; it is not a complete result of this suite.")
        return None
    # bool is an int in Python, but true is no seed or parameter count.
    wrong_type = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if wrong_type or (isinstance(value, float) and not math.isfinite(value)):
        raise ResultError(f"{source} has {dotted} = {value!r}, which is not a valid value for that field.")
    return value
