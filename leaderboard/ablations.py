"""The ablation page: each variant beside its family's default, and each relative beside its closest family.

A variant row (Row.variant "norm=layernorm", ...) is compared with the default row of the same
family, size and group (task, device, precision, metric); its table is the ablation of the flags
it sets. A relative (a family whose runs record `relative_of`: the family it changes one part of,
as its registration says) is compared with the default of that family, at the same size name when
there is one, otherwise at the closest parameter count.
"""

from __future__ import annotations

from itertools import groupby
from typing import Optional

from leaderboard.aggregate import Row
from leaderboard.collect import Provenance
from leaderboard.tables import (
    MISSING, UNSTABLE, _table, examples_line, metric_header, metric_text, provenance_line, significant,
)

INTRO = (
    "Each table changes one part of a family, at one size, and sets the variant beside the family's "
    "default (its own choice, e.g. ResMLP's Aff and linear token mixing, gMLP's near-identity gate). "
    "The metric is the mean ± sample standard deviation over seeds, n the number of runs; Δ is the "
    "variant's mean minus the default's, in the metric's units (↑: higher is better, ↓: lower is better). "
    "Relatives (aMLP: gMLP + tiny attention; ConvMixer: Mixer's patches with convolutions for token mixing; "
    "the feed-forward-only ViT: ViT without attention) are set beside the default of the family they "
    "change, at the same size name, else the closest parameter count. ‡ marks a throughput from which "
    "runs with an unstable measurement were left out."
)


def has_ablations(rows: list[Row]) -> bool:
    return any(r.variant or r.relative_of for r in rows)


def ablation_key(variant: str) -> str:
    """The flags a variant sets: "norm=none,layer-scale-init=1" -> "--layer-scale-init, --norm"."""
    return ", ".join(sorted("--" + item.partition("=")[0] for item in variant.split(",")))


def ablation_page(rows: list[Row], provenances: Optional[list[Provenance]] = None) -> str:
    lines = ["# Ablations", "", INTRO, "", provenance_line(provenances or []), ""]
    for (task, device, precision, metric, higher), group in groupby(rows, key=lambda r: r.group):
        group = list(group)
        if not has_ablations(group):
            continue
        lines += [f"## {task}: {device}, {precision}: {metric}, {'higher' if higher else 'lower'} is better", ""]
        lines += [examples_line(group), ""]
        header = metric_header(metric, higher)
        defaults = {(r.family, r.size): r for r in group if not r.variant}
        variants = sorted((r for r in group if r.variant), key=lambda r: (r.family, r.size, ablation_key(r.variant)))
        for (family, size, key), same in groupby(variants, key=lambda r: (r.family, r.size, ablation_key(r.variant))):
            default = defaults.get((family, size))
            lines += [f"### {family}-{size}: {key}", ""]
            table = [_line("default", default, None)] if default else []
            table += [_line(r.variant, r, default) for r in _best_first(list(same), higher)]
            lines += _table(["variant", header, "n", "Δ vs default", "params (M)", "train samples/s"], table,
                            right={1, 2, 3, 4, 5})
            if default is None:
                lines += ["", f"No default run of {family}-{size} here, so no Δ."]
            lines.append("")
        relatives = [r for r in group if r.relative_of and not r.variant]
        if relatives:
            lines += ["### Relatives", ""]
            table = []
            for r in sorted(relatives, key=lambda r: (r.family, r.size)):
                base = _closest([d for d in defaults.values() if d.family == r.relative_of], r)
                table.append([
                    f"{r.family}-{r.size}", metric_text(r.metric_mean, r.metric_std), r.n,
                    MISSING if base is None else f"{base.family}-{base.size}",
                    MISSING if base is None else metric_text(base.metric_mean, base.metric_std),
                    _delta(r, base), significant(r.params / 1e6),
                    MISSING if base is None else significant(base.params / 1e6),
                ])
            lines += _table(["model", header, "n", "closest default", header, "Δ", "params (M)", "its params (M)"],
                            table, right={1, 2, 4, 5, 6, 7})
            lines.append("")
    return "\n".join(lines)


def _line(label: str, row: Row, default: Optional[Row]) -> list[object]:
    return [label, metric_text(row.metric_mean, row.metric_std), row.n,
            _delta(row, default),
            significant(row.params / 1e6),
            significant(row.train_samples_per_s) + (f" {UNSTABLE}" if row.unstable else "")]


def _best_first(rows: list[Row], higher: bool) -> list[Row]:
    sign = -1 if higher else 1
    return sorted(rows, key=lambda r: (r.metric_mean is None, sign * (r.metric_mean or 0.0), r.variant))


def _closest(candidates: list[Row], row: Row) -> Optional[Row]:
    same_size = [c for c in candidates if c.size == row.size]
    if same_size:
        return same_size[0]
    return min(candidates, key=lambda c: (abs(c.params - row.params), c.params, c.size), default=None)


def _delta(row: Row, base: Optional[Row]) -> str:
    if base is None or row.metric_mean is None or base.metric_mean is None:
        return MISSING
    return f"{row.metric_mean - base.metric_mean:+.4f}"
