"""Rows -> Markdown pages and CSV text, with fixed number formats so the output is reproducible."""

from __future__ import annotations

import csv
import io
import math
from itertools import groupby
from typing import Optional

from leaderboard.aggregate import BASELINE_FAMILIES, Comparison, Row
from leaderboard.collect import Collection, Failure

MISSING = "—"

BASELINE_RULE = (
    "Each architecture is compared with the Transformer baseline of its task "
    f"({', '.join(f'{family} for {kind} tasks' for family, kind in BASELINE_FAMILIES.items())}) "
    "on the same device and precision. "
    "The baseline run is the one with the same size name when there is one, otherwise the baseline size "
    "whose parameter count is closest (ties: the smaller one)."
)

NOTES = (
    "Each row aggregates the runs of one model size over seeds: the metric is the mean ± sample "
    "standard deviation, n the number of runs, the other columns means. Runs on different devices or "
    "precisions are ranked in separate tables. Throughput is in samples/s (and tokens/s for text); "
    "GFLOPs/sample counts one forward pass; peak train memory is CUDA allocated memory on GPUs and "
    "resident set size on CPUs."
)


def significant(x: Optional[float], digits: int = 3) -> str:
    """`digits` significant figures without exponent notation: 0.000123, 1.23, 12345."""
    if x is None:
        return MISSING
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def metric_text(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return MISSING
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def metric_header(name: str, higher_is_better: bool) -> str:
    return f"{name} {'↑' if higher_is_better else '↓'}"


def _cell(value: object) -> str:
    # A pipe or a line break inside a cell would break the table.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def task_page(task: str, rows: list[Row], failures: list[Failure], plot: Optional[str]) -> str:
    lines = [f"# {task}", ""]
    if plot:
        lines += [f"[Pareto plot: primary metric against train throughput]({plot})", ""]
    lines += [NOTES, ""]
    if not rows:
        lines += ["No run of this task finished.", ""]
    for (_, device, precision, metric, higher), group in groupby(rows, key=lambda r: r.group):
        group = list(group)
        lines += [f"## {device}, {precision}: {metric}, {'higher' if higher else 'lower'} is better", ""]
        lines += _group_table(group) + [""]
    if failures:
        lines += ["## Failed runs (not ranked)", ""]
        lines += _table(
            ["model", "size", "seed", "device", "precision", "status", "error"],
            [[f.id.model, f.id.size, f.id.seed, f.id.device, f.id.precision, f.status, f.error or MISSING]
             for f in failures],
            right={2},
        )
        lines.append("")
    return "\n".join(lines)


def _group_table(group: list[Row]) -> list[str]:
    # Token columns only where some run counted tokens (text tasks).
    tokens = any(r.train_tokens_per_s is not None or r.infer_tokens_per_s is not None for r in group)
    header = ["rank", "model", "size", metric_header(group[0].metric_name, group[0].higher_is_better), "n",
              "params (M)", "GFLOPs/sample", "train samples/s", "infer samples/s"]
    if tokens:
        header += ["train tokens/s", "infer tokens/s"]
    header += ["peak train memory (MB)", "precision", "device"]
    body = []
    for r in group:
        line = [r.rank or MISSING, r.model, r.size, metric_text(r.metric_mean, r.metric_std), r.n,
                significant(r.params / 1e6), significant(r.gflops),
                significant(r.train_samples_per_s), significant(r.infer_samples_per_s)]
        if tokens:
            line += [significant(r.train_tokens_per_s), significant(r.infer_tokens_per_s)]
        line += [significant(r.train_peak_mb), r.precision, r.device]
        body.append(line)
    right = {0, 3, 4} | set(range(5, len(header) - 2))
    return _table(header, body, right)


def summary_page(comparisons: list[Comparison], unmatched: list[Row]) -> str:
    lines = ["# MLPs against the Transformer baseline", "", BASELINE_RULE, "",
             "Δ is the architecture's mean metric minus the baseline's, in the metric's units (↑: higher is "
             "better, ↓: lower is better). Speed ratio is train samples/s over the baseline's (above 1 is "
             "faster); memory ratio is peak train memory over the baseline's (below 1 uses less).", ""]

    def setting(row: Row) -> tuple[str, str]:
        return (row.device, row.precision)

    settings = sorted({setting(c.row) for c in comparisons} | {setting(r) for r in unmatched})
    if not settings:
        lines += ["No finished runs to compare.", ""]
    for device, precision in settings:
        lines += [f"## {device}, {precision}", ""]
        here = sorted((c for c in comparisons if setting(c.row) == (device, precision)), key=lambda c: c.row.task)
        if here:
            lines += _table(
                ["task", "model", "size", "params (M)", "metric", "value", "baseline", "baseline value", "Δ",
                 "speed ratio", "memory ratio"],
                [[c.row.task, c.row.model, c.row.size, significant(c.row.params / 1e6),
                  metric_header(c.row.metric_name, c.row.higher_is_better),
                  metric_text(c.row.metric_mean, None), f"{c.baseline.family}-{c.baseline.size}",
                  metric_text(c.baseline.metric_mean, None),
                  MISSING if c.metric_delta is None else f"{c.metric_delta:+.4f}",
                  _times(c.speed_ratio), _times(c.memory_ratio)] for c in here],
                right={3, 5, 7, 8, 9, 10},
            )
            lines.append("")
        alone = [r for r in unmatched if setting(r) == (device, precision)]
        for task, rows in groupby(sorted(alone, key=lambda r: r.task), key=lambda r: r.task):
            names = ", ".join(f"{r.model}-{r.size}" for r in rows)
            lines += [f"No baseline run of {task} on this device and precision, so {names} are not compared.", ""]
    return "\n".join(lines)


def _times(ratio: Optional[float]) -> str:
    return MISSING if ratio is None else f"{ratio:.2f}×"


def index_page(
    command: str, collection: Collection, tasks: dict[str, tuple[int, int, Optional[str]]], ablations: bool = False
) -> str:
    """`tasks`: task -> (finished runs, failed runs, Pareto plot file or None); `ablations`: link ablations.md."""
    c = collection
    lines = [
        "# mlpbench leaderboard", "",
        f"Generated by `{command}` from {c.files_read} JSON files (finished runs: {len(c.runs)}, "
        f"failed runs: {len(c.failures)}, files skipped: {len(c.skipped)}).", "",
        "## Tasks", "",
    ]
    for task, (finished, failed, plot) in sorted(tasks.items()):
        line = f"- [{task}]({task}.md): {finished} finished runs, {failed} failed"
        lines.append(line + (f"; [Pareto plot]({plot})" if plot else ""))
    lines += ["", "## Across tasks", "",
              "- [MLPs against the Transformer baseline](summary.md)",
              *(["- [Ablations: each variant beside its family's default](ablations.md)"] if ablations else []),
              "- [All rows as CSV](results.csv)", ""]
    if c.skipped:
        lines += ["## Skipped files", ""] + [f"- {_cell(reason)}" for reason in c.skipped] + [""]
    return "\n".join(lines)


CSV_COLUMNS = [
    "task", "device", "device_type", "precision", "metric", "higher_is_better", "rank", "model", "size", "n",
    "seeds", "metric_mean", "metric_std", "params", "gflops_per_sample", "train_samples_per_s",
    "infer_samples_per_s", "train_tokens_per_s", "infer_tokens_per_s", "train_peak_mb", "memory_kind",
]


def results_csv(rows: list[Row]) -> str:
    def num(x: Optional[float]) -> str:
        return "" if x is None else f"{x:.6g}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([
            r.task, r.device, r.device_type, r.precision, r.metric_name, str(r.higher_is_better).lower(),
            "" if r.rank is None else r.rank, r.model, r.size, r.n, " ".join(map(str, r.seeds)),
            num(r.metric_mean), num(r.metric_std), f"{r.params:.0f}", num(r.gflops),
            num(r.train_samples_per_s), num(r.infer_samples_per_s), num(r.train_tokens_per_s),
            num(r.infer_tokens_per_s), num(r.train_peak_mb), r.memory_kind or "",
        ])
    return out.getvalue()
