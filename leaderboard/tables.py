"""Rows -> Markdown pages and CSV text, with fixed number formats so the output is reproducible."""

from __future__ import annotations

import csv
import io
import math
from itertools import groupby
from typing import Optional

from leaderboard.aggregate import Comparison, OrderChange, Row, TuningRow, aggregate, order_changes, same_lr
from leaderboard.collect import Collection, CostPass, Failure, Provenance, Run, model_label, task_provenances
from leaderboard.competence import LEVELS, CompetenceTable, Curve, Levels, competence_tables

MISSING = "—"

# Prose naming the suite's baselines for a reader; which run is a baseline is what each result
# records (its family's registration, bench.models), never this sentence.
BASELINE_RULE = (
    "Each architecture is compared with the Transformer baseline of its task "
    "(vit for image tasks, transformer for text tasks) "
    "on the same device and precision. "
    "The baseline run is the one with the same size name when there is one, otherwise the baseline size "
    "whose parameter count is closest (ties: the smaller one)."
)

NOTES = (
    "Each row aggregates the runs of one model size over seeds: the metric is the mean ± sample "
    "standard deviation, n the number of runs, 95% CI the Student's t confidence interval of the mean "
    "(none for a single run), the other columns means. A row's rank is 1 + the number of rows whose "
    "interval lies entirely on the better side of its own, so rows whose intervals overlap share a rank "
    "(a single run's interval is its value); = marks a shared rank, and the ties are listed under the "
    "table. Runs on different devices or precisions are ranked in separate tables, where every CPU model counts "
    "as one device, CPU (another CPU model changes a run's arithmetic in its last bits only, though over a run "
    "that can move its metric as another seed can; where a table's runs span CPU models, their own speed figures "
    "are left out). Throughput is in "
    "samples/s (and tokens/s for text); GFLOPs/sample counts one forward pass; peak train memory is "
    "CUDA allocated memory on GPUs, and on CPUs the live tensors of the measured steps (weights, "
    "gradients, optimizer state, activations; results before that measured the whole process's "
    "resident set, memory kind cpu_rss in the CSV). "
    "‡ marks rows with runs whose throughput measurement failed its stability check: their "
    "throughput and memory are left out of the row and of every ratio."
)
UNSTABLE = "‡"


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


def interval_text(row: Row) -> str:
    if row.metric_ci is None or row.metric_mean is None:
        return MISSING
    low, high = row.metric_interval
    return f"[{low:.4f}, {high:.4f}]"


REFERENCE = "reference"  # the rank cell of a reference family's row (the ConvNet), which is not ranked


def rank_text(row: Row) -> str:
    if row.reference:
        return REFERENCE
    if row.rank is None:
        return MISSING
    return f"{row.rank}=" if row.tied else str(row.rank)


def samples_text(sizes: tuple[int, ...], missing: str = MISSING) -> str:
    """Test examples: one count, or the range when runs differ; `missing` where no run records it."""
    if not sizes:
        return missing
    return f"{sizes[0]:,}" if len(sizes) == 1 else f"{sizes[0]:,}–{sizes[-1]:,}"


def examples_line(rows: list[Row]) -> str:
    """The number of test examples the page's runs were scored on, said once for the page."""
    scored = [r for r in rows if r.metric_mean is not None]  # a measure-only run scores nothing
    recorded = sorted({n for r in scored for n in r.eval_samples})
    missing = sum(1 for r in scored if not r.eval_samples)
    if not recorded:
        return "Test examples (the size of the scored split): not recorded in these results."
    counts = ", ".join(f"{n:,}" for n in recorded[:-1]) + (" or " if len(recorded) > 1 else "") + f"{recorded[-1]:,}"
    return f"Test examples (the size of the scored split): {counts}" + (
        f"; not recorded by the results of {missing} rows." if missing else "."
    )


def provenance_line(provenances: list[Provenance], by_task: Optional[dict[str, list[Provenance]]] = None) -> str:
    """The commit the page's results come from, said so that uncommitted changes and mixed commits show.
    A page over several tasks (`by_task`) whose tasks each come from one clean commit names each
    task's: architectures are compared within a task, never across."""
    if not provenances:
        return "Code: no results."
    if by_task and len({p.commit for p in provenances}) > 1 and all(
        len({p.commit for p in group}) == 1 and group[0].commit and not any(p.dirty for p in group)
        for group in by_task.values()
    ):
        parts = [f"{task} `{group[0].commit[:12]}` ({len(group)} result{'s' if len(group) > 1 else ''})"
                 for task, group in sorted(by_task.items())]
        return ("Code: each task's results come from one clean commit (architectures are compared within a "
                f"task): {', '.join(parts)}.")
    groups: dict[Optional[str], list[Provenance]] = {}
    for p in provenances:
        groups.setdefault(p.commit, []).append(p)

    def name(commit: Optional[str]) -> str:
        return f"`{commit[:12]}`" if commit else "no recorded commit"

    def dirty(group: list[Provenance]) -> str:
        n = sum(1 for p in group if p.dirty)
        if not n:
            return ""
        return " **with uncommitted changes**" + ("" if n == len(group) else f" in {n} of them")

    if len(groups) == 1:
        commit, group = next(iter(groups.items()))
        line = f"Code: all {len(group)} results come from {'commit ' if commit else ''}{name(commit)}{dirty(group)}"
        return line + (", so no commit holds exactly the code that made them." if dirty(group) else ".")
    parts = [f"{name(c)} ({len(g)} result{'s' if len(g) > 1 else ''}{dirty(g)})"
             for c, g in sorted(groups.items(), key=lambda i: i[0] or "~")]
    return f"Code: the {len(provenances)} results come from **mixed commits**: {', '.join(parts)}."


