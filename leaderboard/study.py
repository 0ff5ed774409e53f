"""The recipe study's page (recipe-study.md): the compared image families and the ConvNet reference,
each trained under an older and a modern recipe in one data-limited regime (sweeps/recipe-study.toml),
read for the question people bring: does a ranking come from the architecture or from the recipe?

From the study's results folder (one sub-folder per recipe, as a sweep with `recipes` writes them):
test top-1 per family and recipe with 95% intervals; the recipe effect (modern minus older) per family
with its interval; the families' ranks under each recipe; the gap between a run's top-1 on its own
training images (--score-train) and on test; the older recipe's learning curves (the overfitting
evidence); the floor; and three claims, each judged from these numbers alone.

Intervals: Student's t for a mean over seeds; for a difference of means (and the difference of two
differences), Welch's t with the Welch-Satterthwaite degrees of freedom, the seeds of each cell being
independent runs. A claim holds where every interval it rests on lies on its side of zero, does not
hold where one lies on the other side, and otherwise cannot be told.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.core.errors import UserError
from leaderboard.aggregate import (
    Row, TuningRow, aggregate, ahead, confidence_half_width, same_lr, standing, tuning_rows,
)
from leaderboard.collect import Collection, Run, collect
from leaderboard.tables import _distinct, _g, _table, floor_line, provenance_line, tuning_section

OLDER, MODERN = "plain", "deit"  # the study's two recipes: an effect is MODERN minus OLDER
CONVNET = "resnet"
TRANSFORMER = "vit"
# The recipe gain the ResMLP paper reports on ImageNet-1k, the figure the study's ResMLP gain is read against.
RESMLP_OLDER, RESMLP_MODERN = 69.2, 76.6
RESMLP_SOURCE = ("ResMLP 2105.03404 Table 3: ResMLP-S12 'old-fashioned (90 epochs)', SGD as for ResNet, 69.2 top-1, "
                 "against 76.6 with its default DeiT-style training (400 epochs); section 3.4: 'improves the "
                 "performance of ResMLP-S12 by 7.4%'")
HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "cannot tell (intervals overlap)"


@dataclass(frozen=True)
class Estimate:
    """A mean, or a contrast of means, with the half-width of its 95% interval (None: too few seeds)."""

    value: float
    half: Optional[float]

    @property
    def low(self) -> float:
        return self.value - (self.half or 0.0)

    @property
    def high(self) -> float:
        return self.value + (self.half or 0.0)

    def sign(self) -> int:
        """1 where the interval lies above zero, -1 below, 0 where it holds zero or is unknown."""
        if self.half is None:
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def text(self, signed: bool = True) -> str:
        shown = "{:+.4f}" if signed else "{:.4f}"
        value = shown.format(self.value)
        return value if self.half is None else f"{value} [{shown.format(self.low)}, {shown.format(self.high)}]"


def contrast(groups: list[tuple[int, list[float]]]) -> Optional[Estimate]:
    """sum(sign x mean(values)) over groups of independent values, with Welch's interval; None where a
    group is empty."""
    if any(not values for _, values in groups):
        return None
    value = sum(sign * statistics.fmean(values) for sign, values in groups)
    if any(len(values) < 2 for _, values in groups):
        return Estimate(value, None)
    parts = [statistics.variance(values) / len(values) for _, values in groups]
    se = math.sqrt(sum(parts))
    if se == 0:
        return Estimate(value, 0.0)
    df = se ** 4 / sum(p ** 2 / (len(values) - 1) for p, (_, values) in zip(parts, groups))
    from scipy.stats import t

    return Estimate(value, float(t.ppf(0.975, df)) * se)


def mean_of(values: list[float]) -> Optional[Estimate]:
    if not values:
        return None
    if len(values) < 2:
        return Estimate(values[0], None)
    return Estimate(statistics.fmean(values), confidence_half_width(statistics.stdev(values), len(values)))


@dataclass(frozen=True)
class Cell:
    """One (family, recipe): its test runs, aggregated, and their seeds' values."""

    family: str
    recipe: str
    row: Row
    runs: tuple[Run, ...]

    @property
    def values(self) -> list[float]:
        return [r.metric for r in self.runs if r.metric is not None]

    @property
    def gap(self) -> Optional[Estimate]:
        """Training top-1 minus test top-1, per seed, where the runs scored their training images."""
        return mean_of([r.train_metric - r.metric for r in self.runs
                        if r.train_metric is not None and r.metric is not None])

    @property
    def train(self) -> Optional[Estimate]:
        return mean_of([r.train_metric for r in self.runs if r.train_metric is not None])


