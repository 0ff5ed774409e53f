import os
import sys
from pathlib import Path

import pytest

# The suite's process defaults (bench/core/process.py: MKL's reproducible mode among them) apply only
# when bench is imported before PyTorch; in-process runs must do the same arithmetic as the runs
# the tests launch as commands (tests/test_resume.py compares the two bit for bit).
import bench  # noqa: F401  (before torch)
import torch

# Nothing in the tests may reach a hub; progress bars would only clutter the logs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# The commands tests start as scripts (python bench/run.py) import the suite as an installed package;
# make it this checkout's, whichever checkout pip installed.
ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each launched run is a fresh process; in-process runs share Accelerate's singleton state,
    which keeps the first run's mixed precision: reset it after every test."""
    yield
    if "accelerate" in sys.modules:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()


@pytest.fixture
def one_thread():
    """One torch thread: tiny models gain nothing from a pool whose threads spin against other
    processes on shared cores, and in-process runs then do the same arithmetic as launched
    processes started with OMP_NUM_THREADS=1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def need_debian_data(package: str) -> None:
    """Skip a test whose real data comes from a Debian package that is not installed, saying which;
    with MLPBENCH_REQUIRE_DATA set (CI installs the packages) a missing package fails instead."""
    from pathlib import Path

    from bench.install_data import PACKAGES

    path, task = PACKAGES[package]
    if Path(path).exists():
        return
    why = f"Debian's {package} (data of {task}) is not installed; python -m bench.install_data installs it"
    if os.environ.get("MLPBENCH_REQUIRE_DATA"):
        pytest.fail(why)
    pytest.skip(why)


def generate_pages(results, work, ignore=()):
    """Copy fixture results to work/results and run `python -m leaderboard results --out board` in
    `work`, as a user would, so the command quoted on the index does not depend on where tests run:
    (exit code, stderr)."""
    import contextlib
    import io
    import shutil

    from leaderboard.__main__ import main

    shutil.copytree(results, work / "results", ignore=shutil.ignore_patterns(*ignore))
    stderr = io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(["results", "--out", "board"])
    finally:
        os.chdir(cwd)
    return code, stderr.getvalue()


def pytest_collection_modifyitems(config, items):
    """The sanity tier (every family through every sanity check, about an hour on one core) runs only
    when asked for by name (`-m sanity`); any other selection skips it, saying how to run it."""
    if "sanity" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the sanity tier: python -m pytest -m sanity (about an hour on one core)")
    for item in items:
        if "sanity" in item.keywords:
            item.add_marker(skip)
