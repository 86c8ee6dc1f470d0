"""The documentation: the MkDocs site builds strictly, every internal link and anchor of the built site
resolves, and the README (a short guide into that site) stays short with relative links that resolve.

The site is built in a subprocess, as `make docs` builds it, so a theme's or Markdown extension's own
deprecation warnings are the build's output rather than errors under `filterwarnings = error`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 250
# Markdown links and images, `[text](target)` or `[text](target "title")`, outside code.
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


class _PageLinks(HTMLParser):
    """The ids a built page defines and the links (`a href`, `img src`) it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if ident := values.get("id"):
            self.ids.add(ident)
        if tag == "a" and (name := values.get("name")):
            self.ids.add(name)
        target = values.get("href") if tag == "a" else values.get("src") if tag == "img" else None
        if target:
            self.links.append(target)


def _is_external(target: str) -> bool:
    parts = urlsplit(target)
    return bool(parts.scheme or parts.netloc)


def _parse_page(path: Path) -> _PageLinks:
    parser = _PageLinks()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _build_site(site_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner (see docs/decisions.md)
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site_dir)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
    )


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: markup dropped, lower case, punctuation out, spaces to `-`."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def _markdown_anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not (match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            continue
        slug = _github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _markdown_links(path: Path) -> list[str]:
    links: list[str] = []
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            prose = INLINE_CODE.sub("", line)
            links += MARKDOWN_LINK.findall(prose) + HTML_SRC.findall(prose)
    return links


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("docs") / "site"
    result = _build_site(site)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site


def test_mkdocs_build_when_strict_builds_every_page(built_site: Path) -> None:
    pages = {p.relative_to(ROOT / "docs").with_suffix("").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert "index" in pages
    for page in pages:
        built = built_site / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.is_file(), f"docs/{page}.md was not built"
    assert (built_site / "preview.png").is_file()


def test_site_links_when_internal_resolve_with_their_anchors(built_site: Path) -> None:
    pages = {path: _parse_page(path) for path in built_site.rglob("*.html")}
    broken: list[str] = []
    checked = 0
    for page, parsed in pages.items():
        for link in parsed.links:
            if _is_external(link) or link.startswith(("mailto:", "javascript:")):
                continue
            parts = urlsplit(link)
            path = unquote(parts.path)
            # The 404 page links from the site's root (it is served at any depth); the others relatively.
            base = built_site if path.startswith("/") else page.parent
            target = page if not path else (base / path.lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(built_site)} -> {link}"
            if not target.is_file():
                broken.append(f"{where}: no such file")
                continue
            checked += 1
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse_page(target).ids
                if fragment not in ids:
                    broken.append(f"{where}: no anchor #{fragment}")
    assert checked > 100, "the built site has suspiciously few internal links"
    assert not broken, "broken links in the built site:\n" + "\n".join(broken)


def test_readme_links_when_relative_resolve() -> None:
    broken: list[str] = []
    links = _markdown_links(README)
    assert any(link.startswith("docs/") for link in links), "the README no longer links into docs/"
    for link in links:
        if _is_external(link) or link.startswith("mailto:"):
            continue
        parts = urlsplit(link)
        target = README if not parts.path else (ROOT / unquote(parts.path)).resolve()
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif parts.fragment and target.suffix == ".md" and parts.fragment not in _markdown_anchors(target):
            broken.append(f"{link}: no heading with that anchor")
    assert not broken, "broken relative links in README.md:\n" + "\n".join(broken)


def test_readme_when_guide_stays_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the manual belongs in docs/"


def test_readme_test_command_when_ci_runs_it() -> None:
    readme = README.read_text(encoding="utf-8")
    stated = re.search(r"[Tt]he test command is `([^`]+)`", readme)
    assert stated, "the README must state the test command as: the test command is `...`"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert stated.group(1) in ci_lines, f".ci/run must run exactly the README's test command {stated.group(1)!r}"
