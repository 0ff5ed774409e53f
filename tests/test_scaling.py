"""The cost-scaling study (bench/scaling.py, its library bench/studies/scaling.py): FLOP formulas, point statuses, resuming, the page.

Tiny widths and two token counts keep each test to a few seconds on one thread.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.core.config import DataConfig, VariantConfig
from bench.measure.timing import count_flops
from bench.models import list_models, model_entries, resized
from tasks import create_task

# Every (family, modality) the registry has.
# The families the study measures (bench.studies.scaling.families: references are left out)
ENTRIES = [(family, modality) for family in list_models() for entry in model_entries(family)
           for modality in entry.modalities if not entry.reference]
# Task shapes per modality, and two token counts each: image sides at 16x16 patches (4 and 16
# patches); text lengths past the tiny Mixer's token-MLP width (8), where its causal decoder turns quadratic.
SHAPES = {"image": ("imagenet", (4, 16)), "mlm": ("wordnet", (16, 24)), "seq2seq": ("wmt14-de-en", (16, 24))}
TINY = {"image": {"dim": 16, "depth": 2}, "mlm": {"dim": 16, "layers": 2},
        "seq2seq": {"dim": 16, "encoder_layers": 1, "decoder_layers": 2}}


def tiny_model(family: str, modality: str, tokens: int):
    """(task, spec, entry, size config, model, batch of 2) of a tiny model at `tokens` tokens."""
    name, _ = SHAPES[modality]
    task = create_task(name)
    if modality == "image":
        spec, fields = task.spec(DataConfig(image_size=16 * int(tokens**0.5))), {"patch_size": 16}
    else:
        spec, fields = task.spec(DataConfig(seq_len=tokens)), {"max_len": tokens}
    entry, size_cfg = resized(family, "mini", spec, **fields, **TINY[modality])
    torch.manual_seed(0)
    model = entry.build(spec, size_cfg, VariantConfig())
    batch = task.synthetic_batch(spec, 2, torch.Generator().manual_seed(0))
    return task, spec, entry, size_cfg, model, batch


@pytest.mark.parametrize("family, modality", ENTRIES)
def test_flop_counts_match_the_registered_formula_at_two_token_counts(family, modality, one_thread):
    """The counter's forward FLOPs (what the study records and fits) equal the family's analytic
    formula exactly, at two input sizes, so the fitted FLOP exponent is the formula's."""
    for tokens in SHAPES[modality][1]:
        task, spec, entry, size_cfg, model, batch = tiny_model(family, modality, tokens)
        counted = count_flops(model, batch, task.loss, task.loss)["forward_per_sample"]
        scored = task.scored_positions(batch) / 2 if modality == "mlm" else None
        assert entry.flops is not None, f"{family} registers no FLOP formula for {modality}"
        assert counted == entry.flops(spec, size_cfg, scored), (family, modality, tokens)


def test_resized_keeps_width_and_depth_and_checks_the_pair():
    from bench.core.errors import PairError

    spec = create_task("wordnet").spec(DataConfig(seq_len=1024))
    entry, size_cfg = resized("gmlp", "mini", spec, max_len=1024)
    assert size_cfg == dataclasses.replace(entry.sizes["mini"], max_len=1024)
    with pytest.raises(PairError, match="sequence length 1024 exceeds the 128 tokens"):
        resized("gmlp", "mini", spec)


# ---------------------------------------------------------------------------------------------
# The study: one file per point, its status, resuming


from bench import scaling  # noqa: E402
from bench.studies import scaling as scaling_library  # noqa: E402
from bench.core.results import load_point, point_filename  # noqa: E402

QUICK = dict(bench_warmup_steps=0, bench_steps=1, bench_repeats=1, latency_samples=1, peak_gemm_size=64,
             batch_size=2)


def study(tmp_path, **settings):
    cfg = scaling_library.ScalingConfig(**{"series": "image-p16", "models": "vit", "tokens": "4,16", "isolate": False,
                                   "output_dir": str(tmp_path), **QUICK, **settings})
    return scaling_library.study(cfg, create_task)


def point(tmp_path, family="vit", tokens=4, series="image-p16"):
    return load_point(tmp_path / point_filename(series, family, "mini", tokens, "cpu", "fp32"))


