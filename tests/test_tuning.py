"""The protocol's tuning: learning rates chosen on validation, test scored once at the chosen one."""

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_debian_data

from bench import sweep
from bench.sweeps.plan import describe_choice, longer_budget, plan, select, tune
from bench.core.config import DataConfig
from bench.core.errors import UserError
from tasks import create_task

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fashion_folder(root: Path, poisoned_test: bool) -> Path:
    """Fashion-MNIST-shaped idx files made from scikit-learn's digits (learnable, small); the test
    files of a poisoned folder are not idx files at all, so reading them fails."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))[:, 1:-1, 1:-1] * 16  # (N, 22, 22) -> pad to 28
    images = np.pad(images, ((0, 0), (3, 3), (3, 3)))
    root.mkdir(parents=True)
    write_idx(root / "train-images-idx3-ubyte.gz", images[:1500])
    write_idx(root / "train-labels-idx1-ubyte.gz", digits.target[:1500])
    if poisoned_test:
        (root / "t10k-images-idx3-ubyte.gz").write_bytes(b"poison")
        (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"poison")
    else:
        write_idx(root / "t10k-images-idx3-ubyte.gz", images[1500:])
        write_idx(root / "t10k-labels-idx1-ubyte.gz", digits.target[1500:])
    return root


def grid_file(tmp_path: Path, data_dir: Path, out: Path) -> Path:
    path = tmp_path / f"{out.name}.toml"
    path.write_text(f"""
