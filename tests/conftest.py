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
