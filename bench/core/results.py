"""The one result schema: a JSON file per run, written atomically; the scaling study's point files; the cost passes.

A result holds everything needed to read the run later without the code that made it:
the resolved config, the environment, the task's metrics, the measurements and a status.
The leaderboard reads only these files, so this module imports no torch at module level.

Keys of a result (schema_version 1):
    schema_version  int
    status          one of STATUSES
    task, model, size, seed
    variant         str, optional: VariantConfig.name(), e.g. "norm=layernorm"; "" or absent (files
                    written before variants existed) for the family's default
    modality        "image" | "mlm" | "seq2seq"
    baseline        bool: the model is its modality's Transformer baseline (its registration's)
    relative_of     str | None: the family the model changes one part of (its registration's, e.g.
                    "gmlp" for aMLP); absent in files written before it existed
    reference       bool: the model is a reference of another kind (the ConvNet), shown apart from the
                    compared families (its registration's); absent in files written before it existed
    config          {"run": {...}, "optim": {...}, "recipe": {...}, "data": {...}, "measure": {...}}: every
                    resolved flag (optim holds the values the recipe resolved to: lr scaled with the global
                    batch, weight decay, epochs, warm-up fraction, label smoothing, clipping)
    recipe          optional (absent in files written before recipes: they trained with "suite"):
                    {"name": str, "values": {every bench.core.recipes.Recipe field}, "sources": {field: str},
                     "overrides": [the fields given as flags], "global_batch": int, "lr": float}
    environment     capture_environment(): versions, device_type, device_name, device_count,
                    num_processes, precision, started_at, ...; where it ran: host, cuda_visible_devices
                    (the GPUs a sweep gave the run, None when unset) and slurm_job_id (None outside
                    Slurm), absent in files written before them; provenance: git_commit (the suite
                    checkout's commit, str | None outside git) and git_dirty (bool | None: tracked
                    files differed from it). Files written before git_dirty existed mark a dirty
                    tree with a "-dirty" suffix on git_commit; git_provenance reads both forms.
    metrics         {name: float}: the task's metrics, e.g. top1/top5/loss, mlm_accuracy/perplexity,
                    bleu/chrf (+ "sacrebleu_signature" string for seq2seq)
    primary_metric  {"name": str, "value": float | None, "higher_is_better": bool}
    params          int
    train           {"steps": int, "epochs": float, "samples": int, "final_loss": float | None, "seconds": float,
                     "resumed_from_step": int | None, "checkpoint": str | None (the last saved),
                     "scored": optional, --score-train: {the task's metrics on the training samples,
                     unaugmented, "samples": int}} | None
    history         [{"step": int, "epoch": float, "samples": int, "train_loss": float | None,
                      "split": "validation" | "test", "metrics": {name: float}}] | None: one entry per
                    evaluation (bench.training.history); the last is the run's own final evaluation, the others
                    (--eval-every) scored validation during training. None in bench mode; absent in
                    files written before it existed.
    tune            optional, a tuning run of a sweep with [tune] (bench.sweep): the tuning it belongs to,
                    {"lr": [the declared learning-rate grid], "warmup": [the warm-up grid] | None (none
                    declared), "extend": int (steps the sweep may take beyond an end of the lr grid)};
                    its lr outside "lr" is an extension. Absent in files written before it existed.
    saved_model     optional (--save-model): the name of the .model.json beside the result, from which
                    bench.models.load_saved rebuilds the trained model
    wall_time_s     float: seconds from the start of loading to the end of the run
    cpu_time_s      float: the CPU time (user + system) of the process, all its threads, and of its DataLoader
                    workers (bench.runs.phases.cpu_seconds) over the same span: what the
                    run cost a CPU, which wall_time_s is not where the machine was shared or the run paused.
                    A resumed run counts its last invocation only, as wall_time_s does. Absent in files
                    written before it existed.
    error           str | None: the one-sentence reason when status is not "ok"
    flops           {"forward_per_sample": float, "train_per_sample": float,
                     "head_share": float (masked LM only: the output head's share of the forward FLOPs)} | None
    throughput      {"batch_size": int, "requested_batch_size": int, "oom_retries": int,
                     "infer_samples_per_s": float, "train_samples_per_s": float,
                     "infer_tokens_per_s": float | None, "train_tokens_per_s": float | None,
                     "infer_spread": float, "train_spread": float,   # (max - min) / median over repeats
                     "loop_samples_per_s": float | None, "data_wait_fraction": float | None,
                     "stable": bool, "unstable_reason": str | None,   # bench.measure.timing.inconsistency
                     "remeasured": int,                               # measurements taken again
                     "inputs": "dataset" | "synthetic"} | None
    latency_ms      {"p50": float, "p90": float, "p99": float} | None   (batch-1 inference)
    memory          {"kind": "cuda" | "cpu_tensors", "train_peak_mb": float, "infer_peak_mb": float,
                     "train_reserved_mb": float | None, "infer_reserved_mb": float | None} | None
                    The peak of a pass of two steps (bench.measure.timing.PeakMemory). "cuda": the CUDA
                    allocator's peak allocated (and reserved) bytes. "cpu_tensors": the peak bytes of
                    the live tensors the steps use or make (weights, buffers, batch, activations,
                    gradients, optimizer state), not the process's memory. Older files have
                    "cpu_rss": the whole process's peak resident set, ~1 GB of libraries included.
    mfu             {"train": float, "infer": float, "peak_flops": float, "peak_source": str,
                     "note": str | None} | None   (note: why a value is above 1)
    data            optional, folder image tasks: {"skipped_images": {"train": int, "eval": int}}: image
                    files left out of each split (unreadable when the task loaded, or failing to decode
                    when a batch needed them; "eval" is the scored split); "skipped_entries": {reason:
                    int}, entries of the folder its walk left out (tasks.image.SKIP_REASONS: "loop",
                    "outside", "broken", "unreadable", "special"), only those there were
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from bench.core.errors import DiskFullError, UserError
from bench.core.process import pinned_isa

SCHEMA_VERSION = 1

# Every run ends in exactly one of these.
STATUSES = ("ok", "diverged", "oom", "interrupted", "error")

# Keys every result file has; the leaderboard validates against this.
REQUIRED_KEYS = (
    "schema_version",
    "status",
    "task",
    "model",
    "size",
    "seed",
    "config",
    "environment",
    "metrics",
    "primary_metric",
    "params",
    "wall_time_s",
)


def build_result(*, status: str, error: str | None, task: str, entry: Any, size: str, variant: str, seed: int,
                 spec: Any, config: dict[str, Any], environment: dict[str, Any], metrics: dict[str, Any],
                 params: int, train: Any, history: list | None, wall_time_s: float, cpu_time_s: float,
                 measurements: dict[str, Any],
                 train_scored: dict[str, float] | None = None,
                 skipped_images: dict[str, int] | None = None, skipped_entries: dict[str, int] | None = None,
                 saved_model: str | None = None, recipe: dict[str, Any] | None = None,
                 tune: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's result (the keys above), validated (ResultError if it is not of this schema). `entry`: the
    model's registration (bench.models.ModelEntry: its family and facts); `spec`: the task's
    bench.core.spec.TaskSpec; `train`: bench.training.loop.TrainStats, None without training; `measurements`:
    bench.measure.timing.measure_model's figures, {} when none were measured; `train_scored`: the task's
    metrics on the training samples (--score-train), None when not scored; `tune`: tune_record()'s, None outside
    a sweep's tuning."""
    result = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "task": task,
        "model": entry.family,
        "size": size,
        "variant": variant,
        "seed": seed,
        "modality": spec.modality,
        "baseline": entry.baseline,
        "relative_of": entry.relative_of,
        "reference": entry.reference,
        "config": config,
        **({"recipe": recipe} if recipe is not None else {}),
        **({"tune": tune} if tune is not None else {}),
        "environment": environment,
        "metrics": metrics,
        "primary_metric": {"name": spec.metric, "value": metrics.get(spec.metric),
                           "higher_is_better": spec.higher_is_better},
        "params": params,
        "train": None if train is None else {
            "steps": train.steps, "epochs": round(train.epochs, 4), "samples": train.samples,
            "final_loss": train.final_loss, "seconds": round(train.seconds, 3),
            "resumed_from_step": train.resumed_from_step, "checkpoint": train.checkpoint,
            **({"scored": train_scored} if train_scored is not None else {}),
        },
        "history": history,
        "wall_time_s": round(wall_time_s, 3),
        "cpu_time_s": round(cpu_time_s, 3),
        **{key: measurements.get(key) for key in ("flops", "throughput", "latency_ms", "memory", "mfu")},
    }
    if skipped_images is not None:
        result["data"] = {"skipped_images": skipped_images, **({"skipped_entries": skipped_entries} if skipped_entries
                                                               else {})}
    if saved_model is not None:
        result["saved_model"] = saved_model
    return validate_result(result)


