"""Checkpoints and --resume: a run killed with SIGKILL and resumed ends exactly where an uninterrupted
run ends; resuming without a checkpoint, or from one that is corrupt or another run's, is refused
with one sentence and the checkpoint is left in place."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench import run as runner
from bench.core.results import load_result

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent
NAME = "digits__gmlp-mini__fp32__seed0"
# 30 batches an epoch: the resumed run starts mid-epoch and crosses an epoch's end. Validation is
# scored every 10 steps, so the learning curve must survive the resume too.
RUN = ["--task", "digits", "--model", "gmlp", "--batch-size", "16", "--max-train-samples", "480", "--max-steps", "50",
       "--checkpoint-every", "10", "--max-eval-samples", "64", "--no-measure", "--eval-split", "validation",
       "--eval-every", "10"]


def checkpoints(output_dir: Path) -> Path:
    return output_dir / "checkpoints" / NAME


def test_killed_run_resumes_to_the_same_weights_and_metrics(tmp_path, one_thread):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert runner.main([*RUN, "--output-dir", str(whole)]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.run", *RUN, "--output-dir", str(killed)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not (checkpoints(killed) / "step-00000010").is_dir():
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (killed / f"{NAME}.json").exists(), "the run was killed before its end"

    assert runner.main([*RUN, "--output-dir", str(killed), "--resume"]) == 0
    expected, resumed = load_result(whole / f"{NAME}.json"), load_result(killed / f"{NAME}.json")
    assert 10 <= resumed["train"]["resumed_from_step"] < 30
    assert resumed["metrics"] == expected["metrics"]
    assert [e["step"] for e in resumed["history"]] == [10, 20, 30, 40, 50]
    assert resumed["history"] == expected["history"], "the entries before the resume come from the checkpoint"
    assert resumed["train"]["final_loss"] == expected["train"]["final_loss"]
    assert resumed["train"]["samples"] == expected["train"]["samples"] == 50 * 16
    final, final_resumed = (load_file(checkpoints(d) / "step-00000050" / "model.safetensors") for d in (whole, killed))
    assert final.keys() == final_resumed.keys()
    assert all(torch.equal(final[k], final_resumed[k]) for k in final), "bit-identical weights on CPU"
    assert [p.name for p in sorted(checkpoints(killed).iterdir())] == ["step-00000040", "step-00000050"], "the last 2 kept"


# --------------------------------------------------------------------------- refusals

SHORT = ["--task", "digits", "--model", "gmlp", "--batch-size", "16", "--max-steps", "2", "--max-eval-samples", "16",
         "--no-measure"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished short run: its result and its checkpoint at the end of training (step 2)."""
    out = tmp_path_factory.mktemp("finished")
    assert runner.main([*SHORT, "--output-dir", str(out)]) == 0
    assert [p.name for p in checkpoints(out).iterdir()] == ["step-00000002"]
    return out


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def refuse(argv, capsys) -> str:
    assert runner.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_resume_without_a_checkpoint(tmp_path, capsys):
    err = refuse([*SHORT, "--output-dir", str(tmp_path), "--resume"], capsys)
    assert "--resume found no checkpoint in" in err
    assert not list(tmp_path.iterdir())


def test_leftover_checkpoints_need_resume_or_overwrite(copy, capsys):
    (copy / f"{NAME}.json").unlink()  # a run killed before writing its result
    err = refuse([*SHORT, "--output-dir", str(copy)], capsys)
    assert "holds checkpoints of this run; pass --resume to continue it or --overwrite to start over" in err
    assert runner.main([*SHORT, "--output-dir", str(copy), "--overwrite", "--max-steps", "1"]) == 0
    assert [p.name for p in checkpoints(copy).iterdir()] == ["step-00000001"], "--overwrite starts over"


def test_checkpoint_of_another_run_is_refused_and_kept(copy, capsys):
    folder = checkpoints(copy) / "step-00000002"
    before = snapshot(folder)
    err = refuse([*SHORT, "--output-dir", str(copy), "--resume", "--batch-size", "8"], capsys)
    assert f"Checkpoint {folder} belongs to another run (--batch-size 16, not 8); it was left in place" in err
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda f: (f / "manifest.json").write_text("{"), "is corrupt: its manifest.json cannot be read"),
        (lambda f: (f / "optimizer.bin").write_bytes(b"short"), "is corrupt: optimizer.bin is missing or changed"),
        (lambda f: (f / "model.safetensors").write_bytes(b"\0" * (f / "model.safetensors").stat().st_size),
         "is corrupt: loading it failed"),
    ],
    ids=["manifest", "truncated", "same-size-garbage"],
)
def test_corrupt_checkpoint_is_refused_and_kept(copy, capsys, damage, problem):
    folder = checkpoints(copy) / "step-00000002"
    damage(folder)
    before = snapshot(folder)
    err = refuse([*SHORT, "--output-dir", str(copy), "--resume"], capsys)
    assert f"Checkpoint {folder} {problem}" in err and "it was left in place" in err
    assert snapshot(folder) == before


def position(**changes):
    return lambda m: {**m, "position": {**m["position"], **changes}}


@pytest.mark.parametrize("change, shown, expected", [
    (lambda m: [1, 2], "format = None", "format 1"),
    (lambda m: {**m, "format": 2}, "format = 2", "format 1"),
    (lambda m: {**m, "identity": ["--seed", 0]}, "identity = ['--seed', 0]", "a table of settings"),
    (lambda m: {**m, "files": list(m["files"])}, "files = [", "a table of file names and sizes"),
    (lambda m: {**m, "files": {**m["files"], "model.safetensors": "12"}}, "files = {", "a table of file names and sizes"),
    (lambda m: {**m, "files": {**m["files"], "../outside": 1}}, "files = {", "a table of file names and sizes"),
    (lambda m: {**m, "position": None}, "position.step = None", "a count"),
    (position(step="2"), "position.step = '2'", "a count"),
    (position(step=2.5), "position.step = 2.5", "a count"),
    (position(epoch=-1), "position.epoch = -1", "a count"),
    (position(samples=True), "position.samples = True", "a count"),
], ids=["not-a-table", "format", "identity", "files-list", "size-text", "file-outside", "no-position", "step-text",
        "step-float", "epoch-negative", "samples-bool"])
def test_a_manifest_field_of_the_wrong_type_is_refused_and_kept(copy, capsys, change, shown, expected):
    folder = checkpoints(copy) / "step-00000002"
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(change(manifest)))
    before = snapshot(folder)
    err = refuse([*SHORT, "--output-dir", str(copy), "--resume"], capsys)
    assert f"Checkpoint {folder} is corrupt: its manifest.json has {shown}" in err
    assert f", not {expected}; it was left in place: remove it, or start over with --overwrite." in err
    assert snapshot(folder) == before


class RunsCode:
    """Unpickling this calls open(path, "w"): what a booby-trapped checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_checkpoint_holding_code_is_refused_unrun(copy, tmp_path, capsys):
    folder = checkpoints(copy) / "step-00000002"
    marker = tmp_path / "code-ran"
    torch.save({"state": RunsCode(marker), "param_groups": []}, folder / "optimizer.bin")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["optimizer.bin"] = (folder / "optimizer.bin").stat().st_size  # sizes agree: only loading can tell
    (folder / "manifest.json").write_text(json.dumps(manifest))
    err = refuse([*SHORT, "--output-dir", str(copy), "--resume"], capsys)
    assert f"Checkpoint {folder} is corrupt: loading it failed (UnpicklingError)" in err
    assert not marker.exists()
