"""Throughput regression check: is the working tree slower than a git ref, or than a stored baseline?

    python -m bench.regress                          # the working tree against main
    python -m bench.regress --ref HEAD~3 --case gmlp-mini:digits:32:fp32:train
    python -m bench.regress --save-baseline base.json   # measure the working tree, keep the samples
    python -m bench.regress --baseline base.json        # compare the working tree with them

A/B: the ref is checked out in a temporary git worktree; each side runs in its own long-lived
worker process, its own checkout's `python -m bench.regress_worker` started in that checkout, so
each measures its own code with its own worker: a ref from before a change of the suite's
structure is timed as its own runner ran. A ref older than the check itself (no
bench/regress_worker.py) is refused. Rounds alternate between the sides (which goes first is drawn per round),
so a burst of load from other jobs hits both alike; each round times every case through
`bench.measure.timing` and yields one seconds-per-step sample per repeat.

Decision per case, as asv decides: ratio = median(new) / median(base) of seconds per step; a
regression iff the ratio exceeds 1 + tolerance AND a one-sided Mann-Whitney U test says the new
samples are larger with p < alpha. The size threshold keeps real but harmless noise (a process
that happens to run 2% slower) from failing a build; the test keeps one unlucky burst from doing so.

Exit codes: 0 no regression, 1 a regression, 2 could not measure (bad ref, worker failure,
missing, corrupt or mismatched baseline, bad flags), 130 / 143 stopped by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Optional

from bench.core.config import PRECISIONS, Config, add_flags, command_parser, flag, require
from bench.core.errors import SignalCatcher, UserError, run_command
from bench.regress_worker import INJECT_SLOWDOWN_ENV  # imports nothing heavy
from bench.core.results import check_output_file, write_json_atomic, write_text_atomic

SUITE_ROOT = Path(__file__).resolve().parent.parent
WORKER = "bench/regress_worker.py"  # in every checkout the check can time, run as python -m bench.regress_worker
PHASES = ("infer", "train")
EXAMPLE_CASE = "gmlp-mini:digits:32:fp32:infer"
BASELINE_KIND = "mlpbench-regress-baseline"
RECORD_KIND = "mlpbench-regress"
FORMAT_VERSION = 1
BOOTSTRAP_RESAMPLES = 2000
WORKING_TREE = {"label": "working tree", "checkout": str(SUITE_ROOT)}


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


# ---------------------------------------------------------------------------------------------
# Decision


@dataclass(frozen=True)
class Verdict:
    ratio: float  # median(new) / median(base) seconds per step: above 1 is slower
    ci: tuple[float, float]  # 95% bootstrap interval of the ratio
    p_slower: float  # one-sided Mann-Whitney U: new samples larger than base samples
    p_faster: float
    status: str  # "regression", "faster" or "ok"


def decide(base: list[float], new: list[float], tolerance: float, alpha: float) -> Verdict:
    """Regression iff the new side is slower by more than `tolerance` and significantly so (p < alpha)."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    ratio = statistics.median(new) / statistics.median(base)
    p_slower = float(mannwhitneyu(new, base, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(new, base, alternative="less").pvalue)
    if ratio > 1 + tolerance and p_slower < alpha:
        status = "regression"
    elif ratio < 1 / (1 + tolerance) and p_faster < alpha:
        status = "faster"
    else:
        status = "ok"
    rng = np.random.default_rng(0)  # a fixed seed: the same samples always give the same interval
    resampled = np.median(rng.choice(new, (BOOTSTRAP_RESAMPLES, len(new))), axis=1) / np.median(
        rng.choice(base, (BOOTSTRAP_RESAMPLES, len(base))), axis=1
    )
    low, high = np.percentile(resampled, [2.5, 97.5])
    return Verdict(ratio, (float(low), float(high)), p_slower, p_faster, status)


# ---------------------------------------------------------------------------------------------
# Git


def git(*args: str, cwd: Path = SUITE_ROOT) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise CouldNotMeasure(f"git {args[0]} failed ({e}).") from None
    if out.returncode != 0:
        detail = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise CouldNotMeasure(f"git {args[0]} failed in {cwd}: {detail}.")
    return out.stdout.strip()


def resolve_ref(ref: str) -> str:
    """The commit a ref names, or one sentence saying it names none or one the check cannot time."""
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except CouldNotMeasure:
        raise CouldNotMeasure(f"{ref!r} is not a commit of the git repository in {SUITE_ROOT}.") from None
    try:
        git("cat-file", "-e", f"{commit}:{WORKER}")
    except CouldNotMeasure:
        raise CouldNotMeasure(
            f"{ref!r} predates the regression check (it has no {WORKER} to time its own code with); "
            f"compare against a later ref."
        ) from None
    return commit


@contextmanager
def temporary_worktree(commit: str) -> Iterator[Path]:
    """A detached git worktree of `commit`, removed afterwards, also on an error, SIGINT or SIGTERM.

    It is added with stop signals deferred (StopSignals): `git worktree add` killed half-way, as
    subprocess.run kills it on Ctrl-C, leaves the worktree locked ("initializing"), and neither
    `git worktree remove --force` nor `git worktree prune` deletes a locked worktree."""
    parent = None
    try:
        with signals.deferred():
            parent = Path(tempfile.mkdtemp(prefix="mlpbench-regress-"))
            git("worktree", "add", "--detach", str(parent / "base"), commit)
        yield parent / "base"
    finally:
        if parent is not None:
            if (parent / "base").exists():
                subprocess.run(["git", "worktree", "remove", "--force", str(parent / "base")], cwd=SUITE_ROOT,
                               capture_output=True)
            shutil.rmtree(parent, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=SUITE_ROOT, capture_output=True)


# ---------------------------------------------------------------------------------------------
# Stop signals


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the check; bench.core.errors.run_command exits with 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopSignals(SignalCatcher):
    """SIGINT and SIGTERM stop the check by raising Interrupted, once: later ones are ignored, so the
    cleanup that follows (killing the workers, removing the worktree) always runs to its end. Inside
    `deferred()` the signal waits until the block has ended, for what must not stop half-way: adding
    the worktree, and starting a worker together with registering it for the cleanup."""

    @contextmanager
    def deferred(self):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self.received is not None:  # also in place of an error it caused (git stopped by Ctrl-C)
                raise Interrupted(self.received)

    def _handle(self, signum, frame):
        if self.received is not None:
            return
        self.received = signum
        if not self._deferring:
            raise Interrupted(signum)


signals = StopSignals()  # one per process, as signal handlers are


# ---------------------------------------------------------------------------------------------
# Workers


class Worker:
    """A worker process measuring `cases` with the code of `checkout`, that checkout's own
    bench/regress_worker.py."""

    def __init__(self, label: str, checkout: Path, cases: list[Case], cfg: RegressConfig, inject_slowdown: float = 0):
        self.label = label
        env = {key: value for key, value in os.environ.items() if key != INJECT_SLOWDOWN_ENV}
        env.update(OMP_NUM_THREADS=str(cfg.threads), MKL_NUM_THREADS=str(cfg.threads), TQDM_DISABLE="1")
        if inject_slowdown:
            env[INJECT_SLOWDOWN_ENV] = str(inject_slowdown)
        self.stderr = tempfile.TemporaryFile(mode="w+")
        # A process group of its own: Ctrl-C at a terminal reaches the driver only, which ends the worker.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.regress_worker", str(checkout), str(cfg.threads)],
            cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, bufsize=1, process_group=0,
        )
        self._send({"cases": [asdict(c) for c in cases], "warmup": cfg.warmup, "steps": cfg.steps, "repeats": cfg.repeats})

    def ready(self) -> dict:
        """Wait until every case is built and warmed up; the worker's environment fingerprint."""
        return self._receive("ready", "while building the cases")

    def measure(self, index: int, case: Case) -> list[float]:
        self._send({"case": index})
        return self._receive("seconds_per_step", f"while measuring {case.name}")

    def close(self) -> None:
        """Kill the worker's process group, whatever it is doing, and reap it: the cleanup never waits
        for a slow worker, and no process of it is left running in a checkout about to be removed."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group has ended
            pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            stream.close()

    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError:
            pass  # the worker is gone; _receive says why

    def _receive(self, key: str, doing: str):
        line = self.process.stdout.readline()
        message = json.loads(line) if line.strip().startswith("{") else {}
        if key in message:
            return message[key]
        if "error" in message:
            raise CouldNotMeasure(f"The {self.label} side failed {doing}: {message['error'].rstrip('.')}.")
        self.stderr.seek(0)
        last = ([ln for ln in self.stderr.read().splitlines() if ln.strip()] or ["no output"])[-1].strip()
        raise CouldNotMeasure(f"The {self.label} side's worker exited ({self.process.wait()}) {doing}: {last.rstrip('.')}.")


@contextmanager
def workers(sides: dict[str, tuple[Path, float]], cases: list[Case], cfg: RegressConfig) -> Iterator[dict[str, Worker]]:
    """{label: Worker} for {label: (checkout, injected slowdown)}, started together, stopped on exit."""
    with ExitStack() as stack:
        started = {}
        for label, (checkout, slowdown) in sides.items():
            with signals.deferred():  # a worker started is a worker the cleanup ends
                started[label] = Worker(label, checkout, cases, cfg, slowdown)
                stack.callback(started[label].close)
        yield started


def measure_interleaved(running: dict[str, Worker], cases: list[Case], cfg: RegressConfig) -> dict[str, dict[str, list[float]]]:
    """{label: {case name: seconds-per-step samples}}: rounds alternate between the sides, in random order."""
    from tqdm.auto import tqdm

    order = random.Random(0)  # reproducible, and independent of anything the machine does
    samples = {label: {case.name: [] for case in cases} for label in running}
    with tqdm(total=cfg.rounds * len(cases) * len(running), desc="measure", unit="case", file=sys.stderr) as bar:
        for _ in range(cfg.rounds):
            for index, case in enumerate(cases):
                for label in order.sample(list(running), len(running)):
                    samples[label][case.name] += running[label].measure(index, case)
                    bar.update()
    return samples


def check_fingerprints(fingerprints: dict[str, dict]) -> dict:
    """The one environment both sides share (they run the same Python, so any difference is a fault)."""
    first, *others = fingerprints.values()
    for label, other in fingerprints.items():
        if other != first:
            raise CouldNotMeasure(f"The {label} side runs in another environment than the rest ({other}).")
    return first


# ---------------------------------------------------------------------------------------------
# Stored baselines


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


# ---------------------------------------------------------------------------------------------
# Reports


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


def check_writable(path: Optional[str], flag_name: str) -> None:
    """Fail before measuring, not after, when an output cannot be written."""
    if path is None:
        return
    check_output_file(path, flag_name)
    if not Path(path).resolve().parent.is_dir():
        raise UserError(f"{flag_name} {path}: the folder {Path(path).parent} does not exist.")


# ---------------------------------------------------------------------------------------------
# Entry point


def run(cfg: RegressConfig, case_names: list[str] | None) -> int:
    for path, name in ((cfg.json, "--json"), (cfg.markdown, "--markdown"), (cfg.save_baseline, "--save-baseline")):
        check_writable(path, name)
    if cfg.save_baseline:
        return save_baseline(cfg, parse_cases(case_names))
    record = compare_with_baseline(cfg, case_names) if cfg.baseline else compare_with_ref(cfg, parse_cases(case_names))
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


def parse_cases(names: list[str] | None) -> list[Case]:
    """The cases named, each of a registered model and task, before any checkout or worker is made."""
    from bench.models import list_models
    from tasks import TASKS

    cases = [Case.parse(name) for name in names or default_cases()]
    require(len({c.name for c in cases}) == len(cases), "A --case is given twice; give each case once.")
    for case in cases:
        require(case.model in list_models(),
                f"--case {case.name!r}: no model {case.model!r}; models are {', '.join(list_models())}.")
        require(case.task in TASKS, f"--case {case.name!r}: no task {case.task!r}; tasks are {', '.join(TASKS)}.")
    return cases


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m bench.regress", __doc__.strip().splitlines()[0],
                            "  python -m bench.regress --ref HEAD --case gmlp-mini:digits:32:fp32:infer")
    parser.add_argument(
        "--case", action="append", dest="cases", metavar="MODEL-SIZE:TASK:BATCH:PRECISION:PHASE",
        help="a case to time, repeatable; phase is infer or train (default: inference of every image family "
             "that is no relative of another at its mini size on digits, batch 32, fp32, and training of the "
             f"first; e.g. {EXAMPLE_CASE})",
    )
    add_flags(parser, RegressConfig)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def compare() -> int:
        return run(RegressConfig(**{f.name: getattr(args, f.name) for f in fields(RegressConfig)}), args.cases)

    # A fault of the check itself is still one sentence, and "could not measure".
    with signals.installed():
        return run_command(compare, "Interrupted; nothing was compared.", CouldNotMeasure.exit_code)


if __name__ == "__main__":
    sys.exit(main())
