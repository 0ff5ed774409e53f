"""How a sweep starts its runs: the GPUs each job gets, and runs as jobs through submitit.

Devices. With CUDA, every job the sweep runs at once gets its own GPU, or its own group of
`gpus_per_run` GPUs (`device_groups`), through CUDA_VISIBLE_DEVICES; a group of several is
used by one run through `accelerate launch --multi_gpu --num_processes N` (`run_launcher`). A
request the machine cannot meet (more GPUs per run, or more runs at a time, than it has) is
refused in one sentence before anything runs. Without CUDA nothing is set: CPU runs.

Jobs. `Job` is one command (a run of bench/run.py, or a cost pass) as a submitit job: Slurm's
(sbatch) or submitit's local executor, which runs the same code in subprocesses of this
machine. The job starts the command in a process group of its own and waits for it. When
Slurm preempts the job or its time runs out, submitit signals the job (SIGUSR2); `Job.checkpoint`
then passes SIGTERM to the run, which finishes its step, saves a checkpoint and writes its result
as "interrupted", and the job is requeued: started again, it resumes the run from that checkpoint
(`resumed_argv`), as a rerun of the sweep would.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import submitit

from bench.core.errors import UserError
from bench.core.results import checkpoint_folder

RUN_SCRIPT = Path(__file__).resolve().parent.parent / "run.py"
SUITE_ROOT = RUN_SCRIPT.parent.parent
RESUME_FLAGS = ("--resume", "--overwrite")


def resumed_argv(argv: list[str], result_path: Path) -> list[str]:
    """bench/run.py's arguments for a run that may have been started before: --resume when it left
    checkpoints, --overwrite when it left a result (an interrupted run that saved no checkpoint)."""
    argv = [a for a in argv if a not in RESUME_FLAGS]
    if checkpoint_folder(result_path).is_dir():
        return [*argv, "--resume"]
    if result_path.exists():
        return [*argv, "--overwrite"]
    return argv


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def visible_gpus() -> list[str]:
    """The GPUs this machine gives the sweep, as CUDA_VISIBLE_DEVICES names them: its own list when
    it is set (a sweep confined to some GPUs hands out only those), else 0 .. count - 1."""
    count = gpu_count()
    listed = [name.strip() for name in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if name.strip()]
    return listed[:count] if "CUDA_VISIBLE_DEVICES" in os.environ else [str(i) for i in range(count)]


def device_groups(gpus: list[str], gpus_per_run: int, jobs: int, where: str, runs_per_gpu: int = 1) -> list[Optional[str]]:
    """One CUDA_VISIBLE_DEVICES value per job the sweep runs at once: disjoint groups of `gpus_per_run`
    of `gpus`, each given to at most `runs_per_gpu` jobs at a time, spread over the groups first;
    None (nothing set) for CPU runs. `where` names the sweep file."""
    if gpus_per_run == 0:
        return [None] * jobs
    have = f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}" if gpus else "no GPU (torch finds no CUDA device)"
    if gpus_per_run > len(gpus):
        raise UserError(f"gpus_per_run = {gpus_per_run} in {where} asks for {gpus_per_run} GPUs per run, but this "
                        f"machine has {have}; lower it, or set gpus_per_run = 0 for CPU runs.")
    groups = len(gpus) // gpus_per_run
    if jobs > groups * runs_per_gpu:
        shared = f" (runs_per_gpu = {runs_per_gpu})" if runs_per_gpu > 1 else ""
        raise UserError(f"--jobs {jobs} asks for {jobs} runs at a time of {gpus_per_run} GPU"
                        f"{'s' if gpus_per_run > 1 else ''} each, but this machine has {have}{shared}: at most "
                        f"--jobs {groups * runs_per_gpu}.")
    return [",".join(gpus[(i % groups) * gpus_per_run:(i % groups + 1) * gpus_per_run]) for i in range(jobs)]


class DeviceSlots:
    """The device groups of the jobs running at once: a job takes one for the time it runs."""

    def __init__(self, groups: list[Optional[str]]):
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for group in groups:
            self.free.put(group)

    @contextmanager
    def take(self) -> Iterator[Optional[str]]:
        group = self.free.get()
        try:
            yield group
        finally:
            self.free.put(group)


def run_launcher(launcher: Optional[list[str]], gpus_per_run: int) -> list[str]:
    """The command that starts bench/run.py: the sweep file's launcher, this python, or for several
    GPUs per run `accelerate launch` with one process per GPU (its port is chosen when the run starts)."""
    if gpus_per_run > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(gpus_per_run), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return launcher or [sys.executable]


def with_free_port(command: list[str]) -> list[str]:
    """An `accelerate launch --multi_gpu` command with a port no other run on this machine uses."""
    if "--multi_gpu" not in command or "--main_process_port" in command:
        return command
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    i = command.index("--multi_gpu")
    return [*command[:i + 1], "--main_process_port", str(port), *command[i + 1:]]


def run_env(env: dict) -> dict:
    """`env` with this checkout first on the path: bench/run.py, started as a script, then imports the
    sweep's own code, not that of another checkout that happens to be installed."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, (str(SUITE_ROOT), env.get("PYTHONPATH"))))}


