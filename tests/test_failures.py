"""Failures not covered elsewhere: each gives one sentence, the right exit code and, once training
has started, a result saying what happened. docs/failures.md lists where each is tested."""

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import run as runner
from bench.core.results import load_result
from tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
NAME = "digits__gmlp-mini__fp32__seed0"
TINY = ["--task", "digits", "--model", "gmlp", "--batch-size", "32", "--max-steps", "6", "--max-eval-samples", "64",
        "--no-measure"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- before any data is read


BAD_INPUT = {
    "unknown-size": (["--size", "xl"], "Unknown size 'xl' for model 'gmlp' on image tasks; valid sizes are: "),
    "empty-data-dir": (["--task", "imagefolder", "--data-dir", "{tmp}/empty"], "{tmp}/empty has no class sub-folders"),
    "image-hub-offline": (["--task", "cifar10"], "The dataset 'uoft-cs/cifar10' could not be loaded (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set "
                          "and the datasets cache has no copy; "),
    "output-not-writable": (["--output-dir", "{tmp}/a-file/out"],
                            "--output-dir {tmp}/a-file/out: {tmp}/a-file is a file, not a folder; give a folder."),
    "bad-checkpoint-every": (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0 or none, got -1."),
    "resume-and-overwrite": (["--resume", "--overwrite"], "--resume continues a run and --overwrite starts it over"),
    # numbers that are numbers but not sane ones
    "lr-infinite": (["--lr", "inf"], "--lr must be a finite number, got inf."),
    "lr-nan": (["--lr", "nan"], "--lr must be a finite number, got nan."),
    "epochs-infinite": (["--epochs", "inf"], "--epochs must be a finite number, got inf."),
    "warmup-nan": (["--warmup-fraction", "nan"], "--warmup-fraction must be a finite number, got nan."),
    "grad-clip-infinite": (["--grad-clip", "inf"], "--grad-clip must be a finite number, got inf."),
    "layer-scale-infinite": (["--model", "resmlp", "--layer-scale-init=-inf"],
                             "--layer-scale-init must be a finite number, got -inf."),
    "seed-negative": (["--seed", "-1"], "--seed must be from 0 to 4294967295, got -1."),
    "seed-too-large": (["--seed", "4294967296"], "--seed must be from 0 to 4294967295, got 4294967296."),
    "val-fraction-empties-training": (["--val-fraction", "0.9999"],
                                      "Holding out 0.9999 of 1797 images leaves no training images; give more "
                                      "images or a smaller --val-fraction."),
    # flags the task does not use
    "data-dir-on-digits": (["--data-dir", "{tmp}/empty"], "--task digits does not use --data-dir (it reads "
                           "--val-fraction, --score-train, --eval-split, --max-train-samples, --max-eval-samples, "
                           "--num-workers); drop it."),
    "text-flags-on-an-image-task": (["--task", "fashion-mnist", "--seq-len", "64", "--tokenizer", "t.json"],
                                    "--task fashion-mnist does not use --tokenizer or --seq-len"),
    "vocabulary-flags-on-cmudict": (["--task", "cmudict", "--model", "transformer", "--vocab-size", "500"],
                                    "--task cmudict does not use --vocab-size (it reads --data-files, "),
}


@pytest.mark.parametrize("argv,sentence", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, argv, sentence):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("")
    argv = [a.format(tmp=tmp_path) for a in argv]
    output = [] if "--output-dir" in argv else ["--output-dir", str(tmp_path / "out" / "run")]
    assert runner.main([*argv, *output]) == 2
    assert sentence.format(tmp=tmp_path) in one_line_error(capsys)
    assert not (tmp_path / "out").exists(), "nothing is created, not even the output folder"


@pytest.mark.parametrize("argv,sentence", [
    (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    (["--batch-size", "1.5"], "argument --batch-size: invalid int value: '1.5'"),
    (["--seed", "1e3"], "argument --seed: invalid int value: '1e3'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
], ids=["float", "int", "int-in-float-notation", "unknown"])
def test_a_flag_argparse_refuses_is_one_sentence(tmp_path, capsys, argv, sentence):
    with pytest.raises(SystemExit) as exited:
        runner.main([*argv, "--output-dir", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert one_line_error(capsys) == f"error: {sentence}; see bench/run.py --help.\n"
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- during training


@pytest.mark.slow
def test_diverging_loss_stops_with_status_diverged(tmp_path, capsys):
    assert runner.main([*TINY, "--lr", "1e6", "--output-dir", str(tmp_path)]) == 1  # AdamW steps of ~1e6: overflow
    assert "error: Training diverged: the loss became NaN or infinite by step" in capsys.readouterr().err
    result = load_result(tmp_path / f"{NAME}.json")
    assert result["status"] == "diverged" and result["metrics"] == {} and "NaN or infinite" in result["error"]


def fail_at_call(monkeypatch, n: int, error: Exception):
    """The digits task's loss raises `error` on its n-th call (the n-th training batch)."""
    cls, calls = TASKS.get("digits"), []
    loss = cls.loss

    def failing(task, model, batch):
        calls.append(1)
        if len(calls) == n:
            raise error
        return loss(task, model, batch)

    monkeypatch.setattr(cls, "loss", failing)


@pytest.mark.slow
def test_out_of_memory_stops_with_status_oom_and_the_batch_size(tmp_path, capsys, monkeypatch):
    fail_at_call(monkeypatch, 3, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert runner.main([*TINY, "--output-dir", str(tmp_path)]) == 1
    sentence = ("Out of memory at training step 3 with --batch-size 32 per process; lower --batch-size "
                "(raise --grad-accum to keep the global batch).")
    assert f"error: {sentence}" in capsys.readouterr().err
    result = load_result(tmp_path / f"{NAME}.json")
    assert result["status"] == "oom" and result["error"] == sentence


@pytest.mark.slow
def test_unexpected_error_leaves_a_result_and_points_to_debug(tmp_path, capsys, monkeypatch):
    fail_at_call(monkeypatch, 2, RuntimeError("shapes do not match\nsecond line of detail"))
    assert runner.main([*TINY, "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    sentence = "Unexpected RuntimeError during training: shapes do not match."
    assert f"error: {sentence} Rerun with --debug for the traceback." in err and "Traceback" not in err
    result = load_result(tmp_path / f"{NAME}.json")
    assert result["status"] == "error" and result["error"] == sentence

    fail_at_call(monkeypatch, 2, RuntimeError("shapes do not match"))
    assert runner.main([*TINY, "--output-dir", str(tmp_path), "--overwrite", "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_unexpected_error_before_training_is_one_sentence(tmp_path, capsys, monkeypatch):
    def broken(task, data_cfg, seed):
        raise ValueError("bad header")

    monkeypatch.setattr(TASKS.get("digits"), "load", broken)
    assert runner.main([*TINY, "--output-dir", str(tmp_path)]) == 1
    assert one_line_error(capsys) == "error: Unexpected ValueError: bad header. Rerun with --debug for the traceback.\n"
    assert not list(tmp_path.glob("*.json")), "nothing to record before training"


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_records_interrupted(tmp_path):
    argv = [*TINY, "--max-steps", "100000", "--checkpoint-every", "5", "--output-dir", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "bench.run", *argv], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "checkpoints" / NAME / "step-00000005").is_dir():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    result = load_result(tmp_path / f"{NAME}.json")
    assert result["status"] == "interrupted" and "Traceback" not in err
    last = sorted((tmp_path / "checkpoints" / NAME).glob("step-*"))[-1]
    step = json.loads((last / "manifest.json").read_text())["position"]["step"]
    assert result["error"] == f"Interrupted at step {step} of 100000 and saved a checkpoint in {last}; continue with --resume."
    assert f"error: {result['error']}" in err


@pytest.mark.slow
def test_sigint_outside_training_stops_at_once_and_inside_at_the_step_end():
    from bench.training.loop import Interrupted, signals

    before = signal.getsignal(signal.SIGINT)
    with signals.installed():
        with pytest.raises(Interrupted) as stopped:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs between two bytecodes; this is never reached
        assert stopped.value.exit_code == 130 and str(stopped.value) == "Interrupted by SIGINT."
        # In training it is only noted for the loop; if the loop ends without acting on it, it stops the run then.
        with pytest.raises(Interrupted):
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
                assert signals.received == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before, "the previous handler is back"


# --------------------------------------------------------------------------- unsafe loading


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func), {k.arg: k.value for k in node.keywords}


def test_sources_never_unpickle_run_remote_code_or_eval_data():
    """torch.load only with weights_only=True, no trust_remote_code, no pickle, eval or exec."""
    sources = [p for d in ("bench", "tasks", "leaderboard") for p in (ROOT / d).rglob("*.py")]
    assert len(sources) > 20
    problems = []
    for path in sources:
        for node, func, kwargs in calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            weights_only = kwargs.get("weights_only")
            if func.endswith("torch.load") and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                problems.append(f"{where}: torch.load without weights_only=True")
            if "trust_remote_code" in kwargs:
                problems.append(f"{where}: trust_remote_code")
            if func in ("eval", "exec") or func.startswith(("pickle.", "marshal.", "dill.")):
                problems.append(f"{where}: {func}")
    assert problems == []


# --------------------------------------------------------------------------- docs/failures.md's table


def failure_table() -> list[list[str]]:
    """The rows of the table of docs/failures.md, as lists of cells."""
    section = (ROOT / "docs" / "failures.md").read_text(encoding="utf-8")
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]  # after the header and its rule
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))] for row in rows]


def test_every_row_of_the_failure_table_names_tests_that_exist():
    """At least 50 cases, each naming the tests that check it as `file::test`, each of which the suite has."""
    tests = {path.name: {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                         if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
             for path in (ROOT / "tests").glob("test_*.py")}
    rows = failure_table()
    assert len(rows) >= 50
    for failure, *_, tested_by in rows:
        named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", tested_by)
        assert named and len(named) == tested_by.count("`") // 2, f"{failure!r} names no test, or a bare file"
        for file, test in named:
            assert test in tests.get(file, set()), f"{failure!r}: {file} has no {test}"
