"""Find result files, validate them, and keep from each the fields the leaderboard shows.

A file that is not a result of this suite (not a regular file, malformed JSON, another tool's JSON,
a field of the wrong type, a number out of range, a name no registry of the suite gives) is skipped
with a sentence naming it, so one bad file never hides the others, and no value of a file can break
a page or the arithmetic behind it.

A run scored on the validation split (config.data.eval_split "validation": a tuning run of the
sweep's [tune] protocol) is kept apart, in Collection.tuning: it is never ranked, summarised,
plotted or written to the CSV, only shown in its task page's tuning table and, where its history
holds a learning curve (--eval-every), its steps-to-competence section. A result without
eval_split (written before the split could be chosen) was scored on test.

A test run trained k times its task's tuned budget (a sweep's `budgets`: the tuned setting trained
longer, bench.sweeps.plan.longer_budget) is kept apart too, in Collection.longer: never ranked, summarised,
plotted or written to the CSV, only shown in its task page's budget-sensitivity section. What tells
it apart is the budget its result records (Budget), never the folder it lies in.

A point of the cost-scaling study (bench/scaling.py, kind "mlpbench-scaling-point") is kept in
Collection.scaling, for the scaling page only; a cost pass (bench/cost.py, kind "mlpbench-cost-pass")
in Collection.costs, for its task's speed figures.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from bench.core.errors import UserError
from bench.core.results import (
    ResultError, git_provenance, is_cost_pass, is_point, read_json, valid_tune_record, validate_cost_pass,
    validate_point, validate_result,
)

# Names the pages show as they are: identifiers of the suite (task, model, size, precision, metric, ...;
# task names also become page file names), variants, device names and commits. Any other text there,
# a line break or a pipe, would break the Markdown.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_VARIANT = re.compile(r"([a-z0-9_-]+=[A-Za-z0-9_.+-]+(,[a-z0-9_-]+=[A-Za-z0-9_.+-]+)*)?")
_DEVICE = re.compile(r"[^\x00-\x1f\x7f|<>`]{1,200}")
_COMMIT = re.compile(r"[0-9a-f]{4,64}")
_OTHER_PAGES = ("index", "summary", "ablations")
# The largest magnitude of a number in a result: far above any real one (parameters, FLOPs per sample,
# samples per second), and far enough below the largest float that sums, squares and ratios stay finite.
LIMIT = 1e18
DEFAULT_RECIPE = "suite"  # the recipe of results written before recipes existed


# The device a CPU run is ranked on, whatever the CPU model: a CPU model changes a run's arithmetic in its
# last bits only (the same function, in the same precision; over a run that can move a metric as another
# seed can, docs/reproducibility.md), and the machines a long sweep gets may change between its stops, so
# a task's seeds may land on two CPU models. Their speed is another matter:
# aggregate() withholds the runs' own timings of a table whose runs span CPU models.
POOLED_CPU = "CPU"


@dataclass(frozen=True)
class Identity:
    """Which run a result is: rows aggregate the seeds of equal (task, family, size, variant, device, precision)."""

    task: str
    family: str
    size: str
    variant: str  # "norm=layernorm", ...; "" for the family's default (and results written before variants)
    seed: int
    device: str  # what it is ranked on: the device name, or POOLED_CPU for any CPU; prefixed by the
    # process count when a run used several
    device_type: str
    precision: str
    device_name: str  # environment.device_name, as recorded

    @property
    def model(self) -> str:
        return model_label(self.family, self.variant)


def model_label(family: str, variant: str) -> str:
    """The model column: the family, and the variant in brackets when it is not the default."""
    return f"{family} [{variant}]" if variant else family


@dataclass(frozen=True)
class Provenance:
    """Which file a run came from and the code that made it."""

    source: str  # the result file
    commit: Optional[str]  # None where the result records none (run outside a git checkout)
    dirty: Optional[bool]  # tracked files differed from the commit; None where not known


EVAL_SPLITS = ("test", "validation")
TEST, VALIDATION = EVAL_SPLITS

# Trivial floors the tasks record among their metrics (tasks/*: compute_metrics), in the order shown.
# source_target_similarity is no floor but says how to read the copy floor (tables.floor_line).
FLOOR_METRICS = ("majority_baseline_accuracy", "floor_wer", "floor_per", "floor_copy_bleu", "floor_copy_chrf",
                 "source_target_similarity")


@dataclass(frozen=True)
class Protocol:
    """The training budget and settings a run records; None where it records none (a run that did not
    train records no train.*)."""

    steps: Optional[int]  # train.steps: optimizer steps
    batch_size: Optional[int]  # config.optim.batch_size, per process
    epochs: Optional[float]  # train.epochs
    samples: Optional[int]  # train.samples: training samples seen
    train_subset: Optional[int]  # config.data.max_train_samples: the training images it drew from; None: all
    weight_decay: Optional[float]  # config.optim.weight_decay
    warmup_fraction: Optional[float]  # config.optim.warmup_fraction
    label_smoothing: Optional[float]  # config.optim.label_smoothing (the task's default resolved)
    precision: Optional[str]  # environment.precision
    device_name: Optional[str]  # environment.device_name
    cpu_threads: Optional[int]  # environment.cpu_threads
    bench_clock: Optional[str]  # config.measure.bench_clock


@dataclass(frozen=True)
class Budget:
    """The training budget a run asked for (config.optim), in the terms a sweep multiplies it
    (bench.sweeps.plan.longer_budget): optimizer steps where it set max_steps, which overrides epochs, else
    epochs; at its batch size per process. A failed run records it too, where it records no train.*;
    and k times the steps is k times train.steps exactly, where train.samples falls short whenever a
    longer run crosses an epoch's partial last batch."""

    unit: str  # "steps" | "epochs"
    amount: float
    batch_size: Optional[int]

    def multiple_of(self, tuned: Budget) -> int:
        """k where this budget is k times `tuned` (the same unit and batch size, k an integer of at least
        2); else 1: the run counts with the tuned budget's, whose page shows a budget that varies in bold."""
        if (self.unit, self.batch_size) != (tuned.unit, tuned.batch_size) or tuned.amount <= 0:
            return 1
        ratio = self.amount / tuned.amount
        k = round(ratio) if math.isfinite(ratio) else 0
        return k if k >= 2 and math.isclose(ratio, k, rel_tol=1e-9) else 1