# Set by bench.sweep for its tuning runs: the [tune] protocol they belong to, as JSON, recorded in the result.
TUNE_ENV = "MLPBENCH_TUNE"


def tune_record(text: str | None) -> dict[str, Any] | None:
    """The tuning a run belongs to, from TUNE_ENV's value (None: unset): {"lr": [...], "warmup": [...] | None,
    "extend": int}; a value of another shape is a UserError."""
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not valid_tune_record(record):
        raise UserError(f"{TUNE_ENV} must be the JSON of a sweep's tuning ({{\"lr\": [learning rates], \"warmup\": "
                        f"[fractions] or null, \"extend\": steps}}), as python -m bench.sweep sets it for its tuning "
                        f"runs; got {text[:60]!r}.")
    return record


def valid_tune_record(record: Any) -> bool:
    """Whether `record` has the shape of a result's "tune": {"lr": [positive numbers], "warmup": [numbers in
    [0, 1)] | None, "extend": int >= 0}."""
    def numbers(value, within) -> bool:
        return isinstance(value, list) and bool(value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and within(v) for v in value)

    return (isinstance(record, dict) and set(record) == {"lr", "warmup", "extend"}
            and numbers(record["lr"], lambda v: 0 < v < float("inf"))
            and (record["warmup"] is None or numbers(record["warmup"], lambda v: 0 <= v < 1))
            and isinstance(record["extend"], int) and not isinstance(record["extend"], bool) and record["extend"] >= 0)


