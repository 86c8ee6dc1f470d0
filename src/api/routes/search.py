"""GET /v1/search, GET /v1/documents/{id} and GET /v1/schema: HTTP only; the service does the work (through the
cache)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from src.api.deps import ServicesDep
from src.api.http_cache import HttpCachePolicy, render
from src.api.search_params import SearchParams
from src.cache.models import Served
from src.search import service
from src.search.documents import ID_MAX_CHARS, ID_PATTERN
from src.search.models import Document, Problem, PublicSchema, SearchPage

router = APIRouter(prefix="/v1", tags=["search"])

_CACHED: dict[int | str, dict[str, object]] = {
    304: {"description": "Not modified: the If-None-Match ETag is current."},
    400: {"model": Problem, "description": "The search engine refused this request."},
    503: {"model": Problem, "description": "The search backend is unavailable and nothing is cached."},
}
_CACHE_HEADERS = (
    "Responses carry Cache-Control, a strong ETag (304 on If-None-Match), Vary, Surrogate-Key, "
    "Cache-Tag and X-Cache (HIT, MISS or STALE)."
)


def cached_response(served: Served, request: Request, policy: HttpCachePolicy) -> Response:
    """Wrap what the pure HTTP helper decided; a hit's stored bytes go out untouched."""
    rendered = render(
        served,
        if_none_match=request.headers.get("if-none-match"),
        accept_encoding=request.headers.get("accept-encoding"),
        policy=policy,
    )
    return Response(content=rendered.body, status_code=rendered.status, headers=rendered.headers)


@router.get(
    "/search",
    summary="Typo-tolerant search",
    description=_CACHE_HEADERS,
    response_model=SearchPage,
    responses={**_CACHED, 422: {"model": Problem, "description": "A parameter is invalid; `errors` names it."}},
)
async def search(request: Request, services: ServicesDep, params: Annotated[SearchParams, Query()]) -> Response:
    """Search the index; page with `next_cursor`."""
    served = await service.search_cached(
        params.to_request(),
        backend=services.backend,
        schema=services.schema,
        options=services.options,
        aside=services.aside,
    )
    return cached_response(served, request, services.http_cache_policy)


@router.get(
    "/documents/{doc_id}",
    summary="Fetch one document",
    description=_CACHE_HEADERS,
    response_model=Document,
    responses={**_CACHED, 404: {"model": Problem, "description": "No document with this id (cached briefly)."}},
)
async def read_document(
    request: Request,
    services: ServicesDep,
    doc_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=ID_MAX_CHARS,
            pattern=ID_PATTERN,
            description="The document id: no control characters, not `.` or `..` (422 otherwise).",
        ),
    ],
) -> Response:
    """Return one indexed document by id."""
    served = await service.document_cached(
        doc_id, backend=services.backend, schema=services.schema, aside=services.aside
    )
    return cached_response(served, request, services.http_cache_policy)


@router.get(
    "/schema",
    summary="The public index schema",
    description="Searchable, filterable, facetable and sortable fields with their types, the ranking rules, "
    "the synonyms in force and the request limits. " + _CACHE_HEADERS,
    response_model=PublicSchema,
    responses={
        304: _CACHED[304],
        503: {"model": Problem, "description": "Too many engine calls in flight in this process (admission control)."},
    },
)
async def read_schema(request: Request, services: ServicesDep) -> Response:
    """Describe what GET /v1/search accepts, so clients need no hard-coded field lists."""
    served = await service.schema_cached(schema=services.schema, options=services.options, aside=services.aside)
    return cached_response(served, request, services.http_cache_policy)
