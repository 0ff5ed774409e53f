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


@pytest.mark.skipif(not PAGES.is_dir(), reason="no published pages in this checkout")
def test_published_results_cover_every_architecture_on_three_kinds_of_task():
    collection = collect([str(RESULTS)])
    pairs = {(r.id.task, r.id.family) for r in collection.runs}
    tasks = {task for task, _ in pairs}
    assert {"digits", "wordnet", "numbers"} <= tasks
    for task in ("digits", "wordnet", "numbers"):
        families = {model for t, model in pairs if t == task}
        baseline = "vit" if task == "digits" else "transformer"
        assert {"gmlp", "resmlp", "mixer", baseline} <= families, (task, families)
        for family in families:
            seeds = {r.id.seed for r in collection.runs if (r.id.task, r.id.family) == (task, family)}
            assert seeds == {0, 1, 2}, (task, family, seeds)
