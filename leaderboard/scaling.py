"""The cost-scaling page: how each family's costs grow with the number of tokens (bench/scaling.py).

From the points alone (no torch): log-log plots, one per metric with one panel per series and one
line per family; the exponent of each cost fitted by least squares on log cost against log tokens
over each family's FIT_POINTS largest token counts that ran, beside the exponent of the counted
FLOPs over the same points; and, as the Long Range Arena reports, training speed and memory at each
length as ratios against the series' Transformer baseline.

Timed figures (times, latency, speed ratios) of a point whose measurement failed its self-check are
left out and marked; its FLOPs and memory, which are not timed, stay.
"""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, LogFormatter, NullLocator

from leaderboard.collect import ScalingPoint
from leaderboard.tables import MISSING, UNSTABLE, _table, provenance_line, significant

FIT_POINTS = 3
STATUS_WORDS = {"oom": "OOM", "timeout": "over cap", "skipped": "not run", "error": "error"}
# What each series sweeps, for titles and axis labels; a series not listed is named as it is.
SERIES_TEXT = {
    "image-p16": ("square images of 32 to 512 pixels at 16x16 patches", "tokens (patches per image)"),
    "image-p4": ("square images of 8 to 128 pixels at 4x4 patches", "tokens (patches per image)"),
    "mlm": ("masked-LM blocks: an encoder", "tokens (sequence length)"),
    "seq2seq": ("sources and targets of the same length: an encoder and a causal decoder",
                "tokens (source and target length)"),
}


@dataclass(frozen=True)
class Metric:
    name: str  # the PNG's name: scaling_<name>.png
    title: str
    short: str  # a table column's
    unit: str
    value: Callable[[ScalingPoint], Optional[float]]
    timed: bool  # left out where the timing failed its self-check


def _per(rate: Optional[float]) -> Optional[float]:
    return None if not rate else 1e3 / rate


METRICS = (
    Metric("flops", "forward FLOPs per sample", "FLOPs", "GFLOP", lambda p: p.gflops, False),
    Metric("infer_time", "inference time per sample", "inference time", "ms",
           lambda p: _per(p.infer_samples_per_s), True),
    Metric("train_time", "training time per sample", "training time", "ms",
           lambda p: _per(p.train_samples_per_s), True),
    Metric("latency", "batch-1 latency (p50)", "latency", "ms", lambda p: p.latency_ms, True),
    Metric("infer_memory", "peak inference memory", "inference memory", "MB", lambda p: p.infer_peak_mb, False),
    Metric("train_memory", "peak training memory", "training memory", "MB", lambda p: p.train_peak_mb, False),
)


def value(point: ScalingPoint, metric: Metric) -> Optional[float]:
    """The metric at a point, None where it did not run or (timed metrics) its timing is unstable."""
    if point.status != "ok" or (metric.timed and not point.stable):
        return None
    return metric.value(point)


def fit_exponent(points: list[tuple[float, float]]) -> Optional[float]:
    """Least-squares slope of log y against log x; None below two distinct x."""
    points = [(x, y) for x, y in points if x > 0 and y and y > 0]
    if len({x for x, _ in points}) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def fitted_points(points: list[ScalingPoint]) -> list[ScalingPoint]:
    """A family's FIT_POINTS largest token counts that ran."""
    ran = sorted((p for p in points if p.status == "ok"), key=lambda p: p.tokens)
    return ran[-FIT_POINTS:]


def exponents(points: list[ScalingPoint]) -> dict[str, Optional[float]]:
    """Metric name -> the fitted exponent over a family's fitted points."""
    chosen = fitted_points(points)
    return {m.name: fit_exponent([(p.tokens, value(p, m)) for p in chosen if value(p, m) is not None])
            for m in METRICS}


# ---------------------------------------------------------------------------------------------
# Grouping


@dataclass(frozen=True)
class Setup:
    """Where points were measured: a page section, never mixed with another."""

    device: str
    device_type: str
    precision: str

    @property
    def title(self) -> str:
        return f"{self.device}, {self.precision}"


