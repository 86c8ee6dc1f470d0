"""GET /v1/search's parameters have one definition (SearchParams): the route and the fast path bind,
coerce and refuse every parameter alike, down to the bytes of the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from src.api.routes import search as search_routes
from src.api.search_params import SearchParams, bind_search_params
from src.main import create_app
from src.search.service import SearchRequest
from src.settings import ApiSettings
from tests.api.conftest import edge_chain, install_fake_backend

CASES: list[tuple[str, int]] = [
    ("", 200),
    ("q=web+server", 200),
    ("q=first&q=server", 200),
    ("q=", 200),
    ("q=%ff", 200),
    ("q=" + "x" * 65, 422),  # the settings allow 64 characters (the service's rule)
    ("filter=category:web", 200),
    ("filter=category%3Aweb&filter=tags:http", 200),
    ("filter=", 200),
    ("filter=stock:%5B1+TO+5%5D", 200),
    ("filter=nosuchfield:1", 422),
    ("filter=category", 422),
    ("facets=tags,category", 200),
    ("facets=nosuchfield", 422),
    ("sort=-stock", 200),
    ("sort=price", 200),
    ("sort=nosuchfield", 422),
    ("size=5", 200),
    ("size=0005", 200),
    ("size=100", 200),
    ("size=3&size=4", 200),
    ("size=5.0", 200),  # pydantic's lax integers: a whole float, a sign
    ("size=%2B5", 200),
    ("size=0", 422),
    ("size=101", 422),
    ("size=-1", 422),
    ("size=ten", 422),
    ("size=5.5", 422),
    ("size=", 422),
    ("cursor=not-a-cursor", 422),
    ("cursor=", 200),  # an empty cursor is the first page
    ("highlight=true", 200),
    ("highlight=1", 200),
    ("highlight=yes", 200),
    ("highlight=OFF", 200),
    ("highlight=maybe", 422),
    ("highlight=", 422),
    ("ranking_score_details=true", 200),
    ("ranking_score_details=no", 200),
    ("ranking_score_details=2", 422),
    ("size=0&highlight=maybe&ranking_score_details=x", 422),
    ("unknown=1&q=web", 200),
]
"""Raw query strings (already percent-encoded) and the status both paths answer them with."""

_PER_REQUEST = {"x-request-id"}


def _body(response: httpx.Response) -> object:
    """The body, without a page's took_ms (each answer states its own time)."""
    if response.status_code != 200:
        return response.content
    page = response.json()
    del page["took_ms"]
    return page


def _names(query: str) -> set[str]:
    return {name for name, _ in parse_qsl(query, keep_blank_values=True)}


def test_cases_when_listed_cover_every_parameter_valid_and_invalid() -> None:
    names = {field.alias or name for name, field in SearchParams.model_fields.items()}
    for status in (200, 422):
        covered = set().union(*(_names(query) for query, expected in CASES if expected == status))
        assert names <= covered, f"no {status} case for {sorted(names - covered)}: add rows to CASES"


@pytest.fixture
async def chains(settings: ApiSettings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, list[str]]]:
    """One started app (one cache) reached through its full edge and through its edge minus the fast
    path, and the paths that got through to Starlette's stack."""
    app = create_app(settings)
    reached: list[str] = []
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=edge_chain(app, settings, fast_path=fast, reached=reached)),
                base_url="http://test",
            )
            for fast in (True, False)
        ]
        async with clients[0] as fast, clients[1] as routed:
            yield fast, routed, reached


@pytest.mark.parametrize(("query", "status"), CASES)
async def test_search_when_both_paths_bind_a_query_they_answer_alike(
    chains: tuple[httpx.AsyncClient, httpx.AsyncClient, list[str]], query: str, status: int
) -> None:
    fast, routed, reached = chains
    by_route = await routed.get(f"/v1/search?{query}")
    assert reached == ["/v1/search"]
    by_fast_path = await fast.get(f"/v1/search?{query}")
    assert reached == ["/v1/search"], "the fast path let the route answer"
    assert (by_fast_path.status_code, by_route.status_code) == (status, status), by_route.text
    # A 200 is the route's stored entry (the same cache key), stating its own took_ms.
    assert _body(by_fast_path) == _body(by_route)
    if status == 200:
        assert (by_route.headers["x-cache"], by_fast_path.headers["x-cache"]) == ("MISS", "HIT")
        varying = _PER_REQUEST | {"x-cache", "content-length"}
    else:
        assert by_fast_path.json()["errors"]
        varying = _PER_REQUEST
    assert {k: v for k, v in by_fast_path.headers.items() if k not in varying} == {
        k: v for k, v in by_route.headers.items() if k not in varying
    }


