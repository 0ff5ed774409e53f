"""Reliability: precisions that are really used, bad images that never end a run, results that are
never lost silently, signals that reach a sweep's runs, and sweep files checked against a schema."""

import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from bench import run as runner
from bench import sweep
from bench.core.results import RunLock, load_result, lock_path

ROOT = Path(__file__).resolve().parent.parent
NAME = "digits__gmlp-mini__fp32__seed0"
TINY = ["--task", "digits", "--model", "gmlp", "--batch-size", "32", "--max-steps", "2", "--max-eval-samples", "32",
        "--no-measure", "--checkpoint-every", "none"]


def cli(*argv, **env_vars):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **env_vars}
    return subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=ROOT, capture_output=True, text=True, env=env)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- 1. precision


def test_fp16_on_cpu_is_refused_before_anything_is_created(tmp_path, capsys):
    out = tmp_path / "out"
    assert runner.main([*TINY, "--precision", "fp16", "--output-dir", str(out)]) == 2
    assert "--precision fp16 does not apply on a CPU (Accelerate would train in fp32)" in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.slow
def test_bf16_on_cpu_really_trains_in_bf16(tmp_path):
    """Accelerate autocasts bf16 on CPUs: the same run's losses differ from fp32's."""
    losses = {}
    for precision in ("fp32", "bf16"):
        done = cli(*TINY, "--precision", precision, "--output-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
        result = load_result(tmp_path / f"digits__gmlp-mini__{precision}__seed0.json")
        assert result["environment"]["precision"] == precision and result["status"] == "ok"
        losses[precision] = result["train"]["final_loss"]
    assert losses["bf16"] != losses["fp32"], "bf16 training must not be fp32 training under another name"
    assert abs(losses["bf16"] - losses["fp32"]) < 0.1 * losses["fp32"], "but the same run"


# --------------------------------------------------------------------------- 2. bad images


def png_bytes(width: int, height: int) -> bytes:
    """A valid PNG header of any size (the pixel data is one empty row): PIL's size check sees it at open."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def truncated_jpeg(path: Path) -> None:
    """A real JPEG without its last fifth: its header is whole, so PIL opens and verifies it, and decoding fails."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 4 // 5])


def image_folder(root: Path, per_class: int = 12, classes: int = 2) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        images = digits.images[digits.target == c][:per_class]
        for i, image in enumerate(images):
            Image.fromarray((image * 255 / 16).astype("uint8")).convert("RGB").save(folder / f"{i:02d}.png")
    return root


def test_images_that_fail_to_decode_are_replaced_and_counted(tmp_path, monkeypatch):
    from PIL import Image

    from tasks.image import ImageFolderSplit, readable_images

    root = image_folder(tmp_path / "images", per_class=2)
    truncated_jpeg(root / "class0" / "cut.jpg")
    (root / "class1" / "huge.png").write_bytes(png_bytes(100, 100))
    samples = [(str(root / "class0" / "00.png"), 0), (str(root / "class0" / "cut.jpg"), 0),
               (str(root / "class1" / "huge.png"), 1), (str(root / "class1" / "01.png"), 1)]
    assert readable_images(samples) == (samples, []), "both pass PIL's header check at the default limit"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # huge.png (10,000 pixels) is now a decompression bomb
    assert readable_images(samples)[1] == [str(root / "class1" / "huge.png")], "caught when the task loads"

    split = ImageFolderSplit(samples, lambda image: image.size)
    items = [split[i] for i in range(len(split))]
    # the truncated JPEG and the oversized PNG are replaced by the next readable sample of the list
    assert items == [((8, 8), 0), ((8, 8), 1), ((8, 8), 1), ((8, 8), 1)]
    assert split.skipped() == 2
    assert [split[i] for i in range(len(split))] == items, "deterministic: the same replacement every time"
    assert split.skipped() == 2, "each file counted once"


@pytest.mark.slow
def test_a_truncated_image_never_ends_a_run_and_is_reported(tmp_path):
    from bench.core.config import DataConfig
    from tasks import create_task

    root = image_folder(tmp_path / "images")
    for name in ("a", "m", "z"):  # three, so that some land in the parts a run reads
        truncated_jpeg(root / "class1" / f"{name}.jpg")
    # What the run must report: every sample of its splits read once, in this process.
    data = create_task("imagefolder").load(DataConfig(data_dir=str(root), image_size=16), seed=0)
    for split in (data.train, data.eval):
        for i in range(len(split)):
            split[i]
    expected = data.extra["skipped_images"]()
    assert sum(expected.values()) >= 1

    # 22 training images at batch 8: 6 steps read every one at least once, evaluation reads all the others
    done = cli("--task", "imagefolder", "--data-dir", str(root), "--image-size", "16", "--model", "mixer",
               "--batch-size", "8", "--max-steps", "6", "--no-measure", "--checkpoint-every", "none",
               "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "Skipped unreadable image" in done.stderr and ".jpg (image file is truncated" in done.stderr
    result = load_result(tmp_path / "out" / "imagefolder__mixer-mini__fp32__seed0.json")
    assert result["status"] == "ok"
    assert result["data"] == {"skipped_images": expected}
    assert "Skipped image files: " in done.stdout


def test_a_one_class_folder_is_refused_before_anything_is_created(tmp_path, capsys):
    root = image_folder(tmp_path / "images", classes=1)
    out = tmp_path / "out"
    assert runner.main(["--task", "imagefolder", "--data-dir", str(root), "--output-dir", str(out)]) == 2
    assert "has only one class sub-folder (class0); classification needs at least 2." in one_line_error(capsys)
    assert not out.exists()


def test_a_folder_with_too_few_readable_images_is_refused_before_training(tmp_path, capsys):
    root = image_folder(tmp_path / "images", per_class=3)
    for path in (root / "class0").iterdir():
        path.write_bytes(b"not an image")
    argv = ["--task", "imagefolder", "--data-dir", str(root), "--image-size", "16", "--output-dir", str(tmp_path / "o")]
    assert runner.main(argv) == 2
    assert "readable image(s) in 1 class(es); training needs at least 4 in at least 2 classes." in one_line_error(capsys)
    assert not (tmp_path / "o").exists(), "no result, no lock file, no folder"


# --------------------------------------------------------------------------- 3. no silent loss


def write_grid(path: Path, out: Path, extra: str = "") -> Path:
    path.write_text(f'output_dir = "{out}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    '[args]\nbatch-size = 32\nmax-steps = 2\nmax-eval-samples = 32\nmeasure = false\n'
                    f'checkpoint-every = "none"\n{extra}')
    return path


@pytest.mark.slow
def test_a_result_is_never_replaced_by_a_run_with_other_settings(tmp_path, capsys):
    out = tmp_path / "out"
    assert runner.main([*TINY, "--output-dir", str(out)]) == 0
    before = (out / f"{NAME}.json").read_text()
    capsys.readouterr()

    assert runner.main([*TINY, "--lr", "0.002", "--output-dir", str(out)]) == 2
    err = one_line_error(capsys)
    assert "already exists, made with other settings (--lr 0.002 here, 0.001 there)" in err

    # a sweep would keep it as its own result (skipped) or replace it: refused, naming file and setting
    assert sweep.main([str(write_grid(tmp_path / "grid.toml", out, "lr = 0.002\n"))]) == 2
    err = one_line_error(capsys)
    assert f"{out / NAME}.json was made with other settings than this sweep's (--lr 0.002 here, 0.001 there)" in err
    assert (out / f"{NAME}.json").read_text() == before
    # the same settings: skipped as done
    assert sweep.main([str(write_grid(tmp_path / "same.toml", out, "lr = 0.001\n"))]) == 0
    assert f"{NAME}: result exists, skipped" in capsys.readouterr().out
    assert (out / f"{NAME}.json").read_text() == before


@pytest.mark.slow
def test_a_run_whose_result_is_locked_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    lock = RunLock(out / f"{NAME}.json")
    assert lock.acquire()
    try:
        assert runner.main([*TINY, "--output-dir", str(out)]) == 2
        assert f"Another run (process {os.getpid()}) is writing {out / NAME}.json now" in one_line_error(capsys)
    finally:
        lock.release()
    assert not lock_path(out / f"{NAME}.json").exists()


@pytest.mark.slow
def test_two_simultaneous_runs_of_one_identity_never_both_write(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    argv = [sys.executable, "-m", "bench.run", *TINY, "--output-dir", str(tmp_path)]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outputs
    loser = next(err for p, (_, err) in zip(procs, outputs) if p.returncode == 2)
    assert "Another run (process" in loser or "already exists" in loser
    assert load_result(tmp_path / f"{NAME}.json")["status"] == "ok"
    assert not lock_path(tmp_path / f"{NAME}.json").exists(), "the lock file goes when its run ends"


# --------------------------------------------------------------------------- 4. signals reach a sweep's runs


@pytest.mark.slow
def test_sigterm_stops_a_sweep_and_every_run_it_started(tmp_path):
    psutil = pytest.importorskip("psutil")
    grid = write_grid(tmp_path / "grid.toml", tmp_path / "out").read_text()
    grid = grid.replace("max-steps = 2", "max-steps = 100000").replace('checkpoint-every = "none"', "checkpoint-every = 5")
    (tmp_path / "grid.toml").write_text(grid)
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(tmp_path / "grid.toml"), "--progress-every", "0"],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "out" / "checkpoints" / NAME / "step-00000005").is_dir():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the run is a child of the sweep"
    os.kill(proc.pid, signal.SIGTERM)  # the sweep alone, as a job scheduler or `kill` sends it
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert err == ("error: Interrupted by SIGTERM; rerun the same command to continue: finished runs are skipped, "
                   "interrupted ones resume from their checkpoints.\n")
    assert f"{NAME}: interrupted after" in out and "it resumes from its checkpoint" in out
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left behind: {alive}"
    assert load_result(tmp_path / "out" / f"{NAME}.json")["status"] == "interrupted"


# --------------------------------------------------------------------------- 5. sweep files against a schema

GOOD = {"output_dir": '"{out}"', "tasks": '["digits"]', "models": '["gmlp"]', "seeds": "[0]"}


@pytest.mark.parametrize("change, key", [
    ({"output_dir": "3"}, "output_dir"),
    ({"output_dir": '""'}, "output_dir"),
    ({"tasks": '"digits"'}, "tasks"),
    ({"tasks": "[]"}, "tasks"),
    ({"models": '["gmlp", 3]'}, "models"),
    ({"sizes": "[]"}, "sizes"),
    ({"sizes": '"mini"'}, "sizes"),
    ({"seeds": "[]"}, "seeds"),
    ({"seeds": "[-1]"}, "seeds"),
    ({"seeds": "[true]"}, "seeds"),
    ({"seeds": "[0.5]"}, "seeds"),
    ({"seeds": '["0"]'}, "seeds"),
    ({"launcher": '"accelerate launch"'}, "launcher"),
    ({"launcher": "[]"}, "launcher"),
    ({"args": "3"}, "args"),
    ({"args": "{ lr = [0.1, 0.2] }"}, "args.lr"),
    ({"args": "{ epochs = { a = 1 } }"}, "args.epochs"),
    ({"args": "{ seed = 3 }"}, "args.seed"),
    ({"args": '{ task = "digits" }'}, "args.task"),
    ({"args": '{ model = "vit" }'}, "args.model"),
    ({"args": '{ size = "mini" }'}, "args.size"),
    ({"args": '{ output-dir = "elsewhere" }'}, "args.output-dir"),
    ({"args": '{ output_dir = "elsewhere" }'}, "args.output_dir"),
    ({"task_args": "{ digits = 3 }"}, "task_args.digits"),
    ({"task_args": "{ digits = { seed = 1 } }"}, "task_args.digits.seed"),
    ({"task_args": '{ digits = { lr = 1970-01-01 } }'}, "task_args.digits.lr"),
    ({"task_args": "[1]"}, "task_args"),
    ({"variants": '{ gmlp = "" }'}, "variants"),
    ({"variants": "{ gmlp = [1] }"}, "variants"),
    ({"variants": "[1]"}, "variants"),
    ({"args_from": "3"}, "args_from"),
    ({"tune": "{ lr = [0.001, 0.002], seed = -1 }"}, "tune.seed"),
    ({"tune": "{ lr = [0.001, 0.002], seed = 4294967296 }"}, "tune.seed"),
    ({"seeds": "[4294967296]"}, "seeds"),
    ({"args": "{ epoch = 3 }"}, "args.epoch"),  # a typo of a flag
    ({"args": '{ batch-size = "big" }'}, "args.batch-size"),
    ({"args": "{ batch-size = 1.5 }"}, "args.batch-size"),
    ({"args": '{ measure = "yes" }'}, "args.measure"),
    ({"args": "{ measure = 1 }"}, "args.measure"),
    ({"args": "{ no-measure = false }"}, "args.no-measure"),
    ({"args": "{ lr = true }"}, "args.lr"),
    ({"args": "{ data-dir = 3 }"}, "args.data-dir"),  # a number where a path belongs
    ({"args": "{ checkpoint-every = 1.5 }"}, "args.checkpoint-every"),
    ({"task_args": "{ cifar = { lr = 0.1 } }"}, "task_args.cifar"),  # a task the sweep does not run
    ({"variants": '{ gmlp = ["seed=3"] }'}, "variants.gmlp"),
    ({"launcher": '["no-such-launcher"]'}, "launcher"),
])
def test_a_bad_sweep_file_is_one_sentence_naming_file_and_key(tmp_path, capsys, change, key):
    out = tmp_path / "out"
    values = {**GOOD, **change}
    path = tmp_path / "grid.toml"
    path.write_text("".join(f"{k} = {v.replace('{out}', str(out))}\n" for k, v in values.items()))
    assert sweep.main([str(path)]) == 2
    err = one_line_error(capsys)
    assert f"{key} in the sweep file {path} " in err
    assert not out.exists() and not list(tmp_path.glob("*/")), "nothing created"


@pytest.mark.parametrize("extra, sentence", [
    ("lr = inf", "--lr must be a finite number, got inf."),
    ("lr = nan", "--lr must be a finite number, got nan."),
    ("grad-accum = 0", "--grad-accum must be at least 1, got 0."),
    ("val-fraction = 1.5", "--val-fraction must be in (0, 1), got 1.5."),
    ('precision = "fp8"', "argument --precision: invalid choice: 'fp8'"),
    ("seq-len = 64", "--task digits does not use --seq-len"),
    ('[task_args.digits]\ndata-dir = "images"', "--task digits does not use --data-dir"),
], ids=["infinite", "nan", "out-of-range", "fraction", "choice", "unused-flag", "unused-task-flag"])
def test_flags_bench_run_would_refuse_are_refused_before_any_run(tmp_path, capsys, extra, sentence):
    path = write_grid(tmp_path / "grid.toml", tmp_path / "out", extra + "\n")  # lines of [args], or a table after it
    assert sweep.main([str(path)]) == 2
    err = one_line_error(capsys)
    assert f"The flags the sweep file {path} gives the digits runs are refused: " in err and sentence in err
    assert not (tmp_path / "out").exists()


def test_a_grid_where_nothing_can_run_is_refused(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path / "out"}"\ntasks = ["digits"]\nmodels = ["mixer"]\nsizes = ["s16"]\n'
                    "seeds = [0]\n")
    assert sweep.main([str(path)]) == 2
    assert f"The sweep file {path} plans no run: none of its models and sizes can run its tasks" in \
        one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_an_output_dir_that_is_a_file_and_an_infinite_progress_interval_are_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    path = write_grid(tmp_path / "grid.toml", tmp_path / "taken")
    assert sweep.main([str(path)]) == 2
    assert f"In the sweep file {path}, output_dir {tmp_path / 'taken'} is a file, not a folder; give a folder." in \
        one_line_error(capsys)
    path = write_grid(tmp_path / "grid.toml", tmp_path / "out")
    assert sweep.main([str(path), "--progress-every", "inf"]) == 2
    assert "--progress-every must be a finite number of seconds >= 0, got inf." in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_the_args_from_file_is_checked_too(tmp_path, capsys):
    (tmp_path / "base.toml").write_text("[args]\nseed = 1\n")
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path / "out"}"\nargs_from = "base.toml"\ntasks = ["digits"]\n'
                    'models = ["gmlp"]\nseeds = [0]\n')
    assert sweep.main([str(path)]) == 2
    assert f"args.seed in the sweep file {tmp_path / 'base.toml'} sets --seed" in one_line_error(capsys)


def test_the_published_sweep_files_pass_the_schema():
    from bench.sweeps.grid import load_grid
    from tasks import create_task

    for path in sorted((ROOT / "sweeps").glob("*.toml")):
        load_grid(path, create_task)
