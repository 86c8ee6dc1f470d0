"""The search preview page in a real browser: Debian's Chromium driven by Playwright (launched with
`executable_path`, no browser download), against the real API process on the demo data plus one hostile
document, in a temporary embedded index.

Every test ends by checking that the page raised no CSP violation (a `securitypolicyviolation` listener
installed before any page script), logged no console error and threw no uncaught exception.

`README_SCREENSHOT=docs/preview.png` makes the first test write the README's screenshot there (it always
takes one, into the test's temporary directory otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Response, expect, sync_playwright

from tests.conftest import _SERVICE_VARIABLES, require_server, stop_process, wait_ready

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = {
    "id": "hostile-demo",
    "name": "hostile-demo",
    "summary": "hostile <script>window.__pwned = 'script'</script> summary",
    "description": "an <img src=x onerror=\"window.__pwned = 'img'\"> in the description, and </mark><mark> tags",
    "section": "<b>bold</b>",
    "priority": "optional",
    "maintainer": "<img src=y onerror=\"window.__pwned = 'facet'\">",
    "tags": ["<svg onload=\"window.__pwned = 'tag'\">"],
    "version": "1.0",
    "installed_size": 1,
}
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""
STATUS = re.compile(r"^[\d,]+ results? · showing \d+ · [\d.]+ ms · X-Cache: (MISS|HIT|STALE)$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real API process (preview on, as in development) on the demo data plus the hostile document."""
    tmp = tmp_path_factory.mktemp("preview")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_VARIABLES)},
        "APP_ENV": "development",
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "REDIS_URL": "",
        "BROKER_URL": "",
        "TANTIVY_DATA_DIR": str(tmp / "tantivy"),
        "INDEX_ALIAS": "preview",
        "CURSOR_SECRET": "preview-browser-test",
        "APP_PORT": str(port),
        "RATE_LIMIT_ENABLED": "false",
    }
    hostile = tmp / "hostile.jsonl"
    hostile.write_text(json.dumps(HOSTILE) + "\n")
    for load in (["--if-empty"], [str(hostile)]):
        subprocess.run([sys.executable, "-m", "indexer", "load", *load], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright; the browser and Playwright's driver stop whatever happens."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require_server("Chromium", lambda: found is not None, "chromium not installed (apt-get install chromium)")
    assert found is not None
    driver: Playwright = sync_playwright().start()
    try:
        launched = driver.chromium.launch(executable_path=found, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        driver.stop()


@dataclass
class Watched:
    """A page and what it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)
    searches: list[Response] = field(default_factory=list)

    def assert_clean(self) -> None:
        violations = self.page.evaluate("window.__csp")
        assert violations == [], violations
        assert self.errors == []
        assert self.page.evaluate("window.__pwned") is None


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A fresh browser context and page, its console errors, page errors and search responses recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.set_default_timeout(15_000)
        found = Watched(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                found.errors.append(f"console {message.type}: {message.text}")

        def on_response(response: Response) -> None:
            if urlsplit(response.url).path == "/v1/search":
                found.searches.append(response)

        page.on("console", on_console)
        page.on("pageerror", lambda error: found.errors.append(f"page error: {error}"))
        page.on("response", on_response)
        yield found
    finally:
        context.close()


def _open(watched: Watched, url: str) -> Page:
    page = watched.page
    page.goto(url)
    expect(page.locator("#schema-name")).not_to_have_text("")
    return page


def _ids(page: Page) -> list[str]:
    return [str(item) for item in page.locator("#hits > li").evaluate_all("items => items.map(i => i.dataset.id)")]


def test_preview_when_a_misspelled_name_is_typed_shows_the_package_first(
    api: str, watched: Watched, tmp_path: Path
) -> None:
    page = _open(watched, f"{api}/")
    expect(page.locator("#q")).to_be_focused()
    expect(page.locator("#hits > li")).to_have_count(20)  # an empty query browses everything
    before = len(watched.searches)
    with page.expect_response(lambda response: "/v1/search?q=postgrsql&" in response.url):
        page.locator("#q").press_sequentially("postgrsql", delay=30)
    expect(page.locator("#suggestion")).to_be_visible()
    expect(page.locator("#suggestion-button")).to_have_text("postgresql")
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", "postgresql")
    expect(page.locator(".hit-title").first).to_have_text("postgresql")
    typed = len(watched.searches) - before
    assert 1 <= typed < len("postgrsql") // 2, f"{typed} searches: typing is debounced, not a request per key"
    expect(page.locator("#status")).to_have_text(STATUS)
    assert parse_qs(urlsplit(page.url).query) == {"q": ["postgrsql"]}
    assert page.locator("#hits mark").count() > 0  # the API's highlights, as <mark> elements
    shot = Path(os.environ.get("README_SCREENSHOT") or tmp_path / "preview.png")
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    watched.assert_clean()


def test_preview_when_a_facet_is_clicked_filters_the_hits(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/?q=server")
    expect(page.locator("#hits > li").first).to_be_visible()
    box = page.locator('#facets input[data-field="section"]').nth(1)
    value = box.get_attribute("data-value")
    count = box.locator("xpath=..").locator(".count").inner_text()
    assert value
    # click, not check(): the search the click starts re-renders the facet list, and check() would then
    # wait on whichever box is nth(1) now; the checked state is asserted by value below.
    box.click()
    expect(page).to_have_url(re.compile(r"filter=section%3A"))
    expect(page.locator("#status")).to_have_text(re.compile(rf"^{count} results? · showing"))
    assert parse_qs(urlsplit(page.url).query)["filter"] == [f"section:{value}"]
    metas = page.locator("#hits .meta").all_inner_texts()
    assert metas
    assert all(f"section: {value}" in meta for meta in metas), metas
    expect(page.locator(f'#facets input[data-field="section"][data-value="{value}"]')).to_be_checked()
    watched.assert_clean()


def test_preview_when_scrolled_to_the_end_loads_the_next_page_without_duplicates(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/?q=lib")
    expect(page.locator("#hits > li")).to_have_count(20)
    page.locator("#sentinel").scroll_into_view_if_needed()
    expect(page.locator("#hits > li")).to_have_count(40)
    page.locator("#sentinel").scroll_into_view_if_needed()
    expect(page.locator("#hits > li")).to_have_count(60)
    shown = _ids(page)
    assert len(set(shown)) == 60
    pages = [response.json() for response in watched.searches if "q=lib" in response.url]
    assert len(pages) == 3
    served = [hit["id"] for body in pages for hit in body["hits"]]
    assert served == shown  # in the API's order, and the API itself repeated nothing
    assert "cursor=" in watched.searches[-1].url
    watched.assert_clean()


def test_preview_when_a_hit_is_opened_shows_the_document_as_json(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/?q=postgresql")
    title = page.locator(".hit-title").first
    expect(title).to_have_text("postgresql")
    title.click()
    dialog = page.locator("#document")
    expect(dialog).to_be_visible()
    expect(page.locator("#document-title")).to_have_text("postgresql")
    shown = json.loads(page.locator("#document-json").inner_text())
    assert shown == httpx.get(f"{api}/v1/documents/postgresql").json()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(title).to_be_focused()
    watched.assert_clean()


def test_preview_when_a_document_field_is_hostile_renders_it_as_text(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/?q=hostile")
    hit = page.locator('#hits > li[data-id="hostile-demo"]')
    expect(hit).to_be_visible()
    text = hit.inner_text()
    assert "<script>window.__pwned = 'script'</script>" in text
    assert "<img src=x onerror=" in text
    assert "</mark><mark> tags" in text  # escaped tag text in a highlight stays text
    assert "section: <b>bold</b>" in text
    facets = page.locator("#facets").inner_text()
    for markup in ("<b>bold</b>", "<img src=y onerror=", "<svg onload="):
        assert markup in facets
    elements = "#hits img, #hits script, #hits svg, #hits b, #facets img, #facets svg, #facets b"
    assert page.locator(elements).count() == 0
    hit.locator(".hit-title").click()
    expect(page.locator("#document")).to_be_visible()
    shown = page.locator("#document-json").inner_text()
    assert json.loads(shown)["description"] == HOSTILE["description"]
    assert page.locator("#document img, #document script").count() == 0
    watched.assert_clean()


def test_preview_when_opened_with_state_in_the_url_runs_it_and_back_restores_it(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/?q=postgrsql&filter=section:database")
    expect(page.locator("#q")).to_have_value("postgrsql")
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", "postgresql")
    expect(page.locator('#facets input[data-field="section"][data-value="database"]')).to_be_checked()
    assert all("section: database" in meta for meta in page.locator("#hits .meta").all_inner_texts())
    page.locator("#q").fill("redis-server")
    page.locator("#q").press("Enter")
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", "redis-server")
    assert parse_qs(urlsplit(page.url).query) == {"q": ["redis-server"], "filter": ["section:database"]}
    page.go_back()
    expect(page.locator("#q")).to_have_value("postgrsql")
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", "postgresql")
    expect(page.locator('#facets input[data-field="section"][data-value="database"]')).to_be_checked()
    watched.assert_clean()


def test_preview_when_sorted_lists_hits_in_the_fields_order(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/?q=python")
    expect(page.locator("#hits > li")).to_have_count(20)
    page.get_by_label("Sort by").select_option("-installed_size")
    expect(page).to_have_url(re.compile(r"sort=-installed_size"))
    expected = httpx.get(f"{api}/v1/search", params={"q": "python", "sort": "-installed_size", "size": 20}).json()
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", expected["hits"][0]["id"])
    assert _ids(page) == [hit["id"] for hit in expected["hits"]]
    watched.assert_clean()


def test_preview_when_used_with_the_keyboard_only_searches_and_opens_a_document(api: str, watched: Watched) -> None:
    page = _open(watched, f"{api}/")
    expect(page.get_by_role("searchbox", name="Search")).to_be_focused()
    expect(page.get_by_role("combobox", name="Sort by")).to_be_visible()
    expect(page.get_by_role("list", name="Results")).to_be_visible()
    page.keyboard.type("nginx")
    page.keyboard.press("Enter")
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", "nginx")
    expect(page.get_by_role("status")).to_have_text(STATUS)
    expect(page.get_by_role("checkbox", name=re.compile(r"^httpd"))).to_be_visible()  # labelled checkboxes
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to results")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#results")).to_be_focused()
    page.keyboard.press("Tab")
    title = page.locator(".hit-title").first
    expect(title).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#document")).to_be_visible()
    expect(page.locator("#document-json")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#document")).to_be_hidden()
    expect(title).to_be_focused()
    watched.assert_clean()


def test_preview_when_the_query_was_relaxed_names_the_ignored_words_and_a_suggestion_searches(
    api: str, watched: Watched
) -> None:
    page = _open(watched, f"{api}/?q=postgresql%20xqzjvw")
    expect(page.locator("#ignored")).to_have_text("No result has every word: ignored “xqzjvw”.")
    expect(page.locator("#hits > li").first).to_have_attribute("data-id", "postgresql")
    page.goto(f"{api}/?q=postgrsql")
    page.locator("#suggestion-button").click()
    expect(page.locator("#q")).to_have_value("postgresql")
    expect(page.locator("#suggestion")).to_be_hidden()
    expect(page.locator("#ignored")).to_be_hidden()
    assert parse_qs(urlsplit(page.url).query) == {"q": ["postgresql"]}
    watched.assert_clean()
