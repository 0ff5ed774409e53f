"""Sweeps over every GPU of a machine (one device group per job) and as submitit jobs: submitit's local
executor runs the Slurm code path in subprocesses of this machine, without sbatch. GPUs are faked
by their count: the runs then get CUDA_VISIBLE_DEVICES and, finding no CUDA, train on CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import sweep
from bench.scale_out import launch
from bench.core.config import SlurmConfig
from bench.sweeps import execute

ROOT = Path(__file__).resolve().parent.parent
TINY = 'batch-size = 32\nno-measure = true\ncheckpoint-every = "none"\n'


def grid_file(path: Path, out: Path, models=("gmlp",), seeds=(0,), args=TINY + "max-steps = 2\n", top="") -> Path:
    path.write_text(f'output_dir = "{out}"\ntasks = ["digits"]\nmodels = {json.dumps(list(models))}\n'
                    f"seeds = {json.dumps(list(seeds))}\n{top}[args]\n{args}")
    return path


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(launch, "gpu_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.mark.parametrize("gpus, per_run, jobs, shared, groups", [
    (["0", "1", "2", "3"], 1, 4, 1, ["0", "1", "2", "3"]),
    (["0", "1", "2", "3"], 2, 2, 1, ["0,1", "2,3"]),
    (["0", "1", "2", "3"], 0, 3, 1, [None, None, None]),  # CPU runs: nothing set
    (["4", "6"], 1, 2, 1, ["4", "6"]),  # a sweep confined by CUDA_VISIBLE_DEVICES hands out those
    (["0"], 1, 4, 4, ["0", "0", "0", "0"]),  # runs_per_gpu = 4: four runs share the one GPU
    (["0", "1", "2"], 1, 4, 2, ["0", "1", "2", "0"]),  # spread over the GPUs before any is shared
])
def test_each_job_gets_its_own_device_group(gpus, per_run, jobs, shared, groups):
    assert launch.device_groups(gpus, per_run, jobs, "s.toml", shared) == groups


def test_the_gpus_handed_out_are_those_visible(four_gpus, monkeypatch):
    assert launch.visible_gpus() == ["0", "1", "2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,6,7")
    assert launch.visible_gpus() == ["2", "5", "6", "7"]


@pytest.mark.parametrize("jobs, top, sentence", [
    ("8", "", "error: --jobs 8 asks for 8 runs at a time of 1 GPU each, but this machine has 4 GPUs: at most --jobs 4.\n"),
    ("3", "gpus_per_run = 2\n",
     "error: --jobs 3 asks for 3 runs at a time of 2 GPUs each, but this machine has 4 GPUs: at most --jobs 2.\n"),
    ("1", "gpus_per_run = 8\n", "error: gpus_per_run = 8 in {grid} asks for 8 GPUs per run, but this machine has "
                                "4 GPUs; lower it, or set gpus_per_run = 0 for CPU runs.\n"),
    ("1", 'gpus_per_run = 2\nlauncher = ["python"]\n',
     "error: The sweep file {grid} sets both launcher and gpus_per_run = 2; the sweep launches a run of several GPUs "
     "through accelerate launch itself: remove launcher.\n"),
    ("9", "runs_per_gpu = 2\n", "error: --jobs 9 asks for 9 runs at a time of 1 GPU each, but this machine has 4 GPUs "
                                 "(runs_per_gpu = 2): at most --jobs 8.\n"),
    ("1", "gpus_per_run = -1\n", "error: gpus_per_run in the sweep file {grid} must be an integer >= 0 (0: CPU runs), "
                                 "got -1.\n"),
])
def test_an_impossible_device_request_is_one_sentence(tmp_path, four_gpus, capsys, jobs, top, sentence):
    grid = grid_file(tmp_path / "s.toml", tmp_path / "out", top=top)
    assert sweep.main([str(grid), "--jobs", jobs]) == 2
    assert capsys.readouterr().err == sentence.format(grid=grid)
    assert not (tmp_path / "out").exists(), "nothing ran"


def test_gpus_per_run_without_cuda_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(launch, "gpu_count", lambda: 0)
    grid = grid_file(tmp_path / "s.toml", tmp_path / "out", top="gpus_per_run = 1\n")
    assert sweep.main([str(grid)]) == 2
    assert capsys.readouterr().err == (
        f"error: gpus_per_run = 1 in {grid} asks for 1 GPUs per run, but this machine has no GPU (torch finds no "
        f"CUDA device); lower it, or set gpus_per_run = 0 for CPU runs.\n")


def test_a_run_of_several_gpus_is_launched_by_accelerate_on_a_port_of_its_own():
    command = launch.run_launcher(None, 2)
    assert command[1:] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    first, second = launch.with_free_port(command), launch.with_free_port(command)
    assert first[4:6] == ["--main_process_port", first[5]] and int(first[5]) > 0
    assert launch.run_launcher(["accelerate", "launch"], 1) == ["accelerate", "launch"]
    assert launch.run_launcher(None, 1) == launch.run_launcher(None, 0) == [sys.executable]
    assert launch.with_free_port([sys.executable]) == [sys.executable]
    assert second[:4] == first[:4] and second[6:] == first[6:]


@pytest.mark.parametrize("table, flags, sentence", [
    ('partition = "gpu"\ntime-min = 0\n', [], "error: --time-min must be at least 1, got 0.\n"),
    ('queue = "gpu"\n', [], "error: slurm.queue in the sweep file {grid} is no Slurm setting; the [slurm] table takes "
                            "partition, time-min, cpus-per-run, mem-gb, account.\n"),
    ('mem-gb = "lots"\n', [], "error: slurm.mem-gb in the sweep file {grid} must be an integer, got 'lots'.\n"),
    ("", ["--executor", "slurm"], "error: --executor slurm submits jobs with Slurm's sbatch, which is not a command here; "
                                  "run the sweep on a machine of the cluster (a login node), or use --executor processes.\n"),
    ("", ["--executor", "slurm", "--dry-run", "--account", "my lab"],
     "error: --account must be a name without spaces, got 'my lab'.\n"),
])
def test_bad_slurm_settings_are_one_sentence(tmp_path, capsys, monkeypatch, table, flags, sentence):
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch
    grid = grid_file(tmp_path / "s.toml", tmp_path / "out")
    grid.write_text(grid.read_text() + "[slurm]\n" + table)
    assert sweep.main([str(grid), *flags]) == 2
    assert capsys.readouterr().err == sentence.format(grid=grid)


def test_slurm_jobs_ask_for_what_the_sweep_file_and_the_flags_say(tmp_path, monkeypatch):
    """The sbatch file submitit would submit: the [slurm] table, a flag over it, the GPUs per run."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cfg = SlurmConfig(partition="gpu", time_min=240, cpus_per_run=10, mem_gb=64, account="lab")
    executor = launch.JobExecutor("slurm", tmp_path / "jobs", cfg, gpus_per_run=2).executor
    text = executor._make_submission_file_text("COMMAND", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=240", "#SBATCH --cpus-per-task=10", "#SBATCH --mem=64GB",
                 "#SBATCH --account=lab", "#SBATCH --gpus-per-node=2", "#SBATCH --signal=USR2@90",
                 f"export PYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"):
        assert line in text.splitlines(), (line, text)


