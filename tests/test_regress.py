"""bench.regress end to end on a tiny case: A/B against a ref, stored baselines, exit codes, refusals."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.regression.decision import decide

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--case", "gmlp-mini:digits:8:fp32:infer", "--rounds", "4", "--repeats", "2", "--steps", "2"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git repository holding this checkout's files (uncommitted changes included) in one commit."""
    repo = tmp_path_factory.mktemp("suite")
    files = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "suite")
    return repo


def regress(repo: Path, *args: str, slowdown: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "MLPBENCH_INJECT_SLOWDOWN"}
    if slowdown:
        env["MLPBENCH_INJECT_SLOWDOWN"] = slowdown
    return subprocess.run([sys.executable, "-m", "bench.regress", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)


def worktrees(repo: Path) -> int:
    return git(repo, "worktree", "list", "--porcelain").count("worktree ")


# --------------------------------------------------------------------------- decision


def test_the_driver_names_the_workers_slowdown_hook_as_the_worker_does():
    """bench.regression.sides keeps its own copy of the worker's INJECT_SLOWDOWN_ENV (a library imports no
    command); every checkout's worker reads that name."""
    from bench.regress_worker import INJECT_SLOWDOWN_ENV
    from bench.regression.sides import INJECT_SLOWDOWN_ENV as driver

    assert driver == INJECT_SLOWDOWN_ENV


def test_decision_needs_both_size_and_significance():
    base = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99]
    assert decide(base, [x * 1.2 for x in base], tolerance=0.1, alpha=0.01).status == "regression"
    assert decide(base, [x * 1.05 for x in base], tolerance=0.1, alpha=0.01).status == "ok"  # real but small
    assert decide(base, [x * 0.8 for x in base], tolerance=0.1, alpha=0.01).status == "faster"
    # A ratio far above the tolerance that noise explains: bimodal samples, one more slow one.
    noisy = decide([1, 1, 1, 1, 3, 3, 3, 3], [1, 1, 1, 3, 3, 3, 3, 3], tolerance=0.1, alpha=0.01)
    assert noisy.ratio == 1.5 and noisy.p_slower > 0.3 and noisy.status == "ok"
    verdict = decide(base, [x * 1.2 for x in base], tolerance=0.1, alpha=0.01)
    assert verdict.ci[0] <= verdict.ratio <= verdict.ci[1]


# --------------------------------------------------------------------------- A/B against a ref


def test_same_code_passes_and_writes_every_report(repo, tmp_path):
    # Tolerance 100%: samples of a few milliseconds are noisy on a busy machine; the false-alarm
    # rate at the default settings is measured by bench.regress_calibration, not here.
    out = regress(repo, "--ref", "main", *TINY, "--tolerance", "1",
                  "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"))
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    [case] = record["cases"]
    assert case["status"] == "ok" and record["exit_code"] == 0
    assert len(case["base_samples"]) == len(case["new_samples"]) == 4 * 2
    assert record["base"]["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert "gmlp-mini:digits:8:fp32:infer" in out.stdout and "no regression" in out.stdout
    markdown = (tmp_path / "r.md").read_text()
    assert markdown.startswith("### Throughput regression check") and "| `gmlp-mini:digits:8:fp32:infer` |" in markdown
    assert worktrees(repo) == 1  # the temporary checkout of the ref is gone


def test_injected_slowdown_is_a_regression(repo, tmp_path):
    out = regress(repo, "--ref", "main", *TINY, "--json", str(tmp_path / "r.json"), slowdown="2.0")  # 3x: cannot flake
    assert out.returncode == 1, out.stderr
    [case] = json.loads((tmp_path / "r.json").read_text())["cases"]
    assert case["status"] == "regression" and case["ratio"] > 1.5  # about 3 on a quiet machine, 1.7 seen under heavy load


def test_unknown_ref_is_one_sentence(repo):
    out = regress(repo, "--ref", "no-such-branch", *TINY)
    assert out.returncode == 2
    assert out.stderr == f"error: 'no-such-branch' is not a commit of the git repository in {repo}.\n"


def test_ref_the_check_cannot_measure(repo):
    """A commit whose bench.measure.timing lacks the timing function the workers need: exit 2, not a crash."""
    git(repo, "checkout", "-q", "-b", "old")
    measure = repo / "bench" / "measure" / "timing.py"
    measure.write_text(measure.read_text().replace("def timed_rates(", "def _old_timed_rates("))
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-am", "old")
    git(repo, "checkout", "-q", "main")
    out = regress(repo, "--ref", "old", *TINY)
    assert out.returncode == 2
    assert out.stderr.startswith("error: The base side failed while building the cases: the checkout ")
    assert "predates bench.measure.timing.timed_rates" in out.stderr and "Traceback" not in out.stderr
    assert worktrees(repo) == 1


def test_ref_older_than_the_check_is_one_sentence(repo):
    """A commit without bench/regress_worker.py has no worker to time its own code with."""
    git(repo, "checkout", "-q", "-b", "before-the-check")
    (repo / "bench" / "regress_worker.py").unlink()
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-am", "before")
    git(repo, "checkout", "-q", "main")
    out = regress(repo, "--ref", "before-the-check", *TINY)
    assert out.returncode == 2
    assert out.stderr == ("error: 'before-the-check' predates the regression check (it has no bench/regress_worker.py "
                          "to time its own code with); compare against a later ref.\n")
    assert worktrees(repo) == 1


def start_regress(repo: Path, *args: str, **env_vars: str) -> subprocess.Popen:
    # A shell's background job inherits SIGINT ignored, and Python then keeps ignoring it: restore the default.
    return subprocess.Popen([sys.executable, "-m", "bench.regress", *args], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env_vars},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, what: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.05)


