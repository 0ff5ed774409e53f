"""Result folders -> the leaderboard folder: task pages, summary, index, CSV and Pareto plots, and the
ablation page when some run is a variant or a relative."""

from __future__ import annotations

from pathlib import Path

from bench.errors import UserError
from leaderboard.ablations import ablation_page, has_ablations
from leaderboard.aggregate import aggregate, compare_to_baselines
from leaderboard.collect import Collection
from leaderboard.output import write_atomic, write_text_atomic
from leaderboard.plots import pareto_png
from leaderboard.tables import index_page, results_csv, summary_page, task_page


def build(collection: Collection, out: str, command: str) -> None:
    """Write every page to `out`; `command` is quoted on the index."""
    if not collection.runs and not collection.failures:
        raise UserError(
            f"No valid result files found (JSON files read: {collection.files_read}, "
            f"skipped: {len(collection.skipped)})."
        )
    rows = aggregate(collection.runs)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    tasks = {}
    for task in sorted({r.task for r in rows} | {f.id.task for f in collection.failures}):
        task_rows = [r for r in rows if r.task == task]
        failures = sorted(
            (f for f in collection.failures if f.id.task == task),
            key=lambda f: (f.id.family, f.id.size, f.id.variant, f.id.device, f.id.precision, f.id.seed),
        )
        png = pareto_png(task, task_rows)
        plot = f"{task}_pareto.png" if png else None
        if png:
            write_atomic(out_dir / plot, png)
        write_text_atomic(out_dir / f"{task}.md", task_page(task, task_rows, failures, plot))
        tasks[task] = (sum(1 for r in collection.runs if r.id.task == task), len(failures), plot)

    write_text_atomic(out_dir / "summary.md", summary_page(*compare_to_baselines(rows)))
    write_text_atomic(out_dir / "results.csv", results_csv(rows))
    ablations = has_ablations(rows)
    if ablations:
        write_text_atomic(out_dir / "ablations.md", ablation_page(rows))
    write_text_atomic(out_dir / "index.md", index_page(command, collection, tasks, ablations))
