"""Faults of the machine rather than of the command line: full disks, holders of locks killed with
SIGKILL, corrupt caches, two sweeps on one folder, folders that loop. docs/failures.md lists them."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.errors import DiskFullError
from bench.results import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- full disks


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs folder (root only): a real disk that fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine mounts no tmpfs ({mounted.stderr.decode().strip()})")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """A file that takes all the free space of `disk` but `leave` bytes; remove it to free the space."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name)


def test_a_result_written_to_a_full_disk_is_one_sentence_and_keeps_the_old_file(small_disk):
    path = small_disk / "runs" / "result.json"
    write_json_atomic(path, {"version": "old"})
    filler = fill(small_disk, leave=2048)
    with pytest.raises(DiskFullError) as caught:
        write_json_atomic(path, {"version": "new", "padding": "x" * 20_000})
    sentence = str(caught.value)
    assert sentence.startswith(f"The disk is full: {path} could not be written (it needs 19.6 KB, ")
    assert sentence.endswith("no part of it was kept and what was there before is intact: free some space and "
                             "run the same command again.")
    assert json.loads(path.read_text()) == {"version": "old"} and leftovers(small_disk) == []
    filler.unlink()  # space freed: the same write now succeeds
    write_json_atomic(path, {"version": "new", "padding": "x" * 20_000})
    assert json.loads(path.read_text())["version"] == "new"


def test_a_tokenizer_cache_written_to_a_full_disk_is_one_sentence(small_disk, monkeypatch):
    from tasks.text import cached_tokenizer

    monkeypatch.setenv("MLPBENCH_CACHE", str(small_disk / "cache"))
    corpus = lambda: iter([[f"the number {i} and {i * 7} in words" for i in range(3000)]])  # noqa: E731
    filler = fill(small_disk, leave=4096)
    with pytest.raises(DiskFullError, match=r"^The disk is full: .*/cache/tokenizers/bpe-1000-\w+\.json could not be "
                                            r"written \(it needs more than "):
        cached_tokenizer(corpus, "bpe", 1000)
    assert leftovers(small_disk) == [] and list((small_disk / "cache" / "tokenizers").iterdir()) == []
    filler.unlink()
    cached_tokenizer(corpus, "bpe", 1000)
    assert [p.suffix for p in (small_disk / "cache" / "tokenizers").iterdir()] == [".json"]


def test_a_checkpoint_written_to_a_full_disk_keeps_the_last_one_to_resume_from(small_disk):
    import torch
    from accelerate import Accelerator

    from bench.checkpoint import Checkpoints, Position, complete

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(64, 64)  # 16 KB of weights, 32 KB of optimizer state
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters()))
    checkpoints = Checkpoints(small_disk / "checkpoints" / "run", {"--seed": 0}, every=0)
    first = checkpoints.save(accelerator, Position(step=1, samples=32))
    filler = fill(small_disk, leave=8192)
    with pytest.raises(DiskFullError, match=r"^The disk is full: .*/checkpoints/run/step-00000002 could not be written "
                                            r"\(it needs more than .*: free some space and continue the run with "
                                            r"--resume, from its last checkpoint\.$"):
        checkpoints.save(accelerator, Position(step=2, samples=64))
    assert complete(checkpoints.root) == [first] and leftovers(small_disk) == []
    filler.unlink()
    folder, position = checkpoints.load(accelerator)
    assert folder == first and position.step == 1


# --------------------------------------------------------------------------- folders that loop or block


def looping_folder(tmp_path: Path) -> Path:
    """Two classes of 6 images, and every shape of folder entry the walk must not follow or read."""
    from PIL import Image

    root = tmp_path / "images"
    for c in range(2):
        (root / f"class{c}" / "sub").mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 100 * c, 0)).save(root / f"class{c}" / ("sub" if i % 2 else ".") / f"{i}.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "stray.png")
    (root / "class0" / "sub" / "up").symlink_to(root / "class0")  # a loop
    (root / "class0" / "root").symlink_to(root)  # back to the top, which holds class1 too
    (root / "class1" / "out").symlink_to(outside)  # out of the tree
    (root / "class1" / "gone").symlink_to(tmp_path / "missing")  # broken
    os.mkfifo(root / "class1" / "pipe.png")  # a reader of it would wait forever
    return root


def test_an_image_folder_with_link_loops_and_fifos_is_walked_once_and_says_what_it_left_out(tmp_path, capsys):
    from tasks.image import list_image_folder

    root = looping_folder(tmp_path)
    started = time.monotonic()
    classes, samples, left_out = list_image_folder(root, report=True)
    assert time.monotonic() - started < 5
    assert classes == ["class0", "class1"]
    assert samples == [(str(root / f"class{c}" / name), c) for c in range(2)
                       for name in ("0.png", "2.png", "4.png", "sub/1.png", "sub/3.png", "sub/5.png")]
    assert left_out == {"loop": 2, "outside": 1, "broken": 1, "special": 1}
    assert capsys.readouterr().out == (
        f"Left out of {root}: 2 link(s) back to a folder already walked (e.g. {root}/class0/root), 1 link(s) to a "
        f"folder outside the image folder (e.g. {root}/class1/out), 1 broken link(s) (e.g. {root}/class1/gone), 1 "
        f"special file(s) (FIFOs, sockets, devices) (e.g. {root}/class1/pipe.png).\n")


@pytest.mark.slow
def test_a_run_on_a_looping_image_folder_ends_and_records_what_was_left_out(tmp_path):
    from bench.results import load_result

    root = looping_folder(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--task", "imagefolder", "--data-dir", str(root), "--image-size", "8",
         "--model", "mixer", "--batch-size", "4", "--max-steps", "2", "--no-measure", "--checkpoint-every", "none",
         "--output-dir", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    result = load_result(tmp_path / "out" / "imagefolder__mixer-mini__fp32__seed0.json")
    assert result["data"]["skipped_entries"] == {"loop": 2, "outside": 1, "broken": 1, "special": 1}
