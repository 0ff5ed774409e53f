"""Checkpoints of one run: accelerate's save_state, written to a temporary folder and renamed.

    OUTPUT_DIR/checkpoints/<run name>/step-00000120/   model.safetensors, optimizer.bin, scheduler.bin,
                                                       random_states_<process>.pkl, manifest.json

The manifest holds the run's identity (task, model, size, seed, training settings, processes),
the position in training and the size of every file. A crash while writing leaves only a
`.step-*.tmp` folder, which is never read and is removed by the next save, so the previous
checkpoint stays usable. The last KEEP checkpoints are kept.

Loading goes through accelerate's load_state with torch.load forced to weights_only=True (model
weights are safetensors): a checkpoint can hold tensors and plain numbers, never code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

from bench.core.errors import DiskFullError, UserError
from bench.core.results import bytes_in, disk_full, disk_full_error, write_json_atomic

KEEP = 2
MANIFEST = "manifest.json"
FORMAT = 1
STEP_FOLDER = re.compile(r"^step-(\d+)$")


class CheckpointError(UserError):
    """A checkpoint that is corrupt or belongs to another run."""


@dataclass
class Position:
    """Where training stands: optimizer steps done, the epoch, its batches consumed (per process), samples seen."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    samples: int = 0


def complete(root: Path) -> list[Path]:
    """The finished checkpoints in `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_FOLDER.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


class Checkpoints:
    """Save, find and load the checkpoints of one run.

    `every`: None never saves; 0 saves at each epoch's end, the end of training and a stop;
    N > 0 also every N optimizer steps.
    """

    def __init__(self, root: Path, identity: dict, every: Optional[int]):
        self.root = Path(root)
        self.identity = identity
        self.every = every

    def due(self, step: int, boundary: bool) -> bool:
        """Whether to save now; `boundary` is an epoch's end, the end of training or a stop."""
        if self.every is None:
            return False
        return boundary or (self.every > 0 and step % self.every == 0)

    def clear(self, accelerator) -> None:
        """Remove every checkpoint of the run (a run started over with --overwrite)."""
        if accelerator.is_main_process:
            shutil.rmtree(self.root, ignore_errors=True)
        accelerator.wait_for_everyone()

    def save(self, accelerator, position: Position) -> Path:
        """Every process calls this at the same step; returns the checkpoint folder."""
        final = self.root / f"step-{position.step:08d}"
        if final.exists():  # the end of an epoch can also be the end of training
            return final
        tmp = self.root / f".{final.name}.tmp"
        if accelerator.is_main_process:
            for left in self.root.glob(".step-*.tmp"):  # left by a crash while writing
                shutil.rmtree(left)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(tmp))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
                manifest = {"format": FORMAT, "identity": self.identity, "position": asdict(position), "files": files}
                write_json_atomic(tmp / MANIFEST, manifest)
                os.replace(tmp, final)
                for old in complete(self.root)[:-KEEP]:
                    shutil.rmtree(old)
        except Exception as e:
            if not (isinstance(e, DiskFullError) or disk_full(e, self.root)):
                raise
            written = bytes_in(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise disk_full_error(final, written, remedy="free some space and continue the run with --resume, from "
                                  "its last checkpoint") from None
        accelerator.wait_for_everyone()
        return final

    def load(self, accelerator) -> tuple[Path, Position]:
        """Restore the latest checkpoint (the caller checked there is one) into the prepared objects.

        Refuses with CheckpointError, leaving the folder in place, when it is corrupt or belongs to another run.
        """
        folder = complete(self.root)[-1]
        stored, files, position = read_manifest(folder)
        for key, value in self.identity.items():
            if stored.get(key) != value:
                raise _refusal(folder, f"belongs to another run ({key} {stored.get(key)!r}, not {value!r})",
                               "resume with the same settings, or start over with --overwrite")
        changed = sorted(n for n, size in files.items() if not (folder / n).is_file() or (folder / n).stat().st_size != size)
        if changed:
            raise _refusal(folder, f"is corrupt: {', '.join(changed)} is missing or changed")
        try:
            with _weights_only():
                accelerator.load_state(str(folder))
        except Exception as e:  # safetensors, unpickling and state-dict errors all mean the same here
            raise _refusal(folder, f"is corrupt: loading it failed ({type(e).__name__})") from None
        return folder, position


def read_manifest(folder: Path) -> tuple[dict, dict[str, int], Position]:
    """(identity, {file name: size}, position) of a checkpoint, each field checked against the schema
    `save` writes; CheckpointError naming the first that is wrong."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _refusal(folder, f"is corrupt: its {MANIFEST} cannot be read ({e})") from None

    def field(dotted: str, ok, expected: str):
        value = manifest
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not ok(value):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise _refusal(folder, f"is corrupt: its {MANIFEST} has {dotted} = {shown}, not {expected}")
        return value

    field("format", lambda v: v == FORMAT, f"format {FORMAT}")
    identity = field("identity", lambda v: isinstance(v, dict), "a table of settings")
    files = field("files", lambda v: isinstance(v, dict) and all(
        Path(name).name == name and name not in ("", ".", "..") and _count(size) for name, size in v.items()),
        "a table of file names and sizes")
    position = Position(**{f.name: field(f"position.{f.name}", _count, "a count") for f in fields(Position)})
    return identity, files, position


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _refusal(folder: Path, problem: str, remedy: str = "remove it, or start over with --overwrite"
             ) -> CheckpointError:
    return CheckpointError(f"Checkpoint {folder} {problem}; it was left in place: {remedy}.")


@contextmanager
def _weights_only():
    """Force weights_only=True on every torch.load inside accelerate, whatever its call sites pass."""
    saved = {name: os.environ.pop(name, None) for name in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        os.environ.update({name: value for name, value in saved.items() if value is not None})
