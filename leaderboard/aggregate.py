"""Runs -> rows (seeds aggregated), ranks within a device and precision, and baseline comparisons.

Runs on different devices or precisions are never ranked against each other: a table is one
(task, device, precision, primary metric) group.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Iterable, Optional

from leaderboard.collect import Run, model_label

# The Transformer baseline families, each with the kind of task it is the baseline of.
BASELINE_FAMILIES = {"vit": "image", "transformer": "text"}


@dataclass(frozen=True)
class Row:
    """One (task, family, size, variant, device, precision): means over its seeds."""

    task: str
    family: str
    size: str
    variant: str  # "" for the family's default
    device: str
    device_type: str
    precision: str
    metric_name: str
    higher_is_better: bool
    seeds: tuple[int, ...]
    metric_mean: Optional[float]  # None when no run of the row reports the metric
    metric_std: Optional[float]  # sample standard deviation; None below two values
    params: float
    gflops: Optional[float]
    train_samples_per_s: Optional[float]
    infer_samples_per_s: Optional[float]
    train_tokens_per_s: Optional[float]
    infer_tokens_per_s: Optional[float]
    train_peak_mb: Optional[float]
    memory_kind: Optional[str]
    rank: Optional[int]  # 1 is best in its group; equal means share a rank; None when unranked

    @property
    def group(self) -> tuple[str, str, str, str, bool]:
        return (self.task, self.device, self.precision, self.metric_name, self.higher_is_better)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def is_baseline(self) -> bool:
        return self.family in BASELINE_FAMILIES and not self.variant

    @property
    def model(self) -> str:
        return model_label(self.family, self.variant)


@dataclass(frozen=True)
class Comparison:
    """A non-baseline row against the baseline row it is matched with (same group)."""

    row: Row
    baseline: Row
    metric_delta: Optional[float]  # row minus baseline, in the metric's units
    speed_ratio: Optional[float]  # train samples/s over the baseline's
    memory_ratio: Optional[float]  # peak train memory over the baseline's


def aggregate(runs: Iterable[Run]) -> list[Row]:
    """One row per (task, family, size, variant, device, precision, metric), sorted by group then rank."""

    def key(run: Run):
        i = run.id
        return (i.task, i.device, i.precision, run.metric_name, run.higher_is_better, i.family, i.size, i.variant)

    rows = [_row(sorted(same, key=lambda r: r.id.seed)) for _, same in groupby(sorted(runs, key=key), key=key)]
    ranked: list[Row] = []
    for _, group in groupby(rows, key=lambda r: r.group):
        ranked.extend(_rank(list(group)))
    return ranked


def _row(runs: list[Run]) -> Row:
    first = runs[0]
    metrics = [r.metric for r in runs if r.metric is not None]
    return Row(
        task=first.id.task,
        family=first.id.family,
        size=first.id.size,
        variant=first.id.variant,
        device=first.id.device,
        device_type=first.id.device_type,
        precision=first.id.precision,
        metric_name=first.metric_name,
        higher_is_better=first.higher_is_better,
        seeds=tuple(r.id.seed for r in runs),
        metric_mean=statistics.fmean(metrics) if metrics else None,
        metric_std=statistics.stdev(metrics) if len(metrics) > 1 else None,
        params=statistics.fmean(r.params for r in runs),
        gflops=_mean(r.gflops for r in runs),
        train_samples_per_s=_mean(r.train_samples_per_s for r in runs),
        infer_samples_per_s=_mean(r.infer_samples_per_s for r in runs),
        train_tokens_per_s=_mean(r.train_tokens_per_s for r in runs),
        infer_tokens_per_s=_mean(r.infer_tokens_per_s for r in runs),
        train_peak_mb=_mean(r.train_peak_mb for r in runs),
        memory_kind=first.memory_kind,
        rank=None,
    )


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _rank(group: list[Row]) -> list[Row]:
    """Competition ranking by the metric mean (1, 2, 2, 4); rows without a metric come last, unranked."""
    sign = -1 if group[0].higher_is_better else 1
    scored = [r for r in group if r.metric_mean is not None]
    ranked = []
    for row in scored:
        better = sum(1 for other in scored if sign * other.metric_mean < sign * row.metric_mean)
        ranked.append(replace(row, rank=better + 1))
    ranked.sort(key=lambda r: (r.rank, r.family, r.size, r.variant))
    return ranked + sorted((r for r in group if r.metric_mean is None), key=lambda r: (r.family, r.size, r.variant))


def compare_to_baselines(rows: list[Row]) -> tuple[list[Comparison], list[Row]]:
    """Each non-baseline row against a baseline row of its group; also the rows that have none.

    The baseline is the one with the same size name when the group has it, else the one whose
    parameter count is closest (ties: fewer parameters, then size name).
    """
    comparisons: list[Comparison] = []
    unmatched: list[Row] = []
    for _, group in groupby(rows, key=lambda r: r.group):
        group = list(group)
        baselines = [r for r in group if r.is_baseline]
        for row in (r for r in group if not r.is_baseline):
            if not baselines:
                unmatched.append(row)
                continue
            same_size = [b for b in baselines if b.size == row.size]
            base = same_size[0] if same_size else min(
                baselines, key=lambda b: (abs(b.params - row.params), b.params, b.size)
            )
            comparisons.append(
                Comparison(
                    row=row,
                    baseline=base,
                    metric_delta=_difference(row.metric_mean, base.metric_mean),
                    speed_ratio=_ratio(row.train_samples_per_s, base.train_samples_per_s),
                    memory_ratio=_ratio(row.train_peak_mb, base.train_peak_mb),
                )
            )
    return comparisons, unmatched


def _difference(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b
