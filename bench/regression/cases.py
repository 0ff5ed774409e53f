"""The regression check's cases (MODEL-SIZE:TASK:BATCH:PRECISION:PHASE) and its settings (python -m
bench.regress). The task registry's names are the caller's to pass (`task_names`): this library imports no task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from bench.core.config import PRECISIONS, Config, flag, require
from bench.core.errors import UserError

SUITE_ROOT = Path(__file__).resolve().parent.parent.parent
PHASES = ("infer", "train")
EXAMPLE_CASE = "gmlp-mini:digits:32:fp32:infer"


class CouldNotMeasure(UserError):
    """The check could not produce a comparison; exit 2."""


@dataclass(frozen=True)
class Case:
    """What is timed: one model on one task's batch, at a precision, in one phase."""

    model: str
    size: str
    task: str
    batch: int
    precision: str
    phase: str

    @classmethod
    def parse(cls, text: str) -> "Case":
        """From MODEL-SIZE:TASK:BATCH:PRECISION:PHASE, e.g. gmlp-mini:digits:32:fp32:infer."""
        parts = text.split(":")
        model, _, size = parts[0].partition("-")
        batch = parts[2] if len(parts) == 5 else ""
        if len(parts) != 5 or not size or not (batch.isascii() and batch.isdigit()) or int(batch) < 1:
            raise UserError(f"--case {text!r} is not MODEL-SIZE:TASK:BATCH:PRECISION:PHASE, e.g. {EXAMPLE_CASE}.")
        require(parts[3] in PRECISIONS, f"--case {text!r}: precision must be one of {', '.join(PRECISIONS)}.")
        require(parts[4] in PHASES, f"--case {text!r}: phase must be one of {', '.join(PHASES)}.")
        return cls(model, size, parts[1], int(parts[2]), parts[3], parts[4])

    @property
    def name(self) -> str:
        return f"{self.model}-{self.size}:{self.task}:{self.batch}:{self.precision}:{self.phase}"


def default_cases() -> list[str]:
    """Inference of every compared image family (each one the registry has that is no relative of
    another) at its mini size on digits, batch 32, in fp32, and training of the first of them."""
    from bench.models import compared_families

    families = compared_families("image")
    return [f"{family}-mini:digits:32:fp32:infer" for family in families] + [f"{families[0]}-mini:digits:32:fp32:train"]


@dataclass(frozen=True)
class RegressConfig(Config):
    """The regression check: what to compare, how long to measure, and when to call it a regression."""

    ref: Optional[str] = flag(None, "git ref or commit to compare the working tree against (default: main)")
    baseline: Optional[str] = flag(None, "compare against samples stored by --save-baseline instead of a git ref")
    save_baseline: Optional[str] = flag(None, "measure the working tree and store its samples in this file")
    tolerance: float = flag(0.10, "slowdown allowed before a case can fail: 0.10 = 10% more time per step")
    alpha: float = flag(0.01, "significance level of the one-sided Mann-Whitney U test")
    rounds: int = flag(30, "measurement rounds per side, interleaved A, B, A, B ...")
    repeats: int = flag(1, "timed repeats per case in a round; each is one sample (more rounds interleave finer)")
    steps: int = flag(5, "steps in one timed repeat")
    warmup: int = flag(1, "untimed steps before each round's repeats (each case is also warmed up once at start)")
    threads: int = flag(1, "torch threads per worker; only one worker runs at a time, so they never compete")
    json: Optional[str] = flag(None, "write the comparison as JSON to this file")
    markdown: Optional[str] = flag(None, "write a Markdown summary (for a pull-request comment) to this file")

    def validate(self):
        require(0 < self.tolerance < 10, f"--tolerance must be in (0, 10), got {self.tolerance}.")
        require(0 < self.alpha < 1, f"--alpha must be in (0, 1), got {self.alpha}.")
        for name in ("rounds", "repeats", "steps", "threads"):
            value = getattr(self, name)
            require(value >= 1, f"--{name} must be at least 1, got {value}.")
        require(self.warmup >= 0, f"--warmup must be >= 0, got {self.warmup}.")
        given = [f"--{name.replace('_', '-')}" for name in ("ref", "baseline", "save_baseline") if getattr(self, name)]
        require(len(given) <= 1, f"{' and '.join(given)} are different comparisons; pass only one of them.")


def parse_cases(names: list[str] | None, task_names: Callable[[], Iterable[str]]) -> list[Case]:
    """The cases named, each of a registered model and task, before any checkout or worker is made;
    `task_names` gives the task registry's names."""
    from bench.models import list_models

    tasks = list(task_names())
    cases = [Case.parse(name) for name in names or default_cases()]
    require(len({c.name for c in cases}) == len(cases), "A --case is given twice; give each case once.")
    for case in cases:
        require(case.model in list_models(),
                f"--case {case.name!r}: no model {case.model!r}; models are {', '.join(list_models())}.")
        require(case.task in tasks, f"--case {case.name!r}: no task {case.task!r}; tasks are {', '.join(tasks)}.")
    return cases
