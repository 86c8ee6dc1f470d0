"""Cache-aside and HTTP caching seen from the client: X-Cache, ETag/304, Cache-Control, gzip, purge keys."""

from __future__ import annotations

import dataclasses
import sys

import fakeredis
import httpx
import orjson
import pytest
from fastapi import FastAPI

from src.api.deps import Services
from src.cache.aside import CacheAside
from src.cache.invalidation import bump_search_generation, invalidate_documents
from src.cache.memory import MemoryCache
from src.cache.redis import RedisCache
from src.cache.tiered import TieredCache
from src.main import create_app
from src.resilience import CircuitBreaker
from src.search.backends.base import IndexAction
from src.settings import ApiSettings
from tests.api.conftest import install_fake_backend
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import DOCS

SEARCH = {"q": "server", "size": "3"}


async def test_search_when_repeated_is_hit_with_unchanged_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/search", params=SEARCH)
    second = await client.get("/v1/search", params=SEARCH)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["etag"].startswith('W/"')  # weak: a hit's body differs in its took_ms only
    assert _without_took(second) == _without_took(first)
    assert first.headers["cache-control"] == (
        "public, max-age=30, s-maxage=60, stale-while-revalidate=30, stale-if-error=300"
    )
    assert first.headers["vary"] == "Accept-Encoding"
    ids = [hit["id"] for hit in first.json()["hits"]]
    assert first.headers["surrogate-key"].split() == [f"doc-{doc_id}" for doc_id in ids] + ["gen-0"]
    assert first.headers["cache-tag"].split(",") == first.headers["surrogate-key"].split()


def _without_took(response: httpx.Response) -> dict[str, object]:
    page: dict[str, object] = orjson.loads(response.content)
    del page["took_ms"]
    return page


