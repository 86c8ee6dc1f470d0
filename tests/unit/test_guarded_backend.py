"""The circuit breaker in front of a backend: fail fast when open, pass writes through."""

from __future__ import annotations

import pytest

from src.resilience import CircuitBreaker
from src.search.backends.base import BackendPage, IndexAction
from src.search.backends.guarded import GuardedBackend
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.query import BackendQuery, ParsedQuery, SortSpec
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import DOCS, SCHEMA

QUERY = BackendQuery(query=ParsedQuery(), filters=(), facets=(), sort=SortSpec(), limit=5)


async def test_search_when_backend_fails_repeatedly_opens_circuit() -> None:
    clock = [0.0]
    inner = FakeSearchBackend(schema=SCHEMA)
    guarded = GuardedBackend(inner, CircuitBreaker(failure_threshold=2, reset_seconds=5, clock=lambda: clock[0]))
    index = await guarded.create_index()
    await guarded.bulk([IndexAction(op="upsert", doc_id=str(d["id"]), document=d) for d in DOCS], index=index)
    await guarded.refresh(index)
    await guarded.point_alias(index)
    assert guarded.kind == "fake"
    assert (await guarded.search(QUERY)).total == len(DOCS)
    inner.down = True
    for _ in range(2):
        with pytest.raises(SearchUnavailable, match="down"):
            await guarded.get("nginx")
    inner.down = False
    with pytest.raises(SearchUnavailable, match="circuit open"):
        await guarded.search(QUERY)
    await guarded.ping()  # readiness still asks the backend itself
    clock[0] = 5.0
    assert await guarded.get("nginx") is not None  # the half-open trial succeeds and closes the circuit
    assert guarded.breaker.state == "closed"


async def test_pass_through_when_managing_indices_reaches_inner() -> None:
    inner = FakeSearchBackend(schema=SCHEMA)
    guarded = GuardedBackend(inner, CircuitBreaker(failure_threshold=1, reset_seconds=1))
    first = await guarded.create_index()
    await guarded.point_alias(first)
    second = await guarded.create_index()
    assert await guarded.current_index() == first
    assert await guarded.list_indices() == [first, second]
    await guarded.drop_index(second)
    assert await guarded.count() == 0
    await guarded.close()


async def test_search_when_engine_rejects_input_leaves_the_breaker_closed() -> None:
    class Rejecting(FakeSearchBackend):
        async def search(self, query: BackendQuery) -> BackendPage:
            raise SearchRejected("fake refused the search request (400)")

    guarded = GuardedBackend(Rejecting(schema=SCHEMA), CircuitBreaker(failure_threshold=1, reset_seconds=60))
    for _ in range(5):
        with pytest.raises(SearchRejected):
            await guarded.search(QUERY)
    assert guarded.breaker.state == "closed"
