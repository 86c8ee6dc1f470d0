"""Errors the search module raises; adapters translate vendor errors into these at one choke point."""

from __future__ import annotations

from src.resilience import Unavailable


class SearchError(Exception):
    """Base class of the search module's errors."""


class SearchUnavailable(SearchError, Unavailable):
    """The search backend cannot be reached, timed out or failed on its side (a 503 at the edge)."""

    def __init__(self, detail: str, *, dependency: str = "search") -> None:
        super().__init__(detail, dependency=dependency)


class IndexIncompatible(SearchUnavailable):
    """The index behind the alias was built for another schema or by an older version (fields it lacks or
    holds differently): it cannot serve or take writes as it is. A rebuild (`indexer load --recreate`, a
    reindex) fixes it; the stream and `load --if-empty` rebuild it by themselves."""


class EnginePressure(SearchUnavailable):
    """The engine refused a write request as a whole for its size or its load: 413 (request too large) or
    429 (indexing pressure, a full write queue, a tripped circuit breaker).

    Unavailability for everything that does not look closer (the request may pass later or smaller);
    the indexer's sink splits such a request and tells a document too large alone from a busy engine.
    """

    def __init__(self, detail: str, *, status: int, reason: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        """The engine's own words (`error.reason`; empty for a 413, which carries no body)."""


class SearchRejected(SearchError):
    """The backend answered, refusing this one request because of its input (a 400 at the edge).

    Never an availability failure: it opens no circuit breaker and is not retried.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidParameter(SearchError):
    """A request parameter is malformed or not allowed by the index schema (a 422 at the edge)."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter
        self.detail = detail


class DocumentRejected(SearchError):
    """The backend refused a document for good (mapping error); retrying will not help."""