output_dir = "{out}"
tasks = ["fashion-mnist"]
models = ["gmlp"]
seeds = [0, 1]
[args]
data-dir = "{data_dir}"
max-steps = 15
batch-size = 32
checkpoint-every = "none"
no-measure = true
[tune]
lr = [0.0001, 0.003]
extend = 0
""")
    return path


def test_tuning_selects_on_validation_and_never_reads_test(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    clean, poisoned = tmp_path / "clean-out", tmp_path / "poisoned-out"
    assert sweep.main([str(grid_file(tmp_path, fashion_folder(tmp_path / "clean", False), clean))]) == 0
    # With unreadable test files every tuning run still succeeds and chooses the same: only the
    # runs scored on test, after the choice, fail.
    assert sweep.main([str(grid_file(tmp_path, fashion_folder(tmp_path / "poisoned", True), poisoned))]) == 1
    out = capsys.readouterr().out
    for folder in (clean, poisoned):
        tuned = sorted((folder / "tune").glob("lr-*/*.json"))
        assert [p.parent.name for p in tuned] == ["lr-0.0001", "lr-0.003"]
        for path in tuned:
            result = json.loads(path.read_text())
            assert result["status"] == "ok" and result["config"]["data"]["eval_split"] == "validation"
    tuned_metrics = [
        [json.loads(p.read_text())["metrics"]["top1"] for p in sorted((f / "tune").glob("lr-*/*.json"))]
        for f in (clean, poisoned)
    ]
    assert tuned_metrics[0] == tuned_metrics[1]
    assert out.count("fashion-mnist gmlp-mini: validation lr 0.0001: ") == 2 and "chosen lr 0.003" in out
    finals = sorted(clean.glob("*.json"))
    assert len(finals) == 2  # seeds 0 and 1, at the chosen rate, on test
    for path in finals:
        result = json.loads(path.read_text())
        assert result["config"]["optim"]["lr"] == 0.003 and result["config"]["data"]["eval_split"] == "test"
    assert not list(poisoned.glob("*.json"))
    assert "is not a readable idx file" in next((poisoned / "logs").glob("*.log")).read_text()


def test_select_prefers_the_best_validation_score_and_treats_failures_as_worst(tmp_path):
    def tuned(lr, value, status="ok", higher=True, split="validation"):
        path = tmp_path / f"{lr}.json"
        path.write_text(json.dumps({
            "schema_version": 1, "status": status, "task": "t", "model": "m", "size": "s", "seed": 0,
            "config": {"data": {"eval_split": split}}, "environment": {}, "metrics": {},
            "primary_metric": {"name": "wer", "value": value, "higher_is_better": higher},
            "params": 1, "wall_time_s": 1.0,
        }))
        return {"path": path, "key": ("t", "m", "s", ""), "lr": lr}

    runs = [tuned(0.004, None, status="diverged", higher=False), tuned(0.001, 30.0, higher=False),
            tuned(0.002, 20.0, higher=False)]
    entry = select(runs)[("t", "m", "s", "")]
    # the failed first run names the metric's direction too: lower is better here
    assert entry["chosen"] == (0.002, None) and entry["values"][(0.004, None)] is None
    with pytest.raises(UserError, match="not scored on the validation split"):
        select([tuned(0.001, 0.5, split="test")])


DEBIAN_PACKAGE = {"fashion-mnist": "dataset-fashion-mnist", "wordnet": "wordnet-base"}


@pytest.mark.parametrize("task", ["digits", "fashion-mnist", "wordnet"])
def test_validation_is_carved_from_training_and_never_trained_on(task):
    if task in DEBIAN_PACKAGE:
        need_debian_data(DEBIAN_PACKAGE[task])
    def rows(ds):
        def key(row):
            if isinstance(row, dict):
                return repr(row)
            image, label = row
            return image.numpy().tobytes() + bytes([int(label)])

        return {key(ds[i]) for i in range(len(ds))}

    cfg = dict(seq_len=32)
    val = create_task(task).load(DataConfig(eval_split="validation", **cfg), seed=0)
    test = create_task(task).load(DataConfig(eval_split="test", **cfg), seed=0)
    assert rows(val.train) == rows(test.train), "tuning and reported runs train on the same data"
    assert not rows(val.eval) & rows(val.train)
    assert not rows(val.eval) & rows(test.eval)
    assert 0.05 < len(val.eval) / (len(val.eval) + len(val.train)) < 0.15


def test_max_eval_samples_larger_than_the_split_scores_the_whole_split():
    whole = create_task("digits").load(DataConfig(), seed=0)
    capped = create_task("digits").load(DataConfig(max_eval_samples=10**9), seed=0)
    assert len(capped.eval) == len(whole.eval) == 359  # 20% of 1,797


@pytest.mark.parametrize("tune, sentence", [
    ('lr = "0.001"', "must be a list of at least two positive learning rates"),
    ("lr = [0.001]", "must be a list of at least two positive learning rates"),
    ("lr = [0.001, -1]", "must be a list of at least two positive learning rates"),
    ("lr = [0.001, 0.001]", "must be a list of at least two positive learning rates, none repeated"),
    ("lrs = [0.001, 0.002]", "takes the keys"),
    ("lr = [0.001, 0.002]\nwarmup = 0.3", "tune.warmup in {grid} must be a list of warm-up fractions, each in [0, 1)"),
    ("lr = [0.001, 0.002]\nwarmup = [0.05, 1.0]", "must be a list of warm-up fractions, each in [0, 1), none repeated"),
    ("lr = [0.001, 0.002]\nwarmup = []", "must be a list of warm-up fractions"),
    ("lr = [0.001, 0.002]\nextend = -1", "tune.extend in {grid} must be an integer >= 0 (how many learning rates"),
    ("lr = [0.001, 0.002]\nextend = true", "tune.extend in {grid} must be an integer >= 0"),
    ("lr = [0.001, 0.002]\neval_every = 5", "tune.eval_every in {grid} must be a table of tasks and step counts"),
    ("lr = [0.001, 0.002]\neval_every = {digits = 0}", "tune.eval_every in {grid} must be a table of tasks"),
    ("lr = [0.001, 0.002]\neval_every = {wordnet = 5}",
     "tune.eval_every in the sweep file {grid} names 'wordnet', which is not in its tasks (digits)."),
    ("lr = [0.001, 0.002]\nwarmup = [0.05, 0.3]\n[args]\nwarmup-fraction = 0.1",
     "{grid} sets 'warmup-fraction' in its args, which [tune] decides; remove it."),
    ("lr = [0.001, 0.002]\nwarmup = [0.05, 0.3]\n[task_args.digits]\nwarmup-epochs = 1",
     "{grid} sets 'warmup-epochs' in its args, which [tune] decides; remove it."),
])
def test_bad_tune_tables_are_one_sentence(tmp_path, tune, sentence, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n[tune]\n{tune}\n')
    assert sweep.main([str(path), "--dry-run"]) == 2
    assert sentence.format(grid=path) in capsys.readouterr().err


def test_warmup_without_a_warmup_grid_stays_a_flag_of_the_runs(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path / "out"}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    f'[args]\nwarmup-fraction = 0.1\n[tune]\nlr = [0.001, 0.002]\n')
    assert sweep.main([str(path), "--dry-run"]) == 0
    assert "--warmup-fraction 0.1 --lr 0.001 --eval-split validation" in capsys.readouterr().out


def tune_grid(tmp_path, **tune) -> dict:
    return {"output_dir": str(tmp_path), "tasks": ["digits"], "models": ["gmlp", "vit"], "sizes": ["mini"],
            "seeds": [0, 1, 2], "args": {"max-steps": 3}, "tune": {"lr": [0.0005, 0.002, 0.008], **tune}}


def test_tuning_plans_the_lr_by_warmup_grid_and_records_it(tmp_path):
    grid = tune_grid(tmp_path, warmup=[0.05, 0.3])
    runs = plan(grid, create_task, phase="tune")
    assert [(r["key"][1], r["path"].parent.name) for r in runs] == [
        (family, f"lr-{lr}-warmup-{w}") for family in ("gmlp", "vit") for lr in ("0.0005", "0.002", "0.008")
        for w in ("0.05", "0.3")]
    first = runs[1]
    assert first["argv"][first["argv"].index("--lr"):] == [
        "--lr", "0.0005", "--warmup-fraction", "0.3", "--eval-split", "validation", "--no-measure"]
    assert json.loads(first["env"]["MLPBENCH_TUNE"]) == {"lr": [0.0005, 0.002, 0.008], "warmup": [0.05, 0.3],
                                                         "extend": 2}
    # eval_every: that task's tuning runs record their learning curve; the test runs do not
    curves = plan(tune_grid(tmp_path, eval_every={"digits": 2}), create_task, phase="tune")
    assert curves[0]["argv"][-2:] == ["--eval-every", "2"]
    tested = plan(tune_grid(tmp_path, eval_every={"digits": 2}), create_task, phase="test",
                        chosen={("digits", "gmlp", "mini", ""): (0.002, None)})
    assert "--eval-every" not in tested[0]["argv"]
    # without a warm-up grid the results keep their folders, lr-<lr>, and the runs their recipe's warm-up
    plain = plan(tune_grid(tmp_path, extend=0), create_task, phase="tune")
    assert [r["path"].parent.name for r in plain[:3]] == ["lr-0.0005", "lr-0.002", "lr-0.008"]
    assert "--warmup-fraction" not in plain[0]["argv"]
    assert json.loads(plain[0]["env"]["MLPBENCH_TUNE"]) == {"lr": [0.0005, 0.002, 0.008], "warmup": None, "extend": 0}


def test_test_runs_carry_the_chosen_lr_and_warmup(tmp_path):
    grid = tune_grid(tmp_path, warmup=[0.05, 0.3])
    runs = plan(grid, create_task, phase="test", chosen={("digits", "gmlp", "mini", ""): (0.032, 0.3)})
    assert [(r["key"][1], r["path"].parent, r["argv"][r["argv"].index("--lr"):]) for r in runs] == [
        ("gmlp", tmp_path, ["--lr", "0.032", "--warmup-fraction", "0.3", "--eval-split", "test"])] * 3


def test_longer_budgets_run_the_chosen_setting_k_times_as_long_into_their_own_folder(tmp_path, capsys):
    grid = tune_grid(tmp_path, warmup=[0.05, 0.3])
    chosen = {("digits", "gmlp", "mini", ""): (0.032, 0.3)}
    runs = plan({**grid, "budgets": [1, 4]}, create_task, phase="test", chosen=chosen, budget=4)
    assert [(r["path"].parent, r["argv"][r["argv"].index("--max-steps"):]) for r in runs] == [
        (tmp_path / "budget-4x", ["--max-steps", "12", "--lr", "0.032", "--warmup-fraction", "0.3", "--eval-split",
                                  "test"])] * 3
    # a task that sets its budget in epochs gets k times the epochs
    assert longer_budget({"epochs": 1, "batch-size": 64}, 4) == {"epochs": 4, "batch-size": 64}
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path / "out"}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    f'budgets = [1, 4]\n[args]\nmax-steps = 5\n[tune]\nlr = [0.001, 0.002]\n')
    assert sweep.main([str(path), "--dry-run"]) == 0
    assert (f"digits: then its seeds at its best setting at 4x the budget (max-steps 20), on test, into "
            f"{tmp_path / 'out' / 'budget-4x'}") in capsys.readouterr().out


@pytest.mark.parametrize("budgets, rest, sentence", [
    ("[4]", "[tune]\nlr = [0.001, 0.002]", "budgets in the sweep file {grid} must be a list of distinct integer "
     "multiples of the tasks' budgets that includes 1 ([1, 4]), or a table of such lists naming each task once "
     "({{wordnet = [1, 4], digits = [1]}}), got [4]."),
    ("[1, 1.5]", "[tune]\nlr = [0.001, 0.002]", "must be a list of distinct integer multiples"),
    ("[1, 4]", "", "The sweep file {grid} has budgets but no [tune] table; the longer budgets train each model at "
     "its tuned setting: add [tune]."),
])
def test_bad_budgets_are_one_sentence(tmp_path, budgets, rest, sentence, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    f'budgets = {budgets}\n[args]\nmax-steps = 5\n{rest}\n')
    assert sweep.main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and sentence.format(grid=path) in err and err.count("\n") == 1, err


def test_a_table_of_budgets_trains_longer_only_the_tasks_it_gives_longer_budgets(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path / "out"}"\ntasks = ["digits", "fashion-mnist"]\nmodels = ["gmlp"]\n'
                    f'seeds = [0]\nbudgets = {{digits = [1, 4], fashion-mnist = [1]}}\n[args]\nmax-steps = 5\n'
                    f'[task_args.fashion-mnist]\ndata-dir = "{tmp_path / "data"}"\n[tune]\nlr = [0.001, 0.002]\n')
    fashion_folder(tmp_path / "data", False)
    assert sweep.main([str(path), "--dry-run"]) == 0
    longer = [line for line in capsys.readouterr().out.splitlines() if "x the budget" in line]
    assert longer == [f"digits: then its seeds at its best setting at 4x the budget (max-steps 20), on test, into "
                      f"{tmp_path / 'out' / 'budget-4x'}"]
    path.write_text(path.read_text().replace(", fashion-mnist = [1]", ""))
    assert sweep.main([str(path), "--dry-run"]) == 2
    assert "budgets in the sweep file" in capsys.readouterr().err


def test_budgets_need_a_budget_to_multiply(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(f'output_dir = "{tmp_path}"\ntasks = ["digits"]\nmodels = ["gmlp"]\nseeds = [0]\n'
                    f'budgets = [1, 4]\n[tune]\nlr = [0.001, 0.002]\n')
    assert sweep.main([str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err == (f"error: The sweep file {path} has budgets, but the runs of digits set neither "
                                       f"max-steps nor epochs for them to multiply: set one in [args] or "
                                       f"[task_args.digits].\n")


def scored(path: Path, value, higher=True) -> None:
    """A tuning run's result, as select reads it; a run of no value diverged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "schema_version": 1, "status": "diverged" if value is None else "ok", "task": "digits", "model": "m", "size": "mini", "seed": 0,
        "config": {"data": {"eval_split": "validation"}}, "environment": {}, "metrics": {},
        "primary_metric": {"name": "top1", "value": value, "higher_is_better": higher},
        "params": 1, "wall_time_s": 1.0,
    }))


