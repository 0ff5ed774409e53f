"""Adding a model family is its file and nothing else: two throwaway families, each one module in a
temporary folder (a baseline, and a relative of gMLP), show in --list, in the parameter lists of the
tests parametrized over the registry, and in the leaderboard's baseline and relative logic, while
no file of the checkout changes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench.models
from bench import run as runner
from bench.models import MODELS
from leaderboard.ablations import ablation_page
from leaderboard.aggregate import aggregate, compare_to_baselines
from leaderboard.collect import collect

pytestmark = pytest.mark.slow  # real trainings, sweeps or timing: the slow tier

ROOT = Path(__file__).resolve().parent.parent

FAMILIES = {
    "tinybase": '''"""A throwaway Transformer baseline for images."""
from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_kwargs
from bench.models.vit import flops
from timm.models.vision_transformer import VisionTransformer


@register_model("tinybase", ("image",), {"mini": ImageSize(depth=1, dim=32, mlp_ratio=2, heads=2, patch_size=None)},
                default_size_for("mini"), check_image_pair, baseline=True, description="a throwaway baseline",
                flops=flops)
def build(spec, size, variant):
    return VisionTransformer(depth=size.depth, num_heads=size.heads, **mixer_kwargs(spec, size))
''',
    "tinyrel": '''"""A throwaway relative of gMLP: one part of it changed."""
from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_image_flops, mixer_kwargs
from bench.models.mixer import block_flops
from timm.models.mlp_mixer import MixerBlock, MlpMixer


@register_model("tinyrel", ("image",), {"mini": ImageSize(depth=1, dim=32, mlp_ratio=(0.5, 2.0), patch_size=None)},
                default_size_for("mini"), check_image_pair, relative_of="gmlp", description="a throwaway relative",
                flops=mixer_image_flops(block_flops))
def build(spec, size, variant):
    return MlpMixer(num_blocks=size.depth, block_layer=MixerBlock, **mixer_kwargs(spec, size))
''',
}
# Puts the folder of the throwaway families into bench.models' search path, as a pytest plugin (-p).
PLUGIN = "import bench.models\nbench.models.__path__.append({folder!r})\n"
REGISTRY_TESTS = ["tests/test_image_models.py", "tests/test_variants.py", "tests/test_param_groups.py",
                  "tests/test_paper_resolution.py", "tests/test_scaling.py"]


def checkout_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """The folder of the throwaway families, found by bench.models' discovery for the module's tests;
    the registry and the imported modules are as they were afterwards."""
    folder = tmp_path_factory.mktemp("families")
    for name, source in FAMILIES.items():
        (folder / f"{name}.py").write_text(source)
    before = checkout_state()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench.models, "__path__", [*bench.models.__path__, str(folder)])
        patch.setattr(MODELS, "_entries", dict(MODELS._entries))
        yield folder
    for name in FAMILIES:
        sys.modules.pop(f"bench.models.{name}", None)
    assert checkout_state() == before, "adding a family edited a file of the checkout"


def test_list_shows_the_families_and_their_pairs(families, capsys):
    assert runner.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "  tinybase     image        mini (" in out and out.split("tinybase", 1)[1].split("\n")[0].endswith("[baseline]")
    assert "  tinyrel      image        mini (" in out
    pairs = out.split("Pairs that run", 1)[1]
    digits = next(line for line in pairs.splitlines() if line.startswith("  digits "))
    assert "tinybase-mini" in digits and "tinyrel-mini" in digits


def test_registry_parametrized_tests_take_the_families(families, tmp_path):
    (tmp_path / "throwaway_families.py").write_text(PLUGIN.format(folder=str(families)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(tmp_path), os.environ.get("PYTHONPATH"))))}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "throwaway_families",
                          *REGISTRY_TESTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for path in REGISTRY_TESTS:
        mine = [line for line in out.stdout.splitlines() if line.startswith(path)]
        assert any("tinyrel" in line for line in mine) and any("tinybase" in line for line in mine), path


def test_leaderboard_reads_baseline_and_relative_from_the_results(families, tmp_path, one_thread):
    quick = ["--task", "digits", "--batch-size", "32", "--max-steps", "2", "--max-eval-samples", "32",
             "--no-measure", "--checkpoint-every", "none", "--output-dir", str(tmp_path)]
    for family in ("gmlp", "tinyrel", "tinybase"):
        assert runner.main([*quick, "--model", family]) == 0
    rows = aggregate(collect([str(tmp_path)]).runs)
    assert {r.family for r in rows if r.is_baseline} == {"tinybase"}
    assert {r.family: r.relative_of for r in rows} == {"gmlp": None, "tinyrel": "gmlp", "tinybase": None}
    comparisons, unmatched = compare_to_baselines(rows)
    assert not unmatched and {(c.row.family, c.baseline.family) for c in comparisons} == {
        ("gmlp", "tinybase"), ("tinyrel", "tinybase")}
    page = ablation_page(rows)
    relatives = page.split("### Relatives", 1)[1]
    assert "| tinyrel-mini |" in relatives and "| gmlp-mini |" in relatives
