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

from bench.core.errors import DiskFullError
from bench.core.results import write_json_atomic, write_text_atomic

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
    with pytest.raises(DiskFullError, match=r"^The disk is full: .*/cache/tokenizers/seq2seq-1000-\w+\.json could not be "
                                            r"written \(it needs more than "):
        cached_tokenizer(corpus, "seq2seq", 1000)
    assert leftovers(small_disk) == [] and list((small_disk / "cache" / "tokenizers").iterdir()) == []
    filler.unlink()
    cached_tokenizer(corpus, "seq2seq", 1000)
    assert [p.suffix for p in (small_disk / "cache" / "tokenizers").iterdir()] == [".json"]


def test_a_checkpoint_written_to_a_full_disk_keeps_the_last_one_to_resume_from(small_disk):
    import torch
    from accelerate import Accelerator

    from bench.training.checkpoint import Checkpoints, Position, complete

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
    from bench.core.results import load_result

    root = looping_folder(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--task", "imagefolder", "--data-dir", str(root), "--image-size", "8",
         "--model", "mixer", "--batch-size", "4", "--max-steps", "2", "--no-measure", "--checkpoint-every", "none",
         "--output-dir", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    result = load_result(tmp_path / "out" / "imagefolder__mixer-mini__fp32__seed0.json")
    assert result["data"]["skipped_entries"] == {"loop": 2, "outside": 1, "broken": 1, "special": 1}


# --------------------------------------------------------------------------- every command checks its outputs first


def grid_file(tmp_path: Path, output_dir: Path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{output_dir}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    f'[args]\nmax-steps = 2\n')
    return path


BAD_OUTPUTS = {  # command: (argv, its sentence); {file}: an existing file, {dir}: an existing folder
    "run": ("bench.run", ["--task", "digits", "--model", "gmlp", "--output-dir", "{file}"],
            "--output-dir {file} is a file, not a folder; give a folder."),
    "run-below-a-file": ("bench.run", ["--task", "digits", "--model", "gmlp", "--output-dir", "{file}/runs"],
                         "--output-dir {file}/runs: {file} is a file, not a folder; give a folder."),
    "sweep": ("bench.sweep", ["{grid}"], "In the sweep file {grid}, output_dir {file} is a file, not a folder; "
                                         "give a folder."),
    "cost": ("bench.cost", ["{grid}"], "In the sweep file {grid}, output_dir {file} is a file, not a folder; "
                                       "give a folder."),
    "scaling": ("bench.scaling", ["--output-dir", "{file}"], "--output-dir {file} is a file, not a folder; give a folder."),
    "regress": ("bench.regress", ["--json", "{dir}"], "--json {dir} is a folder; give a file name."),
    "regress-markdown": ("bench.regress", ["--markdown", "{file}/r.md"],
                         "--markdown {file}/r.md: its folder {file} is a file, not a folder; give a folder."),
    "regress-baseline": ("bench.regress", ["--save-baseline", "{dir}"], "--save-baseline {dir} is a folder; give a "
                                                                        "file name."),
    "regress-calibration": ("bench.regress_calibration", ["--json", "{dir}"], "--json {dir} is a folder; give a file "
                                                                              "name."),
    "timm-compare": ("bench.timm_compare", ["--json", "{dir}", "--device", "cpu"], "--json {dir} is a folder; give "
                                                                                     "a file name."),
    "leaderboard": ("leaderboard.__main__", ["{dir}", "--out", "{file}"], "--out {file} is a file, not a folder; give "
                                                                          "a folder."),
}


@pytest.mark.parametrize("module,argv,sentence", BAD_OUTPUTS.values(), ids=BAD_OUTPUTS.keys())
def test_every_command_refuses_a_bad_output_path_within_a_second(tmp_path, capsys, module, argv, sentence):
    import importlib

    import bench.models
    import tasks  # noqa: F401  (the registries every command reads, imported before the clock starts)

    bench.models.discover()
    main = importlib.import_module(module).main
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    names = {"file": tmp_path / "file", "dir": tmp_path / "dir", "grid": grid_file(tmp_path, tmp_path / "file")}
    started = time.monotonic()
    code = main([a.format(**names) for a in argv])
    assert time.monotonic() - started < 1
    assert code == 2
    assert capsys.readouterr().err == f"error: {sentence.format(**names)}\n"
    assert (tmp_path / "file").read_text() == "" and list((tmp_path / "dir").iterdir()) == []


@pytest.mark.parametrize("case,sentence", [
    ("gmlp-mini:digits:3\u00b2:fp32:infer", "--case 'gmlp-mini:digits:3\u00b2:fp32:infer' is not "
                                             "MODEL-SIZE:TASK:BATCH:PRECISION:PHASE, e.g. gmlp-mini:digits:32:fp32:infer."),
    ("gmlp-mini:digits:\u0663\u0662:fp32:infer", "--case 'gmlp-mini:digits:\u0663\u0662:fp32:infer' is not "
                                                 "MODEL-SIZE:TASK:BATCH:PRECISION:PHASE, e.g. gmlp-mini:digits:32:fp32:infer."),
    ("gnlp-mini:digits:32:fp32:infer", "--case 'gnlp-mini:digits:32:fp32:infer': no model 'gnlp'; models are "),
    ("gmlp-mini:digit:32:fp32:infer", "--case 'gmlp-mini:digit:32:fp32:infer': no task 'digit'; tasks are "),
])
def test_the_regression_check_refuses_a_bad_case_before_measuring(capsys, case, sentence):
    from bench import regress

    started = time.monotonic()
    assert regress.main(["--case", case, "--ref", "HEAD"]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err.startswith(f"error: {sentence}") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- locks of holders killed with SIGKILL

HOLDERS = {  # lock: the code a holder runs to take it (in `folder`), and how the next taker tries it
    "measurement": "from bench.core import machine\nwith machine.measuring():\n    print('held', flush=True)\n"
                   "    time.sleep(600)\n",
    "run-result": "from bench.core.results import RunLock\nassert RunLock(folder / 'r.json').acquire()\n"
                  "print('held', flush=True)\ntime.sleep(600)\n",
    "sweep-folder": "from bench.core.results import ProcessLock\nfrom bench.sweeps.execute import SWEEP_LOCK\n"
                    "assert ProcessLock(folder / SWEEP_LOCK).acquire()\nprint('held', flush=True)\ntime.sleep(600)\n",
}


def hold(kind: str, folder: Path) -> subprocess.Popen:
    code = f"import time\nfrom pathlib import Path\nfolder = Path({str(folder)!r})\n" + HOLDERS[kind]
    env = {**os.environ, "MLPBENCH_MEASURE_LOCK": str(folder / ".measure.lock")}
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def taken(kind: str, folder: Path, monkeypatch) -> bool:
    """Whether this process takes the lock within a second."""
    import threading

    from bench.core import machine
    from bench.core.results import ProcessLock, RunLock
    from bench.sweeps.execute import SWEEP_LOCK

    if kind == "measurement":
        monkeypatch.setenv(machine.MEASURE_LOCK_ENV, str(folder / ".measure.lock"))
        monkeypatch.setattr(machine, "_handle", None)
        done = threading.Event()

        def measure():
            machine.wait_for_measurements()
            with machine.measuring():
                done.set()

        threading.Thread(target=measure, daemon=True).start()
        return done.wait(1)
    lock = RunLock(folder / "r.json") if kind == "run-result" else ProcessLock(folder / SWEEP_LOCK)
    got = lock.acquire()
    lock.release()
    return got


@pytest.mark.parametrize("kind", HOLDERS)
def test_a_lock_whose_holder_is_killed_with_sigkill_is_free_at_once(tmp_path, monkeypatch, kind):
    holder = hold(kind, tmp_path)
    try:
        if kind != "measurement":  # a measurement waited on is not a refusal: the next one blocks meanwhile
            assert not taken(kind, tmp_path, monkeypatch), "held while its holder lives"
        holder.kill()  # SIGKILL: no handler, no cleanup runs
        holder.wait()
        assert taken(kind, tmp_path, monkeypatch), "the kernel released it with its holder"
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- two sweeps on one folder


def test_a_second_sweep_on_the_same_folder_is_refused_naming_the_first_and_runs_once_it_is_gone(tmp_path, capsys):
    from bench import sweep

    out = tmp_path / "out"
    out.mkdir()
    grid = tmp_path / "grid.toml"
    grid.write_text(f'output_dir = "{out}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    f'launcher = ["false"]\n')  # each run fails at once: what matters is whether it starts
    first = hold("sweep-folder", out)
    try:
        assert sweep.main([str(grid), "--progress-every", "0"]) == 2
        assert capsys.readouterr().err == (f"error: Another sweep (process {first.pid}) is running on {out} now; wait "
                                           f"for it to end, or give this one another output_dir.\n")
        assert not list((out / "logs").glob("*.log")), "no run started"
    finally:
        first.kill()
        first.wait()
    assert sweep.main([str(grid), "--progress-every", "0"]) == 1  # the first died: this one runs (and its run fails)
    assert "[1/1] digits__gmlp-mini__fp32__seed0: failed with exit code 1" in capsys.readouterr().out


# --------------------------------------------------------------------------- corrupt caches


def cut(path: Path) -> None:
    """What a writer killed half-way through (without bench.core.results.atomic_path) leaves: half the bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_corrupt_tokenizer_cache_is_said_and_trained_again(tmp_path, monkeypatch, capsys):
    from tasks.text import cache_dir, cached_tokenizer

    monkeypatch.setenv("MLPBENCH_CACHE", str(tmp_path))
    corpus = lambda: iter([[f"the number {i} and {i * 7} in words" for i in range(2000)]])  # noqa: E731
    vocabulary = cached_tokenizer(corpus, "seq2seq", 300).get_vocab()
    (path,) = cache_dir().iterdir()
    cut(path)
    assert cached_tokenizer(corpus, "seq2seq", 300).get_vocab() == vocabulary
    out = capsys.readouterr().out
    assert out.startswith(f"The cached tokenizer {path} is corrupt (") and out.endswith("); training it again.\n")
    assert out.count("\n") == 1
    cached_tokenizer(corpus, "seq2seq", 300)  # the cache was rebuilt: read without a word
    assert capsys.readouterr().out == ""


def test_a_corrupt_cost_pass_is_said_and_measured_again(tmp_path, capsys):
    from bench.measure.cost import cost_pass_done

    path = tmp_path / "cost" / "digits.json"
    path.parent.mkdir()
    path.write_bytes((ROOT / "results" / "leaderboard" / "cost" / "fashion-mnist.json").read_bytes())
    assert cost_pass_done(path) and capsys.readouterr().out == ""
    cut(path)
    assert not cost_pass_done(path)
    out = capsys.readouterr().out
    assert out.startswith(f"{path} could not be read as JSON (") and out.endswith("). It is measured again.\n")


def test_a_corrupt_scaling_point_is_said_and_measured_again(tmp_path, capsys):
    from bench.studies.scaling import ScalingConfig, existing

    path = tmp_path / "image-p16__gmlp-mini__00004-tokens__cpu-fp32.json"
    path.write_bytes((ROOT / "tests" / "data" / "scaling" / path.name).read_bytes())
    cut(path)
    assert existing(path, None, ScalingConfig(), None) is None  # to be measured; no point or setup is looked at
    out = capsys.readouterr().out
    assert out.startswith(f"{path} could not be read as JSON (") and out.endswith("). It is measured again.\n")


# --------------------------------------------------------------------------- a floor for every task

SENTENCES = [f"the {animal} saw {n} {thing} near the {place}" for n in range(12) for animal, thing, place in
             (("cat", "birds", "house"), ("dog", "sheep", "river"), ("horse", "carts", "market"))]
SAME_LANGUAGE = [(s, s.replace(" saw ", " spotted ")) for s in SENTENCES]  # English to English
WORDS = {"the": "el", "cat": "gato", "dog": "perro", "horse": "caballo", "saw": "vio", "birds": "pájaros",
         "sheep": "ovejas", "carts": "carros", "near": "cerca de", "house": "casa", "river": "río", "market": "mercado"}
TWO_LANGUAGES = [(s, " ".join(WORDS.get(w, w) for w in s.split())) for s in SENTENCES]  # English to (word-for-word) Spanish


@pytest.mark.parametrize("pairs,alike", [(SAME_LANGUAGE, True), (TWO_LANGUAGES, False)], ids=["same", "different"])
def test_a_pairs_task_on_user_files_records_the_copy_floor_and_whether_the_sides_share_a_language(
        tmp_path, monkeypatch, pairs, alike):
    import sacrebleu
    import torch

    from bench.core.config import DataConfig
    from leaderboard.tables import SAME_LANGUAGE_SIMILARITY
    from tasks import create_task

    monkeypatch.setenv("MLPBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "pairs.tsv"
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    task = create_task("pairs")
    data = task.load(DataConfig(data_files=str(path), vocab_size=300, seq_len=32), seed=0)
    n = len(data.eval)
    outputs = {  # a model that answers nothing: its own scores are 0, the floor is the sources'
        "generated": torch.zeros(n, data.spec.target_len, dtype=torch.long), "index": torch.arange(n),
        "loss_sum": torch.ones(n), "tokens": torch.ones(n, dtype=torch.long),
    }
    metrics = task.compute_metrics(outputs, data)
    sources, references = data.extra["sources"], data.extra["references"]
    assert metrics["floor_copy_bleu"] == pytest.approx(sacrebleu.corpus_bleu(sources, [references]).score)
    assert metrics["floor_copy_chrf"] == pytest.approx(sacrebleu.corpus_chrf(sources, [references]).score)
    assert metrics["bleu"] == 0 and (metrics["floor_copy_bleu"] > 40) == alike
    assert (metrics["source_target_similarity"] >= SAME_LANGUAGE_SIMILARITY) == alike