def collect_study(folder: str) -> Collection:
    """The study's results: each recipe's sub-folder read apart (the two hold files of the same names, which
    one collection would take for repeats of one run), then put together."""
    parts = []
    for recipe in (OLDER, MODERN):
        sub = Path(folder) / recipe
        if not sub.is_dir():
            raise UserError(f"The recipe study's folder {folder} lacks {recipe}/: it holds one sub-folder per recipe, "
                            f"{OLDER}/ and {MODERN}/, as python -m bench.sweep sweeps/recipe-study.toml writes them.")
        parts.append(collect([str(sub)]))
    older, modern = parts
    return Collection(runs=older.runs + modern.runs, failures=older.failures + modern.failures,
                      skipped=older.skipped + modern.skipped, files_read=older.files_read + modern.files_read,
                      tuning=older.tuning + modern.tuning)


def study_cells(collection: Collection) -> dict[tuple[str, str], Cell]:
    """(family, recipe) -> its cell, for the study's two recipes; UserError where the results are not a study."""
    recipes = {r.recipe for r in collection.runs}
    if not recipes <= {OLDER, MODERN} or not collection.runs:
        raise UserError(f"The recipe study reads test runs of the recipes {OLDER} and {MODERN}; the study folder "
                        f"has {', '.join(sorted(recipes)) or 'none'}.")
    tasks = {r.id.task for r in collection.runs}
    if len(tasks) > 1:
        raise UserError(f"The recipe study is one task; its folder has runs of {', '.join(sorted(tasks))}.")
    cells = {}
    for recipe in sorted(recipes):
        runs = [r for r in collection.runs if r.recipe == recipe]
        for row in aggregate(runs):
            mine = tuple(r for r in runs
                         if (r.id.family, r.id.size, r.id.variant) == (row.family, row.size, row.variant))
            cells[row.family, recipe] = Cell(row.family, recipe, row, mine)
    return cells


def families(cells: dict[tuple[str, str], Cell]) -> list[str]:
    """The compared families in name order, then the ConvNet reference."""
    names = sorted({f for f, _ in cells})
    return [f for f in names if f != CONVNET] + [f for f in names if f == CONVNET]


def ranks(cells: dict[tuple[str, str], Cell], recipe: str) -> dict[str, int]:
    """Every family's rank under `recipe`, the ConvNet included: 1 + the families whose interval lies
    entirely above its own."""
    rows = [c.row for (f, r), c in cells.items() if r == recipe and c.row.metric_mean is not None]
    return {row.family: 1 + sum(ahead(other, row) for other in rows) for row in rows}


def effect(cells, family: str) -> Optional[Estimate]:
    older, modern = cells.get((family, OLDER)), cells.get((family, MODERN))
    if older is None or modern is None:
        return None
    return contrast([(1, modern.values), (-1, older.values)])


def excess_gain(cells, family: str) -> Optional[Estimate]:
    """The family's recipe effect minus the ConvNet's."""
    needed = [cells.get(key) for key in ((family, MODERN), (family, OLDER), (CONVNET, MODERN), (CONVNET, OLDER))]
    if any(c is None for c in needed):
        return None
    return contrast([(1, needed[0].values), (-1, needed[1].values), (-1, needed[2].values), (1, needed[3].values)])


def _verdict(signs: list[int], want: int) -> str:
    if signs and all(s == want for s in signs):
        return HOLDS
    return FAILS if any(s == -want for s in signs) else UNCLEAR


