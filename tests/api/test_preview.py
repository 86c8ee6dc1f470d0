"""GET /v1/schema through the HTTP cache path, and the preview page's serving rules (CSP, production)."""

from __future__ import annotations

import re

import httpx
import pytest

from src.api.preview import STATIC
from src.main import create_app
from src.settings import ApiSettings


async def test_read_schema_when_requested_returns_public_schema_with_cache_headers(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/schema")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["cache-control"].startswith("public, max-age=")
    assert first.headers["surrogate-key"] == "schema"
    body = first.json()
    assert body["facetable"] == ["category", "tags", "stock"]
    assert body["limits"]["max_query_chars"] == 64  # the settings' limit, not a constant
    second = await client.get("/v1/schema")
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["etag"] == first.headers["etag"]
    assert second.content == first.content
    again = await client.get("/v1/schema", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_read_schema_when_head_sends_headers_only(client: httpx.AsyncClient) -> None:
    response = await client.head("/v1/schema")
    assert response.status_code == 200
    assert response.headers["etag"]
    assert response.content == b""


@pytest.mark.parametrize("path", ["/", "/preview"])
async def test_preview_page_when_in_development_is_served_under_a_strict_csp(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in csp
    assert "<script>" not in response.text  # nothing inline
    assert " style=" not in response.text


async def test_preview_page_when_loaded_every_file_it_references_is_served(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    referenced = re.findall(r'(?:src|href)="(/[^"]+)"', page)
    assert len(referenced) == 3, referenced  # favicon, stylesheet, script
    types = {}
    for url in referenced:
        response = await client.get(url)
        assert response.status_code == 200, url
        types[url.rsplit(".", 1)[-1]] = response.headers["content-type"]
    assert types["js"].startswith(("text/javascript", "application/javascript"))
    assert types["css"].startswith("text/css")
    assert {path.name for path in STATIC.iterdir()} == {"index.html", "preview.js", "preview.css", "favicon.svg"}


async def test_preview_page_when_in_production_is_off_unless_turned_on(settings: ApiSettings) -> None:
    production = settings.replace(app_env="production", cursor_secret="x" * 40)
    app = create_app(production)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for path in ("/", "/preview", "/preview/static/preview.js"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json"
    app = create_app(production.replace(preview_enabled=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/preview/static/preview.js")).status_code == 200


async def test_preview_page_when_turned_off_in_development_is_not_served(settings: ApiSettings) -> None:
    app = create_app(settings.replace(preview_enabled=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/")).status_code == 404
