"""The library of the cost pass (python -m bench.cost, whose docstring says what a pass is): a case, its
timing in rounds, the rounds' normalisation and summary, and where a pass's file lies and whether it is done."""

from __future__ import annotations

import copy
import math
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROUNDS = 15
DEFAULT_STEPS = 3
DEFAULT_WARMUP = 1
PHASES = ("train", "infer")


@dataclass
class Case:
    """One model of the task at one seed, built once and timed every round."""

    family: str
    size: str
    variant: str
    seed: int
    baseline: bool
    relative_of: str | None
    params: int
    model: object  # torch.nn.Module
    make_optimizer: object  # params -> the AdamW the runs use

    @property
    def label(self) -> str:
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{self.family}-{self.size}{variant} seed {self.seed}"


def time_case(case: Case, task, batch, steps: int, warmup: int) -> dict[str, float]:
    """Samples per CPU-second of `steps` inference steps and `steps` training steps, on a fresh copy."""
    import torch

    from bench.core.config import MeasureConfig
    from bench.measure.timing import CLOCKS, batch_size_of, phase_steps, timed_rates

    cpu = torch.device("cpu")
    cfg = MeasureConfig(bench_warmup_steps=warmup, bench_steps=steps, bench_repeats=1, bench_clock="process")
    model = copy.deepcopy(case.model)
    phase = phase_steps(model, batch, task.loss, task.loss, case.make_optimizer, cfg, "fp32", cpu)
    n, rates = batch_size_of(batch), {}
    for name, train in (("infer", False), ("train", True)):
        model.train(train)
        for _ in range(warmup):
            phase[name]()
        rates[name] = timed_rates(phase[name], n, cfg, cpu, clock=CLOCKS["process"])[0]
    return rates


def time_rounds(cases: list[Case], task, batch, rounds: int, steps: int, warmup: int, label: str,
                order_seed: int = 0) -> dict[str, list[list[float]]]:
    """Per phase, per case, the rate of every round; each round in its own order. One progress line per round."""
    rates = {phase: [[] for _ in cases] for phase in PHASES}
    order = list(range(len(cases)))
    rng = random.Random(order_seed)
    started = time.perf_counter()
    for done in range(1, rounds + 1):
        rng.shuffle(order)
        for i in order:
            for phase, rate in time_case(cases[i], task, batch, steps, warmup).items():
                rates[phase][i].append(rate)
        per_round = (time.perf_counter() - started) / done
        print(f"{label}: round {done}/{rounds}, {per_round:.0f}s a round, "
              f"about {math.ceil(per_round * (rounds - done) / 60)} min left", flush=True)
    return rates


def geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def normalised(rates: list[list[float]]) -> tuple[list[list[float]], list[float]]:
    """(each case's rates over its round's speed relative to the median round, the round speeds)."""
    speeds = [geometric_mean([case[r] for case in rates]) for r in range(len(rates[0]))]
    median = statistics.median(speeds)
    return [[rate * median / speeds[r] for r, rate in enumerate(case)] for case in rates], speeds


def spread(values: list[float]) -> float:
    """(max - min) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def summarise(cases: list[Case], rates: dict[str, list[list[float]]], tokens_per_sample: float | None) -> dict:
    """The figures the pages show: per model (its seeds together) and per case, from the raw rates."""
    from bench.measure.timing import median_with_interval

    per_case, models = [], {}
    scaled = {phase: normalised(rates[phase]) for phase in PHASES}
    for i, case in enumerate(cases):
        per_case.append({
            "model": case.family, "size": case.size, "variant": case.variant, "seed": case.seed,
            "params": case.params,
            **{f"{phase}_raw": rates[phase][i] for phase in PHASES},
            **{f"{phase}_samples_per_s": statistics.median(scaled[phase][0][i]) for phase in PHASES},
        })
        models.setdefault((case.family, case.size, case.variant), []).append(i)
    summaries = []
    for (family, size, variant), members in models.items():
        first = cases[members[0]]
        summary = {"model": family, "size": size, "variant": variant, "baseline": first.baseline,
                   "relative_of": first.relative_of, "params": first.params,
                   "seeds": [cases[i].seed for i in members]}
        for phase in PHASES:
            pooled = [rate for i in members for rate in scaled[phase][0][i]]
            median, low, high = median_with_interval(pooled)
            summary[phase] = {
                "samples_per_s": median, "ci": [low, high],
                "tokens_per_s": None if tokens_per_sample is None else median * tokens_per_sample,
                "seed_spread": spread([per_case[i][f"{phase}_samples_per_s"] for i in members]),
                "raw_samples_per_s": statistics.median(rate for i in members for rate in rates[phase][i]),
            }
        summaries.append(summary)
    return {
        "models": summaries,
        "cases": per_case,
        "round_speed": {phase: scaled[phase][1] for phase in PHASES},
        "drift": {phase: spread(scaled[phase][1]) for phase in PHASES},
    }


def cost_path(output_dir: str | Path, task_name: str) -> Path:
    return Path(output_dir) / "cost" / f"{task_name}.json"


def cost_pass_done(path: Path) -> bool:
    """Whether `path` holds a complete cost pass, which is kept; a file there that is none (cut short,
    corrupt, another kind) is said so, in one line, and measured again."""
    from bench.core.results import ResultError, read_json, validate_cost_pass

    if not path.exists():
        return False
    try:
        validate_cost_pass(read_json(path), str(path))
        return True
    except ResultError as e:
        print(f"{e} It is measured again.", flush=True)
        return False
