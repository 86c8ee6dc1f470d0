"""The edge of the app: HEAD, request size limits, ids and forged cursors that never reach the backend,
production secrets, and an OpenAPI document that says what the service sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import jwt
import orjson
import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr
from starlette.types import ASGIApp, Message

from src.api.edge import HeadMiddleware, RequestLimitsMiddleware
from src.api.fast_hits import FastHitMiddleware
from src.api.outermost import ObservabilityMiddleware
from src.api.ratelimit import RateLimitMiddleware
from src.main import create_app, edge_layers
from src.settings import DEV_CURSOR_SECRET, ApiSettings, UnsafeSettings
from tests.api.conftest import install_fake_backend, started_client
from tests.fakes.search_backend import FakeSearchBackend

PROBLEM = "application/problem+json"


@pytest.mark.parametrize("path", ["/v1/search?q=server&size=3", "/v1/documents/nginx", "/healthz", "/readyz"])
async def test_head_when_get_is_served_sends_same_headers_without_body(
    app: FastAPI, client: httpx.AsyncClient, path: str
) -> None:
    app.state.services.aside.timer = lambda: 0.0  # every hit states 0 ms: its body's length is the same each time
    await client.get(path)  # the search and the document are now cached
    got = await client.get(path)  # a fresh hit (the fast path answers)
    head = await client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control", "surrogate-key"):
        assert head.headers.get(name) == got.headers.get(name), name


async def test_head_when_document_absent_is_404_without_body(client: httpx.AsyncClient) -> None:
    head = await client.head("/v1/documents/no-such-document")
    assert (head.status_code, head.content) == (404, b"")
    assert head.headers["content-type"] == PROBLEM


async def test_request_when_headers_are_huge_returns_431_problem(client: httpx.AsyncClient, app: FastAPI) -> None:
    backend: FakeSearchBackend = app.state.services.backend
    backend.down = True  # nothing behind the limit may run
    response = await client.get("/v1/search", headers={"x-padding": "a" * 1_000_000})
    assert response.status_code == 431
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == 431


async def test_request_when_target_is_too_long_returns_414_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/search", params={"q": "x" * 10_000})
    assert response.status_code == 414
    assert response.headers["content-type"] == PROBLEM
    assert "x" * 100 not in response.text  # the oversized target is not echoed back


@pytest.mark.parametrize("raw_id", ["%2E%2E", "%2E", "..", "a%00b", "tab%09here", "%7F"])
async def test_read_document_when_id_can_never_exist_returns_422_without_backend_call(
    client: httpx.AsyncClient, app: FastAPI, raw_id: str
) -> None:
    backend: FakeSearchBackend = app.state.services.backend
    backend.down = True  # a backend call would be a 503
    response = await client.get(f"/v1/documents/{raw_id}")
    if raw_id == "..":
        assert response.status_code == 404  # the client itself resolves the dot segment: no such route
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [error["parameter"] for error in response.json()["errors"]] == ["doc_id"]


async def test_read_document_when_id_is_three_dots_is_an_ordinary_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/documents/...")).status_code == 404


def _forge(body: dict[str, object], secret: str) -> str:
    raw = orjson.dumps(body)
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(raw)}.{b64(signature)}"


async def test_search_when_cursor_forged_with_the_signing_key_returns_422(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    genuine = (await client.get("/v1/search", params={"size": 2, "sort": "stock"})).json()["next_cursor"]
    body = orjson.loads(base64.urlsafe_b64decode(genuine.split(".")[0] + "=="))
    backend: FakeSearchBackend = app.state.services.backend
    backend.down = True  # a forged cursor must fail before any backend call (which would now be a 503)
    for after in (["not a number", "id"], [1, 2, 3], [], [1, {"x": 1}]):
        forged = _forge({**body, "a": after}, "api-test-secret")
        response = await client.get("/v1/search", params={"size": 2, "sort": "stock", "cursor": forged})
        assert response.status_code == 422, after
        assert response.json()["errors"][0]["parameter"] == "cursor"


async def test_search_when_filter_is_empty_ignores_it(client: httpx.AsyncClient) -> None:
    plain = await client.get("/v1/search", params={"q": "server"})
    empty = await client.get("/v1/search", params=[("q", "server"), ("filter", ""), ("filter", " ")])
    assert empty.status_code == 200
    assert empty.json()["hits"] == plain.json()["hits"]


async def test_openapi_when_read_documents_every_error_as_problem_json(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    errors = [
        (path, code, response)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for code, response in operation["responses"].items()
        if code[0] in "45"
    ]
    assert {code for path, code, _ in errors if path == "/v1/search"} >= {"400", "414", "422", "431", "503"}
    for path, code, response in errors:
        assert list(response["content"]) == [PROBLEM], (path, code)
        assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    q = next(p for p in document["paths"]["/v1/search"]["get"]["parameters"] if p["name"] == "q")
    assert q["schema"]["maxLength"] == 64  # the test settings' SEARCH_MAX_QUERY_CHARS


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({}, "CURSOR_SECRET"),
        ({"cursor_secret": "short"}, "CURSOR_SECRET"),
        ({"cursor_secrets": f"{'k' * 40},{DEV_CURSOR_SECRET}"}, "CURSOR_SECRETS"),
    ],
)
async def test_create_app_when_production_has_unsafe_secret_refuses_to_start(
    changes: dict[str, str], named: str
) -> None:
    app = create_app(ApiSettings.build(app_env="production", **changes))
    with pytest.raises(UnsafeSettings, match=named):
        async with app.router.lifespan_context(app):
            pass


async def test_create_app_when_production_has_strong_secret_starts(settings: ApiSettings) -> None:
    strong = settings.replace(app_env="production", cursor_secret="s" * 32, metrics_public=True)
    app = create_app(strong)
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/v1/search", params={"q": "vim"})).status_code == 200


async def test_search_when_secret_rotates_keeps_cursors_in_flight(settings: ApiSettings) -> None:
    async def first_page_cursor(keys: ApiSettings) -> str:
        app = create_app(keys)
        async with app.router.lifespan_context(app):
            await install_fake_backend(app)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                return str((await client.get("/v1/search", params={"size": 2})).json()["next_cursor"])

    async def next_page_status(keys: ApiSettings, cursor: str) -> int:
        app = create_app(keys)
        async with app.router.lifespan_context(app):
            await install_fake_backend(app)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                return (await client.get("/v1/search", params={"size": 2, "cursor": cursor})).status_code

    old_cursor = await first_page_cursor(settings.replace(cursor_secrets=_secret("old-key")))
    rotated = settings.replace(cursor_secrets=_secret("new-key,old-key"))
    assert await next_page_status(rotated, old_cursor) == 200
    retired = settings.replace(cursor_secrets=_secret("new-key"))
    assert await next_page_status(retired, old_cursor) == 422


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)


# --- request bodies ------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request driven straight through the ASGI app, and what it took and answered."""

    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    reads: int = 0
    """How many times the app asked for body bytes."""

    def problem(self) -> dict[str, object]:
        assert self.headers[b"content-type"] == PROBLEM.encode()
        parsed: dict[str, object] = orjson.loads(self.body)
        return parsed


