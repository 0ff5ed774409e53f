"""The regression check (python -m bench.regress): the working tree against a ref or a stored baseline, or
a baseline stored. The task registry's names are the caller's to pass (`task_names`): this library imports no task."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from bench.core.errors import UserError
from bench.core.results import check_output_file, write_json_atomic, write_text_atomic
from bench.regression.cases import SUITE_ROOT, Case, RegressConfig, parse_cases
from bench.regression.report import (BASELINE_KIND, FORMAT_VERSION, WORKING_TREE, baseline_cases, comparison,
                                     load_baseline, markdown_report, refuse_mismatch, terminal_report)
from bench.regression.sides import (INJECT_SLOWDOWN_ENV, check_fingerprints, measure_interleaved, resolve_ref,
                                    temporary_worktree, workers)

def check_writable(path: Optional[str], flag_name: str) -> None:
    """Fail before measuring, not after, when an output cannot be written."""
    if path is None:
        return
    check_output_file(path, flag_name)
    if not Path(path).resolve().parent.is_dir():
        raise UserError(f"{flag_name} {path}: the folder {Path(path).parent} does not exist.")


def run(cfg: RegressConfig, case_names: list[str] | None, task_names) -> int:
    """The check the settings ask for, its report printed and written; its exit code. `task_names` gives the
    task registry's names (bench.regression.cases.parse_cases)."""
    for path, name in ((cfg.json, "--json"), (cfg.markdown, "--markdown"), (cfg.save_baseline, "--save-baseline")):
        check_writable(path, name)
    if cfg.save_baseline:
        return save_baseline(cfg, parse_cases(case_names, task_names))
    record = compare_with_baseline(cfg, case_names) if cfg.baseline else compare_with_ref(cfg, parse_cases(case_names, task_names))
    print(terminal_report(record))
    if cfg.json:
        write_json_atomic(cfg.json, record)
    if cfg.markdown:
        write_text_atomic(Path(cfg.markdown), markdown_report(record))
    return record["exit_code"]


def injected_slowdown() -> float:
    """The test-only slowdown for the working tree's side (INJECT_SLOWDOWN_ENV), 0 when unset."""
    text = os.environ.get(INJECT_SLOWDOWN_ENV, "0")
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{INJECT_SLOWDOWN_ENV} must be a number such as 0.15, got {text!r}.") from None


def compare_with_ref(cfg: RegressConfig, cases: list[Case]) -> dict:
    ref = cfg.ref or "main"
    commit = resolve_ref(ref)
    with temporary_worktree(commit) as base_checkout:
        with workers({"base": (base_checkout, 0), "new": (SUITE_ROOT, injected_slowdown())}, cases, cfg) as running:
            environment = check_fingerprints({label: worker.ready() for label, worker in running.items()})
            samples = measure_interleaved(running, cases, cfg)
    return comparison(samples["base"], samples["new"], cases, cfg, environment,
                      {"label": f"{ref} ({commit[:10]})", "ref": ref, "commit": commit}, WORKING_TREE)


def compare_with_baseline(cfg: RegressConfig, case_names: list[str] | None) -> dict:
    path = Path(cfg.baseline)
    baseline = load_baseline(path)
    cases = baseline_cases(baseline, case_names, path)
    with workers({"new": (SUITE_ROOT, injected_slowdown())}, cases, cfg) as running:
        environment = running["new"].ready()
        refuse_mismatch(baseline, environment, path)
        samples = measure_interleaved(running, cases, cfg)["new"]
    return comparison(baseline["samples"], samples, cases, cfg, environment,
                      {"label": f"baseline {path}", "baseline": str(path)}, WORKING_TREE)


def save_baseline(cfg: RegressConfig, cases: list[Case]) -> int:
    with workers({"new": (SUITE_ROOT, injected_slowdown())}, cases, cfg) as running:
        environment = running["new"].ready()
        samples = measure_interleaved(running, cases, cfg)["new"]
    write_json_atomic(cfg.save_baseline, {
        "kind": BASELINE_KIND, "version": FORMAT_VERSION, "environment": environment,
        "settings": {key: getattr(cfg, key) for key in ("rounds", "repeats", "steps", "warmup", "threads")},
        "samples": samples,
    })
    print(f"Stored {sum(map(len, samples.values()))} samples of {len(cases)} cases in {cfg.save_baseline}.")
    return 0