def run_tuning(grid: dict, score) -> tuple[dict, list[list[str]]]:
    """tune with every run "executed" by writing score(family, lr, warmup) as its result; the
    choices, and the settings run in each round."""
    rounds = []

    def execute_all(runs):
        rounds.append([run["prefix"].split("] ", 1)[1].split(" ", 1)[1] for run in runs])
        for run in runs:
            if not run["path"].exists():
                scored(run["path"], score(run["key"][1], run["lr"], run["warmup"]))
        return 0

    choices, failed = tune(grid, "digits", execute_all, create_task)
    assert failed == 0
    return choices, rounds


def test_a_best_lr_at_the_top_extends_the_grid_until_extend_steps(tmp_path, capsys):
    """gmlp keeps improving with the lr: two steps beyond the top (x4 each, at its best warm-up 0.3), then
    the sweep stops; vit's best is inside the grid: nothing beyond it."""
    def score(family, lr, warmup):
        return lr + warmup if family == "gmlp" else -abs(lr - 0.002) - warmup

    choices, rounds = run_tuning(tune_grid(tmp_path, warmup=[0.05, 0.3]), score)
    assert rounds[1:] == [["lr 0.032 warm-up 0.3 (extended)"], ["lr 0.128 warm-up 0.3 (extended)"]]
    gmlp, vit = choices[("digits", "gmlp", "mini", "")], choices[("digits", "vit", "mini", "")]
    assert gmlp["chosen"] == (0.128, 0.3) and gmlp["extended"] == {0.032, 0.128}
    assert vit["chosen"] == (0.002, 0.05) and not vit["extended"]
    assert describe_choice(("digits", "gmlp", "mini", ""), gmlp) == (
        "digits gmlp-mini: validation lr 0.0005 warm-up 0.05: 0.0505, lr 0.0005 warm-up 0.3: 0.3005, "
        "lr 0.002 warm-up 0.05: 0.0520, lr 0.002 warm-up 0.3: 0.3020, lr 0.008 warm-up 0.05: 0.0580, "
        "lr 0.008 warm-up 0.3: 0.3080, lr 0.032 warm-up 0.3 (extended): 0.3320, "
        "lr 0.128 warm-up 0.3 (extended): 0.4280; chosen lr 0.128 warm-up 0.3 (extended)")
    # a rerun finds every result, extensions included, and plans nothing more
    assert run_tuning(tune_grid(tmp_path, warmup=[0.05, 0.3]), score)[0] == choices


