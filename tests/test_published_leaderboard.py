"""The committed leaderboard pages are exactly what the generator makes of the committed results."""

from pathlib import Path

import pytest

from leaderboard.build import build
from leaderboard.collect import collect

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "leaderboard"
PAGES = ROOT / "leaderboard" / "pages"
COMMAND = "python -m leaderboard results/leaderboard --out leaderboard/pages"  # as quoted on the index
ABLATION_PAGES = PAGES / "ablations"
ABLATION_COMMAND = "python -m leaderboard results/ablations --out leaderboard/pages/ablations"


@pytest.mark.skipif(not PAGES.is_dir(), reason="no published pages in this checkout")
def test_published_pages_regenerate_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the pages name result files relative to the repository
    collection = collect(["results/leaderboard"])
    assert not collection.skipped, collection.skipped
    build(collection, str(tmp_path), COMMAND)
    published = sorted(p.name for p in PAGES.iterdir() if p.suffix in (".md", ".csv"))
    assert published == sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".md", ".csv"))
    for name in published:
        assert (tmp_path / name).read_text() == (PAGES / name).read_text(), f"{name} differs from its regeneration"


@pytest.mark.skipif(not ABLATION_PAGES.is_dir(), reason="no published ablation pages in this checkout")
def test_published_ablation_pages_regenerate_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    collection = collect(["results/ablations"])
    assert not collection.skipped, collection.skipped
    build(collection, str(tmp_path), ABLATION_COMMAND)
    published = sorted(p.name for p in ABLATION_PAGES.iterdir() if p.suffix in (".md", ".csv"))
    assert "ablations.md" in published
    assert published == sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".md", ".csv"))
    for name in published:
        assert (tmp_path / name).read_text() == (ABLATION_PAGES / name).read_text(), f"{name} differs from its regeneration"


PROTOCOL_GRID = [0.0005, 0.002, 0.008]  # sweeps/leaderboard.toml's [tune] lr
BASELINE = {"image": "vit", "mlm": "transformer", "seq2seq": "transformer"}


@pytest.mark.skipif(not PAGES.is_dir(), reason="no published pages in this checkout")
def test_published_tasks_follow_the_protocol():
    """Per published task: the four architectures, each tuned over the whole grid on validation and
    run at three seeds at one learning rate on test, with one budget, from one clean commit, and
    the best architecture clearly above the task's floor."""
    import statistics

    collection = collect([str(RESULTS)])
    assert not collection.failures
    tasks = {r.id.task for r in collection.runs}
    assert tasks, "no published task"
    for task in tasks:
        runs = [r for r in collection.runs if r.id.task == task]
        families = {r.id.family for r in runs}
        assert families == {"gmlp", "resmlp", "mixer", BASELINE[runs[0].modality]}, (task, families)
        assert len({r.provenance.commit for r in runs}) == 1 and not any(r.provenance.dirty for r in runs), task
        assert len({(r.protocol.steps, r.protocol.batch_size) for r in runs}) == 1, task
        means = {}
        for family in families:
            seeds = [r for r in runs if r.id.family == family]
            assert sorted(r.id.seed for r in seeds) == [0, 1, 2] and len({r.lr for r in seeds}) == 1, (task, family)
            tuned = [r for r in collection.tuning if r.id.task == task and r.id.family == family]
            assert sorted(r.lr for r in tuned) == PROTOCOL_GRID, (task, family)
            assert all(r.eval_split == "validation" for r in tuned)
            means[family] = [r.metric for r in seeds]
        sign = 1 if runs[0].higher_is_better else -1
        best = max(means.values(), key=lambda values: sign * statistics.mean(values))
        floor = dict(runs[0].floors).get("floor_wer" if runs[0].metric_name == "wer" else "majority_baseline_accuracy")
        assert floor is not None, task
        assert sign * (statistics.mean(best) - floor) > 3 * statistics.stdev(best), (task, best, floor)