@pytest.mark.slow
def test_a_gpu_sweep_gives_each_run_its_own_device_and_records_it(tmp_path, four_gpus, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    grid = grid_file(tmp_path / "s.toml", out, models=("gmlp", "mixer"), seeds=(0, 1))
    assert sweep.main([str(grid), "--jobs", "4", "--progress-every", "0"]) == 0
    printed = capsys.readouterr().out
    devices = {}
    for path in sorted(out.glob("*.json")):
        environment = json.loads(path.read_text())["environment"]
        devices[path.stem] = environment["cuda_visible_devices"]
        assert f"{path.stem}: running on GPU {devices[path.stem]}..." in printed
        assert environment["device_type"] == "cpu" and environment["slurm_job_id"] is None
    assert len(devices) == 4 and sorted(devices.values()) == ["0", "1", "2", "3"], devices
    assert not (out / ".measure.lock").exists(), "runs on GPUs of their own take no turns measuring"


def results(folder: Path) -> dict:
    """{file name: (metrics, resolved config without the output folder)} of a sweep's results, tuning included."""
    found = {}
    for path in sorted(folder.rglob("*.json")):
        if path.parent.name == "logs":
            continue
        result = json.loads(path.read_text())
        result["config"]["run"].pop("output_dir")
        found[str(path.relative_to(folder))] = (result["status"], result["metrics"], result["config"])
    return found


@pytest.mark.slow
def test_a_sweep_through_submitits_local_executor_equals_the_local_sweep(tmp_path, monkeypatch, capsys):
    """2 families x 2 learning rates x 2 seeds: the tuning, the choice on validation and the test seeds."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = TINY + "max-steps = 6\n"
    outputs = {}
    for executor in ("processes", "local"):
        out = tmp_path / executor
        grid = grid_file(tmp_path / f"{executor}.toml", out, models=("gmlp", "mixer"), seeds=(0, 1), args=args)
        grid.write_text(grid.read_text() + "[tune]\nlr = [0.0005, 0.004]\nextend = 0\n")  # no lr beyond the grid
        assert sweep.main([str(grid), "--executor", executor, "--jobs", "2", "--progress-every", "0"]) == 0
        outputs[executor] = capsys.readouterr().out
    local, jobs = results(tmp_path / "processes"), results(tmp_path / "local")
    assert len(local) == 8 and sum(name.startswith("tune/") for name in local) == 4
    assert jobs == local
    assert outputs["local"].count(" as job ") == 8
    choices = [line for line in outputs["processes"].splitlines() if ": validation lr " in line]
    assert len(choices) == 2 and all(line in outputs["local"] for line in choices)
    tables = [[row.split()[:6] for row in outputs[e].splitlines()[-5:]] for e in ("processes", "local")]
    assert tables[0] == tables[1], "the same table, but for the runs' wall times"


def submitit_task(folder: Path) -> int:
    """The pid of the submitit job process whose job files are in `folder` (it started the run)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in cmdline and str(folder).encode() in cmdline:
            return int(proc.name)
    raise AssertionError("no submitit job process")


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_its_run(tmp_path):
    out = tmp_path / "out"
    grid = grid_file(tmp_path / "s.toml", out,
                     args='batch-size = 32\nno-measure = true\ncheckpoint-every = 5\nmax-steps = 400\n')
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(grid), "--executor", "local", "--progress-every",
                             "0"], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    name = "digits__gmlp-mini__fp32__seed0"
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / name / "step-00000005").is_dir():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.kill(submitit_task(out / "submitit"), signal.SIGUSR2)  # what Slurm sends a job it preempts or whose time runs out
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, (stdout, stderr)
    result = json.loads((out / f"{name}.json").read_text())
    assert result["status"] == "ok" and result["history"][-1]["step"] == 400
    log = (out / "logs" / f"{name}.log").read_text()
    assert "Interrupted by SIGTERM" in log or "interrupted" in log.lower(), log
    resumed = [line for line in log.splitlines() if line.startswith("Resuming from ")]
    assert len(resumed) == 1 and int(resumed[0].rsplit(" ", 1)[1].rstrip(".")) >= 5, log
    job_logs = "".join(p.read_text() for p in (out / "submitit").glob("*_log.*"))  # submitit logs info to .out
    assert "this job is preempted" in job_logs and "Requeued job" in job_logs, job_logs