def test_points_are_measured_into_one_valid_file_each(tmp_path, one_thread, capsys):
    assert study(tmp_path, models="vit,mixer", tokens="4") == 0
    for family in ("vit", "mixer"):
        data = point(tmp_path, family)
        assert data["status"] == "ok" and data["error"] is None
        assert data["input"] == {"image_side": 32, "patch": 16} and data["tokens"] == 4
        assert data["baseline"] == (family == "vit")
        assert data["flops"]["forward_per_sample"] == data["flops"]["analytic_forward_per_sample"]
        assert data["throughput"]["train_tokens_per_s"] == 4 * data["throughput"]["train_samples_per_s"]
        assert data["memory"]["kind"] == "cpu_tensors" and data["memory"]["train_peak_mb"] > 0
        assert data["latency_ms"]["p50"] > 0 and data["params"] > 0
        assert data["config"]["scaling"]["bench_clock"] == "process"
        assert len(data["environment"]["load_average"]) == 3
    assert "[1/2] image-p16 mixer-mini at 4 tokens: ok, train" in capsys.readouterr().out


def test_a_point_over_its_time_cap_is_recorded_and_longer_inputs_are_not_run(tmp_path, one_thread):
    assert study(tmp_path, time_cap=0.001) == 0
    over, longer = point(tmp_path, tokens=4), point(tmp_path, tokens=16)
    assert over["status"] == "timeout" and over["error"] == "Stopped over the time cap of 0.001 s (process clock)."
    assert longer["status"] == "skipped"
    assert longer["error"] == "Not run: at 4 tokens the family was already over the time cap."
    # A larger cap runs both again; an equal one keeps them.
    assert study(tmp_path, time_cap=0.001) == 0 and point(tmp_path)["status"] == "timeout"
    assert study(tmp_path, time_cap=60, tokens="4") == 0 and point(tmp_path)["status"] == "ok"


def test_a_point_out_of_memory_is_recorded_in_its_own_process(tmp_path, one_thread):
    """The memory cap makes the CPU allocator fail inside the point's process: recorded as oom. The cap
    bounds new address space, so the point needs a block too large for the heap the process already
    has: gMLP's 4,096 x 4,096 token mixing (64 MB), which the allocator maps afresh."""
    assert study(tmp_path, memory_cap=1, isolate=True, series="mlm", models="gmlp", tokens="4096,8192") == 0
    assert point(tmp_path, "gmlp", 4096, "mlm")["status"] == "oom"
    assert point(tmp_path, "gmlp", 4096, "mlm")["error"] == "Out of memory: needs more than the memory cap of 1 MB."
    assert point(tmp_path, "gmlp", 8192, "mlm")["status"] == "skipped"


def test_a_point_whose_process_is_killed_is_recorded_not_a_crash(tmp_path, one_thread, monkeypatch):
    import os
    import signal

    monkeypatch.setattr(scaling_library, "measure_point", lambda *args: os.kill(os.getpid(), signal.SIGKILL))
    assert study(tmp_path, tokens="4", isolate=True) == 0
    data = point(tmp_path)
    assert data["status"] == "oom" and "out-of-memory killer" in data["error"]
    monkeypatch.setattr(scaling_library, "measure_point", lambda *args: os._exit(3))
    assert study(tmp_path, tokens="16", isolate=True) == 1  # an error ends the study with 1
    assert point(tmp_path, tokens=16)["error"] == "The point's process ended with exit code 3 and wrote no result."


@pytest.mark.slow
def test_rerunning_keeps_measured_points_and_refuses_other_settings(tmp_path, one_thread, capsys):
    assert study(tmp_path, tokens="4") == 0
    before = (tmp_path / point_filename("image-p16", "vit", "mini", 4, "cpu", "fp32")).read_bytes()
    assert study(tmp_path, tokens="4") == 0
    assert "(1 already measured)" in capsys.readouterr().out
    assert (tmp_path / point_filename("image-p16", "vit", "mini", 4, "cpu", "fp32")).read_bytes() == before
    assert scaling.main(["--series", "image-p16", "--models", "vit", "--tokens", "4", "--no-isolate",
                         "--output-dir", str(tmp_path), "--batch-size", "3"]) == 2
    err = capsys.readouterr().err
    assert "was measured with other settings (--batch-size 3 here, 2 there;" in err and "--overwrite" in err