@dataclass(frozen=True)
class TuneGrid:
    """The tuning a sweep's tuning run belongs to, as its result records it (its "tune" key): the declared
    learning-rate grid (ascending), the declared warm-up grid (None: warm-up not tuned) and how many
    learning rates the sweep could try beyond an end of the grid. A learning rate outside `lr` is an
    extension."""

    lr: tuple[float, ...]
    warmup: Optional[tuple[float, ...]]
    extend: int


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of a run's learning curve (an entry of its history): the optimizer step and the
    primary metric there; the scored split's loss and the mean training loss since the entry before, where
    the entry records them."""

    step: int
    value: float
    loss: Optional[float] = None
    train_loss: Optional[float] = None


@dataclass(frozen=True)
class Run:
    """A finished run (status "ok"): its primary metric and measurements; None where not measured."""

    id: Identity
    metric_name: str
    higher_is_better: bool
    metric: Optional[float]  # None for a measure-only run
    params: int
    gflops: Optional[float]  # forward pass, per sample
    train_samples_per_s: Optional[float]
    infer_samples_per_s: Optional[float]
    train_tokens_per_s: Optional[float]
    infer_tokens_per_s: Optional[float]
    train_peak_mb: Optional[float]
    memory_kind: Optional[str]  # "cuda", "cpu_tensors" or (older results) "cpu_rss"
    eval_samples: Optional[int]  # metrics.eval_samples: the size of the scored split; None where not recorded
    stable: bool  # throughput.stable: False when the measurement's self-check failed (True when absent)
    unstable_reason: Optional[str]  # throughput.unstable_reason
    provenance: Provenance
    eval_split: str = TEST  # config.data.eval_split: "validation" for a tuning run
    lr: Optional[float] = None  # config.optim.lr
    protocol: Optional[Protocol] = None
    floors: tuple[tuple[str, float], ...] = ()  # (FLOOR_METRICS name, value) the metrics carry
    modality: Optional[str] = None  # "image" | "mlm" | "seq2seq"; None in results that do not record it
    baseline: bool = False  # its family is its modality's Transformer baseline, as the family's registration says
    relative_of: Optional[str] = None  # the family its family changes one part of (its registration's)
    recipe: str = DEFAULT_RECIPE  # recipe.name: the training recipe (bench.recipes)
    tune: Optional[TuneGrid] = None  # a sweep's tuning run: the grid it belongs to; None where not recorded

    @property
    def warmup(self) -> Optional[float]:
        """config.optim.warmup_fraction."""
        return None if self.protocol is None else self.protocol.warmup_fraction
    reference: bool = False  # its family is a reference of another kind (the ConvNet), as its registration says
    budget_multiple: int = 1  # a test run: k where it trained k times its task's tuned budget (Collection.longer)
    # A tuning run's validation curve (--eval-every), by step, the last point its final evaluation; () where its
    # history holds that evaluation alone, and for a test run, which scores its split once.
    curve: tuple[CurvePoint, ...] = ()
    train_metric: Optional[float] = None  # train.scored: the primary metric on its training samples (--score-train)


@dataclass(frozen=True)
class Failure:
    """A run whose status is not "ok": listed with its reason, never ranked."""

    id: Identity
    status: str
    error: Optional[str]
    provenance: Provenance
    eval_split: str = TEST
    lr: Optional[float] = None
    recipe: str = DEFAULT_RECIPE
    warmup: Optional[float] = None  # config.optim.warmup_fraction
    tune: Optional[TuneGrid] = None
    budget_multiple: int = 1  # as Run's


@dataclass(frozen=True)
class ScalingPoint:
    """One point of the cost-scaling study: a family at one input size; None where not measured
    (a point over a cap, skipped or failed has only its status and reason)."""

    series: str
    modality: str
    family: str
    size: str
    baseline: bool
    tokens: int
    device: str  # the device name
    device_type: str
    precision: str
    status: str  # bench.results.POINT_STATUSES
    error: Optional[str]
    params: Optional[int]
    gflops: Optional[float]  # forward, per sample, counted
    analytic_gflops: Optional[float]  # the family's registered formula
    infer_samples_per_s: Optional[float]
    train_samples_per_s: Optional[float]
    latency_ms: Optional[float]  # batch-1 inference, p50
    infer_peak_mb: Optional[float]
    train_peak_mb: Optional[float]
    memory_kind: Optional[str]
    stable: bool  # throughput.stable: False when the timing failed its self-check
    unstable_reason: Optional[str]
    settings: tuple[tuple[str, Any], ...]  # config.scaling, sorted by name
    cpu_threads: Optional[int]
    cpu_count: Optional[int]
    load_average: Optional[float]  # 1 minute, when the point began measuring
    measure_lock: Optional[bool]
    provenance: Provenance

    @property
    def key(self) -> tuple:
        """What makes two files the same point."""
        return (self.series, self.family, self.size, self.tokens, self.device, self.precision)


@dataclass(frozen=True)
class CostFigures:
    """One phase of a model in a cost pass: samples/s (the median over its seeds' rounds), its 95% interval,
    tokens/s (text tasks), and the spread of its seeds' medians ((max - min) / median)."""

    samples_per_s: float
    ci: tuple[float, float]
    tokens_per_s: Optional[float]
    seed_spread: float


@dataclass(frozen=True)
class CostModel:
    """One model of a cost pass, its seeds together."""

    family: str
    size: str
    variant: str
    baseline: bool
    params: int
    seeds: tuple[int, ...]
    train: CostFigures
    infer: CostFigures

    @property
    def label(self) -> str:
        return model_label(self.family, self.variant)


@dataclass(frozen=True)
class CostPass:
    """A task's models timed side by side in one process (bench/cost.py): its speed figures."""

    task: str
    device: str
    device_type: str
    precision: str
    threads: Optional[int]
    clock: str
    batch_size: int
    rounds: int
    steps: int
    warmup: int
    drift: Optional[float]  # (max - min) / median of the rounds' training speeds
    load_average: tuple[Optional[float], ...]  # 1 minute, before and after the timing
    models: tuple[CostModel, ...]  # in the file's order
    provenance: Provenance

    def model(self, family: str, size: str, variant: str) -> Optional[CostModel]:
        """One model's figures, or None when the pass did not time it."""
        return next((m for m in self.models if (m.family, m.size, m.variant) == (family, size, variant)), None)


@dataclass
class Collection:
    runs: list[Run]  # finished runs scored on test: the ranked ones
    failures: list[Failure]  # failed runs meant to be scored on test
    skipped: list[str]  # one sentence per file not used, naming the file
    files_read: int
    tuning: list[Run | Failure] = field(default_factory=list)  # every run scored on validation, finished or not
    scaling: list[ScalingPoint] = field(default_factory=list)  # points of the cost-scaling study
    costs: list[CostPass] = field(default_factory=list)  # one cost pass per task at most
    notes: tuple[str, ...] = ()  # each results folder's NOTES.md: what its publisher says of its results
    longer: list[Run | Failure] = field(default_factory=list)  # test runs at k times the tuned budget (k >= 2)


NOTES = "NOTES.md"


def read_notes(folders: list[str]) -> tuple[str, ...]:
    """The NOTES.md of each folder that has one, in the folders' order."""
    paths = [Path(folder) / NOTES for folder in folders]
    return tuple(text for path in paths if path.is_file() and (text := path.read_text().strip()))


def parse_source(source: str) -> tuple[str, Optional[frozenset[str]]]:
    """A RESULTS_DIR argument: a folder, or FOLDER:TASK[,TASK...] for those tasks' results alone (so that a
    page can take each task from the folder of its own publication). A folder whose name has a colon is
    taken as it is."""
    folder, colon, tasks = source.rpartition(":")
    if not colon or Path(source).is_dir():
        return source, None
    names = [t.strip() for t in tasks.split(",")]
    if not folder or not all(names):
        raise UserError(f"{source!r} names no task after its colon; give FOLDER or FOLDER:TASK[,TASK...].")
    return folder, frozenset(names)


def result_files(folders: list[str]) -> list[Path]:
    """Every *.json under the folders, each file once, in a fixed order."""
    files: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise UserError(f"Results folder {folder!r} does not exist.")
        if not root.is_dir():
            raise UserError(f"{folder!r} is not a folder; give folders that hold result JSON files.")
        for path in sorted(root.rglob("*.json")):
            if path.resolve() not in seen:  # overlapping folders name a file twice
                seen.add(path.resolve())
                files.append(path)
    return files


def _task(entry: CostPass | ScalingPoint | Run | Failure | str) -> Optional[str]:
    """The task an entry belongs to: None for a scaling point (of no task) or a skipped file's sentence."""
    if isinstance(entry, CostPass):
        return entry.task
    return entry.id.task if isinstance(entry, (Run, Failure)) else None


def _selected(read: list[tuple], sources: list[tuple[str, Optional[frozenset[str]]]]) -> list[tuple]:
    """The entries of `read` (path, entry, budget) that their folder's task selection keeps: every one for a
    plain folder; for FOLDER:TASKS, those tasks' runs and cost passes, and the files it had to skip. A file
    under two sources is kept when either keeps it; a selected task with no result in its folder is an error."""
    kept, found = [], {source: set() for source in sources}
    # by absolute path, symbolic links not followed: a linked result file belongs to the folder that links it
    roots = [(Path(os.path.abspath(folder)), (folder, tasks)) for folder, tasks in sources]
    for path, entry, budget in read:
        task = _task(entry)
        parents = Path(os.path.abspath(path)).parents
        under = [source for root, source in roots if root in parents]
        for source in under:
            found[source].add(task)
        if any(tasks is None or task in tasks or isinstance(entry, str) for _, tasks in under):
            kept.append((path, entry, budget))
    for (folder, tasks), present in found.items():
        missing = sorted(tasks - present) if tasks is not None else []
        if missing:
            have = ", ".join(sorted(t for t in present if t)) or "none"
            raise UserError(f"{folder!r} has no result of task {missing[0]!r} (its tasks: {have}).")
    return kept


def collect(folders: list[str]) -> Collection:
    """The results under the folders (each a RESULTS_DIR argument: FOLDER, or FOLDER:TASK[,TASK...])."""
    sources = [parse_source(folder) for folder in folders]
    folders = list(dict.fromkeys(folder for folder, _ in sources))
    files = result_files(folders)
    read = _selected([(path, *_read(path)) for path in files], sources)
    tuned = tuned_budgets([(entry, budget) for _, entry, budget in read if budget is not None])
    runs: list[Run] = []
    failures: list[Failure] = []
    tuning: list[Run | Failure] = []
    longer: list[Run | Failure] = []
    scaling: list[ScalingPoint] = []
    costs: list[CostPass] = []
    skipped: list[str] = []
    first_file: dict[tuple, Path] = {}
    for path, entry, budget in read:  # in the files' order, so that the first of two repeats is kept
        if isinstance(entry, str):
            skipped.append(entry)
            continue
        if isinstance(entry, CostPass):
            if ("cost", entry.task) in first_file:
                skipped.append(f"{path} repeats the cost pass of {entry.task} in {first_file[('cost', entry.task)]}; "
                               f"only the first is used.")
            else:
                first_file[("cost", entry.task)] = path
                costs.append(entry)
            continue
        if isinstance(entry, ScalingPoint):
            if ("point",) + entry.key in first_file:
                skipped.append(f"{path} repeats the scaling point in {first_file[('point',) + entry.key]} (same "
                               f"series, model, size, tokens, device and precision); only the first is used.")
            else:
                first_file[("point",) + entry.key] = path
                scaling.append(entry)
            continue
        # A seed counted twice would shrink the spread and weigh one run double; a tuning run is
        # one setting (learning rate, warm-up) of its grid, a test run one budget of its setting.
        in_tuning = entry.eval_split == VALIDATION
        if not in_tuning and budget is not None:
            entry = replace(entry, budget_multiple=budget.multiple_of(tuned[entry.id.task]))
        key = (entry.id, entry.eval_split, (entry.lr, entry.warmup) if in_tuning else entry.budget_multiple)
        if key in first_file:
            skipped.append(f"{path} repeats the run in {first_file[key]} (same task, model, size, variant, seed, "
                           f"device{_repeat_tail(entry)}); only the first is used.")
            continue
        first_file[key] = path
        if in_tuning:
            tuning.append(entry)
        elif entry.budget_multiple > 1:
            longer.append(entry)
        else:
            (runs if isinstance(entry, Run) else failures).append(entry)
    return Collection(runs, failures, skipped, len(read), tuning, scaling, costs, read_notes(folders), longer)


def _read(path: Path) -> tuple[CostPass | ScalingPoint | Run | Failure | str, Optional[Budget]]:
    """What the file holds, or the sentence why it is skipped; and the budget a run asked for."""
    try:
        data = read_json(path)
        if is_cost_pass(data):
            return _cost_pass(validate_cost_pass(data, str(path)), str(path)), None
        if is_point(data):
            return _scaling_point(validate_point(data, str(path)), str(path)), None
        data = validate_result(data, str(path))
        entry = _failure(data, str(path)) if data["status"] != "ok" else _run(data, str(path))
        return entry, _budget(data, str(path))
    except ResultError as e:
        return str(e), None


def tuned_budgets(entries: list[tuple[Run | Failure, Budget]]) -> dict[str, Budget]:
    """Per task, the budget its settings were tuned at: its tuning runs' (the smallest, should they
    differ), or without tuning runs its test runs' smallest."""
    tuning: dict[str, list[Budget]] = {}
    tested: dict[str, list[Budget]] = {}
    for entry, budget in entries:
        (tuning if entry.eval_split == VALIDATION else tested).setdefault(entry.id.task, []).append(budget)
    return {task: min(budgets, key=lambda b: b.amount) for task, budgets in {**tested, **tuning}.items()}


def _repeat_tail(entry: Run | Failure) -> str:
    """The end of a repeat's sentence: what else its run and the first one share."""
    if entry.eval_split == VALIDATION:
        return ", precision, validation split, learning rate and warm-up"
    if entry.budget_multiple > 1:
        return f", precision and budget ({entry.budget_multiple}x the tuned one)"
    return " and precision"


def _budget(data: dict[str, Any], source: str) -> Optional[Budget]:
    """The budget a run asked for; None where its config records neither max_steps nor epochs."""
    batch_size = _get(data, "config.optim.batch_size", int, source, required=False)
    steps = _get(data, "config.optim.max_steps", int, source, required=False)
    if steps is not None:
        return Budget("steps", steps, batch_size)
    epochs = _get(data, "config.optim.epochs", (int, float), source, required=False)
    return None if epochs is None else Budget("epochs", float(epochs), batch_size)


def _identity(data: dict[str, Any], source: str) -> Identity:
    task = _get(data, "task", _NAME, source)
    if task in _OTHER_PAGES:
        raise ResultError(
            f"{source} has task {task!r}; a task name is letters, digits, '_', '-' and '.', "
            f"and not {' or '.join(_OTHER_PAGES)}."
        )
    name = _get(data, "environment.device_name", _DEVICE, source)
    processes = _get(data, "environment.num_processes", int, source, required=False) or 1
    device_type = _get(data, "environment.device_type", _NAME, source)
    ranked_on = POOLED_CPU if device_type == "cpu" else name
    return Identity(
        task=task,
        family=_get(data, "model", _NAME, source),
        size=_get(data, "size", _NAME, source),
        variant=_get(data, "variant", _VARIANT, source, required=False) or "",
        seed=_get(data, "seed", int, source),
        device=ranked_on if processes == 1 else f"{processes}x {ranked_on}",
        device_type=device_type,
        precision=_get(data, "environment.precision", _NAME, source),
        device_name=name,
    )


def _failure(data: dict[str, Any], source: str) -> Failure:
    return Failure(_identity(data, source), data["status"], _get(data, "error", str, source, required=False),
                   _provenance(data, source), _eval_split(data, source), _lr(data, source), _recipe(data, source),
                   _get(data, "config.optim.warmup_fraction", (int, float), source, required=False),
                   _tune(data, source))


def _tune(data: dict[str, Any], source: str) -> Optional[TuneGrid]:
    """The tuning a sweep's tuning run records (bench.results: "tune"); None where it records none."""
    record = data.get("tune")
    if record is None:
        return None
    if not valid_tune_record(record):
        raise ResultError(f"{source} has tune = {_shown(record)}, which is not a valid value for that field.")
    warmup = record["warmup"]
    return TuneGrid(tuple(sorted(map(float, record["lr"]))), None if warmup is None else tuple(map(float, warmup)),
                    record["extend"])


def _recipe(data: dict[str, Any], source: str) -> str:
    """The run's recipe name; results written before recipes trained with the suite's."""
    return _get(data, "recipe.name", _NAME, source, required=False) or DEFAULT_RECIPE


def _eval_split(data: dict[str, Any], source: str) -> str:
    split = _get(data, "config.data.eval_split", _NAME, source, required=False) or TEST
    if split not in EVAL_SPLITS:
        raise ResultError(f"{source} has config.data.eval_split = {split!r}; expected {' or '.join(EVAL_SPLITS)}.")
    return split


def _lr(data: dict[str, Any], source: str) -> Optional[float]:
    lr = _get(data, "config.optim.lr", (int, float), source, required=False)
    return None if lr is None else float(lr)


def _protocol(data: dict[str, Any], source: str) -> Protocol:
    def get(key: str, kind):
        return _get(data, key, kind, source, required=False)

    number = (int, float)
    return Protocol(
        steps=get("train.steps", int), batch_size=get("config.optim.batch_size", int),
        epochs=get("train.epochs", number), samples=get("train.samples", int),
        train_subset=get("config.data.max_train_samples", int),
        weight_decay=get("config.optim.weight_decay", number),
        warmup_fraction=get("config.optim.warmup_fraction", number),
        label_smoothing=get("config.optim.label_smoothing", number),
        precision=get("environment.precision", _NAME), device_name=get("environment.device_name", _DEVICE),
        cpu_threads=get("environment.cpu_threads", int), bench_clock=get("config.measure.bench_clock", _NAME),
    )


def _provenance(data: dict[str, Any], source: str) -> Provenance:
    environment = data["environment"] if isinstance(data["environment"], dict) else {}
    commit, dirty = git_provenance(environment)
    if commit is not None and not _COMMIT.fullmatch(commit):
        raise ResultError(f"{source} has environment.git_commit = {_shown(commit)}, which is not a valid value "
                          f"for that field.")
    return Provenance(source, commit, dirty)


def _run(data: dict[str, Any], source: str) -> Run:
    def number(key: str, signed: bool = False) -> Optional[float]:
        return _get(data, key, (int, float), source, required=False, signed=signed)

    flops = number("flops.forward_per_sample")
    stable = _get(data, "throughput.stable", bool, source, required=False)
    metric_name = _get(data, "primary_metric.name", _NAME, source)
    run = Run(
        id=_identity(data, source),
        metric_name=metric_name,
        higher_is_better=_get(data, "primary_metric.higher_is_better", bool, source),
        metric=number("primary_metric.value", signed=True),
        params=_get(data, "params", int, source),
        gflops=None if flops is None else flops / 1e9,
        train_samples_per_s=number("throughput.train_samples_per_s"),
        infer_samples_per_s=number("throughput.infer_samples_per_s"),
        train_tokens_per_s=number("throughput.train_tokens_per_s"),
        infer_tokens_per_s=number("throughput.infer_tokens_per_s"),
        train_peak_mb=number("memory.train_peak_mb"),
        memory_kind=_get(data, "memory.kind", _NAME, source, required=False),
        eval_samples=_get(data, "metrics.eval_samples", int, source, required=False),
        stable=stable is not False,
        unstable_reason=_get(data, "throughput.unstable_reason", str, source, required=False),
        provenance=_provenance(data, source),
        eval_split=_eval_split(data, source),
        lr=_lr(data, source),
        protocol=_protocol(data, source),
        floors=tuple((name, float(value)) for name in FLOOR_METRICS
                     if (value := number(f"metrics.{name}", signed=True)) is not None),
        modality=_get(data, "modality", _NAME, source, required=False),
        baseline=_get(data, "baseline", bool, source, required=False) or False,
        relative_of=_get(data, "relative_of", _NAME, source, required=False),
        recipe=_recipe(data, source),
        tune=_tune(data, source),
        reference=_get(data, "reference", bool, source, required=False) or False,
        train_metric=number(f"train.scored.{metric_name}"),
    )
    # Only a tuning run scores validation along the way; a test run's history is its one final evaluation.
    return replace(run, curve=_curve(data, source, run.metric_name)) if run.eval_split == VALIDATION else run


def _curve(data: dict[str, Any], source: str, metric: str) -> tuple[CurvePoint, ...]:
    """The learning curve a run's history holds: (step, primary metric) per entry, the steps increasing;
    () where it holds one entry or none. A history of one entry is not read further: it is the final
    evaluation, which the result's primary_metric already gives."""
    history = _get(data, "history", list, source, required=False) or []
    if len(history) < 2:
        return ()
    points: list[CurvePoint] = []
    for i, entry in enumerate(history):
        where = f"history[{i}]"  # the field a skip sentence names; the brackets keep it one key of _get's path
        entry = {where: _get({where: entry}, where, dict, source)}
        optional = lambda key: _get(entry, f"{where}.{key}", (int, float), source, required=False)  # noqa: E731
        point = CurvePoint(_get(entry, f"{where}.step", int, source),
                           float(_get(entry, f"{where}.metrics.{metric}", (int, float), source, signed=True)),
                           optional("metrics.loss"), optional("train_loss"))
        if points and point.step <= points[-1].step:
            raise ResultError(f"{source} has {where}.step = {point.step}, which is not a valid value for that "
                              f"field: the steps of a history increase, and the entry before it is at step "
                              f"{points[-1].step}.")
        points.append(point)
    return tuple(points)


def _scaling_point(data: dict[str, Any], source: str) -> ScalingPoint:
    def number(key: str) -> Optional[float]:
        return _get(data, key, (int, float), source, required=False)

    def giga(key: str) -> Optional[float]:
        value = number(key)
        return None if value is None else value / 1e9

    settings = _get(data, "config.scaling", dict, source, required=False) or {}
    load = _get(data, "environment.load_average", list, source, required=False)
    stable = _get(data, "throughput.stable", bool, source, required=False)
    return ScalingPoint(
        series=_get(data, "series", str, source),
        modality=_get(data, "modality", str, source),
        family=_get(data, "model", str, source),
        size=_get(data, "size", str, source),
        baseline=_get(data, "baseline", bool, source, required=False) or False,
        tokens=_get(data, "tokens", int, source),
        device=_get(data, "environment.device_name", str, source),
        device_type=_get(data, "environment.device_type", str, source),
        precision=_get(data, "environment.precision", str, source),
        status=data["status"],
        error=_get(data, "error", str, source, required=False),
        params=_get(data, "params", int, source, required=False),
        gflops=giga("flops.forward_per_sample"),
        analytic_gflops=giga("flops.analytic_forward_per_sample"),
        infer_samples_per_s=number("throughput.infer_samples_per_s"),
        train_samples_per_s=number("throughput.train_samples_per_s"),
        latency_ms=number("latency_ms.p50"),
        infer_peak_mb=number("memory.infer_peak_mb"),
        train_peak_mb=number("memory.train_peak_mb"),
        memory_kind=_get(data, "memory.kind", str, source, required=False),
        stable=stable is not False,
        unstable_reason=_get(data, "throughput.unstable_reason", str, source, required=False),
        settings=tuple(sorted((k, v) for k, v in settings.items() if isinstance(v, (str, int, float, type(None))))),
        cpu_threads=_get(data, "environment.cpu_threads", int, source, required=False),
        cpu_count=_get(data, "environment.cpu_count", int, source, required=False),
        load_average=float(load[0]) if load and isinstance(load[0], (int, float)) else None,
        measure_lock=_get(data, "environment.measure_lock", bool, source, required=False),
        provenance=_provenance(data, source),
    )


def _cost_pass(data: dict[str, Any], source: str) -> CostPass:
    def phase(model: dict[str, Any], where: str) -> CostFigures:
        ci = _get(model, f"{where}.ci", list, source)
        if len(ci) != 2:
            raise ResultError(f"{source} has {where}.ci = {_shown(ci)}, which is not a valid value for that field.")
        return CostFigures(
            samples_per_s=_get(model, f"{where}.samples_per_s", (int, float), source),
            ci=tuple(_get({"ci": v}, "ci", (int, float), source) for v in ci),
            tokens_per_s=_get(model, f"{where}.tokens_per_s", (int, float), source, required=False),
            seed_spread=_get(model, f"{where}.seed_spread", (int, float), source),
        )

    models = [
        CostModel(
            family=_get(model, "model", _NAME, source), size=_get(model, "size", _NAME, source),
            variant=_get(model, "variant", _VARIANT, source, required=False) or "",
            baseline=_get(model, "baseline", bool, source, required=False) or False,
            params=_get(model, "params", int, source),
            seeds=tuple(_get({"seed": s}, "seed", int, source) for s in _get(model, "seeds", list, source)),
            train=phase(model, "train"), infer=phase(model, "infer"),
        )
        for model in data["models"]
    ]
    load = _get(data, "environment.load_average", list, source, required=False) or []
    return CostPass(
        task=_get(data, "task", _NAME, source),
        device=_get(data, "environment.device_name", _DEVICE, source),
        device_type=_get(data, "environment.device_type", _NAME, source),
        precision=_get(data, "settings.precision", _NAME, source),
        threads=_get(data, "settings.threads", int, source, required=False),
        clock=_get(data, "settings.clock", _NAME, source),
        batch_size=_get(data, "batch_size", int, source),
        rounds=_get(data, "settings.rounds", int, source),
        steps=_get(data, "settings.steps", int, source),
        warmup=_get(data, "settings.warmup", int, source),
        drift=_get(data, "drift.train", (int, float), source, required=False),
        load_average=tuple(x if isinstance(x, (int, float)) and not isinstance(x, bool) else None for x in load),
        models=tuple(models),
        provenance=_provenance(data, source),
    )


def _get(data: dict[str, Any], dotted: str, kind, source: str, required: bool = True, signed: bool = False):
    """The value at a dotted path, checked against `kind`: a type, or a pattern a string must match.
    A number must lie in [0, LIMIT], or [-LIMIT, LIMIT] when `signed`. None when absent or null and
    not required."""
    value: Any = data
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        if required:
            raise ResultError(f"{source} has no {dotted}; it is not a complete result of this suite.")
        return None
    if isinstance(kind, re.Pattern):
        valid = isinstance(value, str) and kind.fullmatch(value) is not None
    else:  # bool is an int in Python, but true is no seed or parameter count
        valid = isinstance(value, kind) and isinstance(value, bool) == (kind is bool)
        if valid and isinstance(value, (int, float)) and not isinstance(value, bool):  # nan fails the comparison
            valid = (-LIMIT if signed else 0) <= value <= LIMIT
    if not valid:
        raise ResultError(f"{source} has {dotted} = {_shown(value)}, which is not a valid value for that field.")
    return value


def task_provenances(collection: Collection) -> dict[str, list[Provenance]]:
    """The provenance of every result, by task (the cost-scaling study's points under "scaling")."""
    tasks: dict[str, list[Provenance]] = {}
    for entry in [*collection.runs, *collection.failures, *collection.tuning, *collection.longer]:
        tasks.setdefault(entry.id.task, []).append(entry.provenance)
    for point in collection.scaling:
        tasks.setdefault("scaling", []).append(point.provenance)
    return tasks


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def provenance_warnings(collection: Collection) -> list[str]:
    """One sentence per provenance problem of the results used (finished, failed, tuning and longer-budget
    runs), naming the files: results from a tree with uncommitted changes, from more than one commit, or
    with no recorded commit."""
    entries = sorted((e.provenance for e in [*collection.runs, *collection.failures, *collection.tuning,
                                             *collection.longer, *collection.scaling, *collection.costs]),
                     key=lambda p: p.source)
    tasks = task_provenances(collection)
    warnings = []
    dirty = [p.source for p in entries if p.dirty]
    if dirty:
        warnings.append(
            f"{len(dirty)} of {len(entries)} results come from a tree with uncommitted changes, so no commit "
            f"holds the code that made them: {', '.join(dirty)}"
        )
    for task, provenances in sorted(tasks.items()):  # a task's architectures are compared with each other
        commits = sorted({p.commit for p in provenances if p.commit})
        if len(commits) > 1:
            by_commit = "; ".join(
                f"{commit[:12]}: {', '.join(sorted(p.source for p in provenances if p.commit == commit))}"
                for commit in commits
            )
            warnings.append(f"the results of {task} come from {len(commits)} commits: {by_commit}")
    unknown = [p.source for p in entries if not p.commit]
    if unknown:
        warnings.append(f"{len(unknown)} of {len(entries)} results record no commit: {', '.join(unknown)}")
    return warnings