class _Ticks:
    """A timer for the cache-aside layer: each call is `step` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_search_when_hit_states_its_own_took_ms(app: FastAPI, client: httpx.AsyncClient, encoding: str) -> None:
    miss = await client.get("/v1/search", params={"q": "server"}, headers={"accept-encoding": encoding})
    app.state.services.aside.timer = _Ticks(0.00025)  # the lookup starts, the hit is served 0.25 ms later
    fast = await client.get("/v1/search", params={"q": "server"}, headers={"accept-encoding": encoding})
    # `no` is a spelling only FastAPI's parser takes: the route serves this one, through the same service.
    routed = await client.get(
        "/v1/search", params={"q": "server", "highlight": "no"}, headers={"accept-encoding": encoding}
    )
    assert [r.headers["x-cache"] for r in (miss, fast, routed)] == ["MISS", "HIT", "HIT"]
    assert fast.headers.get("content-encoding", "identity") == encoding  # the gzip body is spliced too
    assert fast.json()["took_ms"] == routed.json()["took_ms"] == 0.25
    assert _without_took(fast) == _without_took(routed) == _without_took(miss)
    assert fast.headers["etag"] == routed.headers["etag"]


async def test_search_when_request_differs_only_in_form_shares_the_entry(client: httpx.AsyncClient) -> None:
    await client.get(
        "/v1/search", params=[("q", "web  Server"), ("filter", "tags:http"), ("filter", "category:web"), ("size", "5")]
    )
    again = await client.get(
        "/v1/search",
        params=[
            ("size", "5"),
            ("filter", "category:web"),
            ("filter", "tags:http"),
            ("q", "  WEB server"),
            ("filter", "tags:http"),
        ],
    )
    assert again.headers["x-cache"] == "HIT"


async def test_search_when_if_none_match_current_returns_304(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/v1/search", params=SEARCH)).headers["etag"]
    opaque = etag.removeprefix("W/")  # weak comparison: the strong spelling of the tag matches too
    for header in (etag, f'"other", {etag}', opaque, "*"):
        response = await client.get("/v1/search", params=SEARCH, headers={"if-none-match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"].startswith("public, max-age=30")
        assert response.headers["vary"] == "Accept-Encoding"
    stale_tag = await client.get("/v1/search", params=SEARCH, headers={"if-none-match": '"nope"'})
    assert stale_tag.status_code == 200


async def test_search_when_gzip_accepted_sends_compressed_body(client: httpx.AsyncClient) -> None:
    params = {"size": "14", "highlight": "true", "q": "s"}
    plain = await client.get("/v1/search", params=params, headers={"accept-encoding": "identity"})
    zipped = await client.get("/v1/search", params=params, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert _without_took(zipped) == _without_took(plain)  # httpx decodes gzip
    assert int(zipped.headers["content-length"]) < len(plain.content)
    assert zipped.headers["etag"] != plain.headers["etag"]
    raw = await client.get("/v1/search", params=params, headers={"accept-encoding": "gzip"})
    assert raw.headers["x-cache"] == "HIT"


async def test_read_document_when_repeated_is_hit_and_404_is_cached(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await client.get("/v1/documents/nginx")).headers["x-cache"] == "MISS"
    hit = await client.get("/v1/documents/nginx")
    assert hit.headers["x-cache"] == "HIT"
    assert hit.headers["surrogate-key"] == "doc-nginx"
    missing = await client.get("/v1/documents/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["cache-control"] == "public, max-age=5"
    app.state.services.backend.down = True
    again = await client.get("/v1/documents/nope")
    assert (again.status_code, again.headers["x-cache"]) == (404, "HIT")


async def test_search_when_document_changes_and_is_invalidated_serves_new_body(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    params = {"q": "nginx"}
    old = await client.get("/v1/search", params=params)
    old_document = await client.get("/v1/documents/nginx")
    backend: FakeSearchBackend = app.state.services.backend
    changed = {**DOCS[0], "title": "Renamed web server"}
    await backend.bulk([IndexAction(op="upsert", doc_id="nginx", document=changed)])
    cache, namespace = app.state.services.aside.cache, app.state.services.aside.policy.namespace
    await invalidate_documents(
        ["nginx"], cache=cache, namespace=namespace, schema_fingerprint=app.state.services.schema.fingerprint
    )
    assert (
        await bump_search_generation(
            cache=cache, namespace=namespace, schema_fingerprint=app.state.services.schema.fingerprint
        )
        == 1
    )

    new = await client.get("/v1/search", params=params)
    assert new.headers["x-cache"] == "MISS"
    assert new.json()["hits"][0]["document"]["title"] == "Renamed web server"
    assert new.headers["etag"] != old.headers["etag"]
    assert "gen-1" in new.headers["surrogate-key"].split()
    revalidated = await client.get("/v1/search", params=params, headers={"if-none-match": old.headers["etag"]})
    assert revalidated.status_code == 200
    new_document = await client.get("/v1/documents/nginx", headers={"if-none-match": old_document.headers["etag"]})
    assert (new_document.status_code, new_document.headers["x-cache"]) == (200, "MISS")
    assert new_document.json()["title"] == "Renamed web server"


async def test_search_when_backend_stopped_serves_cached_entry_as_stale(settings: ApiSettings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        fake = await install_fake_backend(app)
        now = [1_000_000.0]
        services: Services = app.state.services
        memory = MemoryCache(max_entries=100, max_bytes=1_000_000, clock=lambda: now[0])
        aside = CacheAside(memory, services.aside.policy, clock=lambda: now[0])
        app.state.services = dataclasses.replace(services, aside=aside)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            fresh = await client.get("/v1/search", params=SEARCH)
            now[0] += settings.cache.hard_ttl_seconds * 1.2  # past the hard TTL (and its jitter), inside stale-if-error
            fake.down = True
            stale = await client.get("/v1/search", params=SEARCH)
            uncached = await client.get("/v1/search", params={"q": "emacs"})
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert _without_took(stale) == _without_took(fresh)
    assert uncached.status_code == 503


async def test_search_when_redis_unreachable_serves_every_request(settings: ApiSettings) -> None:
    broken = settings.replace(redis_url="redis://127.0.0.1:9/0", redis_timeout_seconds=0.05)
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = [await client.get("/v1/search", params=SEARCH) for _ in range(5)]
            responses.append(await client.get("/v1/documents/nginx"))
            ready = await client.get("/readyz")
    assert [r.status_code for r in responses] == [200] * 6
    assert {r.headers["x-cache"] for r in responses} == {"MISS"}
    assert ready.json()["checks"] == {"search": "ok", "cache": "degraded"}


async def test_metrics_when_requests_served_counts_cache_results(client: httpx.AsyncClient) -> None:
    await client.get("/v1/search", params={"q": "vim"})
    await client.get("/v1/search", params={"q": "vim"})
    body = (await client.get("/metrics")).text
    assert 'search_api_cache_lookups_total{result="hit",route="search"}' in body


async def test_search_when_cache_disabled_computes_every_request(settings: ApiSettings) -> None:
    app = create_app(settings.replace(cache_enabled=False))
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            responses = [await client.get("/v1/search", params=SEARCH) for _ in range(3)]
            ready = (await client.get("/readyz")).json()
    assert [r.headers["x-cache"] for r in responses] == ["MISS"] * 3
    assert ready["checks"]["cache"] == "ok"
    assert app.state.services.aside.cache.kind == "none"
    # Nothing is stored, so nothing is compressed for storage; a response is gzipped when its client asks.
    assert app.state.services.aside.policy.gzip_min_bytes == sys.maxsize
    assert app.state.services.http_cache_policy.compress_min_bytes == settings.cache.gzip_min_bytes


async def test_search_when_engine_calls_at_the_limit_is_a_fast_503_with_retry_after(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    aside: CacheAside = app.state.services.aside
    aside.engine_inflight = aside.policy.max_inflight  # as if that many misses were running right now
    try:
        refused = await client.get("/v1/search", params={"q": "never cached"})
    finally:
        aside.engine_inflight = 0
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "/problems/overloaded"
    assert (await client.get("/v1/search", params={"q": "never cached"})).status_code == 200


async def test_search_when_redis_slow_and_backend_down_serves_the_in_process_copy(settings: ApiSettings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        fake = await install_fake_backend(app)
        services: Services = app.state.services
        server = fakeredis.FakeServer()
        breaker = CircuitBreaker(failure_threshold=3, reset_seconds=60)
        tiered = TieredCache(
            MemoryCache(max_entries=100, max_bytes=1_000_000),
            RedisCache(fakeredis.FakeAsyncRedis(server=server), timeout_seconds=0.05, breaker=breaker),
            near_ttl_seconds=0.0,  # every read would go to Redis first
            generation_poll_seconds=0.0,
            keep_seconds=600.0,
        )
        app.state.services = dataclasses.replace(services, aside=CacheAside(tiered, services.aside.policy))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            fresh = await client.get("/v1/search", params=SEARCH)
            server.connected = False  # Redis stops answering...
            fake.down = True  # ...while the engine is down too
            during = await client.get("/v1/search", params=SEARCH)
    assert fresh.headers["x-cache"] == "MISS"
    assert during.status_code == 200
    assert _without_took(during) == _without_took(fresh)
