"""Sharing the machine with other runs: measurements take turns, and nothing runs beside them.

A sweep with several jobs names a lock file in MLPBENCH_MEASURE_LOCK for every run it starts.
A run holds the lock exclusively while it measures (`measuring`); every other run takes it
shared for an instant before each training step and each evaluation batch (`wait_for_measurements`),
so it pauses while any measurement is in progress. Cost figures then come from a machine that
no run of the sweep shares, whatever --jobs is. Without the variable both are no-ops.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator, Optional

MEASURE_LOCK_ENV = "MLPBENCH_MEASURE_LOCK"

_handle: Optional[int] = None  # this process's descriptor of the lock file, opened once


def _lock_fd() -> Optional[int]:
    global _handle
    path = os.environ.get(MEASURE_LOCK_ENV)
    if not path:
        return None
    if _handle is None:
        _handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    return _handle


@contextmanager
def measuring() -> Iterator[None]:
    """Hold the machine for a measurement: wait for the other runs' measurements, then make every
    other run pause at its next step until this one ends."""
    fd = _lock_fd()
    if fd is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def wait_for_measurements() -> None:
    """Return at once, or when the measurement another run is making ends."""
    fd = _lock_fd()
    if fd is None:
        return
    fcntl.flock(fd, fcntl.LOCK_SH)
    fcntl.flock(fd, fcntl.LOCK_UN)
