"""The README stays a newcomer's page: under 250 lines, the layout in its first half, and every link to docs/ (and
between docs/ pages) resolving; every docs/ page is reachable from the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def links(path: Path) -> list[str]:
    """Relative link targets of a Markdown file (web links and in-page anchors left out)."""
    return [t for t in LINK.findall(path.read_text(encoding="utf-8")) if "://" not in t]


def test_the_readme_is_short_with_the_layout_in_its_first_half():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    assert {lines[i] for i in headings} >= {"## Layout", "## The tasks", "## Evaluating a model", "## Leaderboard",
                                            "## Training in brief", "## More documentation"}
    assert lines.index("## Layout") < len(lines) / 2


def test_every_link_of_the_readme_and_the_docs_resolves():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    broken = [f"{page.relative_to(ROOT)} -> {target}" for page in pages for target in links(page)
              if not (page.parent / target).exists()]
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target).resolve() for target in links(README)}
    assert [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked] == []
    assert len(linked & {p.resolve() for p in (ROOT / "docs").glob("*.md")}) >= 8
