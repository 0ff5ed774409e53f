"""Task pages of the tuning protocol (bench/sweep.py [tune]), on crafted results in tests/data/results/protocol.

digits (image, top1, higher is better): gmlp-ti and vit-ti, each tuned over lr 0.001, 0.002, 0.004 at
seed 0 on the validation split (tune/lr-*/), then seeds 0-2 on test. gmlp's test runs used its best
validation lr (0.002); vit's used 0.001 though 0.002 scored best, and its lr 0.004 diverged.
cmudict (G2P, wer, lower is better): transformer-mini, gmlp-ti and mixer-s16, seeds 0-2 on test, no
tuning; mixer's files predate eval_split and trained 500 steps where the others trained 400.
The budget-sensitivity tests add digits' test runs again at 4x the budget (longer_budget()); the
steps-to-competence tests give tuning runs learning curves in their histories (with_curves()).

Golden files in tests/golden/protocol pin the pages byte for byte. After an intended change of the
output, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_protocol_pages.py
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import generate_pages

from leaderboard.__main__ import main
from leaderboard.collect import Failure, Run, collect

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tests" / "data" / "results" / "protocol"
GOLDEN = ROOT / "tests" / "golden" / "protocol"
PAGES = ["index.md", "digits.md", "cmudict.md", "results.csv"]


def generate(work: Path) -> tuple[int, str]:
    return generate_pages(RESULTS, work, ())


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("protocol")
    code, stderr = generate(work)
    assert code == 0 and stderr == ""  # no file skipped: a tuning run is no repeat of the test run of its seed
    return work / "board"


def page(board: Path, name: str) -> str:
    return (board / name).read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The part of a page from the heading `title` to the next heading of its level or above."""
    level = title.split(" ")[0]
    rest = text.split(title + "\n", 1)[1]
    ends = [i for i in (rest.find("\n" + "#" * n + " ") for n in range(1, len(level) + 1)) if i >= 0]
    return rest[: min(ends)] if ends else rest


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


@pytest.mark.parametrize("name", PAGES)
def test_pages_match_golden(board, name):
    produced = page(board, name)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / name).write_text(produced, encoding="utf-8")
    assert produced == (GOLDEN / name).read_text(encoding="utf-8")


def test_regenerating_reproduces_every_file_byte_for_byte(board, tmp_path):
    assert generate(tmp_path)[0] == 0
    produced = sorted(p.name for p in (tmp_path / "board").iterdir())
    assert produced == sorted(p.name for p in board.iterdir())
    for name in produced:
        assert (tmp_path / "board" / name).read_bytes() == (board / name).read_bytes(), name


def test_validation_runs_are_collected_apart():
    collection = collect([str(RESULTS)])
    assert collection.skipped == []
    assert {r.eval_split for r in collection.runs} == {"test"}  # mixer's files, without eval_split, included
    assert len(collection.runs) == 15 and collection.failures == []
    # mixer's 500 steps are no integer multiple of the others' 400: its runs stay with the tuned budget's,
    # whose budget line says the budget varies
    assert collection.longer == []
    assert sorted((e.id.family, e.lr, type(e).__name__) for e in collection.tuning) == [
        ("gmlp", 0.001, "Run"), ("gmlp", 0.002, "Run"), ("gmlp", 0.004, "Run"),
        ("vit", 0.001, "Run"), ("vit", 0.002, "Run"), ("vit", 0.004, "Failure"),
    ]
    assert all(e.eval_split == "validation" and e.id.seed == 0 for e in collection.tuning)


def test_validation_runs_never_enter_the_ranked_table_csv_or_summary(board):
    ranked = section(page(board, "digits.md"), "## CPU, fp32: top1, higher is better")
    rows = table_rows(ranked)[1:]
    # test runs only: three seeds each, their means; a validation score (0.91, 0.94, 0.92, 0.90, 0.93) in
    # the mean would move it, and the diverged tuning run would be listed as a failed run
    assert [r[:6] for r in rows] == [
        ["1", "gmlp", "ti", "0.9600 ± 0.0100", "3", "[0.9352, 0.9848]"],
        ["2", "vit", "ti", "0.9100 ± 0.0100", "3", "[0.8852, 0.9348]"],
    ]
    assert "Failed runs" not in page(board, "digits.md")
    with open(board / "results.csv", newline="", encoding="utf-8") as f:
        csv_rows = [r for r in csv.DictReader(f) if r["task"] == "digits"]
    assert [(r["model"], r["n"], r["seeds"], r["metric_mean"]) for r in csv_rows] == [
        ("gmlp", "3", "0 1 2", "0.96"), ("vit", "3", "0 1 2", "0.91")]
    summary = page(board, "summary.md")
    assert "| digits | gmlp | ti | 1.20 | top1 ↑ | 0.9600 | vit-ti | 0.9100 | +0.0500 |" in summary
    # each task's sentence names the test runs' budget, or says that it varies (mixer's 500 steps)
    assert "- **digits** (top1 ↑): at 10 epochs (230 steps of 64), gmlp-ti first, vit-ti (the baseline) second." \
        in summary
    assert ("- **cmudict** (wer ↓): at budgets that differ between its runs (its page says which), transformer-mini "
            "(the baseline) first, gmlp-ti and mixer-s16 tie for second.") in summary
    index = page(board, "index.md")
    assert "(finished runs: 15, failed runs: 0, tuning runs (validation, not ranked): 6, files skipped: 0)" in index
    assert "- [digits](digits.md): 6 finished runs, 0 failed; tuning runs (validation, not ranked): 6;" in index