@pytest.mark.parametrize("extend, tried", [(0, []), (1, [0.000125]), (2, [0.000125, 3.125e-05])])
def test_a_best_lr_at_the_bottom_extends_downwards_at_the_grid_factor(tmp_path, extend, tried):
    choices, rounds = run_tuning(tune_grid(tmp_path, extend=extend), lambda family, lr, warmup: -lr)
    assert sorted(choices[("digits", "gmlp", "mini", "")]["extended"]) == sorted(tried)
    assert len(rounds) == 1 + extend and all(len(r) == 2 for r in rounds[1:])  # both families, side by side
    assert choices[("digits", "vit", "mini", "")]["chosen"] == (tried[-1] if tried else 0.0005, None)


def test_an_extension_that_scores_worse_or_fails_ends_the_extension(tmp_path):
    def score(family, lr, warmup):
        if lr > 0.008:
            return None if family == "gmlp" else 0.0
        return lr

    choices, rounds = run_tuning(tune_grid(tmp_path), score)
    assert rounds[1:] == [["lr 0.032 (extended)", "lr 0.032 (extended)"]]
    for family in ("gmlp", "vit"):
        entry = choices[("digits", family, "mini", "")]
        assert entry["chosen"] == (0.008, None) and entry["extended"] == {0.032}


