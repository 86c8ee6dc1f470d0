"""The fast hit path's query-string binding must agree with FastAPI's, or step aside."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI

from src.api.fast_hits import (
    _MEMO_ENTRIES,
    _RESPONSE_ENTRIES,
    FastHitMiddleware,
    _exception_handler,
    parse_search_query,
)
from src.api.routes import search as search_routes
from src.main import create_app
from src.search.errors import Overloaded, SearchUnavailable
from src.search.service import SearchRequest
from src.settings import Settings
from tests.api.conftest import install_fake_backend


def test_parse_search_query_when_all_parameters_binds_like_the_route() -> None:
    parsed = parse_search_query(
        "q=web+server&filter=tags%3Ahttp&filter=category:web&facets=tags&sort=-stock&size=5&cursor=abc&highlight=true"
    )
    assert parsed == SearchRequest(
        q="web server",
        filters=["tags:http", "category:web"],
        facets="tags",
        sort="-stock",
        size=5,
        cursor="abc",
        highlight=True,
    )


def test_parse_search_query_when_empty_uses_defaults() -> None:
    assert parse_search_query("") == SearchRequest()


def test_parse_search_query_when_scalar_repeated_takes_last_value() -> None:
    parsed = parse_search_query("q=first&q=second&size=3&size=4")
    assert parsed is not None
    assert (parsed.q, parsed.size) == ("second", 4)


@pytest.mark.parametrize(
    "query",
    ["size=0", "size=101", "size=ten", "size=5.0", "size=0005", "highlight=yes", "highlight=maybe", "q=%ff"],
)
def test_parse_search_query_when_route_must_decide_returns_none(query: str) -> None:
    assert parse_search_query(query) is None


def test_parse_search_query_when_boolean_spelled_like_pydantic_accepts_canonical_forms() -> None:
    assert [parse_search_query(f"highlight={v}").highlight for v in ("true", "TRUE", "1", "false", "0")] == [  # type: ignore[union-attr]
        True,
        True,
        True,
        False,
        False,
    ]


async def test_search_key_when_many_distinct_queries_bounds_its_memo(app: FastAPI) -> None:
    async def inner(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    middleware = FastHitMiddleware(inner)
    services = app.state.services
    first = middleware._search_key("q=w0", services)
    assert first is not None
    assert middleware._search_key("size=0", services) is None  # the route answers the 422
    assert middleware._search_key("sort=nosuchfield", services) is None
    for number in range(_MEMO_ENTRIES + 5):
        middleware._search_key(f"q=w{number}", services)
    assert len(middleware._search_keys) == _MEMO_ENTRIES
    assert "q=w0" not in middleware._search_keys
    assert middleware._search_key("q=w0", services) == first


async def test_fast_path_when_hit_matches_route_response(client: httpx.AsyncClient) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("filter", "category:web"),
        ("q", "server"),
        ("highlight", "1"),
    ]
    routed = await client.get("/v1/search", params=params)
    fast = await client.get("/v1/search", params=params)
    assert (routed.headers["x-cache"], fast.headers["x-cache"]) == ("MISS", "HIT")
    assert _without_took(fast) == _without_took(routed)  # each states its own took_ms
    for name in ("etag", "cache-control", "vary", "surrogate-key", "cache-tag", "content-type"):
        assert fast.headers[name] == routed.headers[name]
    assert fast.headers["content-encoding"] == routed.headers["content-encoding"] == "gzip"


def _without_took(response: httpx.Response) -> dict[str, object]:
    page: dict[str, object] = orjson.loads(response.content)
    del page["took_ms"]
    return page


async def test_fast_path_when_hit_again_serves_each_encoding_with_its_tag(
    client: httpx.AsyncClient,
) -> None:
    params = {"filter": "category:web", "q": "server", "highlight": "1"}  # a body large enough for gzip
    routed = await client.get("/v1/search", params=params)
    gzip_hits = [await client.get("/v1/search", params=params) for _ in range(2)]
    plain_hits = [
        await client.get("/v1/search", params=params, headers={"accept-encoding": "identity"}) for _ in range(2)
    ]
    for hit in gzip_hits:
        assert hit.headers["x-cache"] == "HIT"
        assert hit.headers["content-encoding"] == "gzip"
        assert hit.headers["etag"] == routed.headers["etag"]
        assert _without_took(hit) == _without_took(routed)
    for hit in plain_hits:
        assert hit.headers["x-cache"] == "HIT"
        assert "content-encoding" not in hit.headers
        assert hit.headers["etag"] != routed.headers["etag"]  # the identity representation has its own tag
        assert _without_took(hit) == _without_took(routed)
    assert gzip_hits[0].headers["x-request-id"] != gzip_hits[1].headers["x-request-id"]  # per request, not remembered
    revalidated = await client.get("/v1/search", params=params, headers={"if-none-match": routed.headers["etag"]})
    assert (revalidated.status_code, revalidated.headers["x-cache"]) == (304, "HIT")


async def test_fast_path_when_many_entries_hit_bounds_the_response_memo(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Documents (here cached 404s): a search hit states its own took_ms, so its response is never remembered.
    for number in range(_RESPONSE_ENTRIES + 6):
        await client.get(f"/v1/documents/memo-{number}")
        assert (await client.get(f"/v1/documents/memo-{number}")).headers["x-cache"] == "HIT"
    layer: object = getattr(app, "edge")  # noqa: B009 -- the layers in front of Starlette's stack
    while not isinstance(layer, FastHitMiddleware):
        layer = getattr(layer, "app")  # noqa: B009 -- each middleware's inner app
    assert len(layer._responses) == _RESPONSE_ENTRIES


async def test_fast_path_when_the_lookup_fails_lets_the_route_answer(app: FastAPI, client: httpx.AsyncClient) -> None:
    params = {"q": "lookup fault"}
    await client.get("/v1/search", params=params)
    aside = app.state.services.aside

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the shortcut")

    original = aside.peek_fresh
    aside.peek_fresh = broken
    try:
        response = await client.get("/v1/search", params=params)
    finally:
        aside.peek_fresh = original
    assert response.status_code == 200
    assert response.headers["x-cache"] == "HIT"  # the route's own cache-aside read found it


@pytest.fixture
async def uncached(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with the cache off (every search reaches the backend) and a client calling it."""
    app = create_app(settings.model_copy(update={"cache_enabled": False}))
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield app, http