def setups(points: list[ScalingPoint]) -> list[Setup]:
    return sorted({Setup(p.device, p.device_type, p.precision) for p in points},
                  key=lambda s: (s.device_type, s.device, s.precision))


def in_setup(points: list[ScalingPoint], setup: Setup) -> list[ScalingPoint]:
    return [p for p in points if Setup(p.device, p.device_type, p.precision) == setup]


def series_of(points: list[ScalingPoint]) -> list[str]:
    """Series in the order bench.scaling runs them (those it names first), then by name."""
    order = list(SERIES_TEXT)
    return sorted({p.series for p in points}, key=lambda s: (order.index(s) if s in order else len(order), s))


def families_of(points: list[ScalingPoint]) -> list[str]:
    """The baseline first, then the other families by name."""
    return sorted({p.family for p in points}, key=lambda f: (not any(p.baseline for p in points if p.family == f), f))


def by_family(points: list[ScalingPoint], family: str) -> list[ScalingPoint]:
    return sorted((p for p in points if p.family == family), key=lambda p: p.tokens)


def series_title(series: str) -> str:
    what = SERIES_TEXT.get(series, (series, "tokens"))[0]
    return f"{series}: {what}"


def plot_names(all_setups: list[Setup]) -> dict[Setup, str]:
    """The prefix of each setup's PNG files: scaling_ alone, or with the device type and precision
    (and a number where those repeat) when the page has several setups."""
    if len(all_setups) == 1:
        return {all_setups[0]: "scaling"}
    names: dict[Setup, str] = {}
    for s in all_setups:
        base = f"scaling_{s.device_type}-{s.precision}"
        name, n = base, 2
        while name in names.values():
            name, n = f"{base}-{n}", n + 1
        names[s] = name
    return names


# ---------------------------------------------------------------------------------------------
# Plots