async def exchange(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]
) -> Exchange:
    """Send `chunks` as the request body (an endless iterator is an endless upload) and collect the answer."""
    done = Exchange()

    async def receive() -> Message:
        done.reads += 1
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            done.status = message["status"]
            done.headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            done.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("203.0.113.9", 5000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    return done


ENDLESS = itertools.repeat(b"x" * 65536)
"""64 KiB chunks for ever: an upload that would only stop when the server stops reading it."""
PURGE = "/v1/admin/cache/purge"
JSON = (b"content-type", b"application/json")


@pytest.mark.parametrize("method", ["POST", "GET", "HEAD"])
async def test_request_when_content_length_is_over_the_limit_returns_413_without_reading(
    app: FastAPI, method: str
) -> None:
    declared = [(b"content-length", b"157286400"), JSON]  # 150 MB announced
    answered = await exchange(app, method, PURGE if method == "POST" else "/v1/search", declared, ENDLESS)
    assert answered.status == 413
    assert answered.reads == 0
    assert answered.headers[b"connection"] == b"close"  # the server reads none of the rest
    assert answered.headers[b"x-content-type-options"] == b"nosniff"
    if method != "HEAD":
        assert answered.problem()["detail"] == "the request body is over 1048576 bytes"


DEV_KEY = "development-only-hmac-secret-of-32-bytes!"


@pytest.fixture
async def admin(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, tuple[bytes, bytes]]]:
    """The app with a development token key, and an Authorization header granting the purge."""
    configured = settings.replace(auth_static_key=SecretStr(DEV_KEY), auth_algorithms="HS256")
    minted = jwt.encode({"exp": int(time.time()) + 60, "scope": "search:cache:purge"}, DEV_KEY, algorithm="HS256")
    async with started_client(configured) as (app, _):
        yield app, (b"authorization", f"Bearer {minted}".encode())


async def test_request_when_a_chunked_body_passes_the_limit_returns_413_and_stops_reading(
    admin: tuple[FastAPI, tuple[bytes, bytes]],
) -> None:
    app, bearer = admin
    refused = await exchange(app, "POST", PURGE, [(b"transfer-encoding", b"chunked"), JSON, bearer], ENDLESS)
    assert refused.status == 413
    assert refused.reads == 1_048_576 // 65536 + 1  # the chunk that passed the limit was the last one read
    assert refused.headers[b"connection"] == b"close"
    assert refused.problem()["detail"] == "the request body is over 1048576 bytes"  # not the route's own answer