@pytest.mark.slow
def test_a_failed_job_is_reported_with_its_log_and_the_others_results_are_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    grid = grid_file(tmp_path / "s.toml", out, models=("gmlp", "mixer"))
    broken = out / "checkpoints" / "digits__mixer-mini__fp32__seed0" / "step-00000001"
    broken.mkdir(parents=True)  # a checkpoint with nothing in it: the run resumes from it and is refused
    assert sweep.main([str(grid), "--executor", "local", "--progress-every", "0"]) == 1
    printed = capsys.readouterr().out
    log = out / "logs" / "digits__mixer-mini__fp32__seed0.log"
    assert "[2/2] digits__mixer-mini__fp32__seed0: failed with exit code 2 after " in printed
    assert f"s; see {log}\n" in printed
    assert "error: " in log.read_text() and broken.is_dir(), "the run said why, and kept the checkpoint"
    assert json.loads((out / "digits__gmlp-mini__fp32__seed0.json").read_text())["status"] == "ok"
    assert [row.split()[:2] for row in printed.splitlines()[-2:]] == [["task", "model"], ["digits", "gmlp-mini"]]


@pytest.mark.slow
def test_a_job_that_dies_without_an_exit_code_is_reported_with_its_job_log(tmp_path):
    folder = tmp_path / "jobs"
    executor = launch.JobExecutor("local", folder, SlurmConfig(), 0)
    job = executor.submit(launch.Job([sys.executable, "-c", "import time; time.sleep(20)"], {}, tmp_path / "x.log"))
    deadline = time.monotonic() + 120
    while "Starting with" not in "".join(p.read_text() for p in folder.glob("*_log.*")):
        assert time.monotonic() < deadline, "the job did not start within 120 s"
        time.sleep(0.1)
    os.kill(submitit_task(folder), signal.SIGKILL)  # the job process itself dies, as on a node that fails
    code, problem = executor.outcome(job)
    assert code is None
    assert problem.startswith(f"job {job.job_id} ended without an exit code (") and problem.endswith(
        f"; see {job.paths.stderr}")


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("clock, threads", [("process", "1"), ("wall", None)])
def test_cpu_runs_timed_by_the_process_clock_get_one_thread_whatever_jobs(monkeypatch, jobs, clock, threads):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(execute, "visible_gpus", lambda: [])
    grid = {"output_dir": "out", "tasks": ["digits"], "args": {"bench-clock": clock}}
    launcher = execute.Launcher(SimpleNamespace(executor="processes", slurm=SlurmConfig(), jobs=jobs, grid=Path("g.toml"),
                                                dry_run=False), grid, None)
    assert launcher.env.get("OMP_NUM_THREADS") == (threads or (None if jobs == 1 else "2"))


def test_a_launcher_for_runs_without_a_sweep_file_sets_no_threads():
    """bench.sanity launches its runs with a grid of output_dir and gpus_per_run alone (no tasks)."""
    launcher = execute.Launcher(SimpleNamespace(executor="processes", slurm=SlurmConfig(), jobs=1, grid=Path("sanity"),
                                                dry_run=False), {"output_dir": "out", "gpus_per_run": 0}, None)
    assert "OMP_NUM_THREADS" not in launcher.env