class PlainLogFormatter(LogFormatter):
    """A log axis labelled 20, 50, 100, 0.5 instead of 2x10^1: matplotlib's choice of which ticks to
    label, plain numbers."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def scaling_png(points: list[ScalingPoint], metric: Metric, setup: Setup) -> Optional[bytes]:
    """One figure of a metric: a log-log panel per series, a line per family; None when no point has it."""
    panels = [s for s in series_of(points) if any(value(p, metric) is not None for p in points if p.series == s)]
    if not panels:
        return None
    families = sorted({p.family for p in points})
    colors = {family: f"C{i}" for i, family in enumerate(families)}  # one colour per family in every figure
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(6.4 * columns, 4.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax, series in zip(axes, panels):
        mine = [p for p in points if p.series == series]
        for family in families_of(mine):
            line = [(p.tokens, value(p, metric)) for p in by_family(mine, family) if value(p, metric) is not None]
            if not line:
                continue
            baseline = any(p.baseline for p in mine if p.family == family)
            ax.plot([x for x, _ in line], [y for _, y in line], marker="o", markersize=4, color=colors[family],
                    linestyle="--" if baseline else "-", linewidth=2.2 if baseline else 1.4,
                    label=f"{family} (baseline)" if baseline else family)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        lengths = sorted({p.tokens for p in mine if value(p, metric) is not None})
        ax.xaxis.set_major_locator(FixedLocator(lengths))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{n:,}" for n in lengths])
        ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.set_xlabel(f"{SERIES_TEXT.get(series, (series, 'tokens'))[1]}, log scale")
        ax.set_ylabel(f"{metric.title} ({metric.unit}, log scale)")
        ax.set_title(f"{series}: {metric.title}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{metric.title} against the number of tokens ({setup.title})", fontsize=11)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, metadata={"Software": None})  # no version stamp in the file
    return out.getvalue()


def scaling_pngs(points: list[ScalingPoint]) -> dict[str, bytes]:
    """File name -> PNG bytes of every plot of the page."""
    all_setups = setups(points)
    names = plot_names(all_setups)
    pngs = {}
    for setup in all_setups:
        for metric in METRICS:
            png = scaling_png(in_setup(points, setup), metric, setup)
            if png is not None:
                pngs[f"{names[setup]}_{metric.name}.png"] = png
    return pngs


# ---------------------------------------------------------------------------------------------
# The page

INTRO = (
    "How do costs grow with the number of tokens? Each family runs at one width and depth (its size "
    "below) while only what sets the number of tokens changes: the image side at a fixed patch, or the "
    "sequence length. Every point is measured apart on random inputs of the task's shape (bench.measure: "
    "warm-up, timed repeats, median, self-checked; memory in a pass of its own, on a CPU the model's own "
    "tensors: weights, gradients, optimizer state, activations, not the process). A point over the time "
    "or memory cap is recorded as such, and the family's longer inputs of the series are not run."
)
FIT_NOTE = (
    f"Exponent: the least-squares slope of log cost against log tokens over each family's {FIT_POINTS} largest "
    "token counts that ran (the tokens column), so 1 is linear and 2 quadratic growth. The FLOPs are counted "
    "by torch's FLOP counter (matmuls, convolutions, attention; forward, per sample): their exponent is the "
    "analytic one. Times and memory are measured, so fixed costs (weights, optimizer state, per-step "
    "overheads) pull their exponents below the FLOPs' until the token-dependent part dominates. "
    f"{UNSTABLE} marks an exponent fitted without a point whose timing failed its self-check."
)


def formula_check(points: list[ScalingPoint]) -> str:
    """Whether the counted FLOPs equal the families' registered formulas, point by point."""
    ran = [p for p in points if p.status == "ok" and p.gflops is not None]
    if not ran or any(p.analytic_gflops is None for p in ran):
        return "Not every point records its family's FLOP formula."
    off = [p for p in ran if abs(p.gflops - p.analytic_gflops) > 1e-9 * max(p.gflops, 1e-12)]
    if not off:
        return f"At all {len(ran)} points that ran, the counted FLOPs equal the family's registered formula."
    listed = ", ".join(f"{p.series} {p.family} at {p.tokens:,}" for p in off)
    return f"**The counted FLOPs differ from the family's registered formula at {len(off)} points**: {listed}."
RATIO_NOTE = (
    "As the Long Range Arena reports them: a family's training samples/s over the baseline's at the same "
    "length (above 1: faster), and its peak training memory over the baseline's (below 1: less). "
    "OOM: over the memory cap; over cap: over the time cap; not run: a shorter input was already over a cap; "
    f"{UNSTABLE}: the timing failed its self-check (memory is not timed and stays); "
    f"{MISSING}: the baseline has no figure at that length."
)


def _setting(points: list[ScalingPoint], name: str) -> Optional[object]:
    values = {dict(p.settings).get(name) for p in points}
    return values.pop() if len(values) == 1 else None


def _range(values: list[float], text: Callable[[float], str]) -> str:
    if not values:
        return "not recorded"
    low, high = min(values), max(values)
    return text(low) if low == high else f"{text(low)} to {text(high)}"


