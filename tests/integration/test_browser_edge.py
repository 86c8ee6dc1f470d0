"""The edge as a browser meets it, in a real headless Chromium (Debian's `chromium`): the docs page renders
every operation offline under its strict CSP, and a page on another origin can call the API only when
that origin is allowed (CORS, with a preflight: `If-None-Match` is not a safelisted header)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import http_server, require_server, stop_process, wait_ready

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require_server("Chromium", lambda: found is not None, "chromium not installed (apt-get install chromium)")
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dom(chromium: str, url: str, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran (a fresh profile each time, no network beyond loopback)."""
    return subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The real API process on the demo data, allowing one browser origin (the page server's)."""
    port, page_port = _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "OPENSEARCH_", "OTEL_"))},
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "REDIS_URL": "",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "INDEX_ALIAS": "browser",
        "CURSOR_SECRET": "browser-test",
        "APP_PORT": str(port),
        "CORS_ALLOW_ORIGINS": f"http://127.0.0.1:{page_port}",
    }
    subprocess.run([sys.executable, "-m", "indexer", "load", "--if-empty"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}", page_port
    finally:
        stop_process(server)


@pytest.fixture
def page_server(tmp_path: Path, api: tuple[str, int]) -> Iterator[Path]:
    """A static server on the allowed origin's port, serving `tmp_path / "pages"`."""
    pages = tmp_path / "pages"
    pages.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    with http_server(functools.partial(Quiet, directory=str(pages)), port=api[1]):
        yield pages


def _fetching_page(api_url: str) -> str:
    return (
        '<!doctype html><html><body><pre id="out">pending</pre><script>'
        f'fetch("{api_url}/v1/search?q=postgrsql", {{headers: {{"If-None-Match": "\\"nothing\\""}}}})'
        '.then(r => r.json().then(j => { document.getElementById("out").textContent ='
        ' "OK " + r.status + " " + r.headers.get("X-Cache") + " " + j.hits[0].id; }))'
        '.catch(e => { document.getElementById("out").textContent = "FAILED " + e; });'
        "</script></body></html>"
    )


def test_docs_page_when_opened_in_a_browser_renders_every_operation_offline(
    api: tuple[str, int], tmp_path: Path
) -> None:
    chromium = _chromium()
    dom = _dom(chromium, f"{api[0]}/docs", tmp_path)
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {"/v1/search", "/v1/documents/{doc_id}", "/v1/admin/cache/purge", "/healthz"} <= paths, dom[-2000:]
    assert "Unable to render" not in dom


def test_cors_when_a_page_on_an_allowed_origin_calls_the_api_the_browser_lets_it_read_the_answer(
    api: tuple[str, int], page_server: Path, tmp_path: Path
) -> None:
    chromium = _chromium()
    (page_server / "allowed.html").write_text(_fetching_page(api[0]))
    dom = _dom(chromium, f"http://127.0.0.1:{api[1]}/allowed.html", tmp_path)
    assert re.search(r'<pre id="out">OK 200 MISS postgresql</pre>', dom), dom[-500:]


def test_cors_when_the_origin_is_not_allowed_the_browser_refuses_the_call(
    api: tuple[str, int], page_server: Path, tmp_path: Path
) -> None:
    chromium = _chromium()
    other = f"http://localhost:{api[1]}"  # another origin than the allowed http://127.0.0.1:<port>
    (page_server / "refused.html").write_text(_fetching_page(api[0]))
    dom = _dom(chromium, f"{other}/refused.html", tmp_path)
    assert "FAILED TypeError: Failed to fetch" in dom, dom[-500:]
