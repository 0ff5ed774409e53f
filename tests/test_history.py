"""A run's learning curve (--eval-every, the result's history), trackers (--log-with) and saved
weights (--save-model): evaluating during training changes nothing about the run, the test split is
never scored mid-training, and the saved model is the trained one."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench import run as runner
from bench.models import load_saved
from bench.core.results import load_result

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

STEPS = ["--max-steps", "12", "--batch-size", "16", "--max-eval-samples", "48", "--no-measure"]


def corpus(folder: Path) -> str:
    lines = [f"the {animal} {verb} over the {thing} on day {n}" for n in range(60)
             for animal, verb, thing in [("fox", "jumps", "fence"), ("cat", "walks", "wall"), ("dog", "runs", "road")]]
    path = folder / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def task_args(name: str, folder: Path) -> list[str]:
    if name == "text":
        return ["--task", "text", "--data-files", corpus(folder), "--vocab-size", "300", "--seq-len", "32"]
    return ["--task", name]


def only_result(folder: Path) -> dict:
    [path] = [p for p in folder.glob("*.json") if not p.name.endswith(".model.json")]
    return load_result(path)


@pytest.mark.parametrize("task", ["digits", "text", "numbers"])
def test_eval_every_records_the_curve_and_changes_nothing_else(task, tmp_path, one_thread):
    argv = [*task_args(task, tmp_path), "--model", "gmlp", "--size", "mini", *STEPS, "--eval-split", "validation"]
    assert runner.main([*argv, "--output-dir", str(tmp_path / "plain")]) == 0
    assert runner.main([*argv, "--eval-every", "4", "--output-dir", str(tmp_path / "curve")]) == 0
    plain, curve = only_result(tmp_path / "plain"), only_result(tmp_path / "curve")

    assert curve["metrics"] == plain["metrics"], "scoring validation mid-training leaves the run as it was"
    assert curve["train"]["final_loss"] == plain["train"]["final_loss"]
    history = curve["history"]
    assert [entry["step"] for entry in history] == [4, 8, 12]
    samples = [entry["samples"] for entry in history]
    assert samples == sorted(samples) and samples[-1] == curve["train"]["samples"]
    assert all(entry["split"] == "validation" and entry["train_loss"] > 0 for entry in history)
    assert history[-1]["metrics"] == curve["metrics"], "the last entry is the run's own evaluation"
    metric = curve["primary_metric"]["name"]
    assert all(metric in entry["metrics"] for entry in history)
    [only] = plain["history"]
    assert only["step"] == 12 and only["metrics"] == plain["metrics"]
    # the final entry's loss is the mean since the previous entry; over all steps it is the whole run's mean
    assert only["train_loss"] == pytest.approx(sum(e["train_loss"] for e in history) / 3, rel=1e-5)


@pytest.mark.parametrize("argv, sentence", [
    (["--eval-every", "5"], "--eval-every scores the validation split while training; it needs --mode train and "
                            "--eval-split validation (the test split is scored once, at the end)."),
    (["--eval-every", "5", "--eval-split", "validation", "--mode", "bench"], "--eval-every scores the validation split"),
    (["--eval-every", "0"], "--eval-every must be at least 1, got 0."),
    (["--log-with", "nosuch"], "--log-with nosuch is not a tracker Accelerate knows; choose from "),
])
def test_refusals_create_nothing(argv, sentence, tmp_path, capsys):
    out = tmp_path / "out"
    assert runner.main(["--task", "digits", "--model", "gmlp", *STEPS, "--output-dir", str(out), *argv]) == 2
    assert capsys.readouterr().err.startswith(f"error: {sentence}")
    assert not out.exists()


def test_a_tracker_that_is_not_installed_is_named(tmp_path, capsys, monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    assert runner.main(["--task", "digits", "--log-with", "wandb", "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "error: --log-with wandb needs the wandb package, which is not installed (pip install wandb).\n"
    )


def test_tensorboard_receives_the_settings_the_steps_and_the_curve(tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["--task", "digits", "--model", "gmlp", *STEPS, "--eval-split", "validation", "--eval-every", "6",
            "--log-with", "tensorboard", "--output-dir", str(tmp_path)]
    assert runner.main(argv) == 0
    [folder] = (tmp_path / "logs").iterdir()
    assert folder.name == "digits__gmlp-mini__fp32__seed0"
    events = EventAccumulator(str(folder)).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 13))
    curve = events.Scalars("validation/top1")
    assert [e.step for e in curve] == [6, 12]
    assert curve[-1].value == pytest.approx(only_result(tmp_path)["metrics"]["top1"])


@pytest.mark.parametrize("task", ["digits", "numbers"])
def test_saved_model_is_the_trained_one(task, tmp_path, one_thread):
    argv = [*task_args(task, tmp_path), "--model", "resmlp", *STEPS, "--save-model", "--output-dir", str(tmp_path)]
    assert runner.main(argv) == 0
    result = only_result(tmp_path)
    description = tmp_path / result["saved_model"]
    assert json.loads(description.read_text())["family"] == "resmlp"
    model = load_saved(description)
    assert not model.training
    [final] = sorted((tmp_path / "checkpoints").glob("*/step-*"))[-1:]
    trained = load_file(final / "model.safetensors")  # the checkpoint at the end of training
    rebuilt = model.state_dict()
    assert set(trained) <= set(rebuilt)
    assert all(torch.equal(trained[name], rebuilt[name]) for name in trained)


def test_a_damaged_saved_model_is_one_sentence(tmp_path):
    description = tmp_path / "m.model.json"
    description.write_text(json.dumps({"family": "gmlp", "size": "mini", "variant": {}, "spec": {}, "weights": "m"}))
    with pytest.raises(Exception) as caught:
        load_saved(description)
    assert str(caught.value).startswith(f"Cannot rebuild the model saved in {description} (")