def conditions(points: list[ScalingPoint]) -> str:
    """How the points were measured: settings shared by all, and how busy the machine was."""
    def setting(name: str, text: Callable[[object], str]) -> str:
        values = sorted({str(dict(p.settings).get(name)) for p in points})
        if len(values) == 1:
            v = dict(points[0].settings).get(name)
            return text(v) if v is not None else "none"
        return f"**varies: {', '.join(values)}**"

    threads = sorted({p.cpu_threads for p in points if p.cpu_threads is not None})
    cores = sorted({p.cpu_count for p in points if p.cpu_count is not None})
    loads = [p.load_average for p in points if p.load_average is not None]
    locked = {p.measure_lock for p in points if p.measure_lock is not None}
    sizes = sorted({p.size for p in points})
    parts = [
        f"Size {', '.join(f'`{s}`' for s in sizes)}; batch {setting('batch_size', str)} samples per step at "
        "every point",
        f"warm-up steps {setting('bench_warmup_steps', str)}, then {setting('bench_repeats', str)} timed repeats "
        f"of {setting('bench_steps', str)} steps (their median); latency over {setting('latency_samples', str)} "
        "batch-1 calls",
        f"clock: {setting('bench_clock', str)}"
        + (f", {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}" if threads else ""),
        f"time cap {setting('time_cap', lambda v: f'{v:g} s')} per point, memory cap "
        f"{setting('memory_cap', lambda v: f'{v:g} MB of address space')}",
    ]
    busy = f"load average (1 minute) when the points began measuring: {_range(loads, lambda x: f'{x:.2f}')}"
    if cores:
        busy += f" on {'/'.join(map(str, cores))} cores"
    if loads and cores and max(loads) > min(cores) / 2:
        busy += " (a busy machine: other jobs ran beside the study"
        busy += ("; each point measured holding their measurement lock, so none of their runs measured at the "
                 "same time" if locked == {True} else "")
        busy += "; process-clock times do not count the time slices others take)" if _setting(
            points, "bench_clock") == "process" else ")"
    return "; ".join(parts) + ". " + busy[0].upper() + busy[1:] + "."


def exponent_table(points: list[ScalingPoint]) -> list[str]:
    rows = []
    for family in families_of(points):
        mine = by_family(points, family)
        chosen = fitted_points(mine)
        fits = exponents(mine)
        unstable = any(not p.stable for p in chosen)
        cells = []
        for m in METRICS:
            fit = fits[m.name]
            text = MISSING if fit is None else f"{fit:.2f}"
            cells.append(text + (UNSTABLE if m.timed and unstable and fit is not None else ""))
        label = f"{family} (baseline)" if any(p.baseline for p in mine) else family
        rows.append([label, ", ".join(f"{p.tokens:,}" for p in chosen) or MISSING, *cells])
    header = ["family", "tokens fitted", *[m.short for m in METRICS]]
    return _table(header, rows, set(range(2, 2 + len(METRICS))))


def _status_cell(point: Optional[ScalingPoint]) -> Optional[str]:
    """The word for a point that has no figure, or None when it ran."""
    if point is None:
        return MISSING
    return STATUS_WORDS.get(point.status) if point.status != "ok" else None


def ratio_tables(points: list[ScalingPoint]) -> list[str]:
    baseline = next((p.family for p in points if p.baseline), None)
    if baseline is None:
        return ["No baseline family in this series: no ratios.", ""]
    lengths = sorted({p.tokens for p in points})
    at = {(p.family, p.tokens): p for p in points}
    lines = []
    for title, figure, timed in (("training speed (samples/s over the baseline's)", "train_samples_per_s", True),
                                 ("peak training memory (over the baseline's)", "train_peak_mb", False)):
        rows = []
        for family in families_of(points):
            cells = []
            for n in lengths:
                mine, base = at.get((family, n)), at.get((baseline, n))
                word = _status_cell(mine)
                if word is not None:
                    cells.append(word)
                elif timed and not mine.stable:
                    cells.append(UNSTABLE)
                elif (base is None or base.status != "ok" or getattr(base, figure) is None
                      or (timed and not base.stable)):
                    cells.append(MISSING)
                else:
                    cells.append(f"{getattr(mine, figure) / getattr(base, figure):.2f}")
            rows.append([f"{family} (baseline)" if family == baseline else family, *cells])
        lines += [f"{title[0].upper()}{title[1:]}, against {baseline}:", ""]
        lines += _table(["family", *[f"{n:,}" for n in lengths]], rows, set(range(1, len(lengths) + 1))) + [""]
    return lines


def absolute_table(points: list[ScalingPoint]) -> list[str]:
    """Each point's training samples/s and peak training memory, or its status."""
    lengths = sorted({p.tokens for p in points})
    at = {(p.family, p.tokens): p for p in points}
    rows = []
    for family in families_of(points):
        cells = []
        for n in lengths:
            p = at.get((family, n))
            word = _status_cell(p)
            if word is not None:
                cells.append(word)
                continue
            speed = significant(p.train_samples_per_s) + ("" if p.stable else UNSTABLE)
            cells.append(f"{speed} · {significant(p.train_peak_mb)} MB")
        rows.append([family, *cells])
    return (["Training samples/s · peak training memory at each length:", ""]
            + _table(["family", *[f"{n:,}" for n in lengths]], rows, set(range(1, len(lengths) + 1))))