async def test_request_when_a_chunked_body_is_under_the_limit_reaches_the_route(
    admin: tuple[FastAPI, tuple[bytes, bytes]],
) -> None:
    app, bearer = admin
    headers = [(b"transfer-encoding", b"chunked"), JSON, bearer]
    purged = await exchange(app, "POST", PURGE, headers, iter([b'{"ids": ', b'["a"]}']))
    assert purged.status == 200, purged.body
    assert orjson.loads(purged.body)["purged"] == "documents"
    assert purged.reads == 3  # two chunks, then the end


@pytest.mark.parametrize(
    "authorization", [pytest.param(None, id="no-token"), pytest.param(b"Bearer not.a.jwt", id="bad-token")]
)
async def test_purge_cache_when_unauthenticated_is_401_without_reading_the_body(
    app: FastAPI, authorization: bytes | None
) -> None:
    headers = [(b"transfer-encoding", b"chunked"), JSON]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    refused = await exchange(app, "POST", PURGE, headers, ENDLESS)
    assert refused.status == 401
    assert refused.reads == 0
    assert refused.headers[b"www-authenticate"].startswith(b'Bearer realm="search-api"')


async def test_purge_cache_when_unauthenticated_with_a_malformed_body_is_401_not_422(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.post(PURGE, content=b'{"all": tru', headers={"content-type": "application/json"})
    assert refused.status_code == 401
    assert refused.json()["type"] == "/problems/unauthorized"


async def test_openapi_when_read_still_describes_the_purge_body_and_the_413(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    purge = document["paths"][PURGE]["post"]
    assert purge["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PurgeRequest"
    }
    assert purge["security"] == [{"bearer": ["search:cache:purge"]}]
    for path in (PURGE, "/v1/search"):
        operation = next(iter(document["paths"][path].values()))
        assert operation["responses"]["413"]["content"] == {
            PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }


# --- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443", "127.0.0.1"])
async def test_redirect_when_a_trailing_slash_is_dropped_never_names_the_request_host(
    client: httpx.AsyncClient, host: str
) -> None:
    redirected = await client.get("/v1/search/", params={"q": "vim"}, headers={"host": host})
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "/v1/search?q=vim"
    assert "evil" not in str(redirected.headers)
    assert redirected.headers["content-security-policy"]


def _layer_types(edge: object) -> list[object]:
    """The classes of an edge's middleware, outermost first (each holds the next as `app`)."""
    found: list[object] = []
    while hasattr(edge, "app"):
        found.append(type(edge))
        edge = edge.app
    return found


def test_edge_layers_when_cors_is_on_only_adds_cors_behind_observability(settings: ApiSettings) -> None:
    cors_on = settings.replace(cors_allow_origins="https://a.example")
    without: list[object] = [layer.cls for layer in edge_layers(settings, None)]
    with_cors: list[object] = [layer.cls for layer in edge_layers(cors_on, None)]
    assert without == [
        ObservabilityMiddleware,
        RateLimitMiddleware,
        RequestLimitsMiddleware,
        HeadMiddleware,
        FastHitMiddleware,
    ]
    assert with_cors == [without[0], CORSMiddleware, *without[1:]]


@pytest.mark.parametrize("origins", ["", "https://a.example"])
def test_create_app_when_built_chains_the_edge_layers_in_their_order(settings: ApiSettings, origins: str) -> None:
    config = settings.replace(cors_allow_origins=origins)
    app = create_app(config)
    assert _layer_types(app.edge) == [layer.cls for layer in edge_layers(config, None)]
    assert app.user_middleware == []  # nothing inside Starlette's stack: its error middleware, then the routes


async def test_head_when_search_is_cached_is_a_fast_hit(client: httpx.AsyncClient) -> None:
    await client.get("/v1/search", params={"q": "server"})
    head = await client.head("/v1/search", params={"q": "server"})
    assert (head.status_code, head.headers["x-cache"], head.content) == (200, "HIT", b"")


async def test_cors_when_the_app_fails_the_500_carries_cors_headers(settings: ApiSettings) -> None:
    config = settings.replace(cors_allow_origins="https://app.example")
    app = create_app(config)
    async with app.router.lifespan_context(app):
        fake = await install_fake_backend(app)

        async def broken(query: object) -> None:
            raise RuntimeError("a bug")

        fake.search = broken  # type: ignore[method-assign,assignment]
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            failed = await http.get("/v1/search", params={"q": "x"}, headers={"origin": "https://app.example"})
    assert failed.status_code == 500
    assert failed.headers["access-control-allow-origin"] == "https://app.example"
    assert failed.headers["content-type"] == PROBLEM
