"""The runner, the regression check's worker and the harness check make their task the same way
from the same flags, so they train and time the same loss (the worker once timed a loss without
the label smoothing runs train with)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tasks
from bench import harness_check
from bench import run as runner
from bench.core.config import DataConfig, OptimConfig
from bench.models import create_model
from bench.regress_worker import TimedCase
from bench.studies import harness

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def made(monkeypatch):
    """Every task the consumers make, in order (each imports tasks.create_task when it makes one)."""
    found = []
    create = tasks.create_task

    def recording(name, **flags):
        found.append(create(name, **flags))
        return found[-1]

    monkeypatch.setattr(tasks, "create_task", recording)
    return found


def losses(made_tasks):
    """Each task's loss of one model and batch, with the model and the batch."""
    spec = made_tasks[0].spec(DataConfig())
    torch.manual_seed(0)
    model = create_model("gmlp", "mini", spec)
    with torch.no_grad():  # away from the init, whose zero head gives uniform logits, smoothed or not
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=0.1)
    batch = made_tasks[0].synthetic_batch(spec, 8, torch.Generator().manual_seed(0))
    return [task.loss(model, batch).item() for task in made_tasks], model, batch


@pytest.mark.parametrize("flags, smoothing", [([], 0.1), (["--label-smoothing", "0.2"], 0.2)], ids=["default", "0.2"])
def test_runner_worker_and_harness_check_compute_the_same_loss(made, tmp_path, one_thread, flags, smoothing):
    quick = ["--task", "digits", "--model", "gmlp", "--mode", "bench", "--batch-size", "4", "--bench-steps", "1",
             "--bench-repeats", "1", "--latency-samples", "1", "--peak-gemm-size", "64", "--output-dir", str(tmp_path)]
    assert runner.main([*quick, *flags]) == 0
    optim = OptimConfig(label_smoothing=smoothing if flags else None)
    consumers = {"runner": made[-1], "harness check": harness.make_task("digits", optim, harness_check.create_task)}
    if not flags:  # a case of the regression check has no flags: a run's defaults
        TimedCase({"model": "gmlp", "size": "mini", "task": "digits", "batch": 4, "precision": "fp32", "phase": "infer"},
                  {"warmup": 0, "steps": 1, "repeats": 1}, ROOT, 1)
        consumers["regression worker"] = made[-1]
    # each consumer made its task through tasks.create_task (a run makes one first for its recipe's defaults)
    assert {id(task) for task in consumers.values()} <= {id(task) for task in made}
    values, model, (images, labels) = losses(list(consumers.values()))
    assert values == [values[0]] * len(values), dict(zip(consumers, values))
    expected = F.cross_entropy(model(images), labels, label_smoothing=smoothing).item()
    assert values[0] == pytest.approx(expected, rel=1e-6)
    assert values[0] != pytest.approx(F.cross_entropy(model(images), labels).item(), rel=1e-4)
    assert all(task.label_smoothing == smoothing for task in consumers.values())