def claims(cells: dict[tuple[str, str], Cell]) -> list[tuple[str, str, str]]:
    """(claim, verdict, the numbers it rests on), judged from the cells alone."""
    compared = [f for f in families(cells) if f != CONVNET]
    out = []
    gains = {f: excess_gain(cells, f) for f in compared}
    known = {f: g for f, g in gains.items() if g is not None}
    out.append((
        "The MLP families and ViT gain more from the modern recipe than the ConvNet does.",
        _verdict([g.sign() for g in known.values()], 1) if len(known) == len(compared) and known else UNCLEAR,
        "; ".join(f"{f}: {g.text()}" for f, g in known.items()) + " (each family's gain minus the ConvNet's)"
        if known else "the ConvNet or a family lacks a cell",
    ))
    out.append(_resmlp_claim(cells))
    mlps = [f for f in compared if f != TRANSFORMER]
    flips, same, said = [], [], []
    for f in mlps:
        pair = [cells.get((f, r)) for r in (OLDER, MODERN)], [cells.get((TRANSFORMER, r)) for r in (OLDER, MODERN)]
        if any(c is None for side in pair for c in side):
            continue
        older, modern = (standing(pair[0][i].row, pair[1][i].row) for i in (0, 1))
        said.append(f"{f} against vit: {older} under {OLDER}, {modern} under {MODERN}")
        if {older, modern} == {"ahead", "behind"}:
            flips.append(f)
        elif older == modern != "tied":
            same.append(f)
    verdict = HOLDS if flips else FAILS if said and len(same) == len(said) else UNCLEAR
    out.append(("The ranking of the MLPs against ViT depends on the recipe.", verdict,
                "; ".join(said) if said else "ViT or an MLP lacks a cell"))
    return out


def _resmlp_claim(cells) -> tuple[str, str, str]:
    """ResMLP's gain against its paper's, each as the share of the older recipe's error it removes: a gain of
    7.4 points from 69.2 removes 24% of the error, which is what the paper's figure says at any accuracy."""
    paper = (RESMLP_MODERN - RESMLP_OLDER) / (100 - RESMLP_OLDER)
    claim = (f"ResMLP's recipe gain is of the size its paper reports: {RESMLP_MODERN - RESMLP_OLDER:.1f} top-1 points "
             f"on ImageNet-1k from {RESMLP_OLDER}, {paper:.1%} of the older recipe's error removed (scaled to this "
             f"regime as that share of the error, not in points).")
    gain, older = effect(cells, "resmlp"), cells.get(("resmlp", OLDER))
    if gain is None or older is None or older.row.metric_mean is None or older.row.metric_mean >= 1:
        return claim, UNCLEAR, "ResMLP lacks a cell"
    error = 1 - older.row.metric_mean
    share = Estimate(gain.value / error, None if gain.half is None else gain.half / error)
    numbers = (f"here: {gain.text()} top-1, {share.value:.1%} of {OLDER}'s error "
               f"{'' if share.half is None else f'[{share.low:.1%}, {share.high:.1%}] '}"
               f"(the interval of the gain over {OLDER}'s mean error); paper: {paper:.1%} ({RESMLP_SOURCE})")
    if share.half is None:
        return claim, UNCLEAR, numbers
    return claim, HOLDS if share.low <= paper <= share.high else FAILS, numbers


def regime_line(runs: list[Run]) -> str:
    return f"**Regime: {regime(runs)}** Not ImageNet: every figure here is of this regime and budget."


def regime(runs: list[Run]) -> str:
    """What the study trained on, from what its runs record: a "varies" in bold where they differ."""
    ps = [r.protocol for r in runs if r.protocol is not None]
    subsets = [p.train_subset for p in ps]
    images = ("all its training images" if not any(subsets) else
              _distinct(subsets, lambda n: f"{n:,} training images (a fixed draw, the same for every run)"))
    return (f"{runs[0].id.task}, {images}, {_distinct([p.epochs and round(p.epochs) for p in ps], str)} epochs at "
            f"batch {_distinct([p.batch_size for p in ps], str)} ({_distinct([p.steps for p in ps], str)} steps), "
            f"size {_distinct([r.id.size for r in runs], str)}, on {_distinct([p.device_name for p in ps], str)}.")