def test_seq2seq_validation_is_carved_from_training_where_the_source_has_none():
    def sources(ds):
        return set(ds["source_ids"] if "source_ids" in ds.column_names else ds["source"])

    task = create_task("numbers")
    train_val, validation = task.pairs(DataConfig(eval_split="validation", seq_len=16))
    train_test, test = task.pairs(DataConfig(eval_split="test", seq_len=16))
    assert sources(train_val) == sources(train_test)
    assert not sources(validation) & sources(train_val) and not sources(validation) & sources(test)


def test_seq2seq_runs_write_their_hypotheses_and_sacrebleu_reproduces_the_bleu(tmp_path, one_thread):
    import sacrebleu

    from bench import run as runner
    from bench.core.results import predictions_paths

    assert runner.main(["--task", "numbers", "--model", "transformer", "--size", "mini", "--max-steps", "30",
                        "--batch-size", "32", "--seq-len", "16", "--max-eval-samples", "64", "--no-measure",
                        "--checkpoint-every", "none", "--output-dir", str(tmp_path)]) == 0
    result_path = next(tmp_path.glob("*.json"))
    recorded = json.loads(result_path.read_text())["metrics"]["bleu"]
    hyp, ref = predictions_paths(result_path)
    hypotheses, references = hyp.read_text().splitlines(), ref.read_text().splitlines()
    assert len(hypotheses) == len(references) == 64
    assert sacrebleu.corpus_bleu(hypotheses, [references]).score == recorded
    cli = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-b", "-w", "6"],
                         capture_output=True, text=True, check=True)
    assert float(cli.stdout) == pytest.approx(recorded, abs=1e-6)


