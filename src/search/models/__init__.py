"""Payloads of the search module: JSON values, documents and the GET /v1/search response."""

from __future__ import annotations

from typing import NotRequired, TypedDict

type JSONScalar = str | int | float | bool | None
type JSONValue = JSONScalar | list[JSONValue] | dict[str, JSONValue]
type Document = dict[str, JSONValue]
"""A document as stored in the source collection and returned by the API (always has an `id`)."""


class SearchTotal(TypedDict):
    """How many documents matched the query."""

    value: int
    """Number of matching documents, or a lower bound of it when `exact` is false."""
    exact: bool
    """True when `value` is the exact count; false when counting stopped at the configured bound."""


class FacetBucket(TypedDict):
    """One value of a facet and how many matching documents carry it."""

    value: JSONScalar
    """The field value (a string for keyword fields, a number for numeric ones)."""
    count: int
    """Number of matching documents with this value."""


class SearchHit(TypedDict):
    """One result of GET /v1/search."""

    id: str
    """Document id in the source collection; also the search index id."""
    score: float | None
    """Relevance score, comparable only within one query; null when sorted by a field."""
    document: Document
    """The stored document, limited to the fields the index schema marks as returned."""
    highlights: dict[str, list[str]]
    """Per field, fragments of the original text with matches wrapped in <mark>; HTML-escaped."""


class SearchPage(TypedDict):
    """The response of GET /v1/search."""

    hits: list[SearchHit]
    """This page of results, best first (or in the requested sort order)."""
    total: SearchTotal
    """How many documents matched."""
    facets: dict[str, list[FacetBucket]]
    """Value counts per requested facet field, most frequent first, ties by value."""
    next_cursor: str | None
    """Opaque cursor for the next page; null on the last page."""
    ignored_words: list[str]
    """Query words left out because requiring all of them found nothing (dropped from the end); usually empty."""
    suggestion: str | None
    """"Did you mean": the query as the best hit spells it, when that hit matched only corrected words."""
    took_ms: float
    """Time spent in the service for this request, in milliseconds."""


class Problem(TypedDict):
    """An RFC 9457 problem details body (application/problem+json)."""

    type: str
    """A URI reference naming the problem type."""
    title: str
    """Short human-readable summary of the problem type."""
    status: int
    """The HTTP status code."""
    detail: str
    """Human-readable explanation of this occurrence."""
    instance: NotRequired[str]
    """The request path that produced the problem."""
    errors: NotRequired[list[ProblemError]]
    """For 422: one entry per invalid parameter."""
    dependency: NotRequired[str]
    """For 503: the dependency that failed (e.g. "search")."""


class ProblemError(TypedDict):
    """One invalid request parameter."""

    parameter: str
    """The name of the query or path parameter (e.g. "size", "filter")."""
    detail: str
    """What is wrong with it."""
