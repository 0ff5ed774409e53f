"""Result folders -> the leaderboard folder: task pages, summary, index, CSV and Pareto plots, and the
ablation page when some run is a variant or a relative. Tuning runs (scored on validation) appear
only in their task page's tuning table and, through their learning curves, its steps-to-competence
section; test runs at a longer budget only in its budget-sensitivity section. A task's cost pass
gives its page, plot and summary ratios their speed figures; the CSV keeps the runs' own. Points of
the cost-scaling study make scaling.md and its plots; from points alone, only those are written."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from bench.core.errors import UserError
from bench.core.results import atomic_path, write_text_atomic
from leaderboard.ablations import ablation_page, has_ablations
from leaderboard.aggregate import aggregate, compare_to_baselines, tuning_rows, with_cost_passes
from leaderboard.collect import Collection, Run
from leaderboard.plots import pareto_png
from leaderboard.scaling import scaling_page, scaling_pngs
from leaderboard.study import headline, study_page
from leaderboard.tables import conclusion, index_page, results_csv, summary_page, task_page


def build(collection: Collection, out: str, command: str, study: Optional[Collection] = None) -> None:
    """Write every page to `out`; `command` is quoted on the index, and the results folders' NOTES.md
    stand on it under "Notes". `study`: the recipe study's results (leaderboard.study), which make
    recipe-study.md, a line of the summary and a link on the index."""
    runs = collection.runs or collection.failures or collection.tuning or collection.longer
    if not runs and not collection.scaling:
        raise UserError(
            f"No valid result files found (JSON files read: {collection.files_read}, "
            f"skipped: {len(collection.skipped)})."
        )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if collection.scaling:
        pngs = scaling_pngs(collection.scaling)
        for name, png in pngs.items():
            write_png(out_dir / name, png)
        write_text_atomic(out_dir / "scaling.md", scaling_page(collection.scaling, pngs))
    if not runs:
        return
    recipes = sorted({e.recipe for e in [*collection.runs, *collection.failures, *collection.tuning,
                                         *collection.longer]})
    if len(recipes) > 1:
        raise UserError(
            f"The results come from the recipes {' and '.join(recipes)}; a page never ranks runs of two recipes "
            f"against each other: build each recipe's results into pages of their own (one results folder per recipe)."
        )
    measured = aggregate(collection.runs)  # the runs' own timings: the CSV's
    rows = with_cost_passes(measured, collection.costs)  # a task's cost pass, where it has one: the pages'
    costs = {cost.task: cost for cost in collection.costs}

    tested = [*collection.runs, *collection.failures]
    tuning = tuning_rows(collection.tuning, tested)
    tasks = {}
    multiples = sorted({e.budget_multiple for e in collection.longer})
    conclusions: list[str] = []  # each task's in one sentence, for the summary
    for task in sorted({e.id.task for e in [*tested, *collection.tuning, *collection.longer]}):
        task_rows = [r for r in rows if r.task == task]
        failures = sorted(
            (f for f in collection.failures if f.id.task == task),
            key=lambda f: (f.id.family, f.id.size, f.id.variant, f.id.device, f.id.precision, f.id.seed),
        )
        png = pareto_png(task, task_rows)
        plot = f"{task}_pareto.png" if png else None
        if png:
            write_png(out_dir / plot, png)
        provenances = [e.provenance for e in [*tested, *collection.tuning, *collection.longer] if e.id.task == task]
        runs = [r for r in collection.runs if r.id.task == task]
        tuned = [r for r in collection.tuning if r.id.task == task and isinstance(r, Run)]
        longer = [e for e in collection.longer if e.id.task == task]
        write_text_atomic(out_dir / f"{task}.md", task_page(
            task, task_rows, failures, plot, provenances, runs, [t for t in tuning if t.task == task], tuned,
            costs.get(task), longer,
        ))
        tasks[task] = (len(runs), len(failures), plot)
        conclusions += conclusion(task, task_rows, runs, longer, multiples)

    everything = [e.provenance for e in [*collection.runs, *collection.failures]]
    by_task: dict[str, list] = {}
    for entry in [*collection.runs, *collection.failures]:
        by_task.setdefault(entry.id.task, []).append(entry.provenance)
    if study is not None:
        write_text_atomic(out_dir / "recipe-study.md", study_page(study))
    write_text_atomic(out_dir / "summary.md", summary_page(*compare_to_baselines(rows), everything, by_task,
                                                           None if study is None else headline(study),
                                                           tuple(conclusions)))
    write_text_atomic(out_dir / "results.csv", results_csv(measured))
    ablations = has_ablations(rows)
    if ablations:
        write_text_atomic(out_dir / "ablations.md", ablation_page(rows, everything))
    write_text_atomic(out_dir / "index.md", index_page(command, collection, tasks, ablations, rows,
                                                      bool(collection.scaling), study is not None))


def write_png(path: Path, png: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