def _cell(value: object) -> str:
    """Text as one cell or phrase of Markdown: a pipe or a line break would break the table, and a
    tag in a run's error message is text, not HTML."""
    return str(value).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _table(header: list[str], rows: list[list[object]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def _distinct(values, text) -> str:
    """One value as `text` gives it; "not recorded" when none; several shown in bold, as a warning."""
    present = sorted({v for v in values if v is not None})
    if not present:
        return "not recorded"
    if len(present) == 1:
        return text(present[0])
    return f"**varies: {', '.join(text(v) for v in present)}**"


def _g(x: float) -> str:
    return f"{x:g}"


def protocol_lines(runs: list[Run]) -> list[str]:
    """The budget and settings of `runs`, each said once; "varies" (in bold) where the runs differ,
    and the facts no run records named together at the end."""
    ps = [r.protocol for r in runs if r.protocol is not None]

    def line(title: str, facts: list[tuple[str, str, object]]) -> str:
        said, unknown = [], []
        for name, attribute, text in facts:
            values = [getattr(p, attribute) for p in ps]
            if all(v is None for v in values):
                unknown.append(name)
            else:
                said.append(f"{name} {_distinct(values, text)}")
        missing = f"not recorded: {', '.join(unknown)}" if unknown else ""
        return f"{title}: {'; '.join(filter(None, [', '.join(said), missing]))}."

    return [
        line("Budget", [("optimizer steps", "steps", str), ("batch size", "batch_size", str),
                        ("epochs", "epochs", _g), ("training samples seen", "samples", lambda n: f"{n:,}")]),
        "",
        line("Settings", [("weight decay", "weight_decay", _g), ("warm-up fraction", "warmup_fraction", _g),
                          ("label smoothing", "label_smoothing", _g), ("precision", "precision", str),
                          ("device", "device_name", str), ("CPU threads", "cpu_threads", str),
                          ("bench clock", "bench_clock", str)]),
    ]


FLOORS = {  # metric -> (what the page calls it, what the floor is)
    "majority_baseline_accuracy": ("accuracy", None),  # said by the task's modality: see _majority
    "floor_wer": ("WER", "predicting the training set's most frequent pronunciation for every word"),
    "floor_per": ("PER", "predicting the training set's most frequent pronunciation for every word"),
    "floor_copy_bleu": ("BLEU", "copying each source sentence as its own translation"),
    "floor_copy_chrf": ("chrF", "copying each source sentence as its own translation"),
}


# Published figures a task's results can be read against; each names how its setting differs from ours.
REFERENCES = {
    "cmudict": (
        "Reference: a Transformer was reported at about 22% WER / 5.2% PER on CMUdict (Yolchuyeva et al., "
        "Interspeech 2019), on its own split, after full training with a larger model; not comparable "
        "figure for figure with this budget and split."
    ),
}


def _majority(runs: list[Run]) -> str:
    if any(r.modality == "mlm" or r.metric_name.startswith("mlm") for r in runs):
        return "always predicting the most frequent masked token"
    if any(r.modality == "image" or r.metric_name in ("top1", "top5") for r in runs):
        return "always answering the most frequent class of the test split"
    return "always answering the most frequent label"


SAME_LANGUAGE_SIMILARITY = 0.5  # tasks.text.trigram_similarity of a seq2seq task's two sides: at least this, one language


def floor_line(runs: list[Run]) -> Optional[str]:
    """The task's trivial floor from the scored runs' metrics; None when they carry none. Beside a copy
    floor, whether the two sides look like one language (source_target_similarity)."""
    scored = [r for r in runs if r.metric is not None]
    parts: dict[str, list[str]] = {}  # what the floor is -> "WER 93.1000", ...
    for name, (label, what) in FLOORS.items():
        values = [v for r in scored for n, v in r.floors if n == name]
        if values:
            parts.setdefault(what or _majority(scored), []).append(f"{label} {_distinct(values, lambda v: f'{v:.4f}')}")
    if not parts:
        return None
    line = "Floor: " + "; ".join(f"{', '.join(values)} ({what})" for what, values in parts.items()) + "."
    similarity = [v for r in scored for n, v in r.floors if n == "source_target_similarity"]
    if similarity:
        alike = min(similarity)
        reading = ("look like one language: a model must beat copying its input" if alike >= SAME_LANGUAGE_SIMILARITY
                   else "look like different languages, so copying scores low by nature")
        line += f" Source and target texts have letter-trigram similarity {alike:.2f}: they {reading}."
    return line


def task_page(task: str, rows: list[Row], failures: list[Failure], plot: Optional[str],
              provenances: Optional[list[Provenance]] = None, runs: Optional[list[Run]] = None,
              tuning: Optional[list[TuningRow]] = None, tuning_runs: Optional[list[Run]] = None,
              cost: Optional[CostPass] = None, longer: Optional[list[Run | Failure]] = None) -> str:
    """`runs`: the task's finished test runs, for each table's budget and floor; `tuning`: its tuning rows
    (validation), and `tuning_runs` their finished runs, for the budget of the tuning and the learning curves
    of the steps-to-competence section; `cost`: its cost pass, which then gives the page's speed figures in
    place of the runs' own timings; `longer`: its test runs at k times the tuned budget, finished or not, for
    the budget-sensitivity section."""
    runs = runs or []
    lines = [f"# {task}", ""]
    if plot:
        source = " (the cost pass's)" if cost else ""
        lines += [f"[Pareto plot: primary metric against train throughput{source}]({plot})", ""]
    lines += [NOTES, "", examples_line(rows), "", provenance_line(provenances or []), ""]
    if cost:
        lines += [COST_INSTEAD, ""]
    if not rows:
        lines += ["No run of this task finished.", ""]
    for (_, device, precision, metric, higher), group in groupby(rows, key=lambda r: r.group):
        group = list(group)
        here = [r for r in runs if (r.id.device, r.id.precision, r.metric_name) == (device, precision, metric)]
        lines += [f"## {device}, {precision}: {metric}, {'higher' if higher else 'lower'} is better", ""]
        if here:
            lines += protocol_lines(here) + [""]
        floor = floor_line(here)
        if floor:
            lines += [floor, ""]
        if task in REFERENCES:
            lines += [REFERENCES[task], ""]
        lines += _group_table(group, speed=cost is None) + [""]
        lines += _footnotes(group)
    if cost:
        lines += cost_section(cost)
    if longer:
        lines += budget_section(rows, [*runs, *failures], longer)
    if tuning:
        lines += tuning_section(tuning, runs, tuning_runs or [])
        lines += competence_section(competence_tables(tuning, tuning_runs or [], runs))
    if failures:
        lines += ["## Failed runs (not ranked)", ""]
        lines += _table(
            ["model", "size", "seed", "device", "precision", "status", "error"],
            [[f.id.model, f.id.size, f.id.seed, f.id.device_name, f.id.precision, f.status, f.error or MISSING]
             for f in failures],
            right={2},
        )
        lines.append("")
    return "\n".join(lines)


BUDGET_INTRO = (
    "Each architecture's tuned setting (its learning rate and warm-up fraction, chosen at the tuned budget, 1x: "
    "the tables above) trained again at k times that budget (k times the optimizer steps or epochs, at the same "
    "batch size; the warm-up, a fraction, grows with the run), at the same seeds, scored once on test. These runs "
    "are ranked here only, by the rule of the tables above, among the models with runs at that budget. Two models "
    "stand in the same order at both budgets when one is ahead of the other (its 95% interval wholly on the better "
    "side) at both, or tied at both; the order changed where that differs."
)


def budget_section(rows: list[Row], tested: list[Run | Failure], longer: list[Run | Failure]) -> list[str]:
    """Per device, precision and metric, a row per model: its metric and rank at the tuned budget (`rows`, the
    tables above) and at each longer one, and whether the order changed. Above them: any longer run whose
    setting is not its model's at the tuned budget (`tested`: the test runs there, finished or not), in bold;
    the models whose longer runs are still to come; the longer runs that failed."""
    multiples = sorted({e.budget_multiple for e in longer})
    ranked = {k: aggregate([e for e in longer if isinstance(e, Run) and e.budget_multiple == k]) for k in multiples}
    lines = ["## Budget sensitivity (the tuned settings trained longer)", "", BUDGET_INTRO, ""]
    lines += [_setting_check(tested, longer), ""]
    for k in multiples:
        missing = still_to_come(tested, longer, k)
        if missing:
            lines += [f"Still to come at {k}x: {', '.join(missing)}.", ""]
        failed = [e for e in longer if isinstance(e, Failure) and e.budget_multiple == k]
        if failed:
            lines += [f"Failed at {k}x (not in the tables below): "
                      + "; ".join(f"{_label(f)} seed {f.id.seed}: {f.status}" for f in failed) + ".", ""]
    for group in sorted({r.group for r in rows} | {r.group for k in multiples for r in ranked[k]}):
        _, device, precision, metric, higher = group
        lines += [f"### {device}, {precision}: {metric}, {'higher' if higher else 'lower'} is better", ""]
        tuned = [r for r in rows if r.group == group]
        at = {k: [r for r in ranked[k] if r.group == group] for k in multiples}
        for k in multiples:
            here = _finished_at(longer, k, group)
            if here:
                lines += [protocol_lines(here)[0].replace("Budget:", f"Budget at {k}x:", 1), ""]
        lines += _budget_table(tuned, at, metric_header(metric, higher)) + [""]
        for k in multiples:
            lines += [_order_sentence(*order_changes(tuned, at[k]), k), ""]
    return lines


def _finished_at(longer: list[Run | Failure], k: int, group: tuple[str, str, str, str, bool]) -> list[Run]:
    """The finished runs of `longer` at k times the tuned budget on the device, precision and metric of a
    row group."""
    _, device, precision, metric, _ = group
    return [e for e in longer if isinstance(e, Run) and e.budget_multiple == k
            and (e.id.device, e.id.precision, e.metric_name) == (device, precision, metric)]


def _budget_table(tuned: list[Row], at: dict[int, list[Row]], name: str) -> list[str]:
    """A row per model of the group, in the tuned budget's order, then those with runs at a longer budget
    only; `name`: the metric's column heading."""
    def key(row: Row) -> tuple[str, str, str]:
        return (row.family, row.size, row.variant)

    by_budget = {1: {key(r): r for r in tuned}, **{k: {key(r): r for r in rows} for k, rows in at.items()}}
    models = list(dict.fromkeys(key(r) for r in [*tuned, *(r for rows in at.values() for r in rows)]))
    header = ["model", "size"]
    body = [[model_label(family, variant), size] for family, size, variant in models]
    for k, rows in by_budget.items():
        header += [f"{name} at {k}x", f"95% CI at {k}x", f"rank at {k}x"] + ([f"seeds at {k}x"] if k > 1 else [])
        for line, model in zip(body, models):
            row = rows.get(model)
            line += [MISSING, MISSING, MISSING] if row is None else [
                metric_text(row.metric_mean, row.metric_std), interval_text(row), rank_text(row)]
            if k > 1:
                line.append(MISSING if row is None else ", ".join(map(str, row.seeds)))
    return _table(header, body, right=set(range(2, len(header))))


def _order_sentence(changes: list[OrderChange], ranked: int, k: int) -> str:
    if ranked < 2:
        return f"Fewer than two models are ranked at both 1x and {k}x: no order to compare yet."
    if not changes:
        return f"The order did not change between 1x and {k}x (the {ranked} models ranked at both)."

    def pair(change: OrderChange) -> str:
        a, b = (f"{r.model}-{r.size}" for r in (change.first, change.second))
        said = {"ahead": f"{a} ahead", "behind": f"{b} ahead", "tied": "tied"}
        return f"{a} and {b}: {said[change.tuned]} at 1x, {said[change.longer]} at {k}x"

    return (f"The order changed between 1x and {k}x (the {ranked} models ranked at both): "
            f"{'; '.join(map(pair, changes))}.")


def _model_key(entry: Run | Failure) -> tuple[str, str, str, str, str]:
    i = entry.id
    return (i.family, i.size, i.variant, i.device, i.precision)


def _label(entry: Run | Failure) -> str:
    return f"{entry.id.model}-{entry.id.size}"


def still_to_come(tested: list[Run | Failure], longer: list[Run | Failure], k: int) -> list[str]:
    """The models with test runs at the tuned budget and none at k times it."""
    there = {_model_key(e) for e in longer if e.budget_multiple == k}
    return list(dict.fromkeys(_label(e) for e in tested if _model_key(e) not in there))


def _setting_check(tested: list[Run | Failure], longer: list[Run | Failure]) -> str:
    """That every longer run used its model's setting at the tuned budget; else, in bold, each that did not."""
    settings: dict[tuple, list[tuple]] = {}
    for entry in tested:
        settings.setdefault(_model_key(entry), []).append((entry.lr, entry.warmup))
    flagged = []
    for e in sorted(longer, key=lambda e: (_model_key(e), e.budget_multiple, e.id.seed)):
        used = list(dict.fromkeys(settings.get(_model_key(e), [])))
        if not any(_same_setting((e.lr, e.warmup), setting) for setting in used):
            against = (f"not its 1x test runs' {' or '.join(_setting_said(*s) for s in used)}" if used
                       else "and no 1x test runs to compare it with")
            flagged.append(f"**{_label(e)} seed {e.id.seed} at {e.budget_multiple}x: "
                           f"{_setting_said(e.lr, e.warmup)}, {against}.**")
    if not flagged:
        return "Every longer run has its model's learning rate and warm-up fraction at 1x."
    return " ".join(flagged)


def _same_setting(a: tuple, b: tuple) -> bool:
    (lr_a, warmup_a), (lr_b, warmup_b) = a, b
    same_rate = lr_a == lr_b or (lr_a is not None and lr_b is not None and same_lr(lr_a, lr_b))
    return same_rate and warmup_a == warmup_b


def _setting_said(lr: Optional[float], warmup: Optional[float]) -> str:
    return f"lr {MISSING if lr is None else _g(lr)} warm-up {MISSING if warmup is None else _g(warmup)}"


TUNING_INTRO = (
    "These runs choose the learning rate and are not ranked: each architecture ran every learning rate of "
    "the grid, scored on the validation split (carved from the training data, which training never sees), "
    "then its seeds at the best one, scored on test (the tables above). Bold: the learning rate the test "
    "runs used; ⚠ where that is not the best validation value. A best value at either end of the grid is "
    "said in the note: a learning rate beyond that end, untried, might score better."
)


TUNING_INTRO_GRID = (
    "These runs choose the setting and are not ranked: each architecture ran every setting of the grid "
    "(learning rate x warm-up fraction, the same grid for every architecture), scored on the validation split "
    "(carved from the training data, which training never sees), then its seeds at the best one, scored on test "
    "(the tables above). Where an architecture's best learning rate was an end of those it tried, the sweep "
    "tried the next one beyond that end (the grid's own factor, at the best warm-up) and chose again, up to the "
    "steps its grid allows; columns marked (extension) lie beyond the declared grid. Bold: the setting the test "
    "runs used; ⚠ where that is not the best validation value, or an end that could have been extended."
)


def tuning_section(rows: list[TuningRow], runs: list[Run], tuning_runs: list[Run]) -> list[str]:
    """Per device and precision: a row per model (per model and warm-up where the runs tried several), a
    column per learning rate tried; the learning rates beyond the declared grid marked where the runs record it."""
    recorded = any(r.tune is not None for r in rows)
    lines = ["## Tuning (validation split, not ranked)", "", TUNING_INTRO_GRID if recorded else TUNING_INTRO, ""]
    for (device, precision), group in groupby(rows, key=lambda r: (r.device, r.precision)):
        group = list(group)
        metric = next((r for r in group if r.metric_name), None)
        lrs = sorted({s.lr for r in group for s in r.scores})
        warmups = sorted({s.warmup for r in group for s in r.scores if s.warmup is not None})
        by_warmup = len(warmups) > 1
        seeds = sorted({seed for r in group for seed in r.seeds})
        name = "the metric" if metric is None else metric_header(metric.metric_name, metric.higher_is_better)
        lines += [f"### {device}, {precision}: validation {name}", ""]
        lines += [f"Seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; " + _grid_sentence(group, lrs)
                  + (f" Warm-up fractions: {', '.join(map(_g, warmups))}." if by_warmup else ""), ""]
        tuned = protocol_lines([r for r in tuning_runs if (r.id.device, r.id.precision) == (device, precision)])
        tested = [r for r in runs if (r.id.device, r.id.precision) == (device, precision)]
        if not tested:
            lines += tuned + [""]
        elif tuned[0] != protocol_lines(tested)[0]:  # the tuning trained on another budget than the test runs
            budget = tuned[0].removeprefix("Budget: ")
            lines += [f"**The tuning runs' budget differs from the test runs':** {budget}", ""]
        extended = {lr for r in group for lr in lrs if r.extension(lr)}
        header = [f"lr {_g(lr)}" + (" (extension)" if lr in extended else "") for lr in lrs]
        body = []
        for r in sorted(group, key=lambda r: (r.family, r.size, r.variant)):
            tested_lr = _distinct(r.tested_lrs, _g) if r.tested_lrs else MISSING
            if not by_warmup:
                body.append([r.model, r.size, *(_score_text(r, lr) for lr in lrs), tested_lr, _tuning_note(r, lrs)])
                continue
            tested_warmup = _distinct([w for _, w in r.tested], _g) if r.tested else MISSING
            for i, warmup in enumerate(warmups):
                last = [tested_lr, tested_warmup, _tuning_note(r, lrs)] if i == 0 else ["", "", ""]
                body.append([r.model, r.size, _g(warmup), *(_score_text(r, lr, warmup) for lr in lrs), *last])
        if by_warmup:
            lines += _table(["model", "size", "warm-up", *header, "test runs' lr", "test runs' warm-up", "note"], body,
                            right=set(range(2, 5 + len(lrs))))
        else:
            lines += _table(["model", "size", *header, "test runs' lr", "note"], body, right=set(range(2, 3 + len(lrs))))
        lines.append("")
    return lines


COMPETENCE_INTRO = (
    "How many optimizer steps each architecture took to reach a level of the validation metric, read from its "
    "tuning run at the setting its test runs use (learning rate and warm-up), which also scored the validation "
    "split every few steps (the sweep's [tune.eval_every]); a curve's last point is the run's final evaluation, at "
    "the end of its budget. The levels, stated above each table, lie 50% and 90% of the way from the task's floor "
    "on the validation split (where the runs record none, from the worst first evaluation among the table's curves) "
    "to the best final validation value of the table (for a lower-is-better metric, the same fractions of the way "
    "down). A curve reaches a level at its first evaluation at or past it. The sentence under each table names the "
    "architectures that reach 90% only at their final evaluation, in the last stretch of the budget, and those that "
    "do not reach it."
)


def competence_section(tables: list[CompetenceTable]) -> list[str]:
    """Per device and precision: the levels, then a row per model with its curve and the steps it took to reach
    each level; nothing where no model has a curve at its chosen setting."""
    if not tables:
        return []
    lines = ["## Steps to competence (validation curves at the chosen settings, not ranked)", "",
             COMPETENCE_INTRO, ""]
    for table in tables:
        levels = table.levels
        lines += [f"### {table.device}, {table.precision}: validation "
                  f"{metric_header(table.metric_name, table.higher_is_better)}", ""]
        lines += [_levels_sentence(levels, table.metric_name), ""]
        header = ["model", "size", "tuning run", "validation curve (step: value)",
                  *(f"steps to {fraction:.0%}" for fraction in LEVELS), "test runs' steps"]
        body = [[model_label(c.run.id.family, c.run.id.variant), c.run.id.size,
                 f"{_setting_said(c.run.lr, c.run.warmup)}, seed {c.run.id.seed}",
                 ", ".join(f"{p.step}: {p.value:.4f}" for p in c.points),
                 *(_steps_text(levels, c, fraction) for fraction in LEVELS),
                 _distinct(c.test_steps, str)] for c in table.curves]
        lines += _table(header, body, right=set(range(4, len(header)))) + [""]
        if levels.improves:
            lines += [_last_stretch_sentence(table), ""]
        if table.without:
            lines += ["No curve here: " + "; ".join(f"{label} ({why})" for label, why in table.without) + ".", ""]
    return lines


def _levels_sentence(levels: Levels, metric_name: str) -> str:
    best = f"the best final validation value, {levels.best.final.value:.4f} ({levels.best.label})"
    if levels.floor:
        start = (f"the floor, {levels.start:.4f} ({levels.floor} of the validation split, as {levels.best.label}'s "
                 f"run records it)")
    else:
        first = levels.start_curve.points[0]
        start = (f"the worst first evaluation, {levels.start:.4f} ({levels.start_curve.label} at step {first.step}; "
                 f"the runs record no floor of {metric_name})")
    if not levels.improves:
        return f"No levels: {best}, is no better than {start}."
    fractions = " and ".join(f"{fraction:.0%}" for fraction in LEVELS)
    values = " and ".join(f"{levels.value(fraction):.4f}" for fraction in LEVELS)
    return f"Levels: {fractions} of the way from {start}, to {best}: {values}."


def _steps_text(levels: Levels, curve: Curve, fraction: float) -> str:
    if not levels.improves:
        return MISSING
    step = levels.steps_to(curve, fraction)
    return f"not reached in {curve.final.step} steps" if step is None else str(step)


def _last_stretch_sentence(table: CompetenceTable) -> str:
    """Which models reach the top level only at their final evaluation, which never, which before: whether the
    budget ends while some are still getting there."""
    top = LEVELS[-1]
    final, never, earlier = [], [], []
    for curve in table.curves:
        step = table.levels.steps_to(curve, top)
        (never if step is None else final if step == curve.final.step else earlier).append(curve.label)
    said = [f"{what}: {', '.join(labels)}" for what, labels in (
        ("only at the final evaluation, in the last stretch of the budget", final),
        ("not within the budget", never), ("before the final evaluation", earlier)) if labels]
    return f"Reaching {top:.0%} ({table.levels.value(top):.4f}): {'; '.join(said)}."


def _grid_sentence(group: list[TuningRow], lrs: list[float]) -> str:
    """The learning rates tried; where the runs record their declared grid, that grid and the extensions."""
    declared = next((r.tune for r in group if r.tune is not None), None)
    if declared is None:
        return f"the grid: {', '.join(_g(lr) for lr in lrs)}."
    beyond = [lr for lr in lrs if any(r.extension(lr) for r in group)]
    steps = f"up to {declared.extend} step{'s' if declared.extend != 1 else ''} beyond each end"
    tried = (f"; tried beyond it: {', '.join(map(_g, beyond))}" if beyond else "; nothing tried beyond it")
    return f"the declared grid: {', '.join(map(_g, declared.lr))} ({steps}){tried}."


def _score_text(row: TuningRow, lr: float, warmup: Optional[float] = None) -> str:
    score = row.score_at(lr, warmup)
    if score is None:
        return MISSING
    if score.value is None:
        text = f"failed: {', '.join(sorted(set(score.failed)))}" if score.failed else "no metric"
    else:
        text = f"{score.value:.4f}" + (f" ({len(score.failed)} failed)" if score.failed else "")
    chosen = len(row.tested) == 1 and same_lr(row.tested[0][0], lr) and warmup in (None, row.tested[0][1])
    return f"**{text}**" if chosen else text


def _tuning_note(row: TuningRow, grid: list[float]) -> str:
    """"best" when the test runs used the best validation setting, saying so when its learning rate is an end
    of the (ascending) `grid`, or of what the row tried where its runs record their tuning; else what is
    amiss, marked ⚠."""
    several = len({s.warmup for s in row.scores}) > 1
    best = ", ".join(_setting_text(s.lr, s.warmup, several) for s in row.best) if several else (
        ", ".join(_g(lr) for lr in row.best_lrs))
    best = best or "none (every tuning run failed)"
    if not row.tested:
        return "no test runs"
    if len(row.tested) > 1:
        return f"⚠ test runs at different {'settings' if several else 'learning rates'}; best validation: {best}"
    lr, warmup = row.tested[0]
    if row.score_at(lr, warmup if several else None) is None:
        return f"⚠ test {'setting' if several else 'lr'} not in the grid; best validation: {best}"
    if not any(same_lr(lr, s.lr) and (not several or s.warmup == warmup) for s in row.best):
        return f"⚠ not the best validation {'setting' if several else 'lr'} ({best})"
    if row.tune is None:
        if len(grid) > 1 and same_lr(lr, grid[0]):
            return "best, the grid's lowest"
        if len(grid) > 1 and same_lr(lr, grid[-1]):
            return "best, the grid's highest"
        return "best"
    side, extension = row.edge(lr), " (an extension)" if row.extension(lr) else ""
    if side is None:
        return f"best{extension}"
    if row.unextended_edge():
        return f"⚠ best, the {side} tried, which the grid could have extended beyond"
    if row.tune.extend == 0:
        return f"best, the grid's {side} (extension off)"
    steps = row.tune.extend
    return f"best{extension}, the {side} tried: the grid extended as far as allowed ({steps} step{'s' if steps > 1 else ''})"


def _setting_text(lr: float, warmup: Optional[float], with_warmup: bool) -> str:
    return f"lr {_g(lr)}" + (f" warm-up {_g(warmup)}" if with_warmup and warmup is not None else "")


def _group_table(group: list[Row], speed: bool = True) -> list[str]:
    """The ranked table; without the speed columns (`speed` False) where a cost pass gives them apart."""
    # Token columns only where some run counted tokens (text tasks).
    tokens = speed and any(r.train_tokens_per_s is not None or r.infer_tokens_per_s is not None for r in group)
    header = ["rank", "model", "size", metric_header(group[0].metric_name, group[0].higher_is_better), "n",
              "95% CI", "test examples", "params (M)", "GFLOPs/sample"]
    if speed:
        header += ["train samples/s", "infer samples/s"]
    if tokens:
        header += ["train tokens/s", "infer tokens/s"]
    header += ["peak train memory (MB)", "precision", "device"]
    body = []
    for r in group:
        mark = f" {UNSTABLE}" if r.unstable else ""
        line = [rank_text(r), r.model, r.size, metric_text(r.metric_mean, r.metric_std), r.n, interval_text(r),
                samples_text(r.eval_samples), significant(r.params / 1e6), significant(r.gflops)]
        if speed:
            line += [significant(r.train_samples_per_s) + mark, significant(r.infer_samples_per_s)]
        if tokens:
            line += [significant(r.train_tokens_per_s), significant(r.infer_tokens_per_s)]
        line += [significant(r.train_peak_mb) + mark, r.precision, r.device_label]
        body.append(line)
    right = {0, 3, 4, 5, 6} | set(range(7, len(header) - 2))
    return _table(header, body, right)


COST_INSTEAD = (
    "Speed: the cost pass below, in which the task's models were timed side by side; each run's own "
    "timing, taken at one moment of its run on a machine whose speed drifts, is in results.csv only."
)
COST_INTRO = (
    "Every model of the task, at each seed's initial weights, timed in one process on one batch of the "
    "task's training data (`python -m bench.cost`), in rounds: each round times every model once, in an "
    "order drawn per round, and each rate is scaled by its round's machine speed (the geometric mean of "
    "the round's rates) relative to the median round's, which removes the drift a round shares. A model's "
    "figure is the median over its seeds' rounds, with a 95% bootstrap interval; seed spread is "
    "(max − min) / median of its seeds' own medians. Train speed vs baseline: train samples/s over the "
    "baseline's, both from this pass."
)


def cost_section(cost: CostPass) -> list[str]:
    """The cost pass's table: per model, training and inference speed with interval and seed spread."""
    lines = ["## Cost (timed side by side, not ranked)", "", COST_INTRO, ""]
    threads = "" if cost.threads is None else f", {cost.threads} CPU thread{'s' if cost.threads > 1 else ''}"
    clock = "process CPU time" if cost.clock == "process" else f"{cost.clock} clock"
    drift = "" if cost.drift is None else f"; the machine's speed varied by {cost.drift:.0%} between rounds"
    load = ", ".join(f"{x:.2f}" for x in cost.load_average if x is not None)
    load = f"; 1-minute load average before and after: {load} (the pass itself is one)" if load else ""
    lines += [f"Device {cost.device}, {cost.precision}{threads}, {clock}; batch {cost.batch_size}; "
              f"{cost.rounds} rounds of {cost.steps} timed step{'s' if cost.steps > 1 else ''} per phase after "
              f"{cost.warmup} warm-up step{'s' if cost.warmup != 1 else ''}{drift}{load}.", ""]
    commit = cost.provenance.commit
    lines += [f"Code: {'commit `' + commit[:12] + '`' if commit else 'no recorded commit'}"
              f"{' **with uncommitted changes**' if cost.provenance.dirty else ''}.", ""]
    baseline = next((m for m in cost.models if m.baseline and not m.variant), None)
    tokens = any(m.train.tokens_per_s is not None for m in cost.models)
    header = ["model", "size", "seeds", "params (M)", "train samples/s", "95% interval", "seed spread",
              "infer samples/s", "95% interval", "seed spread"]
    if tokens:
        header += ["train tokens/s", "infer tokens/s"]
    header.append("train speed vs baseline")
    body = []
    for m in sorted(cost.models, key=lambda m: -m.train.samples_per_s):
        line = [m.label, m.size, ", ".join(map(str, m.seeds)) or MISSING, significant(m.params / 1e6)]
        for phase in (m.train, m.infer):
            line += [significant(phase.samples_per_s), f"{significant(phase.ci[0])}–{significant(phase.ci[1])}",
                     f"{phase.seed_spread:.1%}"]
        if tokens:
            line += [significant(m.train.tokens_per_s), significant(m.infer.tokens_per_s)]
        line.append(MISSING if baseline is None else _times(m.train.samples_per_s / baseline.train.samples_per_s))
        body.append(line)
    return lines + _table(header, body, right=set(range(3, len(header)))) + [""]


def _footnotes(group: list[Row]) -> list[str]:
    """Under a table: which rows share a rank, and which runs' throughput was left out."""
    lines = []
    references = ", ".join(f"{r.model}-{r.size}" for r in group if r.reference)
    if references:
        lines += [f"{REFERENCE}: {references}, a family of another kind that its registration names a reference, "
                  "shown beside the compared families and not ranked with them.", ""]
    tied = [r for r in group if r.tied]
    if tied:
        by_rank = "; ".join(
            f"rank {rank}: {', '.join(f'{r.model}-{r.size}' for r in rows)}"
            for rank, rows in groupby(tied, key=lambda r: r.rank)
        )
        lines += [f"= Tied, their 95% intervals overlapping (or, for single runs, their values equal): {by_rank}.", ""]
    withheld = next((r.speed_withheld for r in group if r.speed_withheld and not r.speed_from_cost_pass), ())
    if withheld:
        lines += [f"Speed: the runs of this table ran on {len(withheld)} CPU models ({'; '.join(withheld)}), "
                  "whose timings do not compare, so the runs' own speed figures are left out (—); their metrics "
                  "are ranked together, as another CPU model changes a run's arithmetic in its last bits only.", ""]
    for r in group:
        if r.unstable:
            lines += [f"{UNSTABLE} {r.model}-{r.size}: throughput and memory of {len(r.unstable)} of {r.n} runs left "
                      f"out, as their measurement was unstable ({_cell('; '.join(r.unstable))}).", ""]
    return lines


def summary_page(comparisons: list[Comparison], unmatched: list[Row],
                 provenances: Optional[list[Provenance]] = None,
                 by_task: Optional[dict[str, list[Provenance]]] = None, study: Optional[str] = None,
                 conclusions: tuple[str, ...] = ()) -> str:
    """`study`: the recipe study's headline (leaderboard.study), said after the tasks' tables; `conclusions`:
    each task's in one sentence (conclusion()), said before them."""
    lines = ["# MLPs against the Transformer baseline", "", BASELINE_RULE, "",
             "Δ is the architecture's mean metric minus the baseline's, in the metric's units (↑: higher is "
             "better, ↓: lower is better). Speed ratio is train samples/s over the baseline's (above 1 is "
             "faster); memory ratio is peak train memory over the baseline's (below 1 uses less), only between "
             f"runs that measured the same kind of memory. {UNSTABLE} marks a ratio from which runs with an "
             "unstable throughput measurement (of the model or of its baseline) were left out; — where none "
             "was left. Where a task has a cost pass (its models timed side by side in one process), its "
             "speed ratios come from that pass, as its page says. The task pages give the spread and "
             "confidence interval of each mean.", "",
             provenance_line(provenances or [], by_task), ""]
    if conclusions:
        lines += ["## Each task in one sentence", "",
                  "The ranked models in the order of their task's table (rank by the 95% intervals, as the task "
                  "pages rank them; an overlap is a tie), at each budget the task was run at; references, not "
                  "ranked, stand outside the order.", "", *(f"- {c}" for c in conclusions), ""]

    def setting(row: Row) -> tuple[str, str]:
        return (row.device, row.precision)

    settings = sorted({setting(c.row) for c in comparisons} | {setting(r) for r in unmatched})
    if not settings:
        lines += ["No finished runs to compare.", ""]
    for device, precision in settings:
        lines += [f"## {device}, {precision}", ""]
        here = sorted((c for c in comparisons if setting(c.row) == (device, precision)), key=lambda c: c.row.task)
        if here:
            examples = []
            for task, same in groupby(here, key=lambda c: c.row.task):
                sizes = {n for c in same for r in (c.row, c.baseline) for n in r.eval_samples}
                examples.append(f"{task}: {samples_text(tuple(sorted(sizes)), 'not recorded')}")
            lines += [f"Test examples: {'; '.join(examples)}.", ""]

            def marked(ratio: Optional[float], c: Comparison, speed: bool = False) -> str:
                timed_apart = speed and c.row.speed_from_cost_pass and c.baseline.speed_from_cost_pass
                return _times(ratio) + (f" {UNSTABLE}" if c.unstable and not timed_apart else "")

            lines += _table(
                ["task", "model", "size", "params (M)", "metric", "value", "baseline", "baseline value", "Δ",
                 "speed ratio", "memory ratio"],
                [[c.row.task, c.row.model, c.row.size, significant(c.row.params / 1e6),
                  metric_header(c.row.metric_name, c.row.higher_is_better),
                  metric_text(c.row.metric_mean, None), f"{c.baseline.family}-{c.baseline.size}",
                  metric_text(c.baseline.metric_mean, None),
                  MISSING if c.metric_delta is None else f"{c.metric_delta:+.4f}",
                  marked(c.speed_ratio, c, speed=True), marked(c.memory_ratio, c)] for c in here],
                right={3, 5, 7, 8, 9, 10},
            )
            lines.append("")
            timed_apart = sorted({c.row.task for c in here if c.row.speed_from_cost_pass})
            if timed_apart:
                lines += [f"Speed ratios of {', '.join(timed_apart)}: from the task's cost pass, on the device its "
                          f"page names, not from this device's runs.", ""]
        alone = [r for r in unmatched if setting(r) == (device, precision)]
        for task, rows in groupby(sorted(alone, key=lambda r: r.task), key=lambda r: r.task):
            names = ", ".join(f"{r.model}-{r.size}" for r in rows)
            lines += [f"No baseline run of {task} on this device and precision, so {names} are not compared.", ""]
    if study is not None:
        lines += ["## Recipe or architecture", "", study, ""]
    return "\n".join(lines)


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def conclusion(task: str, rows: list[Row], runs: list[Run], longer: list[Run | Failure],
               multiples: list[int]) -> list[str]:
    """The task's conclusion, one sentence per device, precision and metric: the order of its ranked models
    at the tuned budget (`rows`, from `runs`) and at each longer one of `longer`, each with its budget, and how
    many of the longer runs have landed; `multiples`: the longer budgets of the whole collection, so that a
    task without runs at one says they are still to come. References (unranked) stand outside the order."""
    sentences = []
    groups = sorted({r.group for r in rows})
    for group in groups:
        _, device, precision, metric, higher = group
        here = [r for r in rows if r.group == group]
        ranked = {(r.family, r.size, r.variant): len(r.seeds) for r in here if r.rank is not None}
        mine = [r for r in runs if (r.id.device, r.id.precision, r.metric_name) == (device, precision, metric)]
        head = f"**{task}** ({metric_header(metric, higher)}" + (f", {device}, {precision}" if len(groups) > 1 else "")
        clauses = [f"at {_budget_said(mine)}, {_standing(here)}"]
        for k in multiples:
            at_k = [e for e in _finished_at(longer, k, group) if (e.id.family, e.id.size, e.id.variant) in ranked]
            if not at_k:
                clauses.append(f"at {k}x that budget, still to come")
                continue
            landed, due = len(at_k), sum(ranked.values())
            so_far = f" ({landed} of the {due} runs so far)" if landed < due else ""
            clauses.append(f"at {k}x, {_budget_said(at_k)}, {_standing(aggregate(at_k))}{so_far}")
        sentences.append(f"{head}): {'; '.join(clauses)}.")
    return sentences


def _budget_said(runs: list[Run]) -> str:
    """A budget in epochs and optimizer steps of a batch size, as `runs` record it."""
    budgets = {(p.epochs, p.steps, p.batch_size) for p in (r.protocol for r in runs) if p is not None}
    if not budgets or any(None in b for b in budgets):
        return "a budget not every run records"
    if len(budgets) > 1:
        return "budgets that differ between its runs (its page says which)"
    (epochs, steps, batch_size), = budgets
    return f"{round(epochs, 2):g} epoch{'' if epochs == 1 else 's'} ({steps:,} steps of {batch_size})"


def _standing(rows: list[Row]) -> str:
    """The ranked rows in their order, ties said as such: "a first, b and c tie for second"."""
    ranked = sorted((r for r in rows if r.rank is not None), key=lambda r: (r.rank, r.family, r.size))
    if not ranked:
        return "no model ranked"
    places = [list(same) for _, same in groupby(ranked, key=lambda r: r.rank)]
    if len(places) == 1 and len(ranked) > 1:
        return f"{_names(ranked)} tie (their 95% intervals overlap)"
    return ", ".join(f"{_names(same)} {_place(same[0].rank, tie=len(same) > 1)}" for same in places)


def _names(rows: list[Row]) -> str:
    """"a", "a and b", "a, b and c"; each as model-size [variant], the baseline said as such."""
    def name(row: Row) -> str:
        variant = f" [{row.variant}]" if row.variant else ""
        return f"{row.family}-{row.size}{variant}" + (" (the baseline)" if row.is_baseline else "")

    said = [name(r) for r in rows]
    return " and ".join(filter(None, [", ".join(said[:-1]), said[-1]]))


def _place(rank: int, tie: bool) -> str:
    if rank <= len(ORDINALS):
        return ("tie for " if tie else "") + ORDINALS[rank - 1]
    return f"{'tie at' if tie else 'at'} rank {rank}"


def _times(ratio: Optional[float]) -> str:
    return MISSING if ratio is None else f"{ratio:.2f}×"


def index_page(
    command: str, collection: Collection, tasks: dict[str, tuple[int, int, Optional[str]]], ablations: bool = False,
    rows: Optional[list[Row]] = None, scaling: bool = False, study: bool = False,
) -> str:
    """`tasks`: task -> (finished runs, failed runs, Pareto plot file or None); `ablations`: link ablations.md;
    `rows`: the aggregated rows, for each task's test examples; `scaling`: link scaling.md. The collection's
    notes (its folders' NOTES.md) stand under "Notes". Where some task has runs at a longer budget, each
    task's line says how many it has at each, or that they are still to come."""
    c = collection
    longer = (f"longer-budget runs (test, not ranked): {len(c.longer)}, " if c.longer else "")
    lines = [
        "# mlpbench leaderboard", "",
        f"Generated by `{command}` from {c.files_read} JSON files (finished runs: {len(c.runs)}, "
        f"failed runs: {len(c.failures)}, {_tuning_count(c.tuning)}{longer}files skipped: {len(c.skipped)}).", "",
        provenance_line([r.provenance for r in [*c.runs, *c.failures, *c.tuning, *c.longer]],
                        {task: group for task, group in task_provenances(c).items() if task != "scaling"}), "",
        *(["## Notes", "", *(f"{note}\n" for note in c.notes)] if c.notes else []),
        "## Tasks", "",
    ]
    for task, (finished, failed, plot) in sorted(tasks.items()):
        sizes = tuple(sorted({n for r in rows or [] if r.task == task for n in r.eval_samples}))
        tuned = [t for t in c.tuning if t.id.task == task]
        line = (f"- [{task}]({task}.md): {finished} finished runs, {failed} failed; {_tuning_count(tuned, '; ')}"
                f"test examples: {samples_text(sizes, 'not recorded')}{_longer_counts(c, task)}")
        lines.append(line + (f"; [Pareto plot]({plot})" if plot else ""))
    lines += ["", "## Across tasks", "",
              "- [MLPs against the Transformer baseline](summary.md)",
              *(["- [Ablations: each variant beside its family's default](ablations.md)"] if ablations else []),
              *(["- [Cost scaling: how costs grow with the number of tokens](scaling.md)"] if scaling else []),
              *(["- [Recipe or architecture: the recipe study](recipe-study.md)"] if study else []),
              "- [All rows as CSV](results.csv)", ""]
    if c.skipped:
        lines += ["## Skipped files", ""] + [f"- {_cell(reason)}" for reason in c.skipped] + [""]
    return "\n".join(lines)


def _longer_counts(collection: Collection, task: str) -> str:
    """For each longer budget of the collection, the task's runs at it and the models still to come; nothing
    where the collection has no longer runs."""
    tested = [e for e in [*collection.runs, *collection.failures] if e.id.task == task]
    longer = [e for e in collection.longer if e.id.task == task]
    counts = []
    for k in sorted({e.budget_multiple for e in collection.longer}):
        n = sum(e.budget_multiple == k for e in longer)
        missing = still_to_come(tested, longer, k)
        counts.append(f"; runs at {k}x the budget: " + (
            "still to come" if not n else f"{n}" + (f" (still to come: {', '.join(missing)})" if missing else "")))
    return "".join(counts)


def _tuning_count(tuning: list, end: str = ", ") -> str:
    """The count of tuning runs followed by `end`; nothing where there is none."""
    return f"tuning runs (validation, not ranked): {len(tuning)}{end}" if tuning else ""


CSV_COLUMNS = [
    "task", "device", "device_type", "precision", "metric", "higher_is_better", "rank", "tied", "model", "size",
    "n", "seeds", "eval_samples", "metric_mean", "metric_std", "metric_ci95_low", "metric_ci95_high", "params",
    "gflops_per_sample", "train_samples_per_s", "infer_samples_per_s", "train_tokens_per_s", "infer_tokens_per_s",
    "train_peak_mb", "memory_kind", "unstable_runs",
]


def results_csv(rows: list[Row]) -> str:
    def num(x: Optional[float]) -> str:
        return "" if x is None else f"{x:.6g}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        interval = r.metric_interval if r.metric_ci is not None else None
        writer.writerow([
            r.task, r.device_label, r.device_type, r.precision, r.metric_name, str(r.higher_is_better).lower(),
            "" if r.rank is None else r.rank, str(r.tied).lower(), r.model, r.size, r.n, " ".join(map(str, r.seeds)),
            " ".join(map(str, r.eval_samples)), num(r.metric_mean), num(r.metric_std),
            num(interval and interval[0]), num(interval and interval[1]), f"{r.params:.0f}", num(r.gflops),
            num(r.train_samples_per_s), num(r.infer_samples_per_s), num(r.train_tokens_per_s),
            num(r.infer_tokens_per_s), num(r.train_peak_mb), r.memory_kind or "", "; ".join(r.unstable),
        ])
    return out.getvalue()