def assert_stopped_and_removed(process: subprocess.Popen, signum: int, repo: Path, tmp: Path) -> None:
    """The check ended by `signum`, in one sentence, with its worktree and temporary folder gone."""
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines()[-1] == "error: Interrupted; nothing was compared.", stderr
    assert worktrees(repo) == 1 and not (repo / ".git" / "worktrees").exists()
    assert not list(tmp.glob("mlpbench-regress-*")), "the temporary folder of the worktree is gone"


@pytest.fixture
def busy():
    """Every core kept busy by other processes, as on the shared machine where the cleanup once failed."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


@pytest.mark.parametrize("load", ["idle", "busy"])
def test_interrupt_removes_the_worktree(repo, tmp_path, request, load):
    if load == "busy":
        request.getfixturevalue("busy")
    process = start_regress(repo, "--ref", "main", *TINY, TMPDIR=str(tmp_path))
    wait_for(lambda: worktrees(repo) == 2, "worktree", process)
    process.send_signal(signal.SIGINT)
    assert_stopped_and_removed(process, signal.SIGINT, repo, tmp_path)


def test_an_interrupt_while_git_adds_the_worktree_removes_it(repo, tmp_path):
    """A loaded machine makes `git worktree add` slow enough for Ctrl-C to land inside it. Here a smudge
    filter holds its checkout until the test lets it go: git must be left to finish (killed half-way,
    it leaves a locked worktree that `git worktree remove --force` refuses), and then removed."""
    started, go = tmp_path / "filter-started", tmp_path / "filter-go"
    (tmp_path / "attributes").write_text("README.md filter=held\n")
    held = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; cat"
    (tmp_path / "tmp").mkdir()
    process = start_regress(
        repo, "--ref", "main", *TINY, TMPDIR=str(tmp_path / "tmp"), GIT_CONFIG_COUNT="2",
        GIT_CONFIG_KEY_0="filter.held.smudge", GIT_CONFIG_VALUE_0=held,
        GIT_CONFIG_KEY_1="core.attributesFile", GIT_CONFIG_VALUE_1=str(tmp_path / "attributes"),
    )
    wait_for(started.exists, "checkout", process)
    process.send_signal(signal.SIGINT)
    time.sleep(1)  # a driver that kills git on Ctrl-C has done so by now
    go.touch()
    assert_stopped_and_removed(process, signal.SIGINT, repo, tmp_path / "tmp")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_a_slow_worker_and_removes_the_worktree(repo, tmp_path, signum):
    """The ref's own code takes ten minutes to import in its worker: the check stops at once all the same."""
    marker = tmp_path / "worker-pid"
    git(repo, "checkout", "-q", "-b", f"slow-{signum}")
    init = repo / "tasks" / "__init__.py"
    init.write_text(f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
                    f"time.sleep(600)\n{init.read_text()}")
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-am", "slow")
    git(repo, "checkout", "-q", "main")
    (tmp_path / "tmp").mkdir()
    process = start_regress(repo, "--ref", f"slow-{signum}", *TINY, TMPDIR=str(tmp_path / "tmp"))
    wait_for(lambda: marker.exists() and marker.read_text(), "slow worker", process)
    process.send_signal(signum)
    assert_stopped_and_removed(process, signum, repo, tmp_path / "tmp")
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)  # the worker is gone, not left running in the removed checkout


