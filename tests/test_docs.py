"""The documentation holds: every link, anchor and repository path that README, docs/ and
the config comments name resolves in this checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "config").rglob("README.md")]
)
CONFIGS = sorted([REPO / "config.yaml", *(REPO / "config").rglob("*.yaml")])
# first path components that name this repository's folders (a path in backticks that
# starts with one of them is a claim about this checkout)
TOP = ("src/", "docs/", "config/", "workflow/", "scripts/", "tests/", "benchmarks/", "envs/")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
# config comments cite README sections as: README "Section name"
README_SECTION = re.compile(r'README "([^"]+)"')


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    out, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*)", line)):
            out.add(slug(m[1]))
    return out


def headings(page: Path) -> set[str]:
    return {
        m[1].strip()
        for line in page.read_text().splitlines()
        if (m := re.match(r"#{1,6}\s+(.*)", line))
    }


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


def _check_link(page: Path, target: str) -> str | None:
    if re.match(r"[a-z]+://|mailto:", target):
        return None  # external: not reachable offline
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    if not dest.exists():
        return f"{_rel(page)}: link {target!r}: no file {path}"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{_rel(page)}: link {target!r}: no heading with anchor #{anchor} in {dest.name}"
    return None


def _check_code_path(page: Path, token: str) -> str | None:
    token = token.rstrip(".,:;")
    path = token.split("::")[0].split("#")[0]
    if any(c in path for c in "{}<>*=()$~") or not re.fullmatch(r"[\w./+-]+", path):
        return None  # a pattern or placeholder, not one file
    if path.startswith("xmhash/"):
        path = "src/" + path
    if not path.startswith(TOP):
        return None
    if not (REPO / path).exists():
        return f"{_rel(page)}: path `{token}` does not exist"
    return None


def test_slug_follows_github():
    assert slug("GPU quick start") == "gpu-quick-start"
    assert slug("What is cached, and when it reruns") == "what-is-cached-and-when-it-reruns"
    assert slug("Adding a method") == "adding-a-method"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_links_and_anchors_resolve(page):
    problems = [p for t in LINK.findall(page.read_text()) if (p := _check_link(page, t))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_repository_paths_exist(page):
    problems = [p for t in CODE.findall(page.read_text()) if (p := _check_code_path(page, t))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("config", CONFIGS, ids=_rel)
def test_config_comments_point_at_what_exists(config):
    readme = headings(REPO / "README.md")
    problems = []
    for n, line in enumerate(config.read_text().splitlines(), 1):
        comment = line.partition("#")[2]
        for section in README_SECTION.findall(comment):
            if section not in readme:
                problems.append(f"{_rel(config)}:{n}: README has no section {section!r}")
        if re.search(r"\bsee README\b(?! \")", comment):
            problems.append(f"{_rel(config)}:{n}: 'see README' names no section")
        for token in re.findall(r"\b(?:docs|src|benchmarks|workflow|scripts)/[\w./-]+", comment):
            target = token.rstrip(".,:;)")
            if not (REPO / target.split("#")[0]).exists():
                problems.append(f"{_rel(config)}:{n}: no file {target}")
            elif "#" in target and target.partition("#")[2] not in anchors(
                REPO / target.split("#")[0]
            ):
                problems.append(f"{_rel(config)}:{n}: no anchor in {target}")
    assert not problems, "\n".join(problems)


def test_ucch_is_cited_with_one_year():
    """UCCH is Hu et al., TPAMI 2023: every file that dates it gives that year."""
    cite = re.compile(r"UCCH\b[^\n]{0,40}?TPAMI[^\n\d]{0,12}((?:\d{4}[/-])?\d{4})")
    found = {}
    for path in [*PAGES, *CONFIGS, REPO / "config/paper/published.tsv", *REPO.glob("src/**/*.py")]:
        for year in cite.findall(path.read_text()):
            found.setdefault(year, []).append(_rel(path))
    assert found and set(found) == {"2023"}, found
