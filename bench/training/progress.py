"""A run's progress, for the sweep that started it.

A sweep names a file in MLPBENCH_PROGRESS_FILE for each run it starts. The run's main process
writes there, atomically and at most every MIN_INTERVAL_S seconds (at once on a change of phase),
a tiny JSON object:

    {"phase": "loading" | "training" | "evaluation" | "measurement",
     "step": int, "total": int | None,      # optimizer steps, in training
     "start_step": int,                     # the step the phase began at (a resumed run's checkpoint)
     "elapsed_s": float,                    # since the run started
     "phase_elapsed_s": float}

The sweep reads it to print each running run's phase, step and time left (`describe`). Without
the variable everything here is a no-op; a failed write is ignored, as progress is only a courtesy.
This module imports no torch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

from bench.core.results import write_text_atomic

PROGRESS_ENV = "MLPBENCH_PROGRESS_FILE"
MIN_INTERVAL_S = 2.0
_clock = time.monotonic  # tests replace it


class Progress:
    def __init__(self):
        self.started = _clock()
        self.enabled = True  # False on every process but the main one
        self.phase_name: Optional[str] = None
        self.phase_started = self.started
        self.start_step = 0
        self.last_write = -float("inf")

    @property
    def path(self) -> Optional[str]:
        return os.environ.get(PROGRESS_ENV) or None

    def phase(self, name: str, step: int = 0, total: Optional[int] = None) -> None:
        """A new phase begins: written at once."""
        self.phase_name, self.phase_started, self.start_step = name, _clock(), step
        self._write(step, total)

    def step(self, step: int, total: Optional[int]) -> None:
        """A step of the current phase: written if MIN_INTERVAL_S passed since the last write."""
        if _clock() - self.last_write >= MIN_INTERVAL_S:
            self._write(step, total)

    def _write(self, step: int, total: Optional[int]) -> None:
        path = self.path
        if not path or not self.enabled:
            return
        now = _clock()
        self.last_write = now
        payload = {
            "phase": self.phase_name, "step": step, "total": total, "start_step": self.start_step,
            "elapsed_s": round(now - self.started, 3), "phase_elapsed_s": round(now - self.phase_started, 3),
        }
        try:
            write_text_atomic(path, json.dumps(payload))
        except OSError:
            pass


progress = Progress()  # one per process


def read_progress(path: Path) -> Optional[dict]:
    """The last progress a run wrote, or None (not written yet, or unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def describe(data: Optional[dict], elapsed_s: float) -> str:
    """One line's worth: "training step 40/300, 12s elapsed, about 1m18s left in training"."""
    if not data or not data.get("phase"):
        return f"starting, {duration(elapsed_s)} elapsed"
    phase = data["phase"]
    step, total = data.get("step"), data.get("total")
    if phase != "training" or not isinstance(step, int) or not isinstance(total, int):
        return f"{phase}, {duration(elapsed_s)} elapsed"
    text = f"training step {step}/{total}, {duration(elapsed_s)} elapsed"
    done = step - int(data.get("start_step") or 0)
    seconds = float(data.get("phase_elapsed_s") or 0)
    if done > 0 and seconds > 0:
        left = (total - step) * seconds / done
        return f"{text}, about {duration(left)} left in training"
    return f"{text}, time left not known yet"