def study_page(collection: Collection) -> str:
    cells = study_cells(collection)
    names = families(cells)
    runs = collection.runs
    lines = ["# Recipe or architecture: the recipe study", "", regime_line(runs), "",
             f"Each family trained under `{OLDER}` (a ResNet-era recipe) and `{MODERN}` (DeiT's), its learning rate "
             "tuned per recipe on validation, then three seeds on test (docs/recipe-study.md; the recipes' values: "
             f"recipes.md). `{CONVNET}` is the ConvNet reference. Intervals are 95%: Student's t over the seeds of a "
             "cell; Welch's for a difference.", "",
             provenance_line([r.provenance for r in [*runs, *collection.tuning]]), ""]
    floor = floor_line(runs)
    if floor:
        lines += [floor, ""]
    ranked = {recipe: ranks(cells, recipe) for recipe in (OLDER, MODERN)}

    def cell_text(family: str, recipe: str) -> str:
        c = cells.get((family, recipe))
        if c is None or c.row.metric_mean is None:
            return "—"
        half = c.row.metric_ci
        return f"{c.row.metric_mean:.4f}" + ("" if half is None else f" ± {half:.4f}") + f" (n={c.row.n})"

    lines += ["## Test top-1 and the recipe effect", ""]
    body = []
    for f in names:
        e = effect(cells, f)
        rank = [str(ranked[r].get(f, "—")) for r in (OLDER, MODERN)]
        lrs = [_g(cells[f, r].runs[0].lr) if (f, r) in cells and cells[f, r].runs[0].lr else "—"
               for r in (OLDER, MODERN)]
        body.append([f + (" (reference)" if f == CONVNET else ""), cell_text(f, OLDER), cell_text(f, MODERN),
                     "—" if e is None else e.text(), *rank, *lrs])
    lines += _table(["family", f"{OLDER} top-1", f"{MODERN} top-1", f"effect ({MODERN} − {OLDER})",
                     f"rank, {OLDER}", f"rank, {MODERN}", f"lr, {OLDER}", f"lr, {MODERN}"], body,
                    right=set(range(1, 8)))
    moved = [f for f in names if ranked[OLDER].get(f) != ranked[MODERN].get(f)]
    lines += ["", "Ranks count every family, the ConvNet included: 1 + the families whose interval lies entirely "
              "above. "
              + (f"The rank changes between the recipes for {', '.join(moved)}." if moved
                 else "Every family keeps its rank under both recipes."), ""]

    lines += ["## Training against test top-1", "",
              "Training top-1 is each run's top-1 on its own training images, unaugmented, after training "
              "(--score-train); the gap is training minus test, per seed.", ""]
    body = []
    for f in names:
        for r in (OLDER, MODERN):
            c = cells.get((f, r))
            if c is None:
                continue
            train, gap = c.train, c.gap
            body.append([f, r, "—" if train is None else train.text(signed=False),
                         f"{c.row.metric_mean:.4f}", "—" if gap is None else gap.text()])
    lines += _table(["family", "recipe", "training top-1", "test top-1", "gap"], body, right={2, 3, 4})
    lines += ["", *curves_section(collection, cells)]
    lines += ["## The claims, judged from these numbers only", ""]
    for claim, verdict, numbers in claims(cells):
        lines += [f"- {claim} **{verdict}.** {numbers}."]
    lines.append("")
    for recipe, rows in tuning_by_recipe(collection).items():
        tuned = [r for r in collection.tuning if r.recipe == recipe and isinstance(r, Run)]
        section = tuning_section(rows, [r for r in runs if r.recipe == recipe], tuned)
        lines += [f"## Tuning under {recipe}", "", *section[2:]]  # its own title and intro line left out
    return "\n".join(lines)


def curves_section(collection: Collection, cells) -> list[str]:
    """The older recipe's learning curves: each family's tuning run at the learning rate its test runs use,
    training loss (augmented batches) beside validation loss at each evaluation; the overfitting evidence."""
    lines = [f"## Learning curves under {OLDER} (validation, the tuning run at the chosen learning rate)", "",
             f"`{OLDER}` has no label smoothing or mixing, so its training loss (the mean over the steps since the "
             "point before, on augmented images) reads against the validation loss: a gap that grows while "
             "validation loss flattens is overfitting.", ""]
    body = []
    for f in families(cells):
        c = cells.get((f, OLDER))
        run = None if c is None else chosen_tuning_run(collection, f, OLDER, c.runs[0].lr)
        if run is None or not run.curve:
            continue
        for p in run.curve:
            gap = None if p.loss is None or p.train_loss is None else p.loss - p.train_loss
            body.append([f, str(p.step), "—" if p.train_loss is None else f"{p.train_loss:.3f}",
                         "—" if p.loss is None else f"{p.loss:.3f}", f"{p.value:.4f}",
                         "—" if gap is None else f"{gap:+.3f}"])
        if run.train_metric is not None:
            body.append([f, "end: training top-1", "", "", f"{run.train_metric:.4f}",
                         f"{run.train_metric - run.metric:+.4f} (top-1)"])
    if not body:
        return lines + ["No tuning run at a chosen learning rate recorded a curve.", ""]
    return lines + _table(["family", "step", "training loss", "validation loss", "validation top-1",
                           "gap (validation − training loss)"], body, right={1, 2, 3, 4, 5}) + [""]


