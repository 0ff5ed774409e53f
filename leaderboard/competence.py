"""Steps to competence: how many steps each model's validation curve took to reach levels set once per table.

A model's curve is its tuning run at the setting its test runs use (learning rate and warm-up: the one the sweep
chose), where that run scored validation along the way (--eval-every, the sweep's [tune.eval_every]). A table is
one device and precision, as the tuning table is. Its levels lie 50% and 90% of the way from a start to the best
final validation value among its curves; for a lower-is-better metric the same fractions of the way down. The
start is the task's floor on the validation split, as the best curve's run records it among its metrics; where
its metrics hold no floor of the primary metric, the worst first evaluation among the table's curves. A curve
reaches a level at its first evaluation at or past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Optional

from leaderboard.aggregate import TuningRow, same_lr
from leaderboard.collect import CurvePoint, Run

LEVELS = (0.5, 0.9)  # the fractions of the way from the start to the best final value

# Per primary metric of the tasks (tasks/*), the floor metric (collect.FLOOR_METRICS) that scores the trivial
# answer in its own terms; a metric not named here (perplexity) has none.
FLOOR_OF = {
    "top1": "majority_baseline_accuracy",
    "mlm_accuracy": "majority_baseline_accuracy",
    "wer": "floor_wer",
    "bleu": "floor_copy_bleu",
}


@dataclass(frozen=True)
class Curve:
    """One model's validation curve: its tuning run at its test runs' setting."""

    run: Run  # the tuning run, whose curve is not empty
    test_steps: tuple[int, ...]  # the distinct optimizer steps its model's finished test runs record; () where none

    @property
    def label(self) -> str:
        return f"{self.run.id.model}-{self.run.id.size}"

    @property
    def points(self) -> tuple[CurvePoint, ...]:
        return self.run.curve

    @property
    def final(self) -> CurvePoint:
        return self.run.curve[-1]


@dataclass(frozen=True)
class Levels:
    """Where a table's levels lie: LEVELS of the way from `start` to `best`'s final value."""

    start: float
    # The floor metric `start` is, as `best`'s run records it; None where `start` is the worst first evaluation
    # among the curves, `start_curve`'s.
    floor: Optional[str]
    start_curve: Curve
    best: Curve  # the curve with the best final value
    higher_is_better: bool

    @property
    def improves(self) -> bool:
        """Whether the best final value is better than the start: else there is no way to go, and no level."""
        gain = self.best.final.value - self.start
        return gain > 0 if self.higher_is_better else gain < 0

    def value(self, fraction: float) -> float:
        return self.start + fraction * (self.best.final.value - self.start)

    def steps_to(self, curve: Curve, fraction: float) -> Optional[int]:
        """The step of the curve's first evaluation at or past the level; None where it never gets there."""
        level = self.value(fraction)
        reached = (p for p in curve.points if (p.value >= level if self.higher_is_better else p.value <= level))
        return next((p.step for p in reached), None)


@dataclass(frozen=True)
class CompetenceTable:
    """One device and precision: the models' curves, the levels they are read at, and the models without a curve
    at their chosen setting, each with why."""

    device: str
    precision: str
    curves: tuple[Curve, ...]  # by model
    levels: Levels
    without: tuple[tuple[str, str], ...]  # (model-size, why it has no curve here)

    @property
    def metric_name(self) -> str:
        return self.curves[0].run.metric_name

    @property
    def higher_is_better(self) -> bool:
        return self.levels.higher_is_better


def competence_tables(tuning: list[TuningRow], tuning_runs: list[Run], runs: list[Run]) -> list[CompetenceTable]:
    """Per device and precision of a task's tuning rows (in their order), a table where some model has a curve at
    its chosen setting; `tuning_runs`: the task's finished tuning runs, `runs`: its finished test runs."""
    tables = []
    for (device, precision), group in groupby(tuning, key=lambda r: (r.device, r.precision)):
        found = [(row, _curve(row, tuning_runs, runs)) for row in sorted(group, key=_model_order)]
        curves = tuple(curve for _, curve in found if isinstance(curve, Curve))
        if curves:
            without = tuple((f"{row.model}-{row.size}", why) for row, why in found if isinstance(why, str))
            tables.append(CompetenceTable(device, precision, curves, _levels(curves), without))
    return tables


def _model_order(row: TuningRow) -> tuple[str, str, str]:
    return (row.family, row.size, row.variant)


def _curve(row: TuningRow, tuning_runs: list[Run], runs: list[Run]) -> Curve | str:
    """The row's curve at its test runs' setting (its lowest tuning seed's, where several have one); else why
    there is none."""
    if not row.tested:
        return "no test runs"
    if len(row.tested) > 1:
        return "test runs at several settings"
    lr, warmup = row.tested[0]

    def mine(run: Run) -> bool:
        i = run.id
        return (i.family, i.size, i.variant, i.device, i.precision) == (
            row.family, row.size, row.variant, row.device, row.precision)

    at_setting = sorted((r for r in tuning_runs if mine(r) and r.curve and r.lr is not None and same_lr(r.lr, lr)
                         and r.warmup == warmup), key=lambda r: r.id.seed)
    if not at_setting:
        return "no validation curve at its test runs' setting"
    steps = {r.protocol.steps for r in runs if mine(r) and r.protocol is not None and r.protocol.steps is not None}
    return Curve(at_setting[0], tuple(sorted(steps)))


def _levels(curves: tuple[Curve, ...]) -> Levels:
    higher = curves[0].run.higher_is_better
    sign = 1 if higher else -1  # sign * value: higher is better
    best = max(curves, key=lambda c: sign * c.final.value)  # the first of equals, in model order
    floor = FLOOR_OF.get(best.run.metric_name)
    recorded = dict(best.run.floors).get(floor)
    if recorded is not None:
        return Levels(recorded, floor, best, best, higher)
    worst = min(curves, key=lambda c: sign * c.points[0].value)
    return Levels(worst.points[0].value, None, worst, best, higher)
