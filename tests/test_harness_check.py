"""bench/harness_check.py (its library bench/studies/harness.py): the harness and a bare Timer loop agree on the samples/s of the same steps."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench import harness_check
from bench.studies import harness
from bench.models import compared_families

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", compared_families("image"))
def test_harness_and_bare_loop_agree_on_a_tiny_model(name, one_thread):
    # Two steps per side: a harness that miscounted steps or samples would be off by 2x or more.
    infer, train = harness.compare(name, width=32, depth=1, batch_size=8, pairs=9, steps=2, clock="process",
                                   create_task=harness_check.create_task)
    assert 0.67 < infer < 1.5 and 0.67 < train < 1.5


def test_median_interval_contains_the_median():
    median, low, high = harness.median_with_interval([0.9, 1.0, 1.1, 1.0, 0.95, 1.05, 1.2])
    assert median == 1.0 and low <= median <= high and 0.9 <= low and high <= 1.2


def test_process_clock_with_several_threads_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "bench.harness_check", "--threads", "2"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().endswith("error: --clock process needs --threads 1: CPU time sums over threads; "
                                       "see python -m bench.harness_check --help.")
