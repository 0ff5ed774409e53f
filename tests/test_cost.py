"""The cost pass: a task's models timed side by side, and the pages' speed figures taken from it."""

import json
import random
from pathlib import Path

import pytest

from bench import cost
from bench.measure import cost as cost_library
from bench.core.errors import UserError
from bench.measure.timing import median_with_interval
from bench.core.results import ResultError, validate_cost_pass
from leaderboard.build import build
from leaderboard.collect import collect

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent


def test_scaling_by_the_round_speed_removes_a_drift_every_case_shares():
    """Three seeds of one model and a model twice as fast, on a machine whose speed swings by 2x
    from round to round (and a little noise of each case's own): the raw medians of the seeds
    differ by the luck of their rounds, the scaled ones agree and keep the 2x between the models."""
    rng = random.Random(0)
    speed = [rng.uniform(0.5, 1.0) for _ in range(15)]
    base = [100, 100, 100, 200]
    rates = [[b * s * rng.uniform(0.99, 1.01) for s in speed] for b in base]
    scaled, speeds = cost_library.normalised(rates)
    assert len(speeds) == 15
    medians = [sorted(case)[7] for case in scaled]
    assert cost_library.spread(medians[:3]) < 0.03
    assert medians[3] / medians[0] == pytest.approx(2, rel=0.03)
    # Unscaled, one case's drift alone would show: its lowest and highest rounds differ by far more.
    assert cost_library.spread(rates[0]) > 0.3


def test_the_interval_holds_the_median_and_narrows_with_more_rounds():
    rng = random.Random(1)
    few = [rng.gauss(100, 10) for _ in range(5)]
    many = [rng.gauss(100, 10) for _ in range(200)]
    for values in (few, many):
        median, low, high = median_with_interval(values)
        assert low <= median <= high
    assert median_with_interval(many)[2] - median_with_interval(many)[1] < (
        median_with_interval(few)[2] - median_with_interval(few)[1])


def grid(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(f"""
output_dir = "{tmp_path / 'out'}"
tasks = ["digits"]
models = ["gmlp", "vit"]
seeds = [0, 1]
[args]
batch-size = 32
{extra}
""")
    return path


@pytest.fixture(scope="module")
def cost_file(tmp_path_factory):
    """A real pass over the digits task: two families, two seeds, three rounds of one step."""
    tmp_path = tmp_path_factory.mktemp("cost")
    assert cost.main([str(grid(tmp_path)), "--rounds", "3", "--steps", "1"]) == 0
    return tmp_path / "out" / "cost" / "digits.json"


def test_a_pass_times_every_model_at_every_seed_on_one_thread(cost_file):
    data = validate_cost_pass(json.loads(cost_file.read_text()))
    assert data["task"] == "digits" and data["batch_size"] == 32
    assert data["settings"] == {"rounds": 3, "steps": 1, "warmup": 1, "clock": "process", "threads": 1,
                                "precision": "fp32"}
    assert data["environment"]["cpu_threads"] == 1
    assert [(c["model"], c["seed"]) for c in data["cases"]] == [("gmlp", 0), ("vit", 0), ("gmlp", 1), ("vit", 1)]
    assert all(len(c["train_raw"]) == 3 and len(c["infer_raw"]) == 3 for c in data["cases"])
    models = {m["model"]: m for m in data["models"]}
    assert set(models) == {"gmlp", "vit"} and models["vit"]["baseline"] and not models["gmlp"]["baseline"]
    for m in models.values():
        assert m["seeds"] == [0, 1]
        for phase in ("train", "infer"):
            figures = m[phase]
            assert figures["ci"][0] <= figures["samples_per_s"] <= figures["ci"][1]
            assert figures["tokens_per_s"] is None  # an image task counts no tokens
        # Training a sample does the forward pass and more.
        assert m["train"]["samples_per_s"] < m["infer"]["samples_per_s"]
    # The seeds' own initial weights, as their runs build them: the parameter counts agree with a run's.
    from bench.models import create_model
    from tasks import create_task

    spec = create_task("digits").spec(__import__("bench.core.config", fromlist=["DataConfig"]).DataConfig())
    assert models["gmlp"]["params"] == sum(p.numel() for p in create_model("gmlp", "mini", spec).parameters())


def test_the_pages_take_their_speed_from_the_pass_and_the_csv_keeps_the_runs_own(cost_file, tmp_path):
    """Runs of the same two models whose own timings disagree wildly between seeds (as a loaded machine
    makes them): the page shows the pass's figures, its interval and seed spread, and the summary's
    speed ratio is the pass's; the CSV keeps the runs' own means."""
    results = tmp_path / "results"
    for family, baseline in (("gmlp", False), ("vit", True)):
        for seed, speed in ((0, 100.0), (1, 300.0)):
            write_run(results / f"digits__{family}-mini__fp32__seed{seed}.json", family=family, seed=seed,
                      baseline=baseline, train_samples_per_s=speed)
    (results / "cost").mkdir()
    (results / "cost" / "digits.json").write_text(cost_file.read_text())
    collection = collect([str(results)])
    assert not collection.skipped and len(collection.costs) == 1
    build(collection, str(tmp_path / "board"), "python -m leaderboard results")
    page = (tmp_path / "board" / "digits.md").read_text()
    data = json.loads(cost_file.read_text())
    figures = {m["model"]: m["train"] for m in data["models"]}
    assert "## Cost (timed side by side, not ranked)" in page
    ranked = page.split("## Cost")[0]
    assert "train samples/s" not in ranked.split("| rank |")[1].split("\n")[0]  # no speed column in the ranking
    gmlp = next(line for line in page.split("## Cost")[1].splitlines() if line.startswith("| gmlp |"))
    assert f"{figures['gmlp']['seed_spread']:.1%}" in gmlp
    summary = (tmp_path / "board" / "summary.md").read_text()
    ratio = figures["gmlp"]["samples_per_s"] / figures["vit"]["samples_per_s"]
    assert f"{ratio:.2f}×" in summary
    csv = (tmp_path / "board" / "results.csv").read_text()
    assert ",200," in csv  # the runs' own mean of 100 and 300


def write_run(path: Path, family: str, seed: int, baseline: bool, train_samples_per_s: float) -> None:
    """A finished digits run, made from a published result with the fields that matter here changed."""
    result = json.loads((ROOT / "results" / "leaderboard" / "fashion-mnist__gmlp-mini__fp32__seed0.json").read_text())
    result.update(task="digits", model=family, seed=seed, baseline=baseline, relative_of=None)
    result["config"]["run"].update(task="digits", model=family, seed=seed)
    result["throughput"]["train_samples_per_s"] = train_samples_per_s
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))


