"""Pareto plots: primary metric against train throughput, one panel per device and precision."""

from __future__ import annotations

import io
from itertools import groupby
from typing import Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from leaderboard.aggregate import Row


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """The (throughput, metric) points that no other point matches or beats on both, by throughput."""
    sign = 1 if higher_is_better else -1
    front: list[tuple[float, float]] = []
    # From the fastest down, a point is on the front when its metric beats every faster point's.
    for x, y in sorted(points, key=lambda p: (-p[0], -sign * p[1])):
        if not front or sign * y > sign * front[-1][1]:
            front.append((x, y))
    return front[::-1]


def pareto_png(task: str, rows: list[Row]) -> Optional[bytes]:
    """PNG bytes of the task's plot, or None when no row has both a metric and a train throughput."""
    plotted = [r for r in rows if r.metric_mean is not None and r.train_samples_per_s]
    if not plotted:
        return None
    groups = [(key, list(group)) for key, group in groupby(plotted, key=lambda r: r.group)]
    families = sorted({r.family for r in plotted})
    colors = {family: f"C{i}" for i, family in enumerate(families)}  # one colour per family in every panel

    fig = Figure(figsize=(6.4 * len(groups), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, ((_, device, precision, metric, higher), group) in zip(panels, groups):
        for family in families:
            mine = [r for r in group if r.family == family]
            if not mine:
                continue
            xs = [r.train_samples_per_s for r in mine]
            ys = [r.metric_mean for r in mine]
            ax.errorbar(xs, ys, yerr=[r.metric_std or 0.0 for r in mine], fmt="o", capsize=3,
                        color=colors[family], label=family)
            for r, x, y in zip(mine, xs, ys):
                ax.annotate(f"{r.size} [{r.variant}]" if r.variant else r.size, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        front = pareto_front([(r.train_samples_per_s, r.metric_mean) for r in group], higher)
        # "pre" steps: between two front points the best reachable metric is the faster point's.
        # Rings mark the front's points, so a front of one point still shows.
        ax.step([x for x, _ in front], [y for _, y in front], where="pre", color="0.4", linestyle="--",
                marker="o", markersize=13, markerfacecolor="none", label="Pareto front")
        ax.set_xscale("log")
        ax.margins(0.1)  # keeps the rings at the edges inside the panel
        timed_apart = all(r.speed_from_cost_pass for r in group)
        ax.set_xlabel(f"train throughput (samples/s, log scale{'; from the cost pass' if timed_apart else ''})")
        ax.set_ylabel(f"{metric} (mean over seeds, {'higher' if higher else 'lower'} is better)")
        ax.set_title(f"{task}: {device}, {precision}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110, metadata={"Software": None})  # no version stamp in the file
    return out.getvalue()