def test_a_run_refuses_a_tuning_record_of_another_shape(tmp_path, monkeypatch, capsys):
    from bench import run as runner

    monkeypatch.setenv("MLPBENCH_TUNE", '{"lr": [0.001], "warmup": [2], "extend": 1}')
    assert runner.main(["--task", "digits", "--model", "gmlp", "--output-dir", str(tmp_path)]) == 2
    assert ("MLPBENCH_TUNE must be the JSON of a sweep's tuning ({\"lr\": [learning rates], \"warmup\": [fractions] "
            "or null, \"extend\": steps}), as python -m bench.sweep sets it for its tuning runs; got "
            "'{\"lr\": [0.001], \"warmup\": [2], \"extend\": 1}'.") in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_real_sweep_tunes_lr_and_warmup_extends_and_tests_at_the_choice(tmp_path, one_thread, capsys):
    """A two-value lr grid always chooses an end: with extend = 1 one lr beyond it runs, then the seed runs
    on test at the chosen lr and warm-up; every tuning result records the declared grid."""
    out = tmp_path / "out"
    path = tmp_path / "grid.toml"
    path.write_text(f"""
output_dir = "{out}"
tasks = ["digits"]
models = ["gmlp"]
seeds = [0]
[args]
max-steps = 3
batch-size = 32
checkpoint-every = "none"
no-measure = true
[tune]
lr = [0.001, 0.002]
warmup = [0.0, 0.3]
extend = 1
""".replace("seeds = [0]", "seeds = [0]\nbudgets = [1, 2]"))
    assert sweep.main([str(path)]) == 0
    printed = capsys.readouterr().out
    folders = sorted(p.parent.name for p in (out / "tune").glob("*/*.json"))
    grid_folders = ["lr-0.001-warmup-0", "lr-0.001-warmup-0.3", "lr-0.002-warmup-0", "lr-0.002-warmup-0.3"]
    extension = sorted(set(folders) - set(grid_folders))
    assert set(grid_folders) <= set(folders) and len(extension) == 1
    assert extension[0].startswith(("lr-0.0005-", "lr-0.004-"))
    for result in (json.loads(p.read_text()) for p in (out / "tune").glob("*/*.json")):
        assert result["tune"] == {"lr": [0.001, 0.002], "warmup": [0.0, 0.3], "extend": 1}
    line = next(line for line in printed.splitlines() if line.startswith("digits gmlp-mini: validation "))
    assert line.count("(extended)") >= 1
    chosen = line.split("; chosen lr ")[1]
    lr, _, warmup = chosen.removesuffix(" (extended)").partition(" warm-up ")
    final = json.loads(next(out.glob("*.json")).read_text())
    assert "tune" not in final and final["config"]["data"]["eval_split"] == "test"
    assert (final["config"]["optim"]["lr"], final["config"]["optim"]["warmup_fraction"]) == (float(lr), float(warmup))
    # budgets = [1, 2]: the same setting again, trained twice as long, into budget-2x/
    longer = json.loads((out / "budget-2x" / next(out.glob("*.json")).name).read_text())
    assert longer["config"]["optim"] == {**final["config"]["optim"], "max_steps": 6}
    assert longer["config"]["data"]["eval_split"] == "test" and longer["seed"] == final["seed"]


def recipes_file(tmp_path: Path, out: Path, recipes: str = '["plain", "deit"]', extra: str = "") -> Path:
    path = tmp_path / "recipes.toml"
    path.write_text(f"""
output_dir = "{out}"
tasks = ["fashion-mnist"]
models = ["resnet"]
sizes = ["mini"]
seeds = [0]
recipes = {recipes}
[args]
data-dir = "{tmp_path / 'data'}"
max-steps = 2
batch-size = 16
repeated-aug = 1
checkpoint-every = "none"
no-measure = true
{extra}
[tune]
lr = [0.001, 0.01]
extend = 0
""")
    return path


