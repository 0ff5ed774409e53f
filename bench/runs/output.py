"""A run's output: its folder checked (and made) before anything is created or loaded, an earlier result or
checkpoints never clobbered, and the result's lock held; the lock released and the folders a refused run made
removed as the command ends (bench.run.main)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from bench.core.errors import UserError

_LOCKS: list = []  # the result lock this process holds (bench.core.results.RunLock), released as main() ends
_MADE: list[Path] = []  # output folders this process made, deepest first; removed as main() ends if still empty


def check_output(path: Path, checkpoints: Path, run_cfg, config: dict | None = None, main_process: bool = True) -> None:
    """Refuse to clobber an earlier result or checkpoints, to resume without a checkpoint, and fail now
    (not after training) on an unwritable folder. The main process then holds the result's lock
    (bench.core.results.RunLock) until main() ends, so a second run of the same identity started meanwhile
    is refused instead of overwriting this one. `config` (as_dict of the run's configs) names the
    settings in which an existing result differs."""
    from bench.training.checkpoint import complete
    from bench.core.results import RunLock

    refuse_existing(path, run_cfg, config, announce=main_process)
    found = complete(checkpoints)
    if run_cfg.resume and not found:
        raise UserError(f"--resume found no checkpoint in {checkpoints}; run without --resume to start the run.")
    if found and not (run_cfg.resume or run_cfg.overwrite):
        raise UserError(
            f"{checkpoints} holds checkpoints of this run; pass --resume to continue it or --overwrite to start over."
        )
    try:
        made = list(itertools.takewhile(lambda folder: not folder.exists(), (path.parent, *path.parent.parents)))
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE.extend(made)
        probe = path.parent / f".write-test-{os.getpid()}-{path.name}"  # one per process: they check at once
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"Cannot write results to {path.parent} ({e.strerror}); choose another --output-dir.") from None
    if not main_process:
        return
    lock = RunLock(path)
    try:
        locked = lock.acquire()
    except OSError as e:
        raise UserError(f"Cannot write results to {path.parent} ({e.strerror}); choose another --output-dir.") from None
    if not locked:
        raise UserError(
            f"Another run (process {lock.holder()}) is writing {path} now; wait for it to end, "
            f"or choose another --output-dir."
        )
    _LOCKS.append(lock)
    if run_cfg.overwrite or run_cfg.resume:
        return
    try:
        refuse_existing(path, run_cfg, config, announce=False)  # again: a run holding the lock may have ended
    except UserError:
        release_locks()
        raise


def refuse_existing(path: Path, run_cfg, config: dict | None, announce: bool = True) -> None:
    """An existing result is replaced only with --overwrite or --resume; say which settings differ
    (and, with `announce`, that --overwrite replaces a result made with other settings)."""
    from bench.core.results import ResultError, load_result, setting_differences

    if not path.exists():
        return
    differences = []
    if config is not None:
        try:
            differences = setting_differences(load_result(path).get("config") or {}, config)
        except ResultError:
            pass
    made = f", made with other settings ({'; '.join(differences)})" if differences else ""
    if not (run_cfg.overwrite or run_cfg.resume):
        raise UserError(f"{path} already exists{made}; pass --overwrite to replace it, or another --output-dir.")
    if differences and run_cfg.overwrite and announce:
        print(f"Replacing {path}, which was made with other settings ({'; '.join(differences)}).")


def release_locks() -> None:
    while _LOCKS:
        _LOCKS.pop().release()


def remove_made_folders() -> None:
    """Remove the output folders this run made and left empty (it was refused, or ended before
    writing anything), so that a mistake leaves nothing behind."""
    while _MADE:
        try:
            _MADE.pop(0).rmdir()
        except OSError:  # not empty, and so neither is any folder above it
            _MADE.clear()

