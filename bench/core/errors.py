"""Errors a user can cause and fix, and how every command ends: one sentence on stderr and an exit
code (`run_command`); a user's error exits 2."""

from __future__ import annotations

import os
import signal
import stat
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

DEBUG_HINT = "Rerun with --debug for the traceback."


class CommandError(Exception):
    """An error that ends a command with its own message as one sentence and its own exit code."""

    exit_code = 1


class UserError(CommandError):
    """A mistake in the command line, the data or the environment that the user can fix."""

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """A task, model or size name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PairError(UserError):
    """A (task, model, size) combination that cannot run, raised before any data is loaded."""


class DataError(UserError):
    """Missing, empty, unreachable or malformed data."""


class DiskFullError(UserError):
    """A file that could not be written because its disk (or the user's quota on it) is full; nothing
    of it was left behind and the file it would have replaced is intact (bench.core.results.atomic_path)."""


class SignalCatcher:
    """SIGINT and SIGTERM routed to `_handle` while `installed()`; `received` is the first one caught.
    Subclasses decide what a signal does (bench.training.loop: stop after the training step; bench.regress:
    stop once, finishing what must not stop half-way)."""

    def __init__(self):
        self.received: Optional[int] = None
        self._deferring = False

    @contextmanager
    def installed(self):
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.received = None

    def _handle(self, signum, frame):
        raise NotImplementedError


def first_line(error: BaseException) -> str:
    """An exception's message cut to one line, for a one-sentence report."""
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else "no message"


def launched_through_a_tee() -> bool:
    """Whether this process runs under `accelerate launch`'s single-process launcher, which copies the
    child's stderr through a pipe and, when the child fails, raises an exception holding that pipe's
    last lines: a sentence written to stderr would be printed twice. Seen from here: stderr is a pipe,
    the parent is `accelerate launch` (or `accelerate-launch`, `python -m accelerate.commands.launch`) and its own
    stderr is another file."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        if not stat.S_ISFIFO(os.fstat(2).st_mode):
            return False
        words = [Path(w).name for w in Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace").split("\0")]
        theirs, mine = os.stat(f"/proc/{parent}/fd/2"), os.fstat(2)
    except OSError:
        return False
    launcher = ("accelerate-launch" in words or "accelerate.commands.launch" in words  # python -m accelerate.commands.launch
                or ("accelerate" in words and "launch" in words))
    return launcher and (theirs.st_dev, theirs.st_ino) != (mine.st_dev, mine.st_ino)


def report(sentence: str) -> None:
    """Print a command's closing error sentence once: on stderr, or, under a launcher that repeats the
    child's stderr in its own report of the failure (`launched_through_a_tee`), on stdout, which that
    launcher passes through untouched (`accelerate launch -q` leaves out its own report)."""
    print(sentence, file=sys.stdout if launched_through_a_tee() else sys.stderr, flush=True)


def run_command(body: Callable[[], int], interrupted: str = "Interrupted.", unexpected_exit_code: int = 1,
                debug: Optional[bool] = None) -> int:
    """A command's exit code: `body()`'s, or one sentence on stderr when it fails or Ctrl-C stops it.

    A CommandError (a UserError, a run stopped early) exits with its own code, Ctrl-C with 130 (a
    KeyboardInterrupt carrying a `signum`, as a command's own stop-signal handler raises it, with
    128 + signum) and any other exception, a fault of the command itself, with `unexpected_exit_code`.
    `debug`: for a command with a --debug flag, its value: True prints the traceback of an error,
    False ends the sentence of an unexpected one with how to see it (DEBUG_HINT).
    """
    try:
        return body()
    except CommandError as e:
        if debug:
            traceback.print_exc()
        report(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt as e:
        report(f"error: {interrupted}")
        return 128 + getattr(e, "signum", signal.SIGINT)
    except Exception as e:
        if debug:
            traceback.print_exc()
        hint = f" {DEBUG_HINT}" if debug is False else ""
        report(f"error: Unexpected {type(e).__name__}: {first_line(e)}.{hint}")
        return unexpected_exit_code
