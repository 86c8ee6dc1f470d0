"""An app wired to the in-memory fake backend and the contract catalogue, through the real lifespan."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from src.api.deps import Services
from src.api.fast_hits import FastHitMiddleware
from src.main import create_app, edge_layers, wrap
from src.settings import ApiSettings
from tests.conftest import load
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import DOCS, SCHEMA


def schema_file(tmp_path: Path) -> Path:
    """The catalogue schema written to a file, as production reads it."""
    path = tmp_path / "schema.json"
    fields = {
        spec.name: {
            "type": spec.type,
            "searchable": spec.searchable,
            "boost": spec.boost,
            "filterable": spec.filterable,
            "facetable": spec.facetable,
            "sortable": spec.sortable,
            "returned": spec.returned,
            "multi": spec.multi,
        }
        for spec in SCHEMA.fields
    }
    synonyms = {"one_way": {word: list(found) for word, found in SCHEMA.synonyms}}
    path.write_bytes(
        orjson.dumps({"name": SCHEMA.name, "version": SCHEMA.version, "fields": fields, "synonyms": synonyms})
    )
    return path


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    return ApiSettings.build(
        index_schema_path=schema_file(tmp_path),
        tantivy_data_dir=tmp_path / "tantivy",
        cursor_secret="api-test-secret",
        search_max_query_chars=64,
    )


async def install_fake_backend(app: FastAPI) -> FakeSearchBackend:
    """Swap the started app's backend for the in-memory fake holding the catalogue."""
    services: Services = app.state.services
    fake = FakeSearchBackend(schema=services.schema)
    await load(fake, DOCS)
    await services.backend.close()
    app.state.services = dataclasses.replace(services, backend=fake, warm=None)  # in memory: nothing to warm
    return fake


@asynccontextmanager
async def started_client(
    settings: ApiSettings, client: tuple[str, int] = ("203.0.113.7", 5000)
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app started through its lifespan with the fake backend, and a client calling it from `client`."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await install_fake_backend(application)
        transport = httpx.ASGITransport(app=application, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield application, http


def edge_chain(
    app: FastAPI, settings: ApiSettings, *, fast_path: bool = True, reached: list[str] | None = None
) -> ASGIApp:
    """`app` behind its edge as create_app builds it from `settings`, or without the fast path (every request
    reaches the routes, bound by FastAPI); `reached` collects the paths that got through to Starlette's stack."""
    fast: object = FastHitMiddleware
    layers = [layer for layer in edge_layers(settings, None) if fast_path or layer.cls is not fast]
    starlette = functools.partial(FastAPI.__call__, app)

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        if reached is not None:
            reached.append(scope["path"])
        await starlette(scope, receive, send)

    edge = wrap(inner, layers)

    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # as SearchApp.__call__ does before its edge
        await edge(scope, receive, send)

    return call


@pytest.fixture
async def app(settings: ApiSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await install_fake_backend(application)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
