"""The edge of the app: HEAD, request size limits, ids and forged cursors that never reach the backend,
production secrets, and an OpenAPI document that says what the service sends."""

from __future__ import annotations

import base64
import hashlib
import hmac

import httpx
import orjson
import pytest
from fastapi import FastAPI

from src.main import create_app
from src.settings import DEV_CURSOR_SECRET, Settings, UnsafeSettings
from tests.api.conftest import install_fake_backend
from tests.fakes.search_backend import FakeSearchBackend

PROBLEM = "application/problem+json"


@pytest.mark.parametrize("path", ["/v1/search?q=server&size=3", "/v1/documents/nginx", "/healthz", "/readyz"])
async def test_head_when_get_is_served_sends_same_headers_without_body(client: httpx.AsyncClient, path: str) -> None:
    got = await client.get(path)
    await client.get(path)  # the search and the document are now fresh hits (the fast path answers)
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
    app = create_app(Settings(app_env="production", **changes))  # type: ignore[arg-type]
    with pytest.raises(UnsafeSettings, match=named):
        async with app.router.lifespan_context(app):
            pass


async def test_create_app_when_production_has_strong_secret_starts(settings: Settings) -> None:
    strong = settings.model_copy(update={"app_env": "production"})
    strong = Settings(**{**strong.model_dump(), "cursor_secret": "s" * 32, "metrics_public": True})
    app = create_app(strong)
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/v1/search", params={"q": "vim"})).status_code == 200


async def test_search_when_secret_rotates_keeps_cursors_in_flight(settings: Settings) -> None:
    async def first_page_cursor(keys: Settings) -> str:
        app = create_app(keys)
        async with app.router.lifespan_context(app):
            await install_fake_backend(app)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                return str((await client.get("/v1/search", params={"size": 2})).json()["next_cursor"])

    async def next_page_status(keys: Settings, cursor: str) -> int:
        app = create_app(keys)
        async with app.router.lifespan_context(app):
            await install_fake_backend(app)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                return (await client.get("/v1/search", params={"size": 2, "cursor": cursor})).status_code

    old_cursor = await first_page_cursor(settings.model_copy(update={"cursor_secrets": _secret("old-key")}))
    rotated = settings.model_copy(update={"cursor_secrets": _secret("new-key,old-key")})
    assert await next_page_status(rotated, old_cursor) == 200
    retired = settings.model_copy(update={"cursor_secrets": _secret("new-key")})
    assert await next_page_status(retired, old_cursor) == 422


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)
