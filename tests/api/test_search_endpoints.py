"""Every endpoint's smoke test, and every bad input as a 422 problem naming its parameter."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.resilience import CircuitBreaker
from src.search.backends.guarded import GuardedBackend
from tests.fakes.search_backend import FakeSearchBackend

PROBLEM = "application/problem+json"


async def test_search_when_misspelled_returns_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/search", params={"q": "ngnix", "size": 2, "facets": "category"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["hits"][0]["id"] == "nginx"
    assert body["hits"][0]["document"]["name"] == "nginx"
    assert "secret" not in body["hits"][0]["document"]
    assert body["total"]["exact"] is True
    assert body["facets"]["category"][0] == {"value": "web", "count": 1}
    assert body["next_cursor"] is None
    assert body["took_ms"] >= 0


async def test_search_when_paging_follows_next_cursor(client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/search", params={"size": 5})).json()
    assert first["next_cursor"]
    second = (await client.get("/v1/search", params={"size": 5, "cursor": first["next_cursor"]})).json()
    ids = [hit["id"] for hit in first["hits"] + second["hits"]]
    assert len(set(ids)) == 10
    assert ids == sorted(ids)


async def test_search_when_filters_repeat_and_sort(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/search", params=[("filter", "category:web"), ("filter", "category:net"), ("sort", "-stock")]
    )
    assert [hit["id"] for hit in response.json()["hits"]] == ["curl", "wget", "lighttpd", "nginx", "apache2"]


async def test_search_when_highlight_requested(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/search", params={"q": "multiplexer", "highlight": "true"})).json()
    assert body["hits"][0]["highlights"]["title"] == ["Terminal <mark>multiplexer</mark>"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"size": "ten"}, "size"),
        ({"q": "x" * 65}, "q"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "eyJ2IjoxfQ.AAAA"}, "cursor"),
        ({"filter": "title:web"}, "filter"),
        ({"filter": "nosuchfield:1"}, "filter"),
        ({"filter": "stock:[1 TO"}, "filter"),
        ({"filter": "stock:[a TO 3]"}, "filter"),
        ({"filter": "stock:[9 TO 3]"}, "filter"),
        ({"filter": "category:[a TO b]"}, "filter"),
        ({"filter": "nocolon"}, "filter"),
        ({"filter": "released:yesterday"}, "filter"),
        ({"facets": "title"}, "facets"),
        ({"facets": "category,nope"}, "facets"),
        ({"sort": "body"}, "sort"),
        ({"sort": "-tags"}, "sort"),
        ({"highlight": "maybe"}, "highlight"),
    ],
)
async def test_search_when_parameter_invalid_returns_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, object], parameter: str
) -> None:
    response = await client.get("/v1/search", params=params)  # type: ignore[arg-type]
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422
    assert body["title"] == "Unprocessable Content" or body["title"] == "Unprocessable Entity"
    assert [error["parameter"] for error in body["errors"]] == [parameter]
    assert parameter in body["detail"]
    assert "Traceback" not in response.text


async def test_search_when_cursor_from_other_query_returns_422(client: httpx.AsyncClient) -> None:
    cursor = (await client.get("/v1/search", params={"size": 2})).json()["next_cursor"]
    response = await client.get("/v1/search", params={"size": 2, "q": "server", "cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "cursor"


async def test_search_when_cursor_tampered_returns_422(client: httpx.AsyncClient) -> None:
    cursor = (await client.get("/v1/search", params={"size": 2})).json()["next_cursor"]
    body, signature = cursor.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature
    response = await client.get("/v1/search", params={"size": 2, "cursor": tampered})
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "cursor"


async def test_search_when_backend_down_returns_503_problem(client: httpx.AsyncClient, app: FastAPI) -> None:
    backend = app.state.services.backend
    assert isinstance(backend, FakeSearchBackend)
    backend.down = True
    response = await client.get("/v1/search", params={"q": "nginx"})
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "1"
    assert response.json()["dependency"] == "search"


async def test_read_document_when_present_returns_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/documents/creme-brulee")
    assert response.status_code == 200
    assert response.json()["title"] == "Crème brûlée recipe manager"
    assert "secret" not in response.json()


async def test_read_document_when_absent_returns_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/documents/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "no document with id 'nope'"


async def test_read_document_when_backend_down_returns_503(client: httpx.AsyncClient, app: FastAPI) -> None:
    app.state.services.backend.down = True
    assert (await client.get("/v1/documents/nginx")).status_code == 503


async def test_healthz_when_alive_returns_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_search_when_query_is_longer_than_the_word_limit_searches_the_first_words(
    client: httpx.AsyncClient,
) -> None:
    letters = list("bcdefghijklmnopqrstu")  # 22 words in the app's 64 characters (no "a": a word of nginx's)
    response = await client.get("/v1/search", params={"q": " ".join(["nginx", "server", *letters])})
    assert response.status_code == 200
    body = response.json()
    # p-u are past the 16-word limit; b-o were searched, matched nothing and were dropped from the end
    assert body["ignored_words"] == letters
    assert body["hits"][0]["id"] == "nginx"


async def test_readyz_when_backend_up_returns_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.json() == {"status": "ready", "checks": {"search": "ok", "cache": "ok"}}


async def test_readyz_when_backend_down_returns_503_naming_it(client: httpx.AsyncClient, app: FastAPI) -> None:
    app.state.services.backend.down = True
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["dependency"] == "search"


async def test_readyz_when_engine_is_warming_returns_503_until_it_is_warm(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    services = app.state.services
    warm = asyncio.Event()
    breaker = CircuitBreaker(name="test", failure_threshold=1, reset_seconds=60)
    guarded = GuardedBackend(services.backend, breaker, warm=warm)
    app.state.services = dataclasses.replace(services, backend=guarded, warm=warm)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["dependency"] == "search"
    search = await client.get("/v1/search", params={"q": "nginx"})
    assert search.status_code == 503
    assert "retry-after" in search.headers
    assert breaker.state == "closed"  # a cold engine never opens the circuit
    warm.set()
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v1/search", params={"q": "nginx"})).status_code == 200


async def test_unknown_route_returns_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_unexpected_error_handler_when_called_hides_details(app: FastAPI) -> None:
    """The last-resort handler (never reached by a request in this suite) gives a bare 500 problem."""
    handler = app.exception_handlers[Exception]
    request = Request({"type": "http", "method": "GET", "path": "/v1/search", "headers": [], "query_string": b""})
    response = handler(request, RuntimeError("secret internals"))
    if not isinstance(response, Response):
        response = await response
    assert response.status_code == 500
    assert response.media_type == PROBLEM
    assert b"secret internals" not in response.body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    q=st.text(max_size=80),
    filters=st.lists(st.text(max_size=30), max_size=3),
    facets=st.text(max_size=20),
    sort=st.text(max_size=15),
    size=st.text(max_size=4),
    cursor=st.text(max_size=40),
)
async def test_search_when_any_input_never_returns_500(
    client: httpx.AsyncClient, q: str, filters: list[str], facets: str, sort: str, size: str, cursor: str
) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("q", q),
        ("facets", facets),
        ("sort", sort),
        ("size", size),
        ("cursor", cursor),
    ]
    params += [("filter", item) for item in filters]
    response = await client.get("/v1/search", params=params)
    assert response.status_code in (200, 422), response.text


async def test_openapi_documents_search_models(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "SearchPage" in spec["components"]["schemas"]
    parameters = {p["name"] for p in spec["paths"]["/v1/search"]["get"]["parameters"]}
    assert parameters == {"q", "filter", "facets", "sort", "size", "cursor", "highlight", "ranking_score_details"}


async def test_read_schema_when_requested_is_documented_and_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "PublicSchema" in spec["components"]["schemas"]
    assert "/v1/schema" in spec["paths"]
    response = await client.get("/v1/schema")
    assert response.status_code == 200
    assert response.json()["sortable"] == ["name", "category", "price", "stock", "released"]