def test_tuning_table_shows_every_grid_value_and_marks_the_chosen(board):
    tuning = section(page(board, "digits.md"), "## Tuning (validation split, not ranked)")
    assert "Seed 0; the grid: 0.001, 0.002, 0.004." in tuning
    assert table_rows(tuning) == [
        ["model", "size", "lr 0.001", "lr 0.002", "lr 0.004", "test runs' lr", "note"],
        ["gmlp", "ti", "0.9100", "**0.9400**", "0.9200", "0.002", "best"],
        # the test runs used lr 0.001 though 0.002 scored best on validation: said, not hidden
        ["vit", "ti", "**0.9000**", "0.9300", "failed: diverged", "0.001", "⚠ not the best validation lr (0.002)"],
    ]
    assert "Tuning" not in page(board, "cmudict.md")  # no tuning run, no section


def test_budget_and_settings_lines(board):
    digits = page(board, "digits.md")
    assert "Budget: optimizer steps 230, batch size 64, epochs 10, training samples seen 14,720." in digits
    assert ("Settings: weight decay 0.05, warm-up fraction 0.05, label smoothing 0.1, precision fp32, device "
            "Intel(R) Xeon(R) CPU @ 2.20GHz, CPU threads 1, bench clock process.") in digits
    # the tuning trained on the test runs' budget, so it is not said again
    assert "budget differs" not in digits
    # mixer trained 500 steps, the others 400: the page says so, in bold
    assert ("Budget: optimizer steps **varies: 400, 500**, batch size 64, epochs 2.5, training samples seen "
            "**varies: 25,600, 32,000**.") in page(board, "cmudict.md")


def test_floor_lines(board):
    # from the test runs (0.1028), not the tuning runs' validation split (0.1042)
    assert "Floor: accuracy 0.1028 (always answering the most frequent class of the test split)." \
        in page(board, "digits.md")
    assert ("Floor: WER 93.5000, PER 61.2500 (predicting the training set's most frequent pronunciation for "
            "every word).") in page(board, "cmudict.md")


def test_lower_is_better_ranks_and_ties(board):
    title = "## CPU, fp32: wer, lower is better"
    rows = table_rows(section(page(board, "cmudict.md"), title))
    # transformer's [23.52, 28.48] lies wholly below (better than) gmlp's [28.52, 33.48] and mixer's
    # [29.52, 34.48], which overlap each other: 1, 2=, 2=
    assert [r[:4] for r in rows[1:]] == [["1", "transformer", "mini", "26.0000 ± 1.0000"],
                                         ["2=", "gmlp", "ti", "31.0000 ± 1.0000"],
                                         ["2=", "mixer", "s16", "32.0000 ± 1.0000"]]
    assert "= Tied, their 95% intervals overlapping (or, for single runs, their values equal): rank 2: gmlp-ti, " \
           "mixer-s16." in page(board, "cmudict.md")