def result_filename(task: str, model: str, size: str, seed: int, precision: str, variant: str = "") -> str:
    """One file name per (task, model, size, variant, seed, precision), so reruns find their result;
    `variant` is VariantConfig.name(), "" (and left out of the name) for the family's default."""
    model_name = f"{model}-{size}" + (f"__{variant}" if variant else "")
    return f"{task}__{model_name}__{precision}__seed{seed}.json"


def checkpoint_folder(result_path: Path) -> Path:
    """Where the run whose result is `result_path` keeps its checkpoints: checkpoints/<its name> beside it."""
    return result_path.parent / "checkpoints" / result_path.stem


# The settings that change what a run produces, per concern of its config. The task, model, size,
# variant, seed and precision are in the file name already; left out are the data loader's worker
# count, the evaluation batch size and the measurement flags (they change costs, not what is learned).
OUTCOME_SETTINGS = {
    "run": ("mode",),
    "recipe": ("recipe", "optimizer", "warmup_epochs", "mixup", "cutmix", "mix_prob", "switch_prob", "rand_augment",
               "re_prob", "drop_path", "repeated_aug", "ema_decay"),
    "optim": ("batch_size", "lr", "weight_decay", "epochs", "max_steps", "warmup_fraction", "label_smoothing",
              "grad_accum", "grad_clip"),
    "data": ("data_dir", "data_files", "hub_id", "val_fraction", "eval_split", "max_train_samples",
             "max_eval_samples", "tokenizer", "vocab_size", "image_size", "seq_len", "source_field", "target_field"),
}


