"""Shallow Tantivy searches run on the event loop once nothing slow is due; everything else, and anything
that would block there, keeps the worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from src.search.backends.tantivy import TantivyBackend
from src.search.backends.tantivy import backend as tantivy_backend
from src.search.backends.tantivy.expansion import Busy
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.models import Document
from src.search.query import BackendQuery, SortSpec, parse_q
from tests.conftest import load
from tests.fixtures.catalog import SCHEMA

DOCS: list[Document] = [
    {"id": "a", "name": "nginx", "title": "web server", "body": "reverse proxy"},
    {"id": "b", "name": "squid", "title": "caching proxy", "body": "web cache"},
]


def query(q: str, *, limit: int = 11, offset: int = 0, facets: bool = False) -> BackendQuery:
    parsed = parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=16)
    facet_fields = tuple(spec for spec in SCHEMA.fields if spec.facetable)[:1] if facets else ()
    return BackendQuery(query=parsed, filters=(), facets=facet_fields, sort=SortSpec(), limit=limit, offset=offset)


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[TantivyBackend]:
    engine = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="inline", timeout_seconds=10)
    await load(engine, DOCS)
    yield engine
    await engine.close()


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the calls sent to a worker thread."""
    sent: list[str] = []
    to_thread = asyncio.to_thread

    async def counting[T](fn: Callable[[], T]) -> T:
        sent.append(getattr(getattr(fn, "func", fn), "__name__", "?"))
        return await to_thread(fn)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    return sent


async def test_search_when_shallow_and_vocabularies_built_runs_on_the_event_loop(
    backend: TantivyBackend, threads: list[str]
) -> None:
    first = await backend.search(query("proxi servr "))  # the vocabularies are built in a worker thread
    second = await backend.search(query("proxi servr "))
    assert threads == ["_search_sync"]
    assert [hit.id for hit in second.hits] == [hit.id for hit in first.hits]
    assert second.total == first.total


async def test_search_when_facets_or_deep_pages_uses_the_worker_thread(
    backend: TantivyBackend, threads: list[str]
) -> None:
    await backend.search(query("proxi "))
    threads.clear()
    await backend.search(query("proxi ", facets=True))
    await backend.search(query("proxi ", limit=11, offset=tantivy_backend._INLINE_MAX_DEPTH))
    assert threads == ["_search_sync", "_search_sync"]


async def test_search_when_alias_recheck_due_uses_the_worker_thread(
    backend: TantivyBackend, threads: list[str]
) -> None:
    await backend.search(query("proxi "))
    backend._checked_at = float("-inf")  # as when the reload interval has passed
    threads.clear()
    await backend.search(query("proxi "))
    assert threads == ["_search_sync"]


async def test_search_when_vocabulary_lock_is_held_falls_back_to_the_worker_thread(
    backend: TantivyBackend, threads: list[str]
) -> None:
    await backend.search(query("proxi "))
    handle = backend._reader()
    threads.clear()
    handle.typos._lock.acquire()
    try:
        with pytest.raises(Busy):
            handle.typos.expand(handle.index.searcher(), backend._vocabulary_fields["t"], "proxi", 1, wait=False)
        searching = asyncio.ensure_future(backend.search(query("proxi ")))
        await asyncio.sleep(0.05)
        assert threads == ["_search_sync"]  # waiting in a thread, not on the loop
    finally:
        handle.typos._lock.release()
    assert [hit.id for hit in (await searching).hits] == ["b", "a"]


async def test_vocabulary_when_rebuild_due_and_not_waiting_raises_busy(backend: TantivyBackend) -> None:
    handle = backend._reader()
    searcher = handle.index.searcher()
    fields = backend._vocabulary_fields["t"]
    with pytest.raises(Busy):
        handle.typos.vocabulary(searcher, fields, wait=False)  # never built
    built = handle.typos.vocabulary(searcher, fields)
    assert handle.typos.vocabulary(searcher, fields, wait=False) is built


@pytest.mark.parametrize(
    ("raised", "expected"),
    [(TypeError("bad value"), SearchRejected), (ValueError("broken"), SearchUnavailable)],
)
def test_run_inline_when_tantivy_raises_classifies_like_the_worker_thread(
    tmp_path: Path, raised: Exception, expected: type[Exception]
) -> None:
    engine = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="inline", timeout_seconds=10)

    def failing() -> None:
        raise raised

    with pytest.raises(expected):
        engine._run_inline("search", failing)
    with pytest.raises(Busy):
        engine._run_inline("search", lambda: (_ for _ in ()).throw(Busy("rebuild due")))
