"""The runner end to end: a real (tiny) training run, the result file, --list, and clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import run as runner
from bench.core.config import OptimConfig
from bench.core.results import REQUIRED_KEYS, SCHEMA_VERSION, load_result
from tasks import TASKS, create_task
from tasks.text import MlmTask, Seq2SeqTask
from tasks.image import ImageClassification

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--max-steps", "3", "--batch-size", "32", "--max-eval-samples", "64", "--no-measure"]
QUICK_MEASURE = ["--bench-warmup-steps", "1", "--bench-steps", "2", "--bench-repeats", "2", "--latency-samples", "5",
                 "--peak-gemm-size", "256"]


def cli(*argv, cwd=ROOT, **env_vars):
    env = {**os.environ, "TQDM_DISABLE": "1", **env_vars}
    return subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_digits_run_writes_one_complete_result(tmp_path):
    argv = ["--task", "digits", "--model", "mixer", "--output-dir", str(tmp_path), *TINY[:-1], *QUICK_MEASURE]
    assert runner.main(argv) == 0
    files = list(tmp_path.glob("*.json"))
    assert [f.name for f in files] == ["digits__mixer-mini__fp32__seed0.json"]
    result = load_result(files[0])
    assert set(REQUIRED_KEYS) <= set(result)
    assert result["schema_version"] == SCHEMA_VERSION and result["status"] == "ok"
    assert result["config"]["optim"]["max_steps"] == 3
    assert result["config"]["optim"]["label_smoothing"] == 0.1, "the task's default, recorded as used"
    assert result["train"]["steps"] == 3
    assert 0.0 <= result["metrics"]["top1"] <= result["metrics"]["top5"] <= 1.0
    assert result["primary_metric"] == {"name": "top1", "value": result["metrics"]["top1"], "higher_is_better": True}
    env = result["environment"]
    for key in ("python", "torch", "timm", "transformers", "device_name", "device_count", "num_processes",
                "precision", "git_commit", "started_at"):
        assert key in env
    assert env["num_processes"] == 1
    assert result["params"] == 705626
    assert result["flops"]["train_per_sample"] > result["flops"]["forward_per_sample"] > 0
    throughput = result["throughput"]
    assert throughput["train_samples_per_s"] > 0 and throughput["infer_samples_per_s"] > 0
    assert throughput["batch_size"] == 32 and throughput["loop_samples_per_s"] > 0
    assert 0 <= throughput["data_wait_fraction"] < 1
    assert result["memory"]["kind"] == "cpu_tensors" and result["memory"]["train_peak_mb"] > 0
    assert 0 < result["mfu"]["train"] < 5  # the peak is a GEMM timed in the run: load on the machine can push this past 1
    threads = env["cpu_threads"]
    assert 0 < result["cpu_time_s"] <= threads * result["wall_time_s"] * 1.05, "CPU time of the run's own threads"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_a_runs_cpu_time_counts_its_finished_child_processes():
    """DataLoader workers (--num-workers) are child processes: their CPU time is the run's too."""
    from bench.runs.phases import cpu_seconds

    before = cpu_seconds()
    subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                    "while time.process_time() < end: pass"], check=True)
    assert cpu_seconds() - before >= 0.5


@pytest.mark.slow
def test_existing_result_is_refused_without_overwrite(tmp_path, capsys):
    args = ["--task", "digits", "--model", "gmlp", "--output-dir", str(tmp_path), *TINY]
    assert runner.main(args) == 0
    before = (tmp_path / "digits__gmlp-mini__fp32__seed0.json").read_bytes()
    assert runner.main(args) == 2
    assert "already exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert (tmp_path / "digits__gmlp-mini__fp32__seed0.json").read_bytes() == before
    assert runner.main([*args, "--overwrite"]) == 0


@pytest.mark.slow
def test_list_prints_tasks_models_sizes_and_pairs():
    out = cli("--list")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for name in ("digits", "fashion-mnist", "cifar10", "cifar100", "imagenet", "imagefolder"):
        assert name in text
    assert "gmlp         image        ti (5.9M), s (19.4M), b (73.1M)" in text
    assert "vit-mini" in text and "[baseline]" in text
    digits_pairs = [line for line in text.splitlines() if line.strip().startswith("digits ")][-1]
    assert "mixer-mini" in digits_pairs and "mixer-s16" not in digits_pairs


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv,sentence",
    [
        (["--task", "mnist"], "error: Unknown task 'mnist'; valid tasks are: "),
        (["--model", "gmpl"], "error: Unknown model 'gmpl'; valid models are: "),
        (["--model", "mixer", "--size", "s16", "--task", "digits"], "error: mixer-s16 cannot run task 'digits'"),
        (["--batch-size", "0"], "error: --batch-size must be at least 1, got 0."),
        (["--lr", "-1"], "error: --lr must be positive, got -1.0."),
        (["--task", "imagefolder", "--data-dir", "/nonexistent/folder"], "error: --data-dir /nonexistent/folder does not exist or is not a folder."),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, argv, sentence):
    out = cli(*argv, "--output-dir", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.startswith(sentence), out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir()), "a failed run leaves no file"


@pytest.mark.slow
def test_process_clock_with_several_threads_is_refused_before_training(tmp_path):
    out = cli("--bench-clock", "process", *TINY[:-1], "--output-dir", str(tmp_path), OMP_NUM_THREADS="2")
    assert out.returncode == 2
    assert out.stderr == (
        "error: --bench-clock process times CPU runs with one thread (OMP_NUM_THREADS=1), "
        "but this run uses cpu with 2 threads.\n"
    ), out.stderr
    assert not list(tmp_path.iterdir()), "a refused run leaves no file"