def test_a_recipes_list_runs_the_grid_once_per_recipe_each_into_its_own_folder(tmp_path, capsys):
    fashion_folder(tmp_path / "data", False)
    out = tmp_path / "out"
    assert sweep.main([str(recipes_file(tmp_path, out)), "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "would run" in line]
    assert len(lines) == 4  # 2 recipes x 2 learning rates (the test phase follows the choice)
    for recipe in ("plain", "deit"):
        for lr in ("0.001", "0.01"):
            assert sum(f"--recipe {recipe}" in line and f"--output-dir {out / recipe / 'tune' / ('lr-' + lr)} " in line
                       and f"--lr {lr} " in line for line in lines) == 1


def test_a_table_of_recipes_gives_each_recipe_its_own_learning_rate_grid(tmp_path, capsys):
    fashion_folder(tmp_path / "data", False)
    out = tmp_path / "out"
    path = recipes_file(tmp_path, out)
    path.write_text(path.read_text().replace("lr = [0.001, 0.01]", "lr = {plain = [0.1, 0.4], deit = [0.0005, 0.002]}"))
    assert sweep.main([str(path), "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "would run" in line]
    tried = sorted((recipe, lr) for line in lines for recipe in ("plain", "deit") for lr in ("0.1", "0.4", "0.0005", "0.002")
                   if f"--recipe {recipe}" in line and f"--lr {lr} " in line)
    assert len(lines) == 4 and tried == [("deit", "0.0005"), ("deit", "0.002"), ("plain", "0.1"), ("plain", "0.4")]


@pytest.mark.parametrize("recipes, table, named", [('["plain", "deit"]', "{plain = [0.1, 0.4]}", "(plain, deit), got plain"),
                                                   ('["plain"]', "{plain = [0.1, 0.4], deit = [0.1, 0.4]}",
                                                    "(plain), got deit, plain")])
def test_a_table_of_recipes_must_name_each_recipe_of_the_sweep(tmp_path, recipes, table, named, capsys):
    path = recipes_file(tmp_path, tmp_path / "out", recipes)
    path.write_text(path.read_text().replace("lr = [0.001, 0.01]", f"lr = {table}"))
    assert sweep.main([str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: tune.lr in {path} is a table of recipes, so it must name each "
                                               f"recipe of the sweep's recipes list once {named}.")


@pytest.mark.slow
def test_a_recipes_sweep_tunes_and_tests_each_recipe_apart(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    fashion_folder(tmp_path / "data", False)
    out = tmp_path / "out"
    assert sweep.main([str(recipes_file(tmp_path, out))]) == 0
    printed = capsys.readouterr().out
    for recipe in ("plain", "deit"):
        assert f"recipe {recipe}: into {out / recipe}" in printed
        tuned = sorted((out / recipe / "tune").glob("lr-*/*.json"))
        final = json.loads((out / recipe / "fashion-mnist__resnet-mini__fp32__seed0.json").read_text())
        assert len(tuned) == 2 and final["recipe"]["name"] == recipe and final["config"]["data"]["eval_split"] == "test"
        assert all(json.loads(p.read_text())["recipe"]["name"] == recipe for p in tuned)


@pytest.mark.parametrize("recipes, extra, sentence", [
    ('["plain", "nope"]', "", "recipes in the sweep file {path} is refused: Unknown recipe 'nope'; valid recipes are: "
                              "deit, paper, plain, suite."),
    ('["plain", "plain"]', "", "recipes in the sweep file {path} must be a non-empty list of distinct recipe names, "
                               "got ['plain', 'plain']."),
    ('["plain"]', 'recipe = "deit"', "{path} sets 'recipe' in its args, which its recipes list decides; remove it."),
    ('["plain"]', "[cost]\nrounds = 3",
     "The sweep file {path} has recipes and a [cost] table; a cost pass times models whatever their recipe: run it "
     "from a sweep file without recipes."),
])
def test_bad_recipes_lists_are_one_sentence(tmp_path, recipes, extra, sentence, capsys):
    path = recipes_file(tmp_path, tmp_path / "out", recipes, extra)  # extra: in [args], or a table of its own
    assert sweep.main([str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {sentence.format(path=path)}"