def setting_differences(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """The outcome-changing settings (OUTCOME_SETTINGS) in which two configs ({concern: {field: value}},
    as a result's "config") differ, as "--lr 0.002 here, 0.001 there"; a field either lacks (a file
    written before it existed) is not compared, nor --epochs where the same --max-steps overrides it."""
    out = []
    for concern, keys in OUTCOME_SETTINGS.items():
        old, new = recorded.get(concern) or {}, planned.get(concern) or {}
        if not isinstance(old, dict) or not isinstance(new, dict):
            continue
        for key in keys:
            if key not in old or key not in new or old[key] == new[key]:
                continue
            if key == "epochs" and new.get("max_steps") is not None and new.get("max_steps") == old.get("max_steps"):
                continue
            out.append(f"--{key.replace('_', '-')} {new[key]} here, {old[key]} there")
    return out


def lock_path(result_path: Path) -> Path:
    """The lock file of the run whose result is `result_path`: .<its name>.lock beside it."""
    return result_path.parent / f".{result_path.stem}.lock"


class ProcessLock:
    """An exclusive lock held by one process, with its process id in the lock file: fcntl.flock on `path`,
    which the kernel releases when the process ends, however it ends (SIGKILL included: a lock file left
    by a killed holder does not block the next one); release() removes the file. The descriptor is not
    inherited by the processes the holder starts."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it. OSError if it cannot be made."""
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the holder before us removes the file as it releases: hold the file that is there now
                current = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return True
            os.close(fd)

    def holder(self) -> str:
        """The process id written by the run holding the lock, or "?"."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        import fcntl

        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


class RunLock(ProcessLock):
    """An exclusive lock on one run's result, held from before the run checks its output until it
    ends: two runs of the same identity started together would otherwise both train and overwrite
    each other. On lock_path(result)."""

    def __init__(self, result_path: Path):
        super().__init__(lock_path(Path(result_path)))


def git_state() -> dict[str, Any]:
    """The suite checkout's provenance: {"git_commit": sha, "git_dirty": bool}; both None outside git.
    Dirty: a tracked file differs from the commit (untracked files are not looked at)."""
    unknown = {"git_commit": None, "git_dirty": None}
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return unknown
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return unknown
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"git_commit": head.stdout.strip(), "git_dirty": dirty}


DIRTY_SUFFIX = "-dirty"  # how files written before git_dirty existed marked a dirty tree


def git_provenance(environment: dict[str, Any]) -> tuple[str | None, bool | None]:
    """(commit, dirty) of a result's environment, from either form: {"git_commit": sha, "git_dirty":
    bool}, or an older file's "<sha>-dirty" (dirty) / "<sha>" (clean). None where not known."""
    commit, dirty = environment.get("git_commit"), environment.get("git_dirty")
    if not isinstance(commit, str) or not commit:
        return None, None
    if commit.endswith(DIRTY_SUFFIX):
        return commit[: -len(DIRTY_SUFFIX)], True
    if "git_dirty" not in environment:  # written before git_dirty: no suffix meant a clean tree
        return commit, False
    return commit, dirty if isinstance(dirty, bool) else None