def test_unknown_precision_is_rejected_by_argparse(tmp_path):
    out = cli("--precision", "fp8")
    assert out.returncode == 2
    assert "argument --precision: invalid choice: 'fp8'" in out.stderr


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """A real ImageFolder: scikit-learn's digit images written as PNG files, 3 classes."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digit-folder")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        if label < 3 and i < 300:
            folder = root / f"class{label}"
            folder.mkdir(exist_ok=True)
            Image.fromarray((image * 255 / 16).astype("uint8")).save(folder / f"{i}.png")
    (root / "class0" / "corrupt.png").write_bytes(b"not a png")
    return root


@pytest.mark.slow
def test_imagefolder_trains_and_skips_corrupt_images(digit_folder, tmp_path):
    out = cli("--task", "imagefolder", "--data-dir", str(digit_folder), "--image-size", "32", "--model", "resmlp",
              "--output-dir", str(tmp_path), *TINY)
    assert out.returncode == 0, out.stderr
    assert "Skipped 1 unreadable image file(s)" in out.stdout + out.stderr
    result = json.loads((tmp_path / "imagefolder__resmlp-mini__fp32__seed0.json").read_text())
    assert result["status"] == "ok"


@pytest.mark.slow
def test_imagefolder_without_class_folders(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    out = cli("--task", "imagefolder", "--data-dir", str(tmp_path / "flat"), "--output-dir", str(tmp_path / "out"))
    assert out.returncode == 2
    assert "has no class sub-folders" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_sweep_resumes_a_run_that_left_checkpoints(tmp_path):
    from bench.sweeps.plan import plan
    from tasks import create_task

    grid = {"output_dir": str(tmp_path), "tasks": ["digits"], "models": ["gmlp"], "seeds": [0], "args": {"max-steps": 2}}
    assert "--resume" not in plan(grid, create_task)[0]["argv"]
    (tmp_path / "checkpoints" / "digits__gmlp-mini__fp32__seed0").mkdir(parents=True)
    assert plan(grid, create_task)[0]["argv"][-1] == "--resume"


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_in_one_sentence_and_the_rerun_resumes(tmp_path):
    from bench.sweeps.plan import finished, plan
    from tasks import create_task

    grid = {"output_dir": str(tmp_path), "tasks": ["digits"], "models": ["gmlp"], "seeds": [0],
            "args": {"max-steps": 100000, "batch-size": 32, "checkpoint-every": 5, "no-measure": True}}
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        f'output_dir = "{tmp_path}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
        '[args]\nmax-steps = 100000\nbatch-size = 32\ncheckpoint-every = 5\nno-measure = true\n'
    )

    def terminal_like():  # its own process group, and Ctrl-C's default action, as in a shell
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    sweep = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(grid_file)], cwd=ROOT, preexec_fn=terminal_like,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    name = "digits__gmlp-mini__fp32__seed0"
    deadline = time.monotonic() + 300
    while not (tmp_path / "checkpoints" / name / "step-00000005").is_dir():
        assert sweep.poll() is None, sweep.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130
    assert err == ("error: Interrupted; rerun the same command to continue: finished runs are skipped, "
                   "interrupted ones resume from their checkpoints.\n")
    assert f"{name}: interrupted after" in out and "it resumes from its checkpoint when the sweep reruns" in out
    result = tmp_path / f"{name}.json"
    assert json.loads(result.read_text())["status"] == "interrupted"
    assert not finished(result), "an interrupted run is not skipped"
    assert plan(grid, create_task)[0]["argv"][-1] == "--resume"


@pytest.mark.slow
def test_an_interrupted_run_without_checkpoints_starts_again(tmp_path):
    from bench.sweeps.plan import finished, plan
    from tasks import create_task

    grid = {"output_dir": str(tmp_path), "tasks": ["digits"], "models": ["gmlp"], "seeds": [0], "args": {"max-steps": 2}}
    path = plan(grid, create_task)[0]["path"]
    result = json.loads((ROOT / "tests" / "data" / "results" / "cpu" / "digits__gmlp-ti__fp32__seed0.json").read_text())
    path.write_text(json.dumps({**result, "status": "ok"}))
    assert finished(path), "a finished run is skipped"
    path.write_text(json.dumps({**result, "status": "interrupted", "error": "Interrupted by SIGINT."}))
    assert not finished(path)
    assert plan(grid, create_task)[0]["argv"][-1] == "--overwrite"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_label_smoothing_defaults_to_the_modalitys_and_the_flag_overrides_it(name):
    from bench.core.config import RecipeConfig
    from bench.core.recipes import run_recipe

    task = create_task(name)
    # DeiT for images, the Transformer for translation, BERT for masked LM
    kinds = {ImageClassification: 0.1, Seq2SeqTask: 0.1, MlmTask: 0.0}
    [expected] = [value for kind, value in kinds.items() if isinstance(task, kind)]
    assert task.label_smoothing == expected
    modality = "image" if isinstance(task, ImageClassification) else "text"

    def resolved(optim: OptimConfig) -> float:  # the task's default recipe, as a run resolves it
        return run_recipe(optim, RecipeConfig(), task, modality, "gmlp", "mini", 1)[0].label_smoothing

    assert resolved(OptimConfig(batch_size=7)) == expected
    for given in (0.2, 0.0):
        assert resolved(OptimConfig(batch_size=7, label_smoothing=given)) == given
        assert create_task(name, label_smoothing=given).label_smoothing == given
    assert create_task(name).label_smoothing == expected, "each run makes its own task: none changes another"