def crafted(tmp_path: Path, change) -> Path:
    """A copy of the fixtures in tmp_path/results, each file's JSON passed through change(path, data)."""
    folder = tmp_path / "results"
    for path in sorted(RESULTS.rglob("*.json")):
        target = folder / path.relative_to(RESULTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = change(path.relative_to(RESULTS), json.loads(path.read_text(encoding="utf-8")))
        if data is not None:
            target.write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_test_runs_at_several_lrs_and_an_lr_outside_the_grid_are_flagged(tmp_path):
    def change(path, data):
        if path.parts[0] != "tune" and data["task"] == "digits":
            if data["model"] == "vit" and data["seed"] == 2:
                data["config"]["optim"]["lr"] = 0.002
            if data["model"] == "gmlp":
                data["config"]["optim"]["lr"] = 0.003
        return data

    folder = crafted(tmp_path, change)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    rows = table_rows(section(page(tmp_path / "board", "digits.md"), "## Tuning (validation split, not ranked)"))
    assert rows[1] == ["gmlp", "ti", "0.9100", "0.9400", "0.9200", "0.003",
                       "⚠ test lr not in the grid; best validation: 0.002"]
    assert rows[2] == ["vit", "ti", "0.9000", "0.9300", "failed: diverged", "**varies: 0.001, 0.002**",
                       "⚠ test runs at different learning rates; best validation: 0.002"]


def test_runs_on_two_cpu_models_are_ranked_and_tuned_together_without_their_own_timings(tmp_path):
    """A sweep that stops and resumes may land on another CPU model: gmlp's tuning runs and vit's seed 2
    here. One table still holds every seed, one tuning table every model; the timings do not compare."""
    def change(path, data):
        if data["task"] == "digits" and ((path.parts[0] == "tune" and data["model"] == "gmlp")
                                         or (path.parts[0] != "tune" and data["model"] == "vit" and data["seed"] == 2)):
            data["environment"]["device_name"] = "AMD EPYC"
        return data

    assert main([str(crafted(tmp_path, change)), "--out", str(tmp_path / "board")]) == 0
    digits = page(tmp_path / "board", "digits.md")
    assert "AMD EPYC, fp32" not in digits
    ranked = section(digits, "## CPU, fp32: top1, higher is better")
    header, *rows = table_rows(ranked)
    speed = header.index("train samples/s")
    assert [(r[1], r[4], r[speed], r[-1]) for r in rows] == [
        ("gmlp", "3", "—", "Intel(R) Xeon(R) CPU @ 2.20GHz"),
        ("vit", "3", "—", "AMD EPYC + Intel(R) Xeon(R) CPU @ 2.20GHz"),
    ]
    assert ("Speed: the runs of this table ran on 2 CPU models (AMD EPYC; Intel(R) Xeon(R) CPU @ 2.20GHz), whose "
            "timings do not compare, so the runs' own speed figures are left out (—)") in ranked
    assert "device **varies: AMD EPYC, Intel(R) Xeon(R) CPU @ 2.20GHz**" in ranked
    tuning = section(digits, "## Tuning (validation split, not ranked)")
    assert tuning.count("### ") == 1
    assert [r[0] for r in table_rows(section(tuning, "### CPU, fp32: validation top1 ↑"))[1:]] == ["gmlp", "vit"]


def test_a_best_lr_at_an_end_of_the_grid_is_said(tmp_path):
    # gmlp scores best at the grid's highest rate and vit at its lowest; the test runs use those rates
    best = {"gmlp": 0.004, "vit": 0.001}

    def change(path, data):
        if data["task"] != "digits" or data["model"] not in best:
            return data
        if path.parts[0] == "tune" and data["metrics"] and data["config"]["optim"]["lr"] == best[data["model"]]:
            data["metrics"]["top1"] = data["primary_metric"]["value"] = 0.97
        if path.parts[0] != "tune":
            data["config"]["optim"]["lr"] = best[data["model"]]
        return data

    folder = crafted(tmp_path, change)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    rows = table_rows(section(page(tmp_path / "board", "digits.md"), "## Tuning (validation split, not ranked)"))
    assert [r[-2:] for r in rows[1:]] == [["0.004", "best, the grid's highest"], ["0.001", "best, the grid's lowest"]]


def test_tuning_alone_builds_a_page_and_a_differing_tuning_budget_is_said(tmp_path):
    def change(path, data):
        if path.parts[0] != "tune":
            return None if data["task"] == "digits" else data
        if data["train"]:
            data["train"].update(steps=100, samples=6400)
        return data

    folder = crafted(tmp_path, change)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    digits = page(tmp_path / "board", "digits.md")
    assert "No run of this task finished." in digits
    # no test run here: the tuning's budget is given, and every row says it has no test runs
    assert "Budget: optimizer steps 100, batch size 64, epochs 10, training samples seen 6,400." in digits
    rows = table_rows(section(digits, "## Tuning (validation split, not ranked)"))
    assert [r[-2:] for r in rows[1:]] == [["—", "no test runs"], ["—", "no test runs"]]


def test_tuning_budget_that_differs_from_the_test_runs_is_flagged(tmp_path):
    def change(path, data):
        if path.parts[0] == "tune" and data["train"]:
            data["train"].update(steps=100, samples=6400)
        return data

    folder = crafted(tmp_path, change)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    assert ("**The tuning runs' budget differs from the test runs':** optimizer steps 100, batch size 64, "
            "epochs 10, training samples seen 6,400.") in page(tmp_path / "board", "digits.md")


def test_a_repeated_tuning_run_is_skipped_and_an_unknown_split_is_refused(tmp_path):
    source = RESULTS / "tune" / "lr-0.001" / "digits__gmlp-ti__fp32__seed0.json"
    shutil.copy(source, tmp_path / "a.json")
    shutil.copy(source, tmp_path / "b.json")
    data = json.loads(source.read_text(encoding="utf-8"))
    data["config"]["data"]["eval_split"] = "dev"
    (tmp_path / "c.json").write_text(json.dumps(data), encoding="utf-8")
    collection = collect([str(tmp_path)])
    assert len(collection.tuning) == 1 and collection.runs == []
    assert collection.skipped == [
        f"{tmp_path / 'b.json'} repeats the run in {tmp_path / 'a.json'} (same task, model, size, variant, seed, "
        "device, precision, validation split, learning rate and warm-up); only the first is used.",
        f"{tmp_path / 'c.json'} has config.data.eval_split = 'dev'; expected test or validation.",
    ]
    assert isinstance(collection.tuning[0], Run) and not isinstance(collection.tuning[0], Failure)


def warmup_grid(tmp_path: Path, warmup: list | None, extend: int, extension: bool) -> Path:
    """The digits fixtures as made under [tune] lr 0.001, 0.002, 0.004 (x warm-up `warmup`) with `extend`:
    with a warm-up grid each tuning run is there again at warm-up 0.3, where gmlp scores 0.92, 0.93, 0.95
    (best at the top) and vit 0.01 below its 0.05 scores; with `extension`, gmlp went beyond the top to lr
    0.008 (0.96, at warm-up 0.3 where tuned), and its test runs use that setting; else they use 0.004."""
    record = {"lr": [0.001, 0.002, 0.004], "warmup": warmup, "extend": extend}
    gmlp = {0.001: 0.92, 0.002: 0.93, 0.004: 0.95, 0.008: 0.96}
    best = (0.008, 0.3 if warmup else 0.05) if extension else (0.004, 0.3 if warmup else 0.05)

    def change(path, data):
        if data["task"] != "digits":
            return data
        if path.parts[0] == "tune":
            data["tune"] = record
            if data["model"] == "gmlp" and not warmup:
                data["metrics"]["top1"] = data["primary_metric"]["value"] = gmlp[data["config"]["optim"]["lr"]]
        elif data["model"] == "gmlp":
            data["config"]["optim"].update(lr=best[0], warmup_fraction=best[1])
        return data

    folder = crafted(tmp_path, change)
    tuned = sorted((folder / "tune").glob("lr-*/*.json"))
    for path in tuned:
        data = json.loads(path.read_text(encoding="utf-8"))
        lr = data["config"]["optim"]["lr"]
        again = [(0.3, lr)] if warmup else []
        if extension and data["model"] == "gmlp" and lr == 0.004:
            again.append((0.3 if warmup else 0.05, 0.008))
        for w, at in again:
            data["config"]["optim"].update(lr=at, warmup_fraction=w)
            if data["model"] == "gmlp":
                data["metrics"]["top1"] = data["primary_metric"]["value"] = gmlp[at]
            elif data["primary_metric"]["value"] is not None:
                data["metrics"]["top1"] = data["primary_metric"]["value"] = round(data["primary_metric"]["value"] - 0.01, 4)
            target = folder / "tune" / f"lr-{at:g}-warmup-{w:g}" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_a_warmup_grid_and_its_extension_show_on_the_tuning_table(tmp_path):
    folder = warmup_grid(tmp_path, [0.05, 0.3], extend=1, extension=True)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    tuning = section(page(tmp_path / "board", "digits.md"), "## Tuning (validation split, not ranked)")
    assert ("Seed 0; the declared grid: 0.001, 0.002, 0.004 (up to 1 step beyond each end); tried beyond it: "
            "0.008. Warm-up fractions: 0.05, 0.3.") in tuning
    assert "columns marked (extension) lie beyond the declared grid" in tuning
    assert table_rows(tuning) == [
        ["model", "size", "warm-up", "lr 0.001", "lr 0.002", "lr 0.004", "lr 0.008 (extension)", "test runs' lr",
         "test runs' warm-up", "note"],
        ["gmlp", "ti", "0.05", "0.9100", "0.9400", "0.9200", "—", "0.008", "0.3",
         "best (an extension), the highest tried: the grid extended as far as allowed (1 step)"],
        ["gmlp", "ti", "0.3", "0.9200", "0.9300", "0.9500", "**0.9600**", "", "", ""],
        ["vit", "ti", "0.05", "**0.9000**", "0.9300", "failed: diverged", "—", "0.001", "0.05",
         "⚠ not the best validation setting (lr 0.002 warm-up 0.05)"],
        ["vit", "ti", "0.3", "0.8900", "0.9200", "failed: diverged", "—", "", "", ""],
    ]


def test_a_best_lr_at_an_end_the_grid_did_not_extend_is_flagged(tmp_path):
    """Under extend 2 with one warm-up: gmlp's best, the grid's top, was never extended beyond."""
    folder = warmup_grid(tmp_path, None, extend=2, extension=False)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    tuning = section(page(tmp_path / "board", "digits.md"), "## Tuning (validation split, not ranked)")
    assert ("Seed 0; the declared grid: 0.001, 0.002, 0.004 (up to 2 steps beyond each end); nothing tried "
            "beyond it.") in tuning
    assert table_rows(tuning)[:2] == [
        ["model", "size", "lr 0.001", "lr 0.002", "lr 0.004", "test runs' lr", "note"],
        ["gmlp", "ti", "0.9200", "0.9300", "**0.9500**", "0.004",
         "⚠ best, the highest tried, which the grid could have extended beyond"]]


@pytest.mark.parametrize("similarity,reading", [
    (0.91, "they look like one language: a model must beat copying its input."),
    (0.06, "they look like different languages, so copying scores low by nature."),
])
def test_a_copy_floor_says_whether_source_and_target_share_a_language(tmp_path, similarity, reading):
    def change(path, data):
        if data["task"] == "cmudict" and data["metrics"]:
            data["metrics"].update(floor_copy_bleu=12.5, floor_copy_chrf=40.25, source_target_similarity=similarity)
        return data

    assert main([str(crafted(tmp_path, change)), "--out", str(tmp_path / "board")]) == 0
    assert ("Floor: WER 93.5000, PER 61.2500 (predicting the training set's most frequent pronunciation for every "
            "word); BLEU 12.5000, chrF 40.2500 (copying each source sentence as its own translation). Source and "
            f"target texts have letter-trigram similarity {similarity:.2f}: {reading}") in page(tmp_path / "board",
                                                                                             "cmudict.md")


# --------------------------------------------------------------------------- budget sensitivity


DIGITS_TABLE = "## CPU, fp32: top1, higher is better"
BUDGET = "## Budget sensitivity (the tuned settings trained longer)"


def longer_budget(tmp_path: Path, scores: dict[str, list[float]], change=None, folder: str = "budget-4x") -> Path:
    """The fixtures with digits' test runs again at 4x their budget, as a sweep's budgets = [1, 4] writes them
    into `folder`: max_steps, steps, epochs and samples times 4, top1 scores[model][seed]; each file's JSON
    passed through change(data) last, where given (None: the file is left out)."""
    results = crafted(tmp_path, lambda path, data: data)
    (results / folder).mkdir()
    for path in sorted(results.glob("digits__*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["config"]["optim"]["max_steps"] *= 4
        data["train"].update({key: data["train"][key] * 4 for key in ("steps", "epochs", "samples")})
        data["metrics"]["top1"] = data["primary_metric"]["value"] = scores[data["model"]][data["seed"]]
        data = change(data) if change else data
        if data is not None:
            (results / folder / path.name).write_text(json.dumps(data), encoding="utf-8")
    return results


CATCHES_UP = {"gmlp": [0.95, 0.96, 0.97], "vit": [0.97, 0.98, 0.99]}  # vit's interval now overlaps gmlp's
STAYS_BEHIND = {"gmlp": [0.97, 0.98, 0.99], "vit": [0.91, 0.92, 0.93]}


def test_longer_budget_runs_are_no_repeats_and_leave_the_tuned_budget_pages_as_they_were(board, tmp_path):
    # the 4x runs lie in a folder of another name: what tells them apart is the budget their results record
    folder = longer_budget(tmp_path, CATCHES_UP, folder="again")
    collection = collect([str(folder)])
    assert collection.skipped == []
    assert len(collection.runs) == 15 and len(collection.longer) == 6
    assert {(e.id.task, e.budget_multiple, type(e).__name__) for e in collection.longer} == {("digits", 4, "Run")}
    assert all(r.budget_multiple == 1 for r in collection.runs)
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    for name in ("results.csv", "cmudict.md"):  # the pages of the fixtures without the 4x runs
        assert page(tmp_path / "board", name) == page(board, name), name
    # the summary's tables too; only its sentence per task speaks of the longer budget
    summary, before = (section(page(b, "summary.md"), "## CPU, fp32") for b in (tmp_path / "board", board))
    assert summary == before
    assert section(page(tmp_path / "board", "digits.md"), DIGITS_TABLE) == section(page(board, "digits.md"),
                                                                                   DIGITS_TABLE)
    # a 4x run twice is a repeat of the first 4x run, said as such
    shutil.copy(folder / "again" / "digits__vit-ti__fp32__seed0.json", folder / "zz.json")
    assert collect([str(folder)]).skipped == [
        f"{folder / 'zz.json'} repeats the run in {folder / 'again' / 'digits__vit-ti__fp32__seed0.json'} (same task, "
        "model, size, variant, seed, device, precision and budget (4x the tuned one)); only the first is used."]


@pytest.mark.parametrize("scores, order", [
    (CATCHES_UP, "The order changed between 1x and 4x (the 2 models ranked at both): gmlp-ti and vit-ti: gmlp-ti "
                 "ahead at 1x, tied at 4x."),
    (STAYS_BEHIND, "The order did not change between 1x and 4x (the 2 models ranked at both)."),
])
def test_the_budget_section_ranks_both_budgets_and_says_whether_the_order_changed(tmp_path, scores, order):
    assert main([str(longer_budget(tmp_path, scores)), "--out", str(tmp_path / "board")]) == 0
    budget = section(page(tmp_path / "board", "digits.md"), BUDGET)
    assert "Every longer run has its model's learning rate and warm-up fraction at 1x." in budget
    assert "Budget at 4x: optimizer steps 920, batch size 64, epochs 40, training samples seen 58,880." in budget
    gmlp, vit = (f"{statistics.mean(scores[m]):.4f} ± 0.0100" for m in ("gmlp", "vit"))
    rank = {"gmlp": "1", "vit": "2"} if scores is STAYS_BEHIND else {"gmlp": "1=", "vit": "1="}
    assert [r[:3] + r[4:6] + r[7:] for r in table_rows(budget)] == [
        ["model", "size", "top1 ↑ at 1x", "rank at 1x", "top1 ↑ at 4x", "rank at 4x", "seeds at 4x"],
        ["gmlp", "ti", "0.9600 ± 0.0100", "1", gmlp, rank["gmlp"], "0, 1, 2"],
        ["vit", "ti", "0.9100 ± 0.0100", "2", vit, rank["vit"], "0, 1, 2"],
    ]
    assert order in budget
    assert "Still to come" not in budget and "Failed at" not in budget
    # the summary's sentence per task: both budgets, each with its order
    at_4x = ("gmlp-ti first, vit-ti (the baseline) second" if scores is STAYS_BEHIND else
             "gmlp-ti and vit-ti (the baseline) tie (their 95% intervals overlap)")
    summary = section(page(tmp_path / "board", "summary.md"), "## Each task in one sentence")
    assert (f"- **digits** (top1 ↑): at 10 epochs (230 steps of 64), gmlp-ti first, vit-ti (the baseline) second; "
            f"at 4x, 40 epochs (920 steps of 64), {at_4x}.") in summary
    assert "at 4x that budget, still to come." in summary  # cmudict
    index = page(tmp_path / "board", "index.md")
    assert "longer-budget runs (test, not ranked): 6, files skipped: 0)" in index
    assert "test examples: 360; runs at 4x the budget: 6; [Pareto plot]" in index
    assert "test examples: 1,000; runs at 4x the budget: still to come; [Pareto plot]" in index  # cmudict


def test_a_longer_run_at_another_setting_is_flagged_and_missing_and_failed_ones_are_said(tmp_path):
    def change(data):
        if data["model"] == "vit":
            return None  # still to come
        if data["seed"] == 1:
            data["config"]["optim"].update(lr=0.004, warmup_fraction=0.3)
        if data["seed"] == 2:
            data.update(status="diverged", error="The training loss became NaN.", train=None)
        return data

    assert main([str(longer_budget(tmp_path, CATCHES_UP, change)), "--out", str(tmp_path / "board")]) == 0
    budget = section(page(tmp_path / "board", "digits.md"), BUDGET)
    assert "**gmlp-ti seed 1 at 4x: lr 0.004 warm-up 0.3, not its 1x test runs' lr 0.002 warm-up 0.05.**" in budget
    assert "Still to come at 4x: vit-ti." in budget
    assert "Failed at 4x (not in the tables below): gmlp-ti seed 2: diverged." in budget
    assert [r[5:] for r in table_rows(budget)[1:]] == [["0.9550 ± 0.0071", "[0.8915, 1.0185]", "1", "0, 1"],
                                                       ["—", "—", "—", "—"]]
    assert "Fewer than two models are ranked at both 1x and 4x: no order to compare yet." in budget
    assert "at 4x, 40 epochs (920 steps of 64), gmlp-ti first (2 of the 6 runs so far)." in page(
        tmp_path / "board", "summary.md")
    assert "Failed runs" not in page(tmp_path / "board", "digits.md")  # the 1x runs' table: none failed there
    assert "runs at 4x the budget: 3 (still to come: vit-ti)" in page(tmp_path / "board", "index.md")


# --------------------------------------------------------------------------- steps to competence


COMPETENCE = "## Steps to competence (validation curves at the chosen settings, not ranked)"
DIGITS_VALIDATION = "### CPU, fp32: validation top1 ↑"
STEPS = [46, 92, 138, 184, 230]  # digits' 230 steps, scored every 46
# digits' validation top1 along each tuning run, by (model, lr), ending at the run's final score. The test runs
# use gmlp's 0.002 and vit's 0.001: vit's 0.002 is a faster start, which its row must not show.
CURVES = {
    ("gmlp", 0.001): [0.30, 0.50, 0.70, 0.85, 0.91],
    ("gmlp", 0.002): [0.40, 0.60, 0.80, 0.90, 0.94],
    ("gmlp", 0.004): [0.50, 0.70, 0.80, 0.90, 0.92],
    ("vit", 0.001): [0.20, 0.35, 0.55, 0.75, 0.90],
    ("vit", 0.002): [0.70, 0.80, 0.85, 0.90, 0.93],
}


def history(steps: list[int], values: list[float], metric: str) -> list[dict]:
    """A history as bench.history writes it under --eval-every: an entry per evaluation, the last the final one."""
    return [{"step": step, "epoch": round(step / 23, 4), "samples": step * 64, "train_loss": 1.0,
             "split": "validation", "metrics": {metric: value, "loss": 1.0}} for step, value in zip(steps, values)]


def with_curves(tmp_path: Path, curves: dict, change=None) -> Path:
    """The fixtures with digits' tuning runs carrying the `curves` given (by (model, lr)), each run's final score the
    curve's last; each file's JSON passed through change(path, data) last, where given."""
    def add(path, data):
        curve = curves.get((data["model"], data["config"]["optim"]["lr"]))
        if path.parts[0] == "tune" and curve:
            data["history"] = history(STEPS, curve, "top1")
            data["metrics"]["top1"] = data["primary_metric"]["value"] = curve[-1]
        return change(path, data) if change else data

    return crafted(tmp_path, add)


def competence(folder: Path, tmp_path: Path, task: str = "digits") -> str:
    assert main([str(folder), "--out", str(tmp_path / "board")]) == 0
    return section(page(tmp_path / "board", f"{task}.md"), COMPETENCE)


@pytest.mark.parametrize("vit, steps, reaching", [
    ([0.20, 0.35, 0.55, 0.75, 0.90], ["138", "230"],
     "Reaching 90% (0.8564): only at the final evaluation, in the last stretch of the budget: vit-ti; before the "
     "final evaluation: gmlp-ti."),
    ([0.20, 0.35, 0.45, 0.50, 0.80], ["230", "not reached in 230 steps"],
     "Reaching 90% (0.8564): not within the budget: vit-ti; before the final evaluation: gmlp-ti."),
])
def test_steps_to_competence_come_from_the_curve_at_each_models_chosen_setting(tmp_path, vit, steps, reaching):
    text = competence(with_curves(tmp_path, {**CURVES, ("vit", 0.001): vit}), tmp_path)
    assert DIGITS_VALIDATION in text
    # the floor the tuning runs record on validation (0.1042, not the test split's 0.1028); gmlp's 0.94 is the best
    # final value: 0.1042 + 0.5 x 0.8358 and 0.1042 + 0.9 x 0.8358
    assert ("Levels: 50% and 90% of the way from the floor, 0.1042 (majority_baseline_accuracy of the validation "
            "split, as gmlp-ti's run records it), to the best final validation value, 0.9400 (gmlp-ti): 0.5221 and "
            "0.8564.") in text
    assert table_rows(text) == [
        ["model", "size", "tuning run", "validation curve (step: value)", "steps to 50%", "steps to 90%",
         "test runs' steps"],
        ["gmlp", "ti", "lr 0.002 warm-up 0.05, seed 0",
         "46: 0.4000, 92: 0.6000, 138: 0.8000, 184: 0.9000, 230: 0.9400", "92", "184", "230"],
        # lr 0.001, the test runs' (its 0.002 curve, which reaches 0.5221 at step 46, is not the one shown)
        ["vit", "ti", "lr 0.001 warm-up 0.05, seed 0", ", ".join(f"{s}: {v:.4f}" for s, v in zip(STEPS, vit)),
         *steps, "230"],
    ]
    assert reaching in text
    assert "No curve here" not in text


def test_a_lower_is_better_metric_reaches_its_levels_on_the_way_down(tmp_path):
    """cmudict tuned at its test runs' setting, each curve scored every 100 steps: transformer and gmlp trained
    400 steps, mixer 500."""
    wer = {"transformer": [80.0, 50.0, 30.0, 25.0], "gmlp": [90.0, 70.0, 40.0, 30.0],
           "mixer": [93.0, 91.0, 90.0, 88.0, 55.0]}
    results = crafted(tmp_path, lambda path, data: data)
    for path in sorted(results.glob("cmudict__*seed0.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        curve = wer[data["model"]]
        data["config"].setdefault("data", {})["eval_split"] = "validation"
        data["history"] = history([100 * (i + 1) for i in range(len(curve))], curve, "wer")
        data["metrics"]["wer"] = data["primary_metric"]["value"] = curve[-1]
        (results / "tune" / "lr-0.002" / path.name).write_text(json.dumps(data), encoding="utf-8")
    text = competence(results, tmp_path, "cmudict")
    # from WER 93.5 down to 25: 93.5 - 0.5 x 68.5 and 93.5 - 0.9 x 68.5
    assert ("Levels: 50% and 90% of the way from the floor, 93.5000 (floor_wer of the validation split, as "
            "transformer-mini's run records it), to the best final validation value, 25.0000 (transformer-mini): "
            "59.2500 and 31.8500.") in text
    assert [r[:2] + r[4:] for r in table_rows(text)[1:]] == [
        ["gmlp", "ti", "300", "400", "400"],
        ["mixer", "s16", "500", "not reached in 500 steps", "500"],
        ["transformer", "mini", "200", "300", "400"],
    ]
    assert ("Reaching 90% (31.8500): only at the final evaluation, in the last stretch of the budget: gmlp-ti; not "
            "within the budget: mixer-s16; before the final evaluation: transformer-mini.") in text
    assert COMPETENCE not in page(tmp_path / "board", "digits.md")  # digits' tuning runs have no curves


def test_without_a_floor_the_levels_start_from_the_worst_first_evaluation(tmp_path):
    def change(path, data):
        if path.parts[0] == "tune" and data["metrics"]:
            del data["metrics"]["majority_baseline_accuracy"]
        return data

    text = competence(with_curves(tmp_path, CURVES, change), tmp_path)
    # vit's first evaluation at lr 0.001 (0.20), not gmlp's (0.40) nor vit's at 0.002 (0.70): 0.2 + 0.5 x 0.74, ...
    assert ("Levels: 50% and 90% of the way from the worst first evaluation, 0.2000 (vit-ti at step 46; the runs "
            "record no floor of top1), to the best final validation value, 0.9400 (gmlp-ti): 0.5700 and "
            "0.8660.") in text
    assert [r[4:6] for r in table_rows(text)[1:]] == [["92", "184"], ["184", "230"]]


def test_a_best_final_value_no_better_than_the_floor_sets_no_level(tmp_path):
    def change(path, data):
        if path.parts[0] == "tune" and data["metrics"]:
            data["metrics"]["majority_baseline_accuracy"] = 0.95
        return data

    text = competence(with_curves(tmp_path, CURVES, change), tmp_path)
    assert ("No levels: the best final validation value, 0.9400 (gmlp-ti), is no better than the floor, 0.9500 "
            "(majority_baseline_accuracy of the validation split, as gmlp-ti's run records it).") in text
    assert [r[4:6] for r in table_rows(text)[1:]] == [["—", "—"], ["—", "—"]]
    assert "Reaching" not in text


def test_no_curve_at_a_chosen_setting_is_said_and_a_page_without_any_has_no_section(board, tmp_path):
    for name in ("digits.md", "cmudict.md"):  # the fixtures' histories hold the final evaluation alone
        assert "Steps to competence" not in page(board, name)
    # vit's curve lies at 0.002, not at its test runs' 0.001
    text = competence(with_curves(tmp_path / "one", {("gmlp", 0.002): CURVES[("gmlp", 0.002)],
                                                     ("vit", 0.002): CURVES[("vit", 0.002)]}), tmp_path / "one")
    assert [r[0] for r in table_rows(text)[1:]] == ["gmlp"]
    assert "No curve here: vit-ti (no validation curve at its test runs' setting)." in text
    # curves at settings no test run uses: no section
    folder = with_curves(tmp_path / "none", {("gmlp", 0.004): CURVES[("gmlp", 0.004)],
                                             ("vit", 0.002): CURVES[("vit", 0.002)]})
    assert main([str(folder), "--out", str(tmp_path / "none" / "board")]) == 0
    assert "Steps to competence" not in page(tmp_path / "none" / "board", "digits.md")


@pytest.mark.parametrize("change, field", [
    (lambda h: {"step": 46}, "history = {'step': 46}, which is not a valid value for that field."),
    (lambda h: [h[0], 5], "history[1] = 5, which is not a valid value for that field."),
    (lambda h: [h[0], {**h[1], "step": True}], "history[1].step = True, which is not a valid value for that field."),
    (lambda h: [h[0], {**h[1], "metrics": {"loss": 1.0}}],
     "no history[1].metrics.top1; it is not a complete result of this suite."),
    (lambda h: [h[0], {**h[1], "metrics": {"top1": "0.6"}}],
     "history[1].metrics.top1 = '0.6', which is not a valid value for that field."),
    (lambda h: [h[1], h[0]],
     "history[1].step = 46, which is not a valid value for that field: the steps of a history increase, and the "
     "entry before it is at step 92."),
])
def test_a_malformed_history_skips_its_file_naming_the_field(tmp_path, change, field):
    def malformed(path, data):
        if path == Path("tune", "lr-0.002", "digits__gmlp-ti__fp32__seed0.json"):
            data["history"] = change(data["history"])
        return data

    folder = with_curves(tmp_path, CURVES, malformed)
    collection = collect([str(folder)])
    assert collection.skipped == [f"{folder / 'tune' / 'lr-0.002' / 'digits__gmlp-ti__fp32__seed0.json'} has "
                                  f"{field}"]
    assert len(collection.tuning) == 5