def capture_environment(accelerator=None, precision: str = "fp32") -> dict[str, Any]:
    """Software versions and hardware of this run; `accelerator` gives device and processes."""
    import accelerate
    import timm
    import torch
    import transformers

    if accelerator is not None:
        device = accelerator.device
        num_processes = accelerator.num_processes
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        num_processes = 1
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
        device_count = torch.cuda.device_count()
        cuda = torch.version.cuda
        driver = _nvidia_driver()
    else:
        device_name = _cpu_name()
        device_count = 1
        cuda = None
        driver = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "cuda": cuda,
        "driver": driver,
        "device_type": device.type,
        "device_name": device_name,
        "device_count": device_count,
        "num_processes": num_processes,
        "cpu_threads": torch.get_num_threads(),
        "precision": precision,
        "platform": platform.platform(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else None,
        "reproducible": pinned_isa(),  # None, or the pinned instruction sets (bench/core/process.py)
        # Where it ran: the machine, the GPUs a sweep gave it and the Slurm job it was (None: not set).
        "host": platform.node(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **git_state(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def _nearest_existing(path: Path) -> Path:
    return next(p for p in (path, *path.parents) if p.exists() or p.is_symlink())


def check_output_folder(path: str | os.PathLike, flag: str) -> None:
    """Before any slow work: UserError, one sentence, when `path` cannot be a folder this process writes
    into (a file is there or above it, or the nearest existing folder is read-only)."""
    path = Path(path)
    existing = _nearest_existing(path.absolute())
    if not existing.is_dir():
        what = f"{flag} {path}" if existing == path.absolute() else f"{flag} {path}: {existing}"
        raise UserError(f"{what} is a file, not a folder; give a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: the folder {existing} cannot be written; choose another.")


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """Before any slow work: UserError, one sentence, when `path` cannot be a file this process writes (it is
    a folder, or its folder cannot be one)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name.")
    check_output_folder(path.parent, f"{flag} {path}: its folder")


FULL_MARGIN = 1 << 20  # free bytes under which a failed write is taken for a write to a full disk
DISK_FULL_MESSAGES = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def bytes_in(path: Path) -> int:
    """The bytes of a file, or of every file under a folder; 0 for what is not there."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether `error`, raised while writing into `folder`, means its disk (or the quota) is full: ENOSPC or
    EDQUOT, by errno or in the message of a library that wraps it (tokenizers and safetensors say "os error
    28"), or any failure of a write that left less than FULL_MARGIN free (torch.save says "unexpected pos")."""
    if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    if any(message in str(error) for message in DISK_FULL_MESSAGES):
        return True
    try:
        return shutil.disk_usage(folder).free < FULL_MARGIN
    except OSError:
        return False


def disk_full_error(path: Path, written: int, needed: int | None = None,
                    remedy: str = "free some space and run the same command again") -> DiskFullError:
    """The sentence of a write to `path` that filled its disk after `written` bytes (`needed`: the whole
    size, where known), said once the partial file is gone."""
    path = Path(path)
    try:
        free = shutil.disk_usage(next(p for p in (path.parent, *path.parents) if p.exists())).free
    except (OSError, StopIteration):
        free = 0
    need = _size(needed) if needed is not None else f"more than {_size(written)}"
    return DiskFullError(
        f"The disk is full: {path} could not be written (it needs {need}, {_size(free)} are free); no part of it "
        f"was kept and what was there before is intact: {remedy}."
    )


@contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None) -> Iterator[Path]:
    """The one way the suite writes a file: `with atomic_path(p) as tmp:` write `tmp` (with open(), or a
    library's save(tmp)); when the block ends the file is synced, made readable by all (0o644:
    mkstemp makes it private, and results, pages and caches are meant to be shared) and renamed to
    `p`. On an error it is removed: a crash never leaves half a file under `p`. A write that fills the
    disk ends in DiskFullError, one sentence naming `p` and the space it needs (`size`, its bytes where
    the caller knows them)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)  # the writer may have replaced the file mkstemp made
        try:
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except Exception as e:
        written = 0 if tmp is None else bytes_in(tmp)
        full = disk_full(e, path.parent if path.parent.exists() else Path("."))
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if full and not isinstance(e, DiskFullError):
            raise disk_full_error(path, written, size) from None
        raise
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) atomically (`atomic_path`)."""
    data = text.encode("utf-8")
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write JSON atomically (`atomic_path`), keys sorted, as results are written."""
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def predictions_paths(result_path: Path) -> tuple[Path, Path]:
    """Where a seq2seq run writes its hypotheses and references, one line per scored example, in the
    same order: `sacrebleu REF -i HYP` reproduces the recorded BLEU."""
    return result_path.with_suffix(".hyp.txt"), result_path.with_suffix(".ref.txt")


def model_paths(result_path: Path) -> tuple[Path, Path]:
    """Where --save-model keeps a run's final weights (safetensors) and the description that rebuilds
    the model (bench.models.load_saved)."""
    return result_path.with_suffix(".safetensors"), result_path.with_suffix(".model.json")


class ResultError(ValueError):
    """A result file that is not valid JSON or not of this schema."""


def validate_result(data: Any, source: str = "result") -> dict[str, Any]:
    """Check a loaded result against the schema; raise ResultError with one sentence if not."""
    if not isinstance(data, dict):
        raise ResultError(f"{source} is not a JSON object.")
    _check_schema(data, source, REQUIRED_KEYS, "a result of this suite", SCHEMA_VERSION, "version", STATUSES)
    return data


def _check_schema(data: dict[str, Any], source: str, required: tuple[str, ...], kind: str, version: int,
                  version_name: str, statuses: tuple[str, ...]) -> None:
    """The checks results and scaling points share: required keys, schema version, status."""
    missing = [k for k in required if k not in data]
    if missing:
        raise ResultError(f"{source} lacks the keys {', '.join(missing)}; it is not {kind}.")
    if data["schema_version"] != version:
        raise ResultError(
            f"{source} has schema_version {data['schema_version']!r}; this suite reads {version_name} {version}."
        )
    if data["status"] not in statuses:
        raise ResultError(f"{source} has status {data['status']!r}; expected one of {', '.join(statuses)}.")


MAX_RESULT_BYTES = 2**24  # a result is a few kilobytes; a file far larger is none, and is not read


def _result_bytes(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_RESULT_BYTES, else ResultError. Opened without
    blocking, so a FIFO or a device named *.json is refused instead of waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ResultError(f"{path} is not a regular file; a result is a JSON file.")
        if info.st_size > MAX_RESULT_BYTES:
            raise ResultError(f"{path} holds {info.st_size} bytes, far more than a result of this suite.")
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one result file."""
    return validate_result(read_json(path), source=str(path))


# ---------------------------------------------------------------------------------------------
# Scaling points (bench/scaling.py): cost at one input size, one file per point
#
# Keys of a point (kind POINT_KIND, schema_version POINT_SCHEMA_VERSION):
#     kind, schema_version
#     status          one of POINT_STATUSES: "ok"; "oom" (over the memory cap, or out of device
#                     memory); "timeout" (over the time cap); "skipped" (not run: a shorter input
#                     of the same family and series was already over a cap); "error" (a failure of
#                     the code, with its sentence)
#     error           str | None: why, when status is not "ok"
#     series          the series swept (bench.studies.scaling.SERIES), e.g. "image-p16", "mlm"
#     modality, task  the modality and the registered task whose shape the inputs take
#     model, size, baseline   the family, its named size, whether it is the modality's baseline
#     tokens          int: the number swept: patches per image, or the sequence length
#     input           {"image_side": int, "patch": int} | {"seq_len": int, "target_len": int | None}
#     batch_size      int: samples per timed step, the same at every point
#     tokens_per_sample  float | None: tokens a sample carries, as tokens/s counts them
#     params          int | None
#     flops           bench.measure.timing's flops, plus "analytic_forward_per_sample": the family's
#                     registered formula (bench.models ModelEntry.flops) | None
#     throughput, latency_ms, memory, mfu   bench.measure.timing.measure_model's | None
#     config          {"scaling": the settings that decide the point's figures and status}
#     environment     capture_environment(), plus "load_average": the 1, 5 and 15 minute load
#                     averages when the point began measuring (a busy machine shows), "cpu_count":
#                     the machine's cores, "measure_lock": whether it measured holding a sweep's
#                     measurement lock (bench.core.machine)
#     cpu_time_s, wall_time_s   float | None: what the point took

POINT_KIND = "mlpbench-scaling-point"
POINT_SCHEMA_VERSION = 1
POINT_STATUSES = ("ok", "oom", "timeout", "skipped", "error")
POINT_REQUIRED_KEYS = (
    "kind", "schema_version", "status", "series", "modality", "task", "model", "size", "tokens", "batch_size",
    "config", "environment",
)


def point_filename(series: str, model: str, size: str, tokens: int, device_type: str, precision: str) -> str:
    """One file name per (series, family, size, token count, device type, precision)."""
    return f"{series}__{model}-{size}__{tokens:05d}-tokens__{device_type}-{precision}.json"


def is_point(data: Any) -> bool:
    """Whether loaded JSON claims to be a scaling point (validate_point checks it)."""
    return isinstance(data, dict) and data.get("kind") == POINT_KIND


def validate_point(data: Any, source: str = "point") -> dict[str, Any]:
    """Check a loaded scaling point against its schema; raise ResultError with one sentence if not."""
    if not is_point(data):
        raise ResultError(f"{source} is not a scaling point (no kind {POINT_KIND!r}).")
    _check_schema(data, source, POINT_REQUIRED_KEYS, "a complete scaling point", POINT_SCHEMA_VERSION,
                  "scaling points of version", POINT_STATUSES)
    tokens = data["tokens"]
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ResultError(f"{source} has tokens = {tokens!r}, which is not a positive count.")
    if data["status"] == "ok" and not all(isinstance(data.get(k), dict) for k in ("flops", "throughput", "memory")):
        raise ResultError(f"{source} has status ok but lacks its flops, throughput or memory.")
    return data


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's content; ResultError naming the file if it cannot be read as JSON."""
    path = Path(path)
    try:
        return json.loads(_result_bytes(path).decode("utf-8"))
    except ResultError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: also int digit limits
        raise ResultError(f"{path} could not be read as JSON ({e}).") from None


def load_point(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one scaling point."""
    return validate_point(read_json(path), source=str(path))


# ---------------------------------------------------------------------------------------------
# Cost passes (bench/cost.py): a task's models timed side by side, one file per task
#
# Keys of a cost pass (kind COST_KIND, schema_version COST_SCHEMA_VERSION):
#     kind, schema_version, task
#     sweep_file      the sweep file whose runs' models were timed, relative to the working directory
#                     where it lies beneath it
#     batch_size      samples per timed step (the runs' batch size)
#     tokens_per_sample  float | None: tokens a sample of the timed batch carries (text tasks)
#     settings        {"rounds", "steps", "warmup", "clock", "threads", "precision"}
#     models          [{"model", "size", "variant", "baseline", "relative_of", "params", "seeds": [int],
#                       "train" and "infer": {"samples_per_s": the median over its seeds' rounds, rates
#                       scaled to the median round's machine speed; "ci": [low, high] its 95% bootstrap
#                       interval; "tokens_per_s": float | None; "seed_spread": (max - min) / median of its
#                       seeds' medians; "raw_samples_per_s": the median of the unscaled rates}}]
#     cases           [{"model", "size", "variant", "seed", "params", "train_raw" / "infer_raw": [a rate per
#                       round], "train_samples_per_s" / "infer_samples_per_s": the scaled median}]
#     round_speed     {"train" / "infer": [the geometric mean of a round's rates, per round]}
#     drift           {"train" / "infer": (max - min) / median of the round speeds}
#     environment     capture_environment() (one thread), plus "load_average": the 1-minute load
#                     average before and after the timing
#     wall_time_s, cpu_time_s

COST_KIND = "mlpbench-cost-pass"
COST_SCHEMA_VERSION = 1
COST_REQUIRED_KEYS = ("kind", "schema_version", "task", "batch_size", "settings", "models", "environment")
COST_PHASE_KEYS = ("samples_per_s", "ci", "tokens_per_s", "seed_spread", "raw_samples_per_s")


def build_cost_pass(*, task: str, sweep_file: str, batch_size: int, tokens_per_sample: float | None,
                    settings: dict[str, Any], summary: dict[str, Any], environment: dict[str, Any],
                    load_average: list, wall_time_s: float, cpu_time_s: float) -> dict[str, Any]:
    """A cost pass's file (the keys above), validated; `summary`: bench.measure.cost.summarise's figures;
    `environment`: capture_environment() as the pass began."""
    environment = dict(environment)
    environment["load_average"] = [None if x is None else round(x, 2) for x in load_average]
    return validate_cost_pass({
        "kind": COST_KIND,
        "schema_version": COST_SCHEMA_VERSION,
        "task": task,
        "sweep_file": sweep_file,
        "batch_size": batch_size,
        "tokens_per_sample": tokens_per_sample,
        "settings": settings,
        **summary,
        "environment": environment,
        "wall_time_s": round(wall_time_s, 1),
        "cpu_time_s": round(cpu_time_s, 1),
    })


def is_cost_pass(data: Any) -> bool:
    """Whether loaded JSON claims to be a cost pass (validate_cost_pass checks it)."""
    return isinstance(data, dict) and data.get("kind") == COST_KIND


def validate_cost_pass(data: Any, source: str = "cost pass") -> dict[str, Any]:
    """Check a loaded cost pass against its schema; raise ResultError with one sentence if not."""
    if not is_cost_pass(data):
        raise ResultError(f"{source} is not a cost pass (no kind {COST_KIND!r}).")
    missing = [k for k in COST_REQUIRED_KEYS if k not in data]
    if missing:
        raise ResultError(f"{source} lacks the keys {', '.join(missing)}; it is not a complete cost pass.")
    if data["schema_version"] != COST_SCHEMA_VERSION:
        raise ResultError(f"{source} has schema_version {data['schema_version']!r}; this suite reads cost passes "
                          f"of version {COST_SCHEMA_VERSION}.")
    models = data["models"]
    if not isinstance(models, list) or not models or not all(
        isinstance(m, dict) and all(isinstance(m.get(phase), dict) and set(COST_PHASE_KEYS) <= set(m[phase])
                                    for phase in ("train", "infer"))
        for m in models
    ):
        raise ResultError(f"{source} has no list of models with train and infer figures; it is not a complete "
                          f"cost pass.")
    return data
