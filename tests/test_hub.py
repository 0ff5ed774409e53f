"""A hub dataset that cannot be reached fails fast, in one sentence on one line, said once: with the
hub declared offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), and without, where the hub is asked once
with a short timeout. The hub here is a local endpoint that refuses or never answers: nothing leaves
the machine."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import datasets.config
import huggingface_hub.constants
import pytest

from bench import run as runner
from bench.core.config import DataConfig
from bench.core.errors import DataError
from tasks import create_task, list_tasks
from tasks.hub import HUB_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
HUB_TASKS = [name for name in list_tasks() if not create_task(name).offline]  # their default source is the hub


@pytest.fixture(params=["silent", "refusing"])
def unreachable_hub(request):
    """The URL of a hub that never answers (it accepts connections and says nothing) or refuses them."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    if request.param == "silent":
        server.listen(16)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    yield url
    server.close()


@pytest.fixture
def online(monkeypatch, unreachable_hub):
    """The libraries as on a machine where no offline variable is set, with the hub at `unreachable_hub`
    (tests/conftest.py declares the hub offline, and the libraries read that at import)."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", unreachable_hub)
    return unreachable_hub


def test_the_hub_tasks_are_the_ones_without_an_offline_source():
    assert sorted(HUB_TASKS) == ["cifar10", "cifar100", "imagenet", "wikitext-103", "wikitext-2", "wmt14-de-en"]


@pytest.mark.parametrize("name", HUB_TASKS)
def test_an_unreachable_hub_fails_within_its_timeout(online, name):
    start = time.monotonic()
    with pytest.raises(DataError) as caught:
        create_task(name).load(DataConfig(), seed=0)
    assert time.monotonic() - start < HUB_TIMEOUT + 2
    message = str(caught.value)
    assert message.startswith("The dataset '")
    assert "' could not be loaded: the datasets hub cannot be reached (" + online in message
    assert "--data-dir" in message and "HF_HUB_OFFLINE=1" in message and "\n" not in message


@pytest.mark.parametrize("name", HUB_TASKS)
def test_a_hub_declared_offline_fails_at_once(name):
    start = time.monotonic()
    with pytest.raises(DataError) as caught:
        create_task(name).load(DataConfig(), seed=0)
    assert time.monotonic() - start < 2
    message = str(caught.value)
    assert message.startswith("The dataset '")
    assert "' could not be loaded (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set and the datasets cache has no copy; " in message
    assert "--data-dir" in message and "\n" not in message


def test_the_run_command_says_it_once_on_one_line(online, tmp_path, capsys):
    assert runner.main(["--task", "imagenet", "--model", "gmlp", "--output-dir", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: The dataset 'ILSVRC/imagenet-1k' could not be loaded: the datasets hub "
                                   "cannot be reached (") and captured.err.count("\n") == 1, captured.err
    assert "Retry" not in captured.out + captured.err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("unreachable_hub", ["refusing"], indirect=True)
def test_accelerate_launch_prints_the_sentence_once(unreachable_hub, tmp_path):
    """`accelerate launch` copies a run's stderr and repeats its last lines in its own report of the
    failure; the run then says its sentence on stdout, which the launcher passes through."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=unreachable_hub, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "bench/run.py", "--task", "cifar10", "--model", "gmlp",
         "--output-dir", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert output.count("could not be loaded: the datasets hub cannot be reached") == 1, output
    assert "error: The dataset 'uoft-cs/cifar10' could not be loaded" in done.stdout
    assert "Retry" not in output
