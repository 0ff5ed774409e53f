import os

import pytest
import torch

# Nothing in the tests may reach a hub; progress bars would only clutter the logs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


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