def start_process(command: list[str], env: dict, log, **kwargs) -> subprocess.Popen:
    """A run's process, in a process group of its own (a signal reaches it once, from whoever started it)."""
    return subprocess.Popen(with_free_port(command), process_group=0, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, env=run_env(env), **kwargs)


def _ignore_job_signals() -> None:
    # Slurm may send the job's signals to every process of the job: bench/run.py has no use for them,
    # and their default action would kill it before it saves a checkpoint.
    for s in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, signal.SIG_IGN)


class Job(submitit.helpers.Checkpointable):
    """A command as a submitit job: its exit code is the job's result. `env` is added to the job's
    own environment (on Slurm, the node's). With `result_path` it is a run of bench/run.py, which
    resumes from its checkpoint whenever the job starts again. It runs in the folder it was made in
    (on a cluster, a shared file system gives the job the same paths)."""

    def __init__(self, command: list[str], env: dict, log: Path, result_path: Optional[Path] = None,
                 cwd: Optional[str] = None):
        self.command, self.env, self.cwd = command, env, cwd or os.getcwd()
        self.log = Path(self.cwd, log)
        self.result_path = None if result_path is None else Path(self.cwd, result_path)
        self.proc: Optional[subprocess.Popen] = None
        self.stopped = False

    def __getstate__(self):
        return {**self.__dict__, "proc": None, "stopped": False}

    def __call__(self) -> int:
        command = self.command if self.result_path is None else resumed_argv(self.command, self.result_path)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with open(self.log, "a") as log:
                self.proc = start_process(command, {**os.environ, **self.env}, log, cwd=self.cwd,
                                  preexec_fn=_ignore_job_signals)
                return self.proc.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop(self, signum, frame=None) -> None:
        """Pass the first stop signal to the command; a second one would stop a run before its checkpoint."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM if signum not in (signal.SIGINT, signal.SIGTERM) else signum)
        except (ProcessLookupError, PermissionError):  # ended meanwhile
            pass

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Preempted or out of time: stop the command (a run saves a checkpoint and writes its result as
        interrupted), wait for it, and requeue this job, which then resumes the run."""
        self._stop(signal.SIGTERM)
        if self.proc is not None:
            try:  # not proc.wait(): the interrupted wait in __call__ holds its lock
                os.waitpid(self.proc.pid, 0)
            except ChildProcessError:  # already reaped
                pass
        return submitit.helpers.DelayedSubmission(Job(self.command, self.env, self.log, self.result_path, self.cwd))


class JobExecutor:
    """Jobs submitted through submitit: to Slurm ("slurm"), or to its local executor ("local"), which
    runs them as subprocesses of this machine by the same code, without sbatch. Job files and
    submitit's own logs go to `folder`."""

    def __init__(self, kind: str, folder: Path, slurm, gpus_per_run: int):
        self.kind = kind
        # The job imports this checkout's code, as the runs do (run_env).
        setup = [f"export PYTHONPATH={SUITE_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"]
        if kind == "slurm":
            self.executor = submitit.SlurmExecutor(folder)
            self.executor.update_parameters(
                job_name="mlpbench", time=slurm.time_min, cpus_per_task=slurm.cpus_per_run, setup=setup,
                **({"gpus_per_node": gpus_per_run} if gpus_per_run else {}),
                **({"partition": slurm.partition} if slurm.partition else {}),
                **({"mem": f"{slurm.mem_gb}GB"} if slurm.mem_gb else {}),
                **({"account": slurm.account} if slurm.account else {}),
            )
        else:
            self.executor = submitit.LocalExecutor(folder)
            self.executor.update_parameters(timeout_min=slurm.time_min, setup=setup)

    def submit(self, job: Job, alone: bool = False) -> submitit.Job:
        """Submit `job`; `alone`: on a node of its own (Slurm's --exclusive), for timing."""
        if alone and self.kind == "slurm":
            exclusive = submitit.SlurmExecutor(self.executor.folder)
            exclusive.update_parameters(**{**self.executor.parameters, "exclusive": True})
            return exclusive.submit(job)
        return self.executor.submit(job)

    @staticmethod
    def stop(job: submitit.Job) -> None:
        """Stop a running job: its run saves a checkpoint and ends as interrupted."""
        if isinstance(job, submitit.LocalJob):
            if job._process is not None and job._process.poll() is None:  # the local job's controller
                job._process.send_signal(signal.SIGTERM)  # passes it to the job, and the job to its run
        else:
            job.cancel(check=False)  # scancel: SIGTERM to the job, then SIGKILL after the cluster's KillWait

    @staticmethod
    def outcome(job: submitit.Job) -> tuple[Optional[int], Optional[str]]:
        """(the command's exit code, None) once the job ended with one, else (None, why it has none)."""
        job.wait()
        try:
            return job.result(), None
        except Exception as e:  # submitit's UncompletedJobError / FailedJobError: the job itself failed
            lines = [line for line in str(e).strip().splitlines() if line.strip()]
            return None, f"job {job.job_id} ended without an exit code ({lines[-1] if lines else type(e).__name__}); " \
                         f"see {job.paths.stderr}"
