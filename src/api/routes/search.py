"""GET /v1/search and GET /v1/documents/{id}: HTTP only, the service does the work."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Response

from src.api.deps import IndexSchemaDep, SearchBackendDep, SearchOptionsDep
from src.api.problems import DocumentNotFound
from src.search import service
from src.search.models import Document, Problem, SearchPage

router = APIRouter(prefix="/v1", tags=["search"])

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": Problem, "description": "A parameter is invalid; `errors` names it."},
    503: {"model": Problem, "description": "The search backend is unavailable or timed out."},
}


def json_response(payload: object) -> Response:
    """Encode once with orjson; the route's response_model documents the shape."""
    return Response(content=orjson.dumps(payload), media_type="application/json")


@router.get("/search", summary="Typo-tolerant search", response_model=SearchPage, responses=_ERRORS)
async def search(
    backend: SearchBackendDep,
    schema: IndexSchemaDep,
    options: SearchOptionsDep,
    q: Annotated[
        str,
        Query(
            description='Words (typo tolerant, the last one also as a prefix), "exact phrases", '
            "-excluded words. Empty matches everything."
        ),
    ] = "",
    filter_: Annotated[
        list[str],
        Query(
            alias="filter",
            description="Repeatable `field:value` (values of one field are OR-ed) or `field:[a TO b]` "
            "(`{a TO b}` exclusive, `*` open) on numeric/date fields.",
        ),
    ] = [],  # noqa: B006 - FastAPI copies query defaults per request
    facets: Annotated[str | None, Query(description="Comma-separated facetable fields to count.")] = None,
    sort: Annotated[
        str | None, Query(description="`field` ascending or `-field` descending; default relevance.")
    ] = None,
    size: Annotated[
        int | None, Query(ge=1, le=100, description="Hits per page (1-100); default SEARCH_DEFAULT_SIZE.")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    highlight: Annotated[bool, Query(description="Return matched fragments per searchable field.")] = False,
) -> Response:
    """Search the index; page with `next_cursor`."""
    request = service.SearchRequest(
        q=q, filters=filter_, facets=facets, sort=sort, size=size, cursor=cursor, highlight=highlight
    )
    page = await service.search_documents(request, backend=backend, schema=schema, options=options)
    return json_response(page)


@router.get(
    "/documents/{doc_id}",
    summary="Fetch one document",
    response_model=Document,
    responses={404: {"model": Problem, "description": "No document with this id."}, 503: _ERRORS[503]},
)
async def read_document(
    backend: SearchBackendDep,
    schema: IndexSchemaDep,
    doc_id: Annotated[str, Path(min_length=1, max_length=512, description="The document id.")],
) -> Response:
    """Return one indexed document by id."""
    found = await service.get_document(doc_id, backend=backend, schema=schema)
    if found is None:
        raise DocumentNotFound(doc_id)
    return json_response(found)
