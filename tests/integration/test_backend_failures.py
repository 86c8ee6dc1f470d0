"""Backends that are down, silent or empty answer with SearchUnavailable quickly, never hang."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from src.main import create_app
from src.search.backends.cluster import ClusterBackend
from src.search.backends.elasticsearch import create_elasticsearch_backend
from src.search.backends.opensearch import create_opensearch_backend
from src.search.backends.tantivy import TantivyBackend
from src.search.errors import SearchUnavailable
from src.search.query import BackendQuery, ParsedQuery, SortSpec
from src.settings import ApiSettings
from tests.conftest import make_backend
from tests.fixtures.catalog import SCHEMA

pytestmark = pytest.mark.integration

QUERY = BackendQuery(query=ParsedQuery(), filters=(), facets=(), sort=SortSpec(), limit=10)
CLUSTERS = ["elasticsearch", "opensearch"]


def cluster_backend(kind: str, url: str, timeout_seconds: float) -> ClusterBackend[Any]:
    """An engine-cluster backend of `kind` at `url` (no server needed: these tests aim at dead ones)."""
    create = create_opensearch_backend if kind == "opensearch" else create_elasticsearch_backend
    return create(url=url, schema=SCHEMA, alias="x", timeout_seconds=timeout_seconds)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        # A client's retry may connect just before the close: let its handler run, then close every
        # connection and wait for it, so no open StreamWriter outlives this loop (its __del__ would
        # warn in whichever later test the garbage collector happens to run).
        await asyncio.sleep(0.05)
        for writer in held:
            writer.close()
        for writer in held:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1)
        await server.wait_closed()


@pytest.mark.parametrize("kind", CLUSTERS)
async def test_cluster_search_when_connection_refused_raises_unavailable(kind: str) -> None:
    backend = cluster_backend(kind, "http://127.0.0.1:9", 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(SearchUnavailable):
            await backend.search(QUERY)
        with pytest.raises(SearchUnavailable):
            await backend.get("a")
        with pytest.raises(SearchUnavailable):
            await backend.ping()
    finally:
        await backend.close()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", CLUSTERS)
async def test_cluster_search_when_server_silent_times_out(kind: str, silent_server: int) -> None:
    backend = cluster_backend(kind, f"http://127.0.0.1:{silent_server}", 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(SearchUnavailable):
            await backend.search(QUERY)
    finally:
        await backend.close()
    assert time.monotonic() - started < 3


async def test_tantivy_search_when_alias_missing_raises_unavailable(tmp_path: Path) -> None:
    backend = TantivyBackend(tmp_path, schema=SCHEMA, alias="none", timeout_seconds=1)
    with pytest.raises(SearchUnavailable, match="load data first"):
        await backend.search(QUERY)
    assert await backend.current_index() is None
    assert await backend.list_indices() == []
    await backend.close()


@pytest.mark.parametrize("kind", CLUSTERS)
async def test_readyz_when_cluster_down_returns_503(kind: str, tmp_path: Path) -> None:
    settings = ApiSettings.build(**{f"{kind}_url": "http://127.0.0.1:9"}, search_timeout_seconds=0.5)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/readyz")
            search = await client.get("/v1/search", params={"q": "nginx"})
    assert ready.status_code == 503
    assert ready.json()["dependency"] == "search"
    assert search.status_code == 503
    assert search.headers["content-type"] == "application/problem+json"


async def test_search_when_tantivy_index_not_loaded_returns_503(tmp_path: Path) -> None:
    app = create_app(ApiSettings.build(tantivy_data_dir=tmp_path / "empty"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/v1/search")
    assert response.status_code == 503


@pytest.mark.parametrize("kind", CLUSTERS)
async def test_cluster_search_when_alias_missing_raises_unavailable_not_rejected(kind: str, tmp_path: Path) -> None:
    """A missing alias is the deployment's state (load data first): unavailable, on the real engine."""
    backend = await make_backend(kind, SCHEMA, tmp_path)
    try:
        with pytest.raises(SearchUnavailable):
            await backend.search(QUERY)
        with pytest.raises(SearchUnavailable):
            await backend.get("a")
        with pytest.raises(SearchUnavailable, match="load data first"):
            await backend.ping()
    finally:
        await backend.close()
