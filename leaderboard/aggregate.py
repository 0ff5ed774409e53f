"""Runs -> rows (seeds aggregated), ranks within a device and precision, and baseline comparisons.

Runs on different devices or precisions are never ranked against each other: a table is one (task,
device, precision, primary metric) group, where every CPU is one device (collect.POOLED_CPU), and a
table whose runs span CPU models shows none of the runs' own timings (a cost pass may give them). A
reference family's rows (the ConvNet: what its runs record) are not ranked: they follow the ranked rows,
in rows of their own. Within a group a row's rank is 1 + the number of rows whose 95% confidence
interval of the mean lies entirely on the better side of its own, so rows whose intervals overlap do not
outrank each other (a row of one run has no spread: its interval is its value). Rows sharing a rank are
`tied`.

A run whose throughput measurement failed its self-check (throughput.stable false) keeps its
metric, but its throughput and memory are left out of the row's means and so of every ratio.

Where a task has a cost pass (bench/cost.py: its models timed side by side in one process),
`with_cost_passes` gives its rows the pass's speed figures in place of the runs' own timings.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Iterable, Optional

from leaderboard.collect import POOLED_CPU, CostPass, Failure, Run, TuneGrid, model_label


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
    metric_ci: Optional[float]  # half-width of the 95% confidence interval of the mean (Student's t); None below two
    params: float
    gflops: Optional[float]
    train_samples_per_s: Optional[float]
    infer_samples_per_s: Optional[float]
    train_tokens_per_s: Optional[float]
    infer_tokens_per_s: Optional[float]
    train_peak_mb: Optional[float]
    memory_kind: Optional[str]  # None where the runs measured none, or measured different kinds
    eval_samples: tuple[int, ...]  # the distinct sizes of the scored split its runs record; () where none does
    unstable: tuple[str, ...]  # "seed N: reason" for each run whose throughput measurement was unstable
    rank: Optional[int]  # 1 is best in its group; equal means share a rank; None when unranked
    tied: bool = False  # another row of its group has the same rank
    baseline: bool = False  # its family is the Transformer baseline (what its runs record)
    relative_of: Optional[str] = None  # the family its family changes one part of (what its runs record)
    speed_from_cost_pass: bool = False  # the speed figures are its task's cost pass's, not its runs' own
    reference: bool = False  # its family is a reference of another kind (what its runs record): not ranked
    device_names: tuple[str, ...] = ()  # the device names its runs recorded, sorted
    speed_withheld: tuple[str, ...] = ()  # the device names of its group when they are several: its runs'
    # own speed figures are left out, as timings on two CPU models do not compare

    @property
    def device_label(self) -> str:
        """The devices its runs ran on, by name (with the process count where they used several)."""
        if self.device_type != "cpu":
            return self.device
        return self.device.replace(POOLED_CPU, " + ".join(self.device_names))

    @property
    def metric_interval(self) -> Optional[tuple[float, float]]:
        """The 95% confidence interval of the mean; the mean itself for a row of one run."""
        if self.metric_mean is None:
            return None
        half = self.metric_ci or 0.0
        return (self.metric_mean - half, self.metric_mean + half)

    @property
    def group(self) -> tuple[str, str, str, str, bool]:
        return (self.task, self.device, self.precision, self.metric_name, self.higher_is_better)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def is_baseline(self) -> bool:
        return self.baseline and not self.variant

    @property
    def model(self) -> str:
        return model_label(self.family, self.variant)


@dataclass(frozen=True)
class Comparison:
    """A non-baseline row against the baseline row it is matched with (same group)."""

    row: Row
    baseline: Row
    metric_delta: Optional[float]  # row minus baseline, in the metric's units
    speed_ratio: Optional[float]  # train samples/s over the baseline's; stable runs only
    memory_ratio: Optional[float]  # peak train memory over the baseline's; stable runs, same memory kind only

    @property
    def unstable(self) -> bool:
        """Some run of the row or of its baseline was left out of the ratios (unstable throughput)."""
        return bool(self.row.unstable or self.baseline.unstable)


def aggregate(runs: Iterable[Run]) -> list[Row]:
    """One row per (task, family, size, variant, device, precision, metric), sorted by group then rank."""

    def key(run: Run):
        i = run.id
        return (i.task, i.device, i.precision, run.metric_name, run.higher_is_better, i.family, i.size, i.variant)

    rows = [_row(sorted(same, key=lambda r: r.id.seed)) for _, same in groupby(sorted(runs, key=key), key=key)]
    ranked: list[Row] = []
    for _, group in groupby(rows, key=lambda r: r.group):
        group = list(group)
        names = tuple(sorted({name for r in group for name in r.device_names}))
        if len(names) > 1:
            group = [replace(r, train_samples_per_s=None, infer_samples_per_s=None, train_tokens_per_s=None,
                             infer_tokens_per_s=None, speed_withheld=names) for r in group]
        ranked.extend(_rank(group))
    return ranked


def _row(runs: list[Run]) -> Row:
    first = runs[0]
    metrics = [r.metric for r in runs if r.metric is not None]
    std = statistics.stdev(metrics) if len(metrics) > 1 else None
    measured = [r for r in runs if r.stable]  # whose throughput and memory count
    kinds = {r.memory_kind for r in measured if r.train_peak_mb is not None}
    memory_kind = kinds.pop() if len(kinds) == 1 else None  # a mean over two kinds of memory means nothing
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
        metric_std=std,
        metric_ci=None if std is None else confidence_half_width(std, len(metrics)),
        params=statistics.fmean(r.params for r in runs),
        gflops=_mean(r.gflops for r in runs),
        train_samples_per_s=_mean(r.train_samples_per_s for r in measured),
        infer_samples_per_s=_mean(r.infer_samples_per_s for r in measured),
        train_tokens_per_s=_mean(r.train_tokens_per_s for r in measured),
        infer_tokens_per_s=_mean(r.infer_tokens_per_s for r in measured),
        train_peak_mb=_mean(r.train_peak_mb for r in measured) if memory_kind else None,
        memory_kind=memory_kind,
        eval_samples=tuple(sorted({r.eval_samples for r in runs if r.eval_samples is not None})),
        unstable=tuple(f"seed {r.id.seed}: {r.unstable_reason or 'no reason recorded'}" for r in runs if not r.stable),
        rank=None,
        baseline=any(r.baseline for r in runs),
        relative_of=next((r.relative_of for r in runs if r.relative_of), None),
        reference=any(r.reference for r in runs),
        device_names=tuple(sorted({r.id.device_name for r in runs})),
    )


def confidence_half_width(std: float, n: int, level: float = 0.95) -> float:
    """Half-width of the `level` confidence interval of a mean of n values with sample std `std` (Student's t)."""
    from scipy.stats import t  # imported here: only pages with several seeds need it

    return float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _rank(group: list[Row]) -> list[Row]:
    """Rank = 1 + the rows whose interval lies entirely on the better side of this row's (1, 1, 3, ...);
    rows without a metric and then the reference rows (unranked, best mean first) come last. Best mean
    first within a rank."""
    sign = -1 if group[0].higher_is_better else 1  # sign * value: lower is better
    references = [r for r in group if r.reference]
    group = [r for r in group if not r.reference]
    scored = [r for r in group if r.metric_mean is not None]
    ranked = [replace(row, rank=1 + sum(ahead(other, row) for other in scored)) for row in scored]
    ranks = [r.rank for r in ranked]
    ranked = [replace(r, tied=ranks.count(r.rank) > 1) for r in ranked]
    ranked.sort(key=lambda r: (r.rank, sign * r.metric_mean, r.family, r.size, r.variant))
    by_name = lambda r: (r.family, r.size, r.variant)  # noqa: E731
    references.sort(key=lambda r: (r.metric_mean is None, sign * (r.metric_mean or 0.0), *by_name(r)))
    return ranked + sorted((r for r in group if r.metric_mean is None), key=by_name) + references


def ahead(row: Row, other: Row) -> bool:
    """Whether `row`'s 95% interval lies entirely on the better side of `other`'s: the ranking's rule
    (rows of one metric, each with a mean)."""
    sign = -1 if row.higher_is_better else 1  # sign * value: lower is better

    def bounds(r: Row) -> list[float]:
        return sorted(sign * v for v in r.metric_interval)

    return bounds(row)[1] < bounds(other)[0]


def standing(row: Row, other: Row) -> str:
    """How `row` compares with `other` under the ranking's rule: "ahead", "behind" or "tied"."""
    if ahead(row, other):
        return "ahead"
    return "behind" if ahead(other, row) else "tied"


@dataclass(frozen=True)
class OrderChange:
    """Two models ranked at both budgets that compare differently at the longer one."""

    first: Row  # at the tuned budget; the one ahead there, or the first of the table where tied
    second: Row
    tuned: str  # how `first` compares with `second` at the tuned budget: standing()
    longer: str  # and at the longer budget


def order_changes(tuned: list[Row], longer: list[Row]) -> tuple[list[OrderChange], int]:
    """The pairs of models, ranked in both lists (one group each, the tuned budget's in its table's
    order), whose standing differs between the two budgets; and how many models both rank."""
    at_longer = {(r.family, r.size, r.variant): r for r in _ranked(longer)}
    both = [(r, at_longer[key]) for r in _ranked(tuned) if (key := (r.family, r.size, r.variant)) in at_longer]
    changes = [
        OrderChange(a, b, standing(a, b), standing(a_longer, b_longer))
        for i, (a, a_longer) in enumerate(both) for b, b_longer in both[i + 1:]
        if standing(a, b) != standing(a_longer, b_longer)
    ]
    return changes, len(both)


def _ranked(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.rank is not None]


@dataclass(frozen=True)
class Score:
    """The validation runs of one setting (learning rate, warm-up): the mean metric of those that finished,
    and the statuses of those that failed."""

    lr: float
    value: Optional[float]  # None when no run at this setting finished with a metric
    failed: tuple[str, ...]  # status of each failed run ("diverged", ...)
    warmup: Optional[float] = None  # config.optim.warmup_fraction; None where not recorded


Setting = tuple[float, Optional[float]]  # (learning rate, warm-up fraction or None)


@dataclass(frozen=True)
class TuningRow:
    """One (task, family, size, variant, device, precision): its validation score at each setting tried,
    and the settings its test runs used."""

    task: str
    family: str
    size: str
    variant: str
    device: str
    precision: str
    metric_name: Optional[str]  # None when every tuning run failed (a failed result names no metric here)
    higher_is_better: bool
    seeds: tuple[int, ...]  # the tuning seeds
    scores: tuple[Score, ...]  # by learning rate, then warm-up, ascending
    tested: tuple[Setting, ...]  # the distinct (lr, warm-up) of its test runs (finished or failed); () if none
    tune: Optional[TuneGrid] = None  # the declared grid its tuning runs record; None where they record none

    @property
    def model(self) -> str:
        return model_label(self.family, self.variant)

    @property
    def tested_lrs(self) -> tuple[float, ...]:
        return tuple(sorted({lr for lr, _ in self.tested}))

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rates tried, ascending."""
        return tuple(sorted({s.lr for s in self.scores}))

    @property
    def best(self) -> tuple[Score, ...]:
        """The scores with the best validation value (several when equal); () when none finished."""
        scored = [s for s in self.scores if s.value is not None]
        if not scored:
            return ()
        pick = max if self.higher_is_better else min
        best = pick(s.value for s in scored)
        return tuple(s for s in scored if s.value == best)

    @property
    def best_lrs(self) -> tuple[float, ...]:
        """The learning rates with the best validation value (several when equal); () when none finished."""
        return tuple(sorted({s.lr for s in self.best}))

    def score_at(self, lr: float, warmup: Optional[float] = None) -> Optional[Score]:
        """The score at `lr` (and `warmup`, where given)."""
        return next((s for s in self.scores if same_lr(s.lr, lr) and (warmup is None or s.warmup == warmup)), None)

    def extension(self, lr: float) -> bool:
        """Whether `lr` lies outside the declared grid its tuning runs record (tried beyond an end of it)."""
        return self.tune is not None and not any(same_lr(lr, g) for g in self.tune.lr)

    def beyond(self, side: str) -> int:
        """How many learning rates were tried beyond the declared grid's "lowest" or "highest" end."""
        if self.tune is None:
            return 0
        end = self.tune.lr[0] if side == "lowest" else self.tune.lr[-1]
        return sum((lr < end if side == "lowest" else lr > end) and self.extension(lr) for lr in self.lrs)

    def edge(self, lr: float) -> Optional[str]:
        """"lowest" or "highest" when `lr` is that end of the learning rates tried; None inside them."""
        if len(self.lrs) > 1 and same_lr(lr, self.lrs[0]):
            return "lowest"
        if len(self.lrs) > 1 and same_lr(lr, self.lrs[-1]):
            return "highest"
        return None

    def unextended_edge(self) -> Optional[str]:
        """Where the test runs' single learning rate is an end of those tried and the recorded tuning could
        still have tried further beyond it: that end ("lowest" / "highest"); else None."""
        if self.tune is None or len(self.tested_lrs) != 1:
            return None
        side = self.edge(self.tested_lrs[0])
        return side if side is not None and self.beyond(side) < self.tune.extend else None


def same_lr(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def tuning_rows(tuning: Iterable[Run | Failure], tested: Iterable[Run | Failure]) -> list[TuningRow]:
    """The tuning runs (scored on validation) by (task, device, precision, family, size, variant), each
    with the settings of the `tested` runs (scored on test) of the same model and setting."""

    def key(entry: Run | Failure):
        i = entry.id
        return (i.task, i.device, i.precision, i.family, i.size, i.variant)

    test_settings: dict[tuple, set[Setting]] = {}
    for entry in tested:
        if entry.lr is not None:
            test_settings.setdefault(key(entry), set()).add((entry.lr, entry.warmup))
    rows = []
    for k, same in groupby(sorted(tuning, key=key), key=key):
        same = list(same)
        finished = [e for e in same if isinstance(e, Run)]
        by_setting: dict[Setting, list[Run | Failure]] = {}
        for entry in same:
            if entry.lr is not None:
                by_setting.setdefault((entry.lr, entry.warmup), []).append(entry)
        scores = tuple(
            Score(lr, _mean(e.metric for e in entries if isinstance(e, Run)),
                  tuple(e.status for e in entries if isinstance(e, Failure)), warmup)
            for (lr, warmup), entries in sorted(by_setting.items(), key=lambda item: _setting_order(item[0]))
        )
        task, device, precision, family, size, variant = k
        rows.append(TuningRow(
            task=task, family=family, size=size, variant=variant, device=device, precision=precision,
            metric_name=finished[0].metric_name if finished else None,
            higher_is_better=finished[0].higher_is_better if finished else True,
            seeds=tuple(sorted({e.id.seed for e in same})), scores=scores,
            tested=tuple(sorted(test_settings.get(k, ()), key=_setting_order)),
            tune=next((e.tune for e in same if e.tune is not None), None),
        ))
    return rows


def _setting_order(setting: Setting) -> tuple[float, float]:
    lr, warmup = setting
    return (lr, -1.0 if warmup is None else warmup)


def with_cost_passes(rows: list[Row], costs: list[CostPass]) -> list[Row]:
    """The rows, each with its speed figures (samples/s and tokens/s) from its task's cost pass where the pass
    timed its model on its device type and precision; a row the pass did not time keeps its runs' own."""
    passes = {cost.task: cost for cost in costs}
    priced = []
    for row in rows:
        cost = passes.get(row.task)
        timed = None
        if cost is not None and (cost.device_type, cost.precision) == (row.device_type, row.precision):
            timed = cost.model(row.family, row.size, row.variant)
        if timed is None:
            priced.append(row)
            continue
        priced.append(replace(
            row, train_samples_per_s=timed.train.samples_per_s, infer_samples_per_s=timed.infer.samples_per_s,
            train_tokens_per_s=timed.train.tokens_per_s, infer_tokens_per_s=timed.infer.tokens_per_s,
            speed_from_cost_pass=True,
        ))
    return priced


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
                    memory_ratio=_ratio(row.train_peak_mb, base.train_peak_mb)
                    if row.memory_kind == base.memory_kind else None,
                )
            )
    return comparisons, unmatched


def _difference(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b
