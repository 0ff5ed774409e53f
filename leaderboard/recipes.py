"""`python -m leaderboard.recipes --out DIR`: the recipe page (DIR/recipes.md), generated from the recipe
registry (bench.recipes, which imports no torch): every value of every recipe with its source, per
family and paper size where the recipe differs by them, and the ImageNet-1k top-1 each paper reports:
what `python -m bench.run --task imagenet --model FAMILY --size SIZE` should reproduce on GPUs."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from bench.core.config import command_parser
from bench.core.errors import UserError, run_command
from bench.core.recipes import DEIT_TOP1, PAPER_SIZES, Recipe, cited_values, get_recipe, list_recipes
from bench.core.results import write_text_atomic

FIELDS = [f.name for f in dataclasses.fields(Recipe)]
# The (family, size) pairs the page shows for the recipes that differ by them: each paper size of a
# family with a paper recipe of its own, and DeiT's sizes for ViT.
PAPER_PAIRS = [(family, size) for family, sizes in PAPER_SIZES.items() for size in sizes] + [
    ("vit", size) for size in DEIT_TOP1]


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(family: str, size: str, recipe: str) -> list[str]:
    cited = cited_values(recipe, family, size)
    lines = ["| value | | source |", "|---|---|---|"]
    lines += [f"| {name} | {_shown(cited[name].value)} | {cited[name].source} |" for name in FIELDS]
    return lines


def recipe_page() -> str:
    lines = [
        "# Training recipes",
        "",
        "Generated from the recipe registry (`bench/recipes.py`) by `python -m leaderboard.recipes --out "
        "leaderboard/pages`. A run names its recipe with `--recipe` (default: `paper` for imagenet, `suite` for "
        "the other tasks); a flag given overrides one value and the result records it as an override. A "
        "source marked UNVERIFIED was not found in the stored copies of the paper when it was written down: "
        "check it against the paper before trusting it.",
        "",
        "## What the headline command should reproduce",
        "",
        "`python -m bench.run --task imagenet --model FAMILY --size SIZE --data-dir DIR` trains with `paper`; "
        "on ImageNet-1k at the paper's epochs it should reach the top-1 its paper reports:",
        "",
        "| model | ImageNet-1k top-1 (%) | source |",
        "|---|---|---|",
    ]
    paper = get_recipe("paper")
    for family, size in PAPER_PAIRS:
        top1 = paper.top1(family, size)
        if top1 is not None:
            lines.append(f"| {family}-{size} | {top1.value} | {top1.source} |")
    lines += ["", "## Recipes", ""]
    for name in list_recipes():
        lines += [f"- `{name}`: {get_recipe(name).description}"]
    for name in ("suite", "plain", "deit"):
        lines += ["", f"## {name} (every family and size)", "", *_table("vit", "s", name)]
    lines += ["", "## paper, per family and size", "",
              "Families without a paper recipe of their own (ffvit, convmixer) take DeiT's; sizes of no paper "
              "(mini) take their family's smallest paper size's."]
    for family, size in PAPER_PAIRS:
        lines += ["", f"### {family}-{size}", "", *_table(family, size, "paper")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m leaderboard.recipes", "The recipe page, generated from the recipe registry.",
                            "  python -m leaderboard.recipes --out leaderboard/pages")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder recipes.md is written to")
    args = parser.parse_args(argv)

    def body() -> int:
        path = Path(args.out) / "recipes.md"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, recipe_page())
        except OSError as e:
            raise UserError(f"Cannot write {path} ({e.strerror}); choose another --out.") from None
        print(f"Wrote {path}.")
        return 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
