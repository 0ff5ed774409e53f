"""The README stays short and points into docs/; every relative link in the README, the docs and the
published pages resolves to a file of the checkout."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "leaderboard" / "pages").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)  # code shows links without making them


def relative_links(page: Path) -> list[str]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = [t for t in relative_links(page) if not (page.parent / t.split("#", 1)[0]).exists()]
    assert broken == []


def test_the_links_are_found():
    """The check sees the links it must: the README's map reaches every page of docs/."""
    linked = {(ROOT / t).resolve() for t in relative_links(ROOT / "README.md")}
    assert {p.resolve() for p in (ROOT / "docs").glob("*.md")} <= linked
    assert relative_links(ROOT / "leaderboard" / "pages" / "index.md")


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_bytes()) <= 15_500