@pytest.mark.parametrize(
    "argv, sentence",
    [
        (["--rounds", "2"], "--rounds must be at least 3 (a median and an interval need them), got 2."),
        (["--steps", "0"], "--steps must be at least 1, got 0."),
        (["--task", "cifar10"], "--task cifar10 is not a task of"),
    ],
)
def test_bad_flags_are_one_sentence(tmp_path, argv, sentence, capsys):
    assert cost.main([str(grid(tmp_path)), *argv]) != 0
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err


def test_the_sweep_files_cost_table_gives_the_defaults_and_a_flag_wins(tmp_path, capsys):
    path = grid(tmp_path, "[cost]\nrounds = 2\n")
    assert cost.main([str(path)]) == 2
    assert "--rounds must be at least 3 (a median and an interval need them), got 2." in capsys.readouterr().err
    assert cost.main([str(path), "--rounds", "4", "--steps", "0"]) == 2
    assert "--steps must be at least 1, got 0." in capsys.readouterr().err


def test_an_existing_pass_is_skipped_and_a_bad_cost_table_refused(tmp_path, capsys):
    path = tmp_path / "out" / "cost" / "digits.json"
    path.parent.mkdir(parents=True)
    path.write_bytes((Path(__file__).resolve().parents[1] / "results" / "leaderboard" / "cost" / "fashion-mnist.json")
                     .read_bytes())  # a complete pass (tests/test_faults.py: one that is not is measured again)
    assert cost.main([str(grid(tmp_path))]) == 0
    assert "exists, skipped (--overwrite measures it again)" in capsys.readouterr().out
    from bench.sweeps.grid import load_grid
    from tasks import create_task

    with pytest.raises(UserError, match=r"The \[cost\] table of .* takes the keys \['rounds', 'steps', 'warmup'\]"):
        load_grid(grid(tmp_path, '[cost]\nrounds = "many"'), create_task)


def test_a_file_that_is_no_complete_pass_is_skipped_with_a_sentence(tmp_path):
    with pytest.raises(ResultError, match="lacks the keys"):
        validate_cost_pass({"kind": "mlpbench-cost-pass", "schema_version": 1})
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "digits.json").write_text(json.dumps({"kind": "mlpbench-cost-pass", "schema_version": 1}))
    assert "lacks the keys" in collect([str(folder)]).skipped[0]


def test_a_sweep_with_a_cost_table_times_each_task_once_its_runs_are_done(tmp_path, capsys, monkeypatch):
    from bench import sweep

    monkeypatch.chdir(tmp_path)  # the sweep hands the pass an absolute path; the pass records it from here

    path = grid(tmp_path, "max-steps = 2\nno-measure = true\ncheckpoint-every = \"none\"\n"
                          "[cost]\nrounds = 3\nsteps = 1\nwarmup = 0\n")
    assert sweep.main([str(path)]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "out" / "cost" / "digits.json"
    data = validate_cost_pass(json.loads(written.read_text()))
    assert data["settings"]["rounds"] == 3 and data["settings"]["warmup"] == 0
    assert data["sweep_file"] == "grid.toml"
    assert out.index("digits: cost pass") > out.rindex("seed1: top1")  # after the task's last run
    # Rerun: the runs and the pass are done, nothing is timed again.
    assert sweep.main([str(path)]) == 0
    assert "cost pass" not in capsys.readouterr().out
