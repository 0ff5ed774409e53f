"""The leaderboard generator, run on committed result files (tests/data/results).

The fixture results (tests/data/results, but for protocol/, which tests/test_protocol_pages.py reads):
digits (image, top1) and wordnet (masked LM, perplexity) on one CPU in fp32,
digits also on an H100 in bf16 (with one measure-only run that has no metric), one diverged run,
a malformed JSON and another tool's JSON. The CPU runs record their test examples (metrics.eval_samples),
the H100 runs do not; all come from one clean commit.

Golden files in tests/golden/leaderboard pin the Markdown and CSV output byte for byte. After an
intended change of the output, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_leaderboard.py
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import generate_pages

from leaderboard.__main__ import main
from leaderboard.aggregate import aggregate, compare_to_baselines
from leaderboard.build import build
from leaderboard.collect import collect
from leaderboard.plots import pareto_front

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tests" / "data" / "results"
GOLDEN = ROOT / "tests" / "golden" / "leaderboard"
CPU = "Intel(R) Xeon(R) CPU @ 2.20GHz"
GPU = "NVIDIA H100 80GB HBM3"
PAGES = ["index.md", "digits.md", "wordnet.md", "summary.md", "results.csv"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The crafted results of the tuning protocol, tested by tests/test_protocol_pages.py, are not part of these.
OWN = ["cpu", "h100", "other"]


def run_cli(*args: str, cwd: Path, preamble: str = "") -> subprocess.CompletedProcess:
    """`python -m leaderboard ARGS` in a fresh interpreter; `preamble` runs first."""
    code = (
        f"{preamble}\nimport runpy, sys\nsys.argv = ['leaderboard', *{list(args)!r}]\n"
        "runpy.run_module('leaderboard', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def generate(work: Path) -> tuple[int, str]:
    return generate_pages(RESULTS, work, ("protocol",))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    work = tmp_path_factory.mktemp("board")
    code, stderr = generate(work)
    return work / "board", code, stderr


def read_csv(board_dir: Path) -> list[dict[str, str]]:
    with open(board_dir / "results.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", PAGES)
def test_output_matches_golden(board, name):
    out, code, _ = board
    assert code == 0
    produced = (out / name).read_text(encoding="utf-8")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / name).write_text(produced, encoding="utf-8")
    assert produced == (GOLDEN / name).read_text(encoding="utf-8")


ABLATIONS = ROOT / "tests" / "data" / "ablations"
GOLDEN_ABLATIONS = ROOT / "tests" / "golden" / "ablations"


@pytest.mark.parametrize("name", ["ablations.md", "digits.md", "index.md"])
def test_ablation_pages_match_golden(tmp_path, name):
    """Synthetic variant results (tests/data/ablations): defaults written before variants existed (no
    `variant` key), variants of one and two flags, one without a default, relatives with and without
    the family they change."""
    build(collect([str(ABLATIONS)]), str(tmp_path), "python -m leaderboard results/ablations --out board")
    produced = (tmp_path / name).read_text(encoding="utf-8")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_ABLATIONS.mkdir(parents=True, exist_ok=True)
        (GOLDEN_ABLATIONS / name).write_text(produced, encoding="utf-8")
    assert produced == (GOLDEN_ABLATIONS / name).read_text(encoding="utf-8")


def test_writes_exactly_the_pages_and_plots(board):
    out, _, _ = board
    assert sorted(p.name for p in out.iterdir()) == sorted(PAGES + ["digits_pareto.png", "wordnet_pareto.png"])


def test_regenerating_reproduces_every_file(board, tmp_path):
    out, _, _ = board
    assert generate(tmp_path)[0] == 0
    for path in out.iterdir():
        assert (tmp_path / "board" / path.name).read_bytes() == path.read_bytes(), path.name


def test_malformed_and_foreign_json_are_skipped_with_a_warning_naming_them(board):
    out, code, stderr = board
    assert code == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "results/other/malformed.json" in warnings[0]
    assert "results/other/tokenizer_config.json" in warnings[1]
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "20 JSON files (finished runs: 17, failed runs: 1, files skipped: 2)" in index


def test_ranks_start_at_one_in_each_device_and_precision(board):
    rows = read_csv(board[0])
    ranks: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for r in rows:
        ranks.setdefault((r["task"], r["device"], r["precision"]), []).append((r["rank"], r["tied"]))
    assert ranks == {
        # Two seeds give wide intervals (t = 12.7): every interval overlaps the others and holds mixer's 0.91.
        ("digits", CPU, "fp32"): [("1", "true")] * 4,
        ("digits", GPU, "bf16"): [("1", "false"), ("2", "false"), ("", "false")],  # measure-only: no metric, no rank
        # transformer-small 38 lies inside gmlp's [37.03, 46.97]: tied. transformer-mini's 45 does too, but
        # small's 38 is better beyond doubt: rank 2. mixer's 48 is above gmlp's interval: small, mini and gmlp
        # are better, rank 4.
        ("wordnet", CPU, "fp32"): [("1", "true"), ("1", "true"), ("2", "false"), ("4", "false"), ("5", "false")],
    }


def test_confidence_interval_is_students_t(board):
    from scipy.stats import t

    gmlp = next(r for r in read_csv(board[0]) if r["task"] == "wordnet" and r["model"] == "gmlp")
    half = t.ppf(0.975, 2) * 2.0 / 3**0.5  # perplexities 40, 42, 44: std 2, n 3
    assert float(gmlp["metric_ci95_low"]) == pytest.approx(42 - half, rel=1e-5)
    assert float(gmlp["metric_ci95_high"]) == pytest.approx(42 + half, rel=1e-5)
    single = next(r for r in read_csv(board[0]) if r["task"] == "wordnet" and r["model"] == "mixer")
    assert single["metric_ci95_low"] == single["metric_ci95_high"] == ""  # one run: no interval
    page = (board[0] / "wordnet.md").read_text(encoding="utf-8")
    assert "| 1= | gmlp | ti | 42.0000 ± 2.0000 | 3 | [37.0317, 46.9683] | 500 |" in page
    assert "= Tied, their 95% intervals overlapping (or, for single runs, their values equal): rank 1: " \
           "transformer-small, gmlp-ti." in page


def test_every_page_says_how_many_test_examples(board):
    out = board[0]
    assert "Test examples (the size of the scored split): 500." in (out / "wordnet.md").read_text(encoding="utf-8")
    digits = (out / "digits.md").read_text(encoding="utf-8")
    assert "Test examples (the size of the scored split): 360; not recorded by the results of 2 rows." in digits
    assert "Test examples: digits: 360; wordnet: 500." in (out / "summary.md").read_text(encoding="utf-8")
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "- [digits](digits.md): 10 finished runs, 0 failed; test examples: 360;" in index
    assert [r["eval_samples"] for r in read_csv(out) if r["task"] == "digits"] == ["360"] * 4 + [""] * 3


def test_lower_is_better_metric_ranks_ascending(board):
    wordnet = [r for r in read_csv(board[0]) if r["task"] == "wordnet"]
    assert [(r["model"], r["size"], r["metric_mean"]) for r in wordnet] == [
        ("transformer", "small", "38"), ("gmlp", "ti", "42"), ("transformer", "mini", "45"),
        ("mixer", "s16", "48"), ("resmlp", "s12", "50"),
    ]


def test_seeds_are_aggregated_into_mean_and_sample_std(board):
    gmlp = next(r for r in read_csv(board[0]) if r["task"] == "wordnet" and r["model"] == "gmlp")
    # perplexities 40, 42, 44; train samples/s 300, 310, 320
    assert (gmlp["n"], gmlp["seeds"], gmlp["metric_mean"], gmlp["metric_std"]) == ("3", "0 1 2", "42", "2")
    assert gmlp["train_samples_per_s"] == "310"
    assert gmlp["train_tokens_per_s"] == "39680"  # 310 x 128 tokens


def test_failed_run_is_listed_with_its_reason_and_never_ranked(board):
    out = board[0]
    assert not any(r["model"] == "mixer" and r["seeds"] != "0" for r in read_csv(out) if r["task"] == "wordnet")
    page = (out / "wordnet.md").read_text(encoding="utf-8")
    failed = page.split("## Failed runs (not ranked)")[1]
    assert "| mixer | s16 | 1 |" in failed
    assert "| diverged | The training loss became NaN at step 412; try a lower --lr. |" in failed


def test_summary_ratios_against_the_baseline():
    comparisons, unmatched = compare_to_baselines(aggregate(collect([str(RESULTS / f) for f in OWN]).runs))
    got = {
        (c.row.task, c.row.device_label, c.row.family, c.row.size):
        (f"{c.baseline.family}-{c.baseline.size}", c.metric_delta, c.speed_ratio, c.memory_ratio)
        for c in comparisons
    }
    # Hand-computed from the fixture files: means over seeds, then differences and ratios.
    expected = {
        # same size name: vit-ti; top1 0.96 vs 0.91, 1100 vs 550 samples/s, 210 vs 315 MB
        ("digits", CPU, "gmlp", "ti"): ("vit-ti", 0.05, 2.0, 210 / 315),
        # no vit-s12 or vit-s16: the only baseline, vit-ti
        ("digits", CPU, "resmlp", "s12"): ("vit-ti", 0.025, 820 / 550, 255 / 315),
        ("digits", CPU, "mixer", "s16"): ("vit-ti", 0.0, 900 / 550, 240 / 315),
        ("digits", GPU, "gmlp", "ti"): ("vit-ti", 0.01, 1.25, 1500 / 1800),
        ("digits", GPU, "resmlp", "s12"): ("vit-ti", None, 1.125, 1600 / 1800),
        # closest parameters: 3.0M is nearer mini (2.0M) than small (8.0M); 7.0M nearer small; 4.9M nearer mini
        ("wordnet", CPU, "gmlp", "ti"): ("transformer-mini", -3.0, 310 / 400, 510 / 400),
        ("wordnet", CPU, "resmlp", "s12"): ("transformer-small", 12.0, 200 / 150, 700 / 900),
        ("wordnet", CPU, "mixer", "s16"): ("transformer-mini", 3.0, 250 / 400, 600 / 400),
    }
    assert got.keys() == expected.keys()
    for key, (baseline, delta, speed, memory) in expected.items():
        assert got[key][0] == baseline, key
        assert got[key][1] == (None if delta is None else pytest.approx(delta)), key
        assert got[key][2:] == (pytest.approx(speed), pytest.approx(memory)), key
    assert unmatched == []


def test_equally_close_baselines_resolve_to_the_smaller(tmp_path):
    for path in (RESULTS / "cpu").glob("wordnet__*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["model"] == "mixer":
            data["params"] = 5_000_000  # 3M from both mini (2M) and small (8M)
        (tmp_path / path.name).write_text(json.dumps(data), encoding="utf-8")
    comparisons, _ = compare_to_baselines(aggregate(collect([str(tmp_path)]).runs))
    mixer = next(c for c in comparisons if c.row.family == "mixer")
    assert mixer.baseline.size == "mini"


def test_task_without_baseline_is_named_in_the_summary(tmp_path):
    for path in (RESULTS / "cpu").glob("wordnet__*.json"):
        if "transformer" not in path.name:
            shutil.copy(path, tmp_path)
    assert main([str(tmp_path), "--out", str(tmp_path / "board")]) == 0
    summary = (tmp_path / "board" / "summary.md").read_text(encoding="utf-8")
    assert "No baseline run of wordnet on this device and precision, so gmlp-ti, mixer-s16, resmlp-s12" in summary


def test_a_reference_family_has_a_row_of_its_own_and_changes_no_rank(tmp_path):
    """A run recording `reference` (the ConvNet's) is shown after the ranked rows, marked reference, even
    when it scores best; the other rows keep the ranks they had without it."""
    for path in (RESULTS / "cpu").glob("digits__*.json"):
        shutil.copy(path, tmp_path)
    before = {(r.family, r.size): r.rank for r in aggregate(collect([str(tmp_path)]).runs)}
    data = json.loads((tmp_path / "digits__gmlp-ti__fp32__seed0.json").read_text(encoding="utf-8"))
    data.update(model="resnet", size="ti", reference=True)
    data["primary_metric"]["value"] = data["metrics"]["top1"] = 1.0
    (tmp_path / "digits__resnet-ti__fp32__seed0.json").write_text(json.dumps(data), encoding="utf-8")
    rows = [r for r in aggregate(collect([str(tmp_path)]).runs) if r.task == "digits"]
    assert {(r.family, r.size): r.rank for r in rows if not r.reference} == before
    assert rows[-1].family == "resnet" and rows[-1].reference and rows[-1].rank is None
    assert main([str(tmp_path), "--out", str(tmp_path / "board")]) == 0
    page = (tmp_path / "board" / "digits.md").read_text(encoding="utf-8")
    assert "| reference | resnet | ti | 1.0000 | 1 |" in page
    assert ("reference: resnet-ti, a family of another kind that its registration names a reference, shown beside "
            "the compared families and not ranked with them.") in page


def test_repeated_run_wrong_field_type_and_page_name_as_task_are_skipped(tmp_path):
    source = RESULTS / "cpu" / "digits__gmlp-ti__fp32__seed0.json"
    shutil.copy(source, tmp_path / "a.json")
    shutil.copy(source, tmp_path / "b.json")  # the same run again
    data = json.loads(source.read_text(encoding="utf-8"))
    (tmp_path / "c.json").write_text(json.dumps({**data, "seed": 7, "params": "1.2M"}), encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps({**data, "task": "index"}), encoding="utf-8")  # would overwrite index.md
    collection = collect([str(tmp_path)])
    assert [r.id.seed for r in collection.runs] == [0]
    assert collection.skipped == [
        f"{tmp_path / 'b.json'} repeats the run in {tmp_path / 'a.json'} (same task, model, size, variant, seed, "
        "device and precision); only the first is used.",
        f"{tmp_path / 'c.json'} has params = '1.2M', which is not a valid value for that field.",
        f"{tmp_path / 'd.json'} has task 'index'; a task name is letters, digits, '_', '-' and '.', "
        "and not index or summary or ablations.",
    ]


def test_pngs_are_valid_images(board):
    from matplotlib.image import imread

    for name in ("digits_pareto.png", "wordnet_pareto.png"):
        path = board[0] / name
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        height, width, _ = imread(path).shape
        assert width > 300 and height > 300
    # digits has two panels (CPU fp32 and H100 bf16) side by side
    assert imread(board[0] / "digits_pareto.png").shape[1] > 1.8 * imread(board[0] / "wordnet_pareto.png").shape[1]


@pytest.mark.parametrize("higher_is_better, expected", [
    (True, [(100.0, 0.9), (300.0, 0.8), (400.0, 0.5)]),
    (False, [(300.0, 0.1), (400.0, 0.5)]),  # (200, 0.1) is matched by the faster (300, 0.1)
])
def test_pareto_front(higher_is_better, expected):
    points = [(100.0, 0.9), (200.0, 0.1), (300.0, 0.8), (50.0, 0.85), (100.0, 0.2), (400.0, 0.5), (300.0, 0.1)]
    assert pareto_front(points, higher_is_better) == expected


def test_imports_no_torch():
    code = "import leaderboard, leaderboard.__main__, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_generates_with_torch_blocked(tmp_path):
    block = (
        "import sys\n"
        "class BlockTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, BlockTorch())\n"
    )
    done = run_cli(*(str(RESULTS / f) for f in OWN), "--out", str(tmp_path / "board"), cwd=tmp_path, preamble=block)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "board" / "summary.md").exists() and (tmp_path / "board" / "digits_pareto.png").exists()


def test_missing_results_folder_exits_2_with_one_sentence(tmp_path):
    done = run_cli("no-such-folder", "--out", "board", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: Results folder 'no-such-folder' does not exist.\n"
    assert not (tmp_path / "board").exists()


def test_a_folder_may_give_some_of_its_tasks_alone(tmp_path):
    """FOLDER:TASK takes that task's results from the folder and nothing else of it, so that each task of a
    page can come from the folder of its own publication; the same folder in full gives both tasks."""
    cpu = str(RESULTS / "cpu")
    every = collect([cpu])
    assert {r.id.task for r in every.runs} == {"digits", "wordnet"}
    wordnet = collect([f"{cpu}:wordnet"])
    assert wordnet.runs == [r for r in every.runs if r.id.task == "wordnet"] and wordnet.skipped == []
    both = collect([f"{cpu}:wordnet", f"{RESULTS / 'h100'}:digits"])
    assert {(r.id.task, r.id.precision) for r in both.runs} == {("wordnet", "fp32"), ("digits", "bf16")}
    assert collect([f"{cpu}:wordnet,digits"]).runs == every.runs == collect([f"{cpu}:wordnet", f"{cpu}:digits"]).runs
    linked = tmp_path / "linked"  # a result file linked from elsewhere belongs to the folder that links it
    linked.mkdir()
    (linked / "run.json").symlink_to(RESULTS / "cpu" / "wordnet__gmlp-ti__fp32__seed0.json")
    assert [r.id.task for r in collect([f"{linked}:wordnet"]).runs] == ["wordnet"]


@pytest.mark.parametrize("argument, sentence", [
    ("{cpu}:cmudict", "error: '{cpu}' has no result of task 'cmudict' (its tasks: digits, wordnet).\n"),
    ("{cpu}:", "error: '{cpu}:' names no task after its colon; give FOLDER or FOLDER:TASK[,TASK...].\n"),
    ("{cpu}:wordnet,", "error: '{cpu}:wordnet,' names no task after its colon; give FOLDER or FOLDER:TASK[,TASK...].\n"),
    ("no-such-folder:wordnet", "error: Results folder 'no-such-folder' does not exist.\n"),
])
def test_a_task_selection_that_selects_nothing_exits_2_with_one_sentence(tmp_path, argument, sentence):
    cpu = str(RESULTS / "cpu")
    done = run_cli(argument.format(cpu=cpu), "--out", "board", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, sentence.format(cpu=cpu))
    assert not (tmp_path / "board").exists()


def test_no_valid_results_exits_2(tmp_path):
    shutil.copy(RESULTS / "other" / "tokenizer_config.json", tmp_path)
    done = run_cli(".", "--out", "board", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith("warning: skipped a file: tokenizer_config.json lacks the keys")
    assert lines[1:] == ["error: No valid result files found (JSON files read: 1, skipped: 1)."]
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- provenance, unstable throughput


def crafted(tmp_path: Path, changes: dict[str, dict[str, dict]]) -> Path:
    """The CPU digits fixtures in tmp_path/results, with `changes`: file name -> {section: {key: value}}."""
    folder = tmp_path / "results"
    folder.mkdir()
    for path in sorted((RESULTS / "cpu").glob("digits__*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for section, values in changes.get(path.name, {}).items():
            data[section].update(values)
        (folder / path.name).write_text(json.dumps(data), encoding="utf-8")
    return folder


def publish(folder: Path, capsys) -> tuple[Path, list[str]]:
    out = folder.parent / "board"
    assert main([str(folder), "--out", str(out)]) == 0
    return out, [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


GMLP0, GMLP1 = "digits__gmlp-ti__fp32__seed0.json", "digits__gmlp-ti__fp32__seed1.json"
RESMLP0, RESMLP1 = "digits__resmlp-s12__fp32__seed0.json", "digits__resmlp-s12__fp32__seed1.json"
VIT0, VIT1 = "digits__vit-ti__fp32__seed0.json", "digits__vit-ti__fp32__seed1.json"
MIXER = "digits__mixer-s16__fp32__seed0.json"


def test_results_from_a_dirty_tree_are_warned_about_and_shown(tmp_path, capsys):
    folder = crafted(tmp_path, {
        GMLP0: {"environment": {"git_commit": "4d01189c0ffee-dirty"}},  # as results written before git_dirty
        VIT1: {"environment": {"git_commit": "4d01189c0ffee", "git_dirty": True}},
    })
    out, warnings = publish(folder, capsys)
    assert warnings == [
        f"warning: 2 of 7 results come from a tree with uncommitted changes, so no commit holds the code that "
        f"made them: {folder / GMLP0}, {folder / VIT1}"
    ]
    line = ("Code: all 7 results come from commit `4d01189c0ffe` **with uncommitted changes** in 2 of them, "
            "so no commit holds exactly the code that made them.")
    for page in ("digits.md", "summary.md", "index.md"):
        assert line in (out / page).read_text(encoding="utf-8"), page


def test_results_from_several_commits_are_warned_about_and_shown(tmp_path, capsys):
    folder = crafted(tmp_path, {VIT0: {"environment": {"git_commit": "0123456789abcdef", "git_dirty": False}},
                                VIT1: {"environment": {"git_commit": "0123456789abcdef", "git_dirty": True}}})
    out, warnings = publish(folder, capsys)
    others = ", ".join(str(folder / name) for name in sorted(p.name for p in folder.iterdir()) if "vit" not in name)
    assert warnings == [
        f"warning: 1 of 7 results come from a tree with uncommitted changes, so no commit holds the code that "
        f"made them: {folder / VIT1}",
        f"warning: the results of digits come from 2 commits: 0123456789ab: {folder / VIT0}, {folder / VIT1}; "
        f"4d01189c0ffe: {others}",
    ]
    line = ("Code: the 7 results come from **mixed commits**: `0123456789ab` (2 results **with uncommitted "
            "changes** in 1 of them), `4d01189c0ffe` (5 results).")
    for page in ("digits.md", "summary.md", "index.md"):
        assert line in (out / page).read_text(encoding="utf-8"), page


def test_tasks_each_from_one_clean_commit_are_named_without_a_warning(tmp_path, capsys):
    folder = crafted(tmp_path, {})
    for path in sorted(folder.glob("digits__*.json")):  # the same runs as a second task, from another commit
        data = json.loads(path.read_text(encoding="utf-8"))
        data["task"] = "digits2"
        data["environment"].update(git_commit="0123456789abcdef", git_dirty=False)
        (folder / path.name.replace("digits__", "digits2__")).write_text(json.dumps(data), encoding="utf-8")
    out, warnings = publish(folder, capsys)
    assert warnings == []
    line = ("Code: each task's results come from one clean commit (architectures are compared within a task): "
            "digits `4d01189c0ffe` (7 results), digits2 `0123456789ab` (7 results).")
    for page in ("summary.md", "index.md"):
        assert line in (out / page).read_text(encoding="utf-8"), page
    assert "Code: all 7 results come from commit `0123456789ab`." in (out / "digits2.md").read_text(encoding="utf-8")


def test_unstable_throughput_is_left_out_of_means_and_ratios_and_marked(tmp_path, capsys):
    unstable = {"stable": False, "unstable_reason": "the repeats spread by 40%"}
    folder = crafted(tmp_path, {GMLP1: {"throughput": unstable}, RESMLP0: {"throughput": unstable},
                                RESMLP1: {"throughput": {"stable": False}}, VIT0: {"throughput": {"stable": True}}})
    rows = aggregate(collect([str(folder)]).runs)
    gmlp = next(r for r in rows if r.family == "gmlp")
    assert gmlp.metric_mean == pytest.approx(0.96)  # the metric keeps both seeds
    assert (gmlp.train_samples_per_s, gmlp.train_peak_mb) == (1000, 200)  # seed 0's alone
    comparisons, _ = compare_to_baselines(rows)
    ratios = {c.row.family: (c.speed_ratio, c.memory_ratio, c.unstable) for c in comparisons}
    assert ratios["gmlp"] == (pytest.approx(1000 / 550), pytest.approx(200 / 315), True)
    assert ratios["resmlp"] == (None, None, True)  # no stable run left
    assert ratios["mixer"] == (pytest.approx(900 / 550), pytest.approx(240 / 315), False)

    out, warnings = publish(folder, capsys)
    assert warnings == []
    page = (out / "digits.md").read_text(encoding="utf-8")
    assert "| 1000 ‡ | 4000 | 200 ‡ | fp32 |" in page
    assert "| — ‡ | — | — ‡ | fp32 |" in page
    assert ("‡ gmlp-ti: throughput and memory of 1 of 2 runs left out, as their measurement was unstable "
            "(seed 1: the repeats spread by 40%).") in page
    assert ("‡ resmlp-s12: throughput and memory of 2 of 2 runs left out, as their measurement was unstable "
            "(seed 0: the repeats spread by 40%; seed 1: no reason recorded).") in page
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| +0.0500 | 1.82× ‡ | 0.63× ‡ |" in summary
    assert "| +0.0250 | — ‡ | — ‡ |" in summary
    assert "| +0.0000 | 1.64× | 0.76× |" in summary
    csv_rows = {r["model"]: r for r in read_csv(out)}
    assert csv_rows["gmlp"]["unstable_runs"] == "seed 1: the repeats spread by 40%"
    assert csv_rows["mixer"]["unstable_runs"] == ""


def test_memory_of_different_kinds_is_not_compared(tmp_path):
    tensors = {"memory": {"kind": "cpu_tensors", "train_peak_mb": 30.0}}
    folder = crafted(tmp_path, {VIT0: tensors, VIT1: tensors})
    comparisons, _ = compare_to_baselines(aggregate(collect([str(folder)]).runs))
    gmlp = next(c for c in comparisons if c.row.family == "gmlp")
    assert gmlp.memory_ratio is None and gmlp.speed_ratio == pytest.approx(2.0)
    assert gmlp.baseline.memory_kind == "cpu_tensors" and gmlp.row.memory_kind == "cpu_rss"


def test_results_without_a_commit_are_warned_about(tmp_path, capsys):
    folder = crafted(tmp_path, {MIXER: {"environment": {"git_commit": None, "git_dirty": None}}})
    out, warnings = publish(folder, capsys)
    assert warnings == [f"warning: 1 of 7 results record no commit: {folder / MIXER}"]
    assert ("Code: the 7 results come from **mixed commits**: `4d01189c0ffe` (6 results), no recorded commit "
            "(1 result).") in (out / "digits.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- any value of any field


NUMBERS = ["seed", "params", "environment.num_processes", "environment.cpu_threads", "metrics.eval_samples",
           "flops.forward_per_sample", "throughput.train_samples_per_s", "throughput.infer_samples_per_s",
           "throughput.train_tokens_per_s", "throughput.infer_tokens_per_s", "memory.train_peak_mb",
           "config.optim.lr", "config.optim.batch_size", "config.optim.weight_decay", "config.optim.warmup_fraction",
           "config.optim.label_smoothing", "config.optim.max_steps", "config.optim.epochs", "train.steps",
           "train.epochs", "train.samples"]
SIGNED = ["primary_metric.value", "metrics.majority_baseline_accuracy"]
COUNTS = {"seed", "params", "environment.num_processes", "environment.cpu_threads", "config.optim.batch_size",
          "train.steps", "train.samples", "metrics.eval_samples", "config.optim.max_steps"}
NAMES = ["task", "model", "size", "variant", "environment.device_name", "environment.device_type",
         "environment.precision", "primary_metric.name", "memory.kind", "modality", "config.measure.bench_clock",
         "config.data.eval_split", "environment.git_commit"]


def with_value(folder: Path, dotted: str, value) -> Path:
    """The CPU digits fixtures in `folder`, gmlp's seed 1 with `value` at `dotted`; that file's path."""
    folder.mkdir()
    for path in sorted((RESULTS / "cpu").glob("digits__*.json")):
        shutil.copy(path, folder)
    changed = folder / GMLP1
    data = json.loads(changed.read_text(encoding="utf-8"))
    *parents, last = dotted.split(".")
    table = data
    for key in parents:
        if not isinstance(table.get(key), dict):  # a run that did not train has train = null
            table[key] = {}
        table = table[key]
    table[last] = value
    changed.write_text(json.dumps(data), encoding="utf-8")
    return changed


def extremes(dotted: str) -> tuple[list, list]:
    """(values a result may hold at `dotted`, values it may not): a count is an integer in [0, 1e18], a
    measurement a number in [0, 1e18], a metric a number in [-1e18, 1e18]; never nan, infinity or a bool."""
    if dotted in COUNTS:
        return [10**18, 3] + ([] if dotted == "seed" else [0]), [10**18 + 1, -1, 2.0, 0.5, True]
    never = [float("nan"), float("inf"), -float("inf"), 1e19, -1e19, True]
    if dotted in SIGNED:
        return [0, 1e18, -1e18, 5e-324, -5e-324, 7], never
    return [0, 1e18, 5e-324, 2.5, 7], never + [-1, -5e-324]


@pytest.mark.parametrize("dotted", NUMBERS + SIGNED)
def test_any_number_in_a_result_is_used_or_skipped_naming_the_file_never_a_crash(tmp_path, capsys, dotted):
    """Every page is built whatever a number holds: extremes inside the range are used, others skip
    the file with one sentence naming it and the field."""
    inside, outside = extremes(dotted)
    for i, value in enumerate(inside + outside):
        changed = with_value(tmp_path / f"results{i}", dotted, value)
        assert main([str(changed.parent), "--out", str(tmp_path / f"board{i}")]) == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if changed.name in line]
        expected = [] if i < len(inside) else [
            f"warning: skipped a file: {changed} has {dotted} = {value!r}, which is not a valid value for that field."]
        assert warnings == expected, value
        assert (tmp_path / f"board{i}" / "digits.md").exists()


@pytest.mark.parametrize("dotted", NAMES)
def test_a_name_that_would_break_a_page_skips_the_file(tmp_path, capsys, dotted):
    changed = with_value(tmp_path / "results", dotted, "gm|lp\n## heading <b>")
    assert main([str(changed.parent), "--out", str(tmp_path / "board")]) == 0
    warning = f"warning: skipped a file: {changed} has {dotted} = 'gm|lp\\n## heading <b>', which is not a valid"
    assert warning in capsys.readouterr().err
    pages = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "board").glob("*.md"))
    assert "\n## heading" not in pages and "<b>" not in pages


def test_free_text_of_a_run_cannot_break_a_page(tmp_path):
    changed = with_value(tmp_path / "results", "status", "error")
    data = json.loads(changed.read_text(encoding="utf-8"))
    data["error"] = "shapes a|b differ\n## not a heading <script>"
    changed.write_text(json.dumps(data), encoding="utf-8")
    assert main([str(changed.parent), "--out", str(tmp_path / "board")]) == 0
    page = (tmp_path / "board" / "digits.md").read_text(encoding="utf-8")
    assert "| shapes a\\|b differ ## not a heading &lt;script&gt; |" in page and "<script>" not in page


def test_only_regular_files_of_json_within_its_limits_are_read(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS / "cpu", results)
    os.mkfifo(results / "fifo.json")  # opening it for reading would wait for a writer forever
    (results / "folder.json").mkdir()
    (results / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (results / "digits.json").write_text("1" * 5000)  # more digits than Python converts
    with open(results / "huge.json", "wb") as f:
        f.truncate(2**24 + 1)
    done = run_cli(str(results), "--out", str(tmp_path / "board"), cwd=tmp_path)  # a 120 s timeout: never blocks
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if line.startswith("warning: skipped a file:")]
    assert f"warning: skipped a file: {results / 'fifo.json'} is not a regular file; a result is a JSON file." in skipped
    assert f"warning: skipped a file: {results / 'folder.json'} is not a regular file; a result is a JSON file." in skipped
    assert f"warning: skipped a file: {results / 'huge.json'} holds {2**24 + 1} bytes, far more than a result of this suite." in skipped
    for name in ("deep.json", "digits.json"):
        assert any(line.startswith(f"warning: skipped a file: {results / name} could not be read as JSON (") for line in skipped)
    assert len(skipped) == 5