@pytest.mark.parametrize("args, sentence", [
    (["--tolerance", "0"], "--tolerance must be in (0, 10), got 0.0."),
    (["--alpha", "nan"], "--alpha must be a finite number, got nan."),
    (["--rounds", "many"], "argument --rounds: invalid int value: 'many'; see python -m bench.regress --help."),
    (["--ref", "main", "--baseline", "b.json"], "--ref and --baseline are different comparisons; pass only one of them."),
    (["--case", "gmlp:digits:8:fp32:infer"], "--case 'gmlp:digits:8:fp32:infer' is not MODEL-SIZE:TASK:BATCH:PRECISION:PHASE, "
                                             "e.g. gmlp-mini:digits:32:fp32:infer."),
    (["--case", "gmlp-mini:digits:8:fp32:eval"], "--case 'gmlp-mini:digits:8:fp32:eval': phase must be one of infer, train."),
    (["--json", "/nonexistent-folder/r.json"], "--json /nonexistent-folder/r.json: the folder /nonexistent-folder does not exist."),
])
def test_bad_flags_are_one_sentence(repo, args, sentence):
    out = regress(repo, *args)
    assert out.returncode == 2 and out.stderr == f"error: {sentence}\n"


# --------------------------------------------------------------------------- stored baselines


@pytest.fixture(scope="module")
def baseline(repo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    out = regress(repo, "--save-baseline", str(path), *TINY)
    assert out.returncode == 0, out.stderr
    return path


def test_baseline_round_trip(repo, baseline):
    stored = json.loads(baseline.read_text())
    assert stored["environment"]["torch"] == torch.__version__ and stored["environment"]["cpu_threads"] == 1
    assert len(stored["samples"]["gmlp-mini:digits:8:fp32:infer"]) == 4 * 2
    # Tolerance 100%: a baseline is not interleaved with the new samples, so on a busy machine
    # a real but harmless 10% drift between the two moments must not fail this test of the mechanics.
    out = regress(repo, "--baseline", str(baseline), "--rounds", "3", "--repeats", "2", "--steps", "2", "--tolerance", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"working tree against baseline {baseline}: no regression" in out.stdout
    assert len(json.loads(baseline.read_text())["samples"]) == 1  # comparing does not touch the baseline


def test_mismatched_baseline_is_refused(repo, baseline, tmp_path):
    stored = json.loads(baseline.read_text())
    stored["environment"]["torch"] = "1.0.0"
    stored["environment"]["device_name"] = "Other GPU"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(stored))
    here = json.loads(baseline.read_text())["environment"]
    out = regress(repo, "--baseline", str(other), *TINY[2:])
    assert out.returncode == 2
    assert out.stderr == (
        f"error: The baseline {other} was measured in another environment (device_name 'Other GPU' there, "
        f"{here['device_name']!r} here; torch '1.0.0' there, {torch.__version__!r} here); its times are not "
        f"comparable, so measure a new one here with --save-baseline.\n"
    )


def test_baseline_without_the_precision_is_refused(repo, baseline):
    out = regress(repo, "--baseline", str(baseline), "--case", "gmlp-mini:digits:8:bf16:infer")
    assert out.returncode == 2
    assert out.stderr == (
        f"error: The baseline {baseline} has no samples for gmlp-mini:digits:8:bf16:infer (precision and phase "
        f"included); it holds gmlp-mini:digits:8:fp32:infer.\n"
    )


def test_corrupt_and_missing_baselines_are_one_sentence(repo, tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"kind": "mlpbench-regress-baseline", "version": 1, "samp')
    out = regress(repo, "--baseline", str(corrupt))
    assert out.returncode == 2 and out.stderr.startswith(f"error: The baseline {corrupt} could not be read as JSON (")
    assert len(out.stderr.strip().splitlines()) == 1
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"schema_version": 1}')
    out = regress(repo, "--baseline", str(foreign))
    assert out.returncode == 2
    assert out.stderr == f"error: {foreign} is not a baseline of version 1 written by --save-baseline.\n"
    out = regress(repo, "--baseline", str(tmp_path / "missing.json"))
    assert out.returncode == 2
    assert out.stderr == f"error: The baseline {tmp_path / 'missing.json'} does not exist; create it with --save-baseline.\n"
