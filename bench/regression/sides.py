"""The regression check's sides: the ref's commit in a temporary git worktree, a worker process per side
(its own checkout's bench/regress_worker.py), the rounds interleaved between them, and the stop signals
that end them cleanly."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from bench.core.errors import SignalCatcher
from bench.regression.cases import SUITE_ROOT, Case, CouldNotMeasure, RegressConfig

WORKER = "bench/regress_worker.py"  # in every checkout the check can time, run as python -m bench.regress_worker
# The worker's test-only slowdown (bench/regress_worker.py's INJECT_SLOWDOWN_ENV, the same in every checkout: its
# protocol); not imported from the worker, a command.
INJECT_SLOWDOWN_ENV = "MLPBENCH_INJECT_SLOWDOWN"


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