@pytest.fixture
async def uncached_chains(settings: ApiSettings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """As `chains`, with the cache off: every search is computed afresh on both paths."""
    off = settings.replace(cache_enabled=False)
    app = create_app(off)
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        transports = [httpx.ASGITransport(app=edge_chain(app, off, fast_path=fast)) for fast in (True, False)]
        async with (
            httpx.AsyncClient(transport=transports[0], base_url="http://test") as fast,
            httpx.AsyncClient(transport=transports[1], base_url="http://test") as routed,
        ):
            yield fast, routed


def _page(response: httpx.Response) -> object:
    body = orjson.loads(response.content)
    if isinstance(body, dict):
        body.pop("took_ms", None)
    return body


@pytest.mark.parametrize(("query", "status"), CASES)
async def test_search_when_cache_is_off_both_paths_compute_the_same_answer(
    uncached_chains: tuple[httpx.AsyncClient, httpx.AsyncClient], query: str, status: int
) -> None:
    fast, routed = uncached_chains
    by_fast_path = await fast.get(f"/v1/search?{query}")
    by_route = await routed.get(f"/v1/search?{query}")
    assert (by_fast_path.status_code, by_route.status_code) == (status, status)
    assert _page(by_fast_path) == _page(by_route)
    varying = _PER_REQUEST | {"etag", "content-length"}  # took_ms is in the body
    assert {k: v for k, v in by_fast_path.headers.items() if k not in varying} == {
        k: v for k, v in by_route.headers.items() if k not in varying
    }


async def test_search_when_paging_with_a_cursor_both_paths_continue_alike(
    chains: tuple[httpx.AsyncClient, httpx.AsyncClient, list[str]],
) -> None:
    fast, routed, _ = chains
    first = await routed.get("/v1/search", params={"q": "server", "size": 1})
    cursor = first.json()["next_cursor"]
    assert cursor
    by_route = await routed.get("/v1/search", params={"q": "server", "size": 1, "cursor": cursor})
    by_fast_path = await fast.get("/v1/search", params={"q": "server", "size": 1, "cursor": cursor})
    assert (by_route.status_code, by_fast_path.headers["x-cache"]) == (200, "HIT")
    assert _body(by_fast_path) == _body(by_route) != _body(first)


def test_bind_search_params_when_all_parameters_builds_the_request() -> None:
    bound = bind_search_params(
        "q=web+server&filter=tags%3Ahttp&filter=category:web&facets=tags&sort=-stock&size=5&cursor=abc"
        "&highlight=true&ranking_score_details=on"
    )
    assert bound == SearchRequest(
        q="web server",
        filters=["tags:http", "category:web"],
        facets="tags",
        sort="-stock",
        size=5,
        cursor="abc",
        highlight=True,
        ranking_score_details=True,
    )


def test_bind_search_params_when_empty_uses_the_defaults() -> None:
    assert bind_search_params(b"") == SearchRequest()


def test_bind_search_params_when_scalar_repeated_takes_the_last_value() -> None:
    bound = bind_search_params("q=first&q=second&size=3&size=4&unknown=1")
    assert (bound.q, bound.size) == ("second", 4)


def test_bind_search_params_when_invalid_names_every_refused_parameter() -> None:
    with pytest.raises(RequestValidationError) as refused:
        bind_search_params("size=0&highlight=maybe&q=fine")
    assert [(error["loc"], error["type"]) for error in refused.value.errors()] == [
        (("query", "size"), "greater_than_equal"),
        (("query", "highlight"), "bool_parsing"),
    ]


def test_search_when_the_route_binds_its_query_it_uses_the_one_model() -> None:
    route = next(route for route in search_routes.router.routes if isinstance(route, APIRoute))
    assert route.path == "/v1/search"
    (parameter,) = route.dependant.query_params
    assert parameter.field_info.annotation is SearchParams
