"""The regression check's records: stored baselines (--save-baseline, --baseline), the comparison's JSON
record, and its terminal and Markdown reports."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from bench.regression.cases import SUITE_ROOT, Case, CouldNotMeasure
from bench.regression.decision import decide

BASELINE_KIND = "mlpbench-regress-baseline"
RECORD_KIND = "mlpbench-regress"
FORMAT_VERSION = 1
WORKING_TREE = {"label": "working tree", "checkout": str(SUITE_ROOT)}


def load_baseline(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CouldNotMeasure(f"The baseline {path} does not exist; create it with --save-baseline.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CouldNotMeasure(f"The baseline {path} could not be read as JSON ({e}).") from None
    if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND or data.get("version") != FORMAT_VERSION:
        raise CouldNotMeasure(f"{path} is not a baseline of version {FORMAT_VERSION} written by --save-baseline.")
    if not isinstance(data.get("environment"), dict) or not isinstance(data.get("samples"), dict):
        raise CouldNotMeasure(f"The baseline {path} lacks its environment or samples; it is damaged.")
    return data


def baseline_cases(baseline: dict, requested: list[str] | None, path: Path) -> list[Case]:
    """The baseline's cases, or the requested ones if it has them all."""
    names = requested or list(baseline["samples"])
    missing = [name for name in names if name not in baseline["samples"]]
    if missing:
        raise CouldNotMeasure(
            f"The baseline {path} has no samples for {', '.join(missing)} (precision and phase included); "
            f"it holds {', '.join(baseline['samples'])}."
        )
    return [Case.parse(name) for name in names]


def refuse_mismatch(baseline: dict, here: dict, path: Path) -> None:
    """One sentence naming every environment field in which the baseline differs from this machine."""
    differ = [
        f"{key} {baseline['environment'].get(key)!r} there, {here.get(key)!r} here"
        for key in here
        if baseline["environment"].get(key) != here.get(key)
    ]
    if differ:
        raise CouldNotMeasure(
            f"The baseline {path} was measured in another environment ({'; '.join(differ)}); "
            f"its times are not comparable, so measure a new one here with --save-baseline."
        )


def comparison(samples_base, samples_new, cases, cfg, environment, base_desc, new_desc) -> dict:
    """The JSON record: settings, environment, and per case the samples, ratio, interval, p and status."""
    rows = []
    for case in cases:
        base, new = samples_base[case.name], samples_new[case.name]
        verdict = decide(base, new, cfg.tolerance, cfg.alpha)
        rows.append({
            "case": case.name, **asdict(case),
            "base_ms_per_step": statistics.median(base) * 1e3, "new_ms_per_step": statistics.median(new) * 1e3,
            **asdict(verdict), "base_samples": base, "new_samples": new,
        })
    regressions = sum(row["status"] == "regression" for row in rows)
    return {
        "kind": RECORD_KIND, "version": FORMAT_VERSION, "base": base_desc, "new": new_desc,
        "settings": {key: getattr(cfg, key) for key in ("tolerance", "alpha", "rounds", "repeats", "steps", "warmup", "threads")},
        "environment": environment, "cases": rows, "regressions": regressions, "exit_code": 1 if regressions else 0,
    }


def table(record: dict) -> list[list[str]]:
    header = ["case", "base ms/step", "new ms/step", "ratio", "95% interval", "p (slower)", "verdict"]
    return [header] + [
        [row["case"], f"{row['base_ms_per_step']:.2f}", f"{row['new_ms_per_step']:.2f}", f"{row['ratio']:.3f}",
         f"{row['ci'][0]:.3f}-{row['ci'][1]:.3f}", f"{row['p_slower']:.2g}", row["status"]]
        for row in record["cases"]
    ]


def summary(record: dict) -> str:
    settings = record["settings"]
    n = record["regressions"]
    verdict = f"{n} of {len(record['cases'])} cases regressed" if n else "no regression"
    return (
        f"{record['new']['label']} against {record['base']['label']}: {verdict} "
        f"(tolerance {settings['tolerance']:.0%}, alpha {settings['alpha']}, {settings['rounds']} rounds of "
        f"{settings['repeats']} x {settings['steps']} steps per side, on {record['environment']['device_name']}, "
        f"{record['environment']['cpu_threads']} thread(s))."
    )


def terminal_report(record: dict) -> str:
    rows = table(record)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + ["", summary(record)])


def markdown_report(record: dict) -> str:
    rows = table(record)
    lines = ["### Throughput regression check", "", summary(record), ""]
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "|".join(" --- " for _ in rows[0]) + "|")
    for row in rows[1:]:
        row = row[:-1] + [f"**{row[-1]}**" if row[-1] == "regression" else row[-1]]
        lines.append("| " + " | ".join(f"`{row[0]}`" if i == 0 else cell for i, cell in enumerate(row)) + " |")
    lines += ["", "Ratio: median time per step, new / base (above 1 is slower). A case regresses when the ratio "
              "exceeds 1 + tolerance and a one-sided Mann-Whitney U test gives p below alpha."]
    return "\n".join(lines) + "\n"