def tuning_by_recipe(collection: Collection) -> dict[str, list[TuningRow]]:
    """Each recipe's tuning rows, with the learning rates its test runs used."""
    return {recipe: tuning_rows([r for r in collection.tuning if r.recipe == recipe],
                                [r for r in [*collection.runs, *collection.failures] if r.recipe == recipe])
            for recipe in (OLDER, MODERN)}


def chosen_tuning_run(collection: Collection, family: str, recipe: str, lr: Optional[float]) -> Optional[Run]:
    """The family's finished tuning run under `recipe` at `lr` (its test runs' learning rate); None if none."""
    return next((r for r in collection.tuning if isinstance(r, Run) and r.recipe == recipe and r.id.family == family
                 and lr is not None and r.lr is not None and same_lr(r.lr, lr)), None)


def headline(collection: Collection) -> str:
    """One sentence for the summary page: each family's recipe effect."""
    cells = study_cells(collection)
    effects = [f"{f} {e.text()}" for f in families(cells) if (e := effect(cells, f)) is not None]
    return (f"Recipe study ([recipe-study.md](recipe-study.md)): {regime(collection.runs)} "
            f"Test top-1 of `{MODERN}` minus `{OLDER}`, per family: {'; '.join(effects) or 'no family has both'}.")


SEEDS = 3  # the protocol's seeds per cell


def publication_problems(collection: Collection) -> list[str]:
    """What keeps the study's results from being published, one sentence each; [] when none: every cell of
    every family under both recipes has SEEDS seeds on test at the learning rate its tuning chose, inside
    what the tuning tried or at an end it extended as far as it could; every run of one budget and one clean
    commit; the older recipe's overfitting evidence (a tuning curve of training and validation loss, and the
    training top-1) recorded for every family, and the training top-1 of every test run."""
    cells = study_cells(collection)
    names = families(cells)
    problems = [f"{f} has no {r} runs on test." for f in names for r in (OLDER, MODERN) if (f, r) not in cells]
    tuning = tuning_by_recipe(collection)
    for (family, recipe), cell in sorted(cells.items()):
        label = f"{family} under {recipe}"
        if sorted(r.id.seed for r in cell.runs) != list(range(SEEDS)):
            problems.append(f"{label} has test seeds {sorted(r.id.seed for r in cell.runs)}, not 0 to {SEEDS - 1}.")
        if any(r.train_metric is None for r in cell.runs):
            problems.append(f"{label} has test runs without their training top-1 (--score-train).")
        row = next((t for t in tuning[recipe] if t.family == family), None)
        if row is None or len(row.tested_lrs) != 1 or not any(same_lr(row.tested_lrs[0], b) for b in row.best_lrs):
            problems.append(f"{label} was not tested at the one learning rate its tuning chose.")
        elif row.unextended_edge() is not None:
            problems.append(f"{label} chose the {row.unextended_edge()} learning rate tried, which the grid could "
                            f"still have extended beyond.")
        if recipe == OLDER and row is not None and row.tested_lrs:
            run = chosen_tuning_run(collection, family, recipe, row.tested_lrs[0])
            if run is None or len(run.curve) < 2 or run.train_metric is None or any(
                    p.loss is None or p.train_loss is None for p in run.curve):
                problems.append(f"{label} lacks its overfitting evidence: a tuning curve of training and validation "
                                f"loss at its chosen learning rate and its training top-1.")
    everything = [*collection.runs, *[r for r in collection.tuning if isinstance(r, Run)]]
    commits = {(r.provenance.commit, r.provenance.dirty) for r in everything}
    if len(commits) != 1 or next(iter(commits))[1] is not False or next(iter(commits))[0] is None:
        problems.append(f"The runs do not all come from one clean commit: {sorted(map(str, commits))}.")
    budgets = {(r.protocol.steps, r.protocol.batch_size, r.protocol.train_subset) for r in everything
               if r.protocol is not None}
    if len(budgets) != 1:
        problems.append(f"The runs do not share one budget (steps, batch size, training images): {sorted(budgets)}.")
    problems += [f"A run failed: {f.id.family} under {f.recipe}, seed {f.id.seed}." for f in collection.failures]
    return problems