def series_note(points: list[ScalingPoint]) -> Optional[str]:
    """The exponents of a series' training time and peak training memory, every family's, from the
    flattest growth to the steepest (each fitted over its own largest lengths: the exponents table)."""
    fits = {f: exponents(by_family(points, f)) for f in families_of(points)}
    baseline = next((p.family for p in points if p.baseline), None)
    parts = []
    for name, what in (("train_time", "training-time exponents"), ("train_memory", "training-memory exponents")):
        known = sorted(((e[name], f) for f, e in fits.items() if e[name] is not None))
        if known:
            listed = ", ".join(f"{f}{' (baseline)' if f == baseline else ''} {x:.2f}" for x, f in known)
            parts.append(f"{what}, flattest first: {listed}")
    if not parts:
        return None
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


def _longest(points: list[ScalingPoint]) -> str:
    """Per family, the longest input that ran."""
    items = []
    for family in families_of(points):
        ran = [p.tokens for p in points if p.family == family and p.status == "ok"]
        items.append(f"{family} {max(ran):,}" if ran else f"{family} none")
    return ", ".join(items)


def scaling_page(points: list[ScalingPoint], pngs: dict[str, bytes]) -> str:
    """The page; `pngs` are the plot files written beside it (scaling_pngs)."""
    lines = ["# Cost scaling: how costs grow with the number of tokens", "", INTRO, "",
             provenance_line([p.provenance for p in points]), ""]
    all_setups = setups(points)
    names = plot_names(all_setups)
    for setup in all_setups:
        mine = in_setup(points, setup)
        if len(all_setups) > 1:
            lines += [f"## {setup.title}", ""]
        level = "###" if len(all_setups) > 1 else "##"
        counts = {s: sum(1 for p in mine if p.status == s) for s in ("ok", "oom", "timeout", "skipped", "error")}
        lines += [f"Measured on {setup.title}. {conditions(mine)}", "",
                  f"Points: {len(mine)} ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}).", ""]
        lines += [f"{level} Note", "",
                  "Each exponent is fitted over the family's own largest lengths that ran (see the exponents "
                  "table), so families stopped early by a cap are fitted over shorter inputs.", ""]
        for series in series_of(mine):
            points_of = [p for p in mine if p.series == series]
            note = series_note(points_of)
            longest = f"longest input that ran: {_longest(points_of)}"
            lines.append(f"- **{series}**: {note + ' ' if note else ''}{longest[0].upper()}{longest[1:]}.")
        lines += ["", f"{level} Exponents", "", f"{FIT_NOTE} {formula_check(mine)}", ""]
        for series in series_of(mine):
            lines += [f"{series_title(series)}:", ""] + exponent_table([p for p in mine if p.series == series]) + [""]
        lines += [f"{level} Plots", ""]
        for metric in METRICS:
            name = f"{names[setup]}_{metric.name}.png"
            if name in pngs:
                lines += [f"![{metric.title} ({metric.unit}) against tokens, log-log]({name})", ""]
        lines += [f"{level} Against the baseline, length by length", "", RATIO_NOTE, ""]
        for series in series_of(mine):
            points_of = [p for p in mine if p.series == series]
            lines += [f"{'#' * (len(level) + 1)} {series_title(series)}", ""]
            lines += ratio_tables(points_of) + absolute_table(points_of) + [""]
        failed = [p for p in mine if p.status == "error"]
        if failed:
            lines += [f"{level} Errors", ""]
            lines += [f"- {p.series} {p.family}-{p.size} at {p.tokens:,} tokens: {p.error}" for p in failed] + [""]
    return "\n".join(lines)