@pytest.mark.parametrize("args, sentence", [
    (["--series", "video"], "Unknown series 'video'; valid series are: image-p16, image-p4, mlm, seq2seq."),
    (["--series", "image-p4", "--tokens", "10"], "--tokens 10: series image-p4 needs square numbers"),
    (["--models", "convmixer", "--series", "mlm"], "--models convmixer: no series of mlm has that modality."),
    (["--models", "nope"], "Unknown model 'nope'; valid models are:"),
    (["--time-cap", "0"], "--time-cap must be positive, got 0.0."),
])
def test_bad_flags_exit_2_with_one_sentence(tmp_path, args, sentence, capsys, one_thread):
    assert scaling.main([*args, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and sentence in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The page (leaderboard/scaling.py), on crafted points in tests/data/scaling: image-p16 (mixer, gmlp,
# vit at 4, 16, 64 tokens; gmlp's timing at 16 unstable) and mlm (mixer, resmlp, transformer at 16,
# 32, 64; transformer over its time cap at 32 and not run at 64, resmlp out of memory at 64).
# After an intended change of the output: UPDATE_GOLDEN=1 python -m pytest tests/test_scaling.py


import os  # noqa: E402
from pathlib import Path  # noqa: E402

from conftest import generate_pages  # noqa: E402

from leaderboard.collect import collect  # noqa: E402
from leaderboard.scaling import fit_exponent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POINTS = ROOT / "tests" / "data" / "scaling"
GOLDEN = ROOT / "tests" / "golden" / "scaling"


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("scaling")
    code, stderr = generate_pages(POINTS, work)
    assert code == 0 and stderr == ""
    return work / "board"


def test_the_page_matches_its_golden_file(board):
    produced = (board / "scaling.md").read_text(encoding="utf-8")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / "scaling.md").write_text(produced, encoding="utf-8")
    assert produced == (GOLDEN / "scaling.md").read_text(encoding="utf-8")


def test_points_alone_make_the_scaling_page_and_its_plots_only(board, tmp_path):
    names = sorted(p.name for p in board.iterdir())
    assert names == sorted(["scaling.md", *(f"scaling_{m}.png" for m in (
        "flops", "infer_time", "train_time", "latency", "infer_memory", "train_memory"))])
    assert generate_pages(POINTS, tmp_path)[0] == 0
    for name in names:  # regenerated byte for byte, plots included
        assert (tmp_path / "board" / name).read_bytes() == (board / name).read_bytes(), name


def test_the_page_shows_statuses_ratios_and_exponents(board):
    page = (board / "scaling.md").read_text(encoding="utf-8")
    lines = page.splitlines()
    # Statuses in place of figures; no ratio where the baseline has no figure.
    assert "| transformer (baseline) | 1.00 | over cap | not run |" in lines
    assert "| resmlp | 0.93 | — | OOM |" in lines
    # The unstable timing: no speed ratio, a marked throughput, time exponents fitted without it.
    assert "| gmlp | 1.13 | ‡ | 0.95 |" in lines
    assert "| gmlp | 188 · 15.9 MB | 132‡ · 16.0 MB | 80.0 · 20.2 MB |" in lines
    assert "| gmlp | 4, 16, 64 | 1.03 | 0.31‡ | 0.31‡ | 0.22‡ | 0.10 | 0.09 |" in lines
    assert "At all 15 points that ran, the counted FLOPs equal the family's registered formula." in page
    collection = collect([str(POINTS)])
    assert len(collection.scaling) == 18 and not collection.runs and not collection.skipped


def test_exponent_fits_the_slope_of_a_power_law():
    assert fit_exponent([(n, 3.0 * n**2) for n in (256, 512, 1024)]) == pytest.approx(2.0)
    assert fit_exponent([(n, 5.0 * n + 0.0) for n in (4, 16)]) == pytest.approx(1.0)
    assert fit_exponent([(64, 1.0)]) is None


def test_a_repeated_point_is_skipped_with_a_sentence(tmp_path):
    import shutil

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(POINTS / "mlm__mixer-mini__00016-tokens__cpu-fp32.json", tmp_path / name)
    collection = collect([str(tmp_path)])
    assert len(collection.scaling) == 1
    assert collection.skipped == [
        f"{tmp_path / 'b' / 'mlm__mixer-mini__00016-tokens__cpu-fp32.json'} repeats the scaling point in "
        f"{tmp_path / 'a' / 'mlm__mixer-mini__00016-tokens__cpu-fp32.json'} (same series, model, size, tokens, "
        f"device and precision); only the first is used."]
