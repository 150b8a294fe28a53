"""The README and docs/ stay true: every relative link reaches a file (and a heading, where it names one), and
every `python -m lanbot.<app>` and `scripts/...` they mention exists.

Headings are slugged as GitHub renders them (lower case, punctuation dropped, spaces to hyphens), which is
what a reader's click resolves against.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAX_README_LINES = 300  # a README a newcomer reads to the end; the detail lives in docs/


def slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, fenced = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6} (.*)", line)):
            found.add(slug(m.group(1)))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_heading(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_app_and_script_named_exists(page):
    text = page.read_text(encoding="utf-8")
    missing = [f"lanbot.{app}" for app in set(re.findall(r"python -m lanbot\.([\w.]+)", text))
               if not (REPO / "lanbot" / f"{app.replace('.', '/')}.py").exists()]
    missing += [s for s in set(re.findall(r"\bscripts/[\w.-]+\.(?:py|sh)", text)) if not (REPO / s).exists()]
    assert not missing, f"{page.relative_to(REPO)} names what does not exist: {sorted(missing)}"


def test_the_readme_fits_on_a_page():
    count = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, f"README.md has {count} lines; move detail to docs/"
