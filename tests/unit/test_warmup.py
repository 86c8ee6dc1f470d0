"""Warm before ready (src/search/warmup.py) and the guarded backend's wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from loguru import logger

from src.resilience import CircuitBreaker
from src.search.backends.base import BackendPage, IndexAction
from src.search.backends.guarded import GuardedBackend
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.query import BackendQuery, ParsedQuery, SortSpec
from src.search.warmup import warm_query, warm_up
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import DOCS, SCHEMA


@contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """The messages logged at WARNING and above meanwhile."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message.record["message"])), level="WARNING")
    try:
        yield lines
    finally:
        logger.remove(sink)


QUERY = BackendQuery(query=ParsedQuery(), filters=(), facets=(), sort=SortSpec(), limit=5)


@dataclass
class ColdBackend(FakeSearchBackend):
    """A fake that refuses (cold) its first `cold_searches` searches, then answers; counts what it saw."""

    cold_searches: int = 0
    seen: list[BackendQuery] = field(default_factory=list)
    rejects: bool = False

    async def search(self, query: BackendQuery) -> BackendPage:
        self.seen.append(query)
        if self.rejects:
            raise SearchRejected("the engine refused the warm-up query")
        if len(self.seen) <= self.cold_searches:
            raise SearchUnavailable("cold: timed out")
        return await super().search(query)


async def _loaded(backend: FakeSearchBackend) -> None:
    index = await backend.create_index()
    await backend.bulk([IndexAction(op="upsert", doc_id=str(d["id"]), document=d) for d in DOCS], index=index)
    await backend.point_alias(index)


async def test_warm_up_when_engine_is_cold_retries_until_it_answers_then_is_ready() -> None:
    backend = ColdBackend(schema=SCHEMA, cold_searches=3)
    await _loaded(backend)
    ready, tried = asyncio.Event(), asyncio.Event()
    now = [100.0]

    def clock() -> float:
        now[0] += 10.0  # every reading is 10 s later
        return now[0]

    with capture_warnings() as warnings:
        took = await warm_up(backend, ready, tried=tried, pause_seconds=0, clock=clock)
    assert ready.is_set()
    assert tried.is_set()
    assert len(backend.seen) == 4
    assert took > 0
    assert len(warnings) == 1  # three failed attempts within a minute: one line, not one per attempt
    assert "has not answered its warm-up search" in warnings[0]
    query = backend.seen[0]
    assert query == warm_query()
    assert any(term.edits for term in query.query.terms)  # typo expansion is part of the warm-up
    assert query.query.whole is not None
    assert query.query.whole.prefix


async def test_warm_up_when_engine_refuses_the_query_counts_it_as_warm() -> None:
    backend = ColdBackend(schema=SCHEMA, rejects=True)
    ready = asyncio.Event()
    await warm_up(backend, ready, pause_seconds=0)
    assert ready.is_set()


async def test_warm_up_when_first_attempt_fails_sets_tried_before_ready() -> None:
    backend = ColdBackend(schema=SCHEMA, cold_searches=1_000_000)
    await _loaded(backend)
    ready, tried = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(warm_up(backend, ready, tried=tried, pause_seconds=0))
    await tried.wait()
    assert not ready.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_search_when_engine_is_warming_fails_fast_without_opening_the_circuit() -> None:
    inner = FakeSearchBackend(schema=SCHEMA)
    await _loaded(inner)
    warm = asyncio.Event()
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=60)
    guarded = GuardedBackend(inner, breaker, warm=warm)
    assert not guarded.is_warm
    for _ in range(3):
        with pytest.raises(SearchUnavailable, match="warming up"):
            await guarded.search(QUERY)
    assert breaker.state == "closed"
    warm.set()
    assert (await guarded.search(QUERY)).total == len(DOCS)
    assert GuardedBackend(inner, breaker).is_warm  # no warm-up: always warm