def _route_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the route ran")

    monkeypatch.setattr(search_routes, "cached_response", refuse)


async def test_fast_path_when_miss_serves_it_without_the_route(
    uncached: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = uncached
    _route_must_not_run(monkeypatch)
    response = await client.get("/v1/search", params={"q": "server"})
    assert response.status_code == 200
    assert response.headers["x-cache"] == "MISS"
    assert response.json()["hits"]


async def test_fast_path_when_miss_matches_route_response(uncached: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = uncached
    fast = await client.get("/v1/search", params={"q": "server", "highlight": "false"})
    routed = await client.get("/v1/search", params={"q": "server", "highlight": "no"})  # pydantic's spelling only
    assert fast.status_code == routed.status_code == 200

    def body(response: httpx.Response) -> object:
        page = orjson.loads(response.content)
        page.pop("took_ms")
        return page

    assert body(fast) == body(routed)
    varying = {"etag", "content-length", "x-request-id"}  # took_ms is in the body
    assert {k: v for k, v in fast.headers.items() if k not in varying} == {
        k: v for k, v in routed.headers.items() if k not in varying
    }


async def test_fast_path_when_service_refuses_answers_the_apps_problem(
    uncached: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = uncached
    _route_must_not_run(monkeypatch)
    refused = await client.get("/v1/search", params={"q": "x" * 65})  # the settings allow 64 characters
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["parameter"] == "q"
    assert refused.json()["instance"] == "/v1/search"


async def test_fast_path_when_backend_fails_unexpectedly_propagates_to_the_500_problem(
    uncached: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = uncached

    async def broken(query: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.services.backend, "search", broken)
    failed = await client.get("/v1/search", params={"q": "server"})
    assert failed.status_code == 500
    assert failed.json()["detail"] == "an internal error occurred; it has been logged"
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.headers["x-request-id"]  # answered in front of Starlette's stack, still inside the edge
    assert failed.headers["x-content-type-options"] == "nosniff"


async def test_exception_handler_when_subclass_raised_finds_the_nearest_registered_base(app: FastAPI) -> None:
    scope = {"type": "http", "app": app}
    assert _exception_handler(scope, Overloaded("full")) is app.exception_handlers[SearchUnavailable]
    assert _exception_handler(scope, RuntimeError("a bug")) is None  # the outermost error middleware's


async def test_fast_path_when_not_modified_sends_no_content_length_like_the_route(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/search", params={"q": "server"})
    again = await client.get("/v1/search", params={"q": "server"}, headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.headers["x-cache"]) == (304, "HIT")
    assert "content-length" not in again.headers
