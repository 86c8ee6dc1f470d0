"""The query parameters of GET /v1/search, defined once for the route and the fast path.

`SearchParams` is the one definition of their names, types, defaults, limits and descriptions. The
route declares `params: Annotated[SearchParams, Query()]`, so FastAPI binds, validates and documents
them from it (OpenAPI lists each field as a query parameter). The fast path (src/api/fast_hits.py)
binds a raw query string with `bind_search_params`, which validates with the same model, so both
accept the same inputs, build the same `SearchRequest` and refuse the same inputs with the same
errors (a `RequestValidationError` answered by the app's one handler: a 422 problem naming the field).

What `bind_search_params` does besides validating is how FastAPI reads a query string into a model,
worked out from the model's fields, not per parameter: Starlette's `QueryParams` parses it (as
`Request.query_params` does), a list field takes every value of its name, any other field the last
one, and an absent name is left to the field's default. tests/api/test_search_params.py runs a table
of valid and invalid values of every field through both paths and compares the whole responses.
"""

from __future__ import annotations

from typing import Any, get_origin

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import QueryParams

from src.search.public_schema import MAX_PAGE_SIZE
from src.search.service import SearchRequest


class SearchParams(BaseModel):
    """What GET /v1/search accepts; other query parameters are ignored (as FastAPI ignores them)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    q: str = Field(
        "",
        description='Words (typo tolerant, the last one also as a prefix), "exact phrases", '
        "-excluded words. Empty matches everything.",
    )
    filter_: list[str] = Field(
        [],  # pydantic copies a mutable default per instance; a literal default shows in OpenAPI
        alias="filter",
        description="Repeatable `field:value` (values of one field are OR-ed) or `field:[a TO b]` "
        "(`{a TO b}` exclusive, `*` open) on numeric/date fields. An empty value is ignored.",
    )
    facets: str | None = Field(None, description="Comma-separated facetable fields to count.")
    sort: str | None = Field(None, description="`field` ascending or `-field` descending; default relevance.")
    size: int | None = Field(
        None, ge=1, le=MAX_PAGE_SIZE, description="Hits per page (1-100); default SEARCH_DEFAULT_SIZE."
    )
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    highlight: bool = Field(False, description="Return matched fragments per searchable field.")
    ranking_score_details: bool = Field(
        False, description="Add to each hit the value of every ranking rule (which rule placed it where)."
    )

    def to_request(self) -> SearchRequest:
        """The service's request (the raw parameters; the service validates them against the schema)."""
        return SearchRequest(
            q=self.q,
            filters=list(self.filter_),
            facets=self.facets,
            sort=self.sort,
            size=self.size,
            cursor=self.cursor,
            highlight=self.highlight,
            ranking_score_details=self.ranking_score_details,
        )


QUERY_LOCATION = "query"
"""The first part of a validation error's `loc` for a query parameter, as FastAPI writes it."""

_FIELDS: tuple[tuple[str, bool], ...] = tuple(
    (field.alias or name, get_origin(field.annotation) is list) for name, field in SearchParams.model_fields.items()
)
"""Each field's query parameter name, and whether it takes every value of that name (a list field)."""


def bind_search_params(query_string: bytes | str) -> SearchRequest:
    """The request the route would bind from this raw query string (pure); RequestValidationError with
    the errors the route would report (`loc` `("query", name)`) when it would refuse it."""
    params = QueryParams(query_string)
    given: dict[str, Any] = {}
    for name, every_value in _FIELDS:
        if every_value:
            values = params.getlist(name)
            if values:
                given[name] = values
        elif name in params:
            given[name] = params[name]  # the last value, as Starlette's QueryParams and FastAPI take it
    try:
        return SearchParams.model_validate(given).to_request()
    except ValidationError as err:
        errors = [{**error, "loc": (QUERY_LOCATION, *error["loc"])} for error in err.errors(include_url=False)]
        raise RequestValidationError(errors) from None
