"""Hostile requests against the API on a real Elasticsearch and OpenSearch and a real Redis: no single request changes
the service for anyone else.

Each test asserts the search breaker is still closed (and that an ordinary search still answers) after
the hostile requests: a request the engine rejects is that request's error alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from loguru import logger

from src.cache.invalidation import make_invalidator
from src.cache.redis import create_redis_cache
from src.main import create_app
from src.search.backends.base import SearchBackend
from src.search.backends.guarded import GuardedBackend
from src.search.errors import SearchRejected
from src.search.query import BackendQuery, ParsedQuery, parse_sort
from src.settings import DEV_CURSOR_SECRET, ApiSettings
from tests.api.conftest import schema_file
from tests.conftest import REDIS_URL, drop_all, engine_settings, load, make_backend, require_redis
from tests.fixtures.catalog import DOCS, SCHEMA

pytestmark = pytest.mark.integration


@pytest.fixture(params=["elasticsearch", "opensearch"])
async def engine(request: pytest.FixtureRequest) -> str:
    """The engine cluster under attack (each test runs on both)."""
    return str(request.param)


@pytest.fixture
async def catalog_alias(engine: str, tmp_path: Path) -> AsyncIterator[str]:
    """The contract catalogue on the real engine under a fresh alias."""
    backend: SearchBackend = await make_backend(engine, SCHEMA, tmp_path)
    try:
        await load(backend, DOCS)
        yield backend._alias  # type: ignore[attr-defined]
    finally:
        await drop_all(backend)
        await backend.close()


def es_settings(tmp_path: Path, alias: str, namespace: str, engine: str) -> ApiSettings:
    require_redis()
    return ApiSettings.build(
        index_schema_path=schema_file(tmp_path),
        **engine_settings(engine),
        index_alias=alias,
        redis_url=REDIS_URL,
        cache_namespace=namespace,
        search_breaker_failures=2,  # two availability failures would open it: the tests below make many more
        search_breaker_reset_seconds=60,
    )  # CURSOR_SECRET stays the public development default: a hostile client knows it


@pytest.fixture
async def app(tmp_path: Path, catalog_alias: str, engine: str) -> AsyncIterator[FastAPI]:
    application = create_app(es_settings(tmp_path, catalog_alias, f"hostile-{uuid.uuid4().hex[:8]}", engine))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def assert_service_unchanged(app: FastAPI, client: httpx.AsyncClient) -> None:
    backend: GuardedBackend = app.state.services.backend
    assert backend.breaker.state == "closed"
    search = await client.get("/v1/search", params={"q": f"anything {uuid.uuid4().hex[:6]}"})  # uncached
    assert search.status_code == 200, search.text


async def test_read_document_when_dot_segment_ids_repeat_leaves_search_up(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for raw in ["%2E%2E", "%2E", "%2e%2E", "a%00"] * 5:
        response = await client.get(f"/v1/documents/{raw}")
        assert response.status_code == 422, (raw, response.text)
        assert response.json()["errors"][0]["parameter"] == "doc_id"
    await assert_service_unchanged(app, client)


async def test_get_when_engine_rejects_dot_segment_id_is_rejected_not_unavailable(app: FastAPI, engine: str) -> None:
    """Below the edge's id check: the adapter classifies Elasticsearch's own 400/405 as a rejection;
    OpenSearch looks such an id up like any other and finds no document."""
    backend: GuardedBackend = app.state.services.backend
    for doc_id in ["..", ".", "..", ".", "..", "."]:
        if engine == "elasticsearch":
            with pytest.raises(SearchRejected):
                await backend.get(doc_id)
        else:
            assert await backend.get(doc_id) is None
    assert backend.breaker.state == "closed"


def _forge(body: dict[str, object]) -> str:
    raw = json.dumps(body).encode()  # not orjson: a forger may send integers past 64 bits
    signature = hmac.new(DEV_CURSOR_SECRET.encode(), raw, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(raw)}.{b64(signature)}"


async def test_search_when_cursor_forged_with_the_public_key_returns_422(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    params = {"size": "2", "sort": "stock"}
    genuine = (await client.get("/v1/search", params=params)).json()["next_cursor"]
    body = orjson.loads(base64.urlsafe_b64decode(genuine.split(".")[0] + "=="))
    for after in (["not a number", "id"], [1, 2, 3], [], [1.5, "id"], [2**64, "id"], [None, None]):
        response = await client.get("/v1/search", params={**params, "cursor": _forge({**body, "a": after})})
        assert response.status_code == 422, (after, response.text)
        assert response.json()["errors"][0]["parameter"] == "cursor"
    await assert_service_unchanged(app, client)


async def test_search_when_engine_rejects_the_query_is_a_400_for_that_request_only(app: FastAPI) -> None:
    """A search the engine refuses (values the edge would have refused) never moves the breaker."""
    backend: GuardedBackend = app.state.services.backend
    for after in [("abc", "x"), (1, "x", "y"), ("abc", "x"), (1, "x", "y")]:
        query = BackendQuery(
            query=ParsedQuery(), filters=(), facets=(), sort=parse_sort("stock", SCHEMA), limit=3, after=after
        )
        with pytest.raises(SearchRejected):
            await backend.search(query)
    assert backend.breaker.state == "closed"


async def test_search_when_another_alias_shares_the_namespace_keeps_its_generation(
    tmp_path: Path, catalog_alias: str, engine: str
) -> None:
    namespace = f"shared-{uuid.uuid4().hex[:8]}"
    settings = es_settings(tmp_path, catalog_alias, namespace, engine)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        first = await client.get("/v1/search", params={"q": "server"})
        assert "gen-0" in first.headers["surrogate-key"].split()
        # The indexer of another deployment (another alias) on the same Redis namespace bumps 16 times.
        cache = create_redis_cache(
            REDIS_URL, timeout_seconds=10, connect_timeout_seconds=10, failure_threshold=3, reset_seconds=1
        )
        other = settings.replace(index_alias="someone-else")
        from src.cache.factory import cache_policy

        invalidate = make_invalidator(
            cache, namespace=cache_policy(other).namespace, schema_fingerprint=app.state.services.schema.fingerprint
        )
        for _ in range(16):
            await invalidate(["nginx"])
        await cache.close()
        again = await client.get("/v1/search", params={"q": "server"})
    assert again.headers["x-cache"] == "HIT"
    assert "gen-0" in again.headers["surrogate-key"].split()


async def test_requests_when_backend_down_log_one_line_not_one_per_request(tmp_path: Path) -> None:
    require_redis()
    settings = ApiSettings.build(
        index_schema_path=schema_file(tmp_path),
        elasticsearch_url="http://127.0.0.1:9",
        search_timeout_seconds=0.2,
        search_breaker_failures=3,
        search_breaker_reset_seconds=60,
    )
    lines: list[str] = []
    app = create_app(settings)
    async with app.router.lifespan_context(app):  # configures logging: the test's sink comes after it
        app.state.services.warm.set()  # the engine answered once, then went away: the breaker's case
        sink = logger.add(lambda message: lines.append(str(message.record["message"])), level="WARNING")
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                statuses = [
                    (await client.get("/v1/search", params={"q": f"w{number}"})).status_code for number in range(40)
                ]
                metrics = (await client.get("/metrics")).text
        finally:
            logger.remove(sink)
    assert set(statuses) == {503}
    breaker_lines = [line for line in lines if "circuit" in line]
    assert len(breaker_lines) == 1, lines
    assert len([line for line in lines if "unavailable" in line]) == 0
    assert 'search_api_unavailable_responses_total{dependency="search"}' in metrics


async def test_requests_when_backend_down_from_the_start_answer_503_without_the_breaker(tmp_path: Path) -> None:
    settings = ApiSettings.build(
        index_schema_path=schema_file(tmp_path), elasticsearch_url="http://127.0.0.1:9", search_timeout_seconds=0.2
    )
    lines: list[str] = []
    app = create_app(settings)
    async with app.router.lifespan_context(app):  # the warm-up's first failure is logged at start-up (once)
        sink = logger.add(lambda message: lines.append(str(message.record["message"])), level="WARNING")
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                statuses = [(await client.get("/v1/search", params={"q": f"w{n}"})).status_code for n in range(40)]
                ready = (await client.get("/readyz")).status_code
        finally:
            logger.remove(sink)
        breaker = app.state.services.backend.breaker.state
    assert set(statuses) == {503}
    assert ready == 503
    assert breaker == "closed"  # never warm: every search was a fast 503 that never reached the engine
    assert lines == []  # and none of them logged a line
