"""The fast path: memoised binding, hits, misses and errors answered as the route answers them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI

from src.api.fast_hits import (
    _MEMO_ENTRIES,
    _RESPONSE_ENTRIES,
    BoundSearch,
    FastHitMiddleware,
    _exception_handler,
    bind_search,
)
from src.api.routes import search as search_routes
from src.main import create_app
from src.resilience import Overloaded, Unavailable
from src.search.service import SearchRequest
from src.settings import ApiSettings
from tests.api.conftest import install_fake_backend


async def test_bound_search_when_many_distinct_queries_bounds_its_memo(app: FastAPI) -> None:
    async def inner(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    middleware = FastHitMiddleware(inner)
    services = app.state.services
    first = middleware.bound_search("q=w0", services)
    assert first.key is not None
    assert middleware.bound_search("q=w0", services) is first
    refused = middleware.bound_search("size=0", services)  # the route's parameters refuse it
    assert refused.request is None
    assert [error["loc"] for error in refused.errors] == [("query", "size")]
    unkeyed = middleware.bound_search("sort=nosuchfield", services)  # the service refuses it
    assert (unkeyed.request, unkeyed.key) == (SearchRequest(sort="nosuchfield"), None)
    for number in range(_MEMO_ENTRIES + 5):
        middleware.bound_search(f"q=w{number}", services)
    assert len(middleware._searches) == _MEMO_ENTRIES
    assert "q=w0" not in middleware._searches
    assert middleware.bound_search("q=w0", services) == first


def test_bind_search_when_cache_is_off_computes_no_key(uncached: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, _ = uncached
    assert bind_search("q=web", app.state.services) == BoundSearch(request=SearchRequest(q="web"))


async def test_fast_path_when_hit_matches_the_miss_response(client: httpx.AsyncClient) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("filter", "category:web"),
        ("q", "server"),
        ("highlight", "1"),
    ]
    routed = await client.get("/v1/search", params=params)  # computed (the fast path's miss)
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
    # Documents (here cached 404s): one remembered response each.
    for number in range(_RESPONSE_ENTRIES + 6):
        await client.get(f"/v1/documents/memo-{number}")
        assert (await client.get(f"/v1/documents/memo-{number}")).headers["x-cache"] == "HIT"
    layer: object = getattr(app, "edge")  # noqa: B009 -- the layers in front of Starlette's stack
    while not isinstance(layer, FastHitMiddleware):
        layer = getattr(layer, "app")  # noqa: B009 -- each middleware's inner app
    assert len(layer._responses) == _RESPONSE_ENTRIES


async def test_fast_path_when_a_search_hit_is_remembered_states_each_hits_own_time(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    params = {"filter": "category:web", "q": "server", "highlight": "1"}
    routed = await client.get("/v1/search", params=params)
    layer: object = getattr(app, "edge")  # noqa: B009 -- the layers in front of Starlette's stack
    while not isinstance(layer, FastHitMiddleware):
        layer = getattr(layer, "app")  # noqa: B009 -- each middleware's inner app
    for encoding in ("gzip", "identity"):
        hits = [await client.get("/v1/search", params=params, headers={"accept-encoding": encoding}) for _ in range(3)]
        for hit in hits:  # the first renders and remembers status and headers, the others replay them
            assert hit.headers["x-cache"] == "HIT"
            assert int(hit.headers["content-length"]) == hit.num_bytes_downloaded  # of this hit's own body
            assert _without_took(hit) == _without_took(routed)
            assert isinstance(hit.json()["took_ms"], float)
        assert hits[1].headers["etag"] == hits[2].headers["etag"]
    remembered = [kept for stored, _, _, kept in layer._responses.values() if stored.took is not None]
    assert set(remembered) == {False, True}  # the body is the hit's own: only its encoding is remembered


async def test_fast_path_when_the_lookup_fails_serves_through_the_service(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
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
    assert response.headers["x-cache"] == "HIT"  # the service's own cache-aside read found it


@pytest.fixture
async def uncached(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with the cache off (every search reaches the backend) and a client calling it."""
    app = create_app(settings.replace(cache_enabled=False))
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
    assert _exception_handler(scope, Overloaded("full")) is app.exception_handlers[Unavailable]
    assert _exception_handler(scope, RuntimeError("a bug")) is None  # the outermost error middleware's


async def test_fast_path_when_not_modified_sends_no_content_length_like_the_route(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/search", params={"q": "server"})
    again = await client.get("/v1/search", params={"q": "server"}, headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.headers["x-cache"]) == (304, "HIT")
    assert "content-length" not in again.headers
