"""Errors a user can cause and fix. The runner prints their message as one sentence and exits 2."""

from __future__ import annotations

import signal
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Optional


class UserError(Exception):
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


class SignalCatcher:
    """SIGINT and SIGTERM routed to `_handle` while `installed()`; `received` is the first one caught.
    Subclasses decide what a signal does (bench.loop: stop after the training step; bench.regress:
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


def run_command(body: Callable[[], int], interrupted: str = "Interrupted.", unexpected_exit_code: int = 1) -> int:
    """A command's exit code: `body()`'s, or one sentence on stderr when it fails or Ctrl-C stops it.

    A UserError exits with its own code, Ctrl-C with 130 (a KeyboardInterrupt carrying a `signum`, as
    a command's own stop-signal handler raises it, with 128 + signum) and any other exception, a
    fault of the command itself, with `unexpected_exit_code`.
    """
    try:
        return body()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        print(f"error: {interrupted}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except Exception as e:
        print(f"error: Unexpected {type(e).__name__}: {e}.", file=sys.stderr)
        return unexpected_exit_code
