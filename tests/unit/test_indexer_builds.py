"""Build marks and orphans (src/indexer/builds.py), and how the reindex uses them, on in-memory fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from src.indexer.builds import drop_orphans, find_orphans, heartbeats, list_orphans
from src.indexer.errors import ReindexFailed
from src.indexer.reindex import ReindexOptions, ReindexResult, run_reindex
from src.search.backends.base import BulkItemResult, IndexAction
from src.search.errors import SearchUnavailable
from src.settings import PipelineSettings
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import SCHEMA
from tests.unit.test_indexer_pipeline import Harness


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- find_orphans (pure) ---------------------------------------------------------------------------


def test_find_orphans_when_a_build_is_stale_and_not_aliased_lists_it_with_its_age() -> None:
    builds = {"docs-1": 1000.0, "docs-2": 1590.0, "docs-3": 100.0}
    found = find_orphans(builds, "docs-3", now=1600.0, orphan_after_seconds=600.0)
    assert found == [{"index": "docs-1", "age_seconds": 600.0}]  # docs-2 is live, docs-3 is the alias target


def test_find_orphans_when_nothing_is_building_finds_nothing() -> None:
    assert find_orphans({}, None, now=1.0, orphan_after_seconds=0.0) == []


def test_find_orphans_when_the_bound_is_zero_every_unaliased_build_is_one() -> None:
    found = find_orphans({"b": 5.0, "a": 5.0}, None, now=5.0, orphan_after_seconds=0.0)
    assert [orphan["index"] for orphan in found] == ["a", "b"]


# --- drop_orphans, list_orphans --------------------------------------------------------------------


async def test_drop_orphans_when_one_build_died_drops_it_and_never_a_live_one() -> None:
    clock = _Clock(1000.0)
    backend = FakeSearchBackend(schema=SCHEMA, clock=clock)
    served = await backend.create_index()
    await backend.point_alias(served)
    dead = await backend.create_index()
    clock.now = 1500.0
    live = await backend.create_index()
    clock.now = 1700.0
    assert await list_orphans(backend, now=clock.now, orphan_after_seconds=600.0) == [
        {"index": dead, "age_seconds": 700.0}
    ]
    dropped = await drop_orphans(backend, now=clock.now, orphan_after_seconds=600.0)
    assert dropped == [{"index": dead, "age_seconds": 700.0}]
    assert await backend.list_indices() == [served, live]
    assert list(await backend.building_indices()) == [live]


async def test_drop_orphans_when_the_alias_target_is_still_marked_building_marks_it_built() -> None:
    backend = FakeSearchBackend(schema=SCHEMA, clock=_Clock(0.0))
    index = await backend.create_index()
    backend.current = index  # killed between moving the alias and clearing the mark
    assert await drop_orphans(backend, now=10_000.0, orphan_after_seconds=600.0) == []
    assert await backend.list_indices() == [index]
    assert await backend.building_indices() == {}


async def test_drop_orphans_when_a_drop_fails_goes_on_with_the_others() -> None:
    class Stubborn(FakeSearchBackend):
        async def drop_index(self, index: str) -> None:
            if index.endswith("1"):
                raise SearchUnavailable("drop index timed out")
            await super().drop_index(index)

    backend = Stubborn(schema=SCHEMA, clock=_Clock(0.0))
    first, second = await backend.create_index(), await backend.create_index()
    dropped = await drop_orphans(backend, now=10_000.0, orphan_after_seconds=600.0)
    assert [orphan["index"] for orphan in dropped] == [second]
    assert await backend.list_indices() == [first]  # left for the next run


# --- heartbeats --------------------------------------------------------------------------------------


class _Beating(FakeSearchBackend):
    """Heartbeats are counted; one may be held at `gate` once `beating` is set."""

    def __init__(self) -> None:
        super().__init__(schema=SCHEMA)
        self.beats = 0
        self.beating = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def heartbeat(self, index: str) -> None:
        self.beating.set()
        await self.gate.wait()
        await super().heartbeat(index)
        self.beats += 1


async def test_heartbeats_when_the_build_runs_refreshes_until_it_ends() -> None:
    backend = _Beating()
    index = await backend.create_index()
    async with heartbeats(backend, index, every_seconds=0.0):
        while backend.beats < 3:
            await asyncio.sleep(0)
    after = backend.beats
    for _ in range(20):
        await asyncio.sleep(0)
    assert backend.beats == after  # stopped with the build


async def test_heartbeats_when_a_beat_is_in_flight_at_the_end_waits_for_it() -> None:
    backend = _Beating()
    index = await backend.create_index()
    backend.gate.clear()

    async def build() -> None:
        async with heartbeats(backend, index, every_seconds=0.0):
            await backend.beating.wait()

    built = asyncio.create_task(build())
    await backend.beating.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not built.done()  # a beat half sent could land after the alias moved: it is waited for
    backend.gate.set()
    await built
    assert backend.beats == 1


async def test_heartbeats_when_a_beat_fails_the_build_goes_on() -> None:
    class Failing(FakeSearchBackend):
        tries = 0

        async def heartbeat(self, index: str) -> None:
            self.tries += 1
            raise SearchUnavailable("heartbeat timed out")

    backend = Failing(schema=SCHEMA)
    index = await backend.create_index()
    async with heartbeats(backend, index, every_seconds=0.0):
        while backend.tries < 2:
            await asyncio.sleep(0)


# --- the reindex -------------------------------------------------------------------------------------


async def _reindex(h: Harness, clock: _Clock, *, keep_previous: int = 1) -> ReindexResult:
    return await run_reindex(
        source=h.source,
        sink=h.sink,
        checkpoints=h.checkpoints,
        invalidate=None,
        options=ReindexOptions(keep_previous=keep_previous),
        clock=clock,
    )


async def test_run_reindex_when_a_dead_build_was_left_behind_drops_it_first() -> None:
    clock = _Clock(1000.0)
    h = Harness(backend=FakeSearchBackend(schema=SCHEMA, clock=clock))
    h.collection.insert({"_id": "a"})
    dead = await h.backend.create_index()  # a reindex killed mid-copy
    clock.now = 10_000.0
    result = await run_reindex(
        source=h.source,
        sink=h.sink,
        checkpoints=h.checkpoints,
        invalidate=None,
        options=ReindexOptions(orphan_after_seconds=600.0),
        clock=clock,
    )
    assert result.orphans == (dead,)
    assert await h.backend.list_indices() == [result.index]
    assert await h.backend.building_indices() == {}


async def test_run_reindex_when_another_build_is_live_never_drops_it() -> None:
    clock = _Clock(1000.0)
    h = Harness(backend=FakeSearchBackend(schema=SCHEMA, clock=clock))
    h.collection.insert({"_id": "a"})
    first = await _reindex(h, clock)
    live = await h.backend.create_index()  # a concurrent build, started before the next one
    clock.now = 1010.0
    second = await _reindex(h, clock, keep_previous=0)
    assert second.orphans == ()
    assert second.dropped == (first.index,)  # the finished previous index, not the live build older than second
    assert await h.backend.list_indices() == [live, second.index]


async def test_run_reindex_when_the_check_fails_drops_its_new_index() -> None:
    class Losing(FakeSearchBackend):
        async def count(self, index: str | None = None) -> int:
            return (await super().count(index)) - 1

    h = Harness(backend=Losing(schema=SCHEMA))
    h.collection.insert({"_id": "a"})
    before = await h.backend.create_index()
    await h.backend.point_alias(before)
    with pytest.raises(ReindexFailed, match="new index is dropped"):
        await run_reindex(
            source=h.source,
            sink=h.sink,
            checkpoints=h.checkpoints,
            invalidate=None,
            options=ReindexOptions(verify_rounds=2),
        )
    assert await h.backend.list_indices() == [before]
    assert await h.backend.building_indices() == {}


async def test_run_reindex_when_cancelled_mid_copy_drops_its_new_index() -> None:
    class Held(FakeSearchBackend):
        writing = asyncio.Event()

        async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
            self.writing.set()
            await asyncio.Event().wait()  # the copy never finishes: it is stopped
            return []

    h = Harness(backend=Held(schema=SCHEMA))
    h.collection.insert({"_id": "a"})
    reindex = asyncio.create_task(
        run_reindex(source=h.source, sink=h.sink, checkpoints=h.checkpoints, invalidate=None, options=ReindexOptions())
    )
    await Held.writing.wait()
    assert len(await h.backend.list_indices()) == 1
    reindex.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reindex
    assert await h.backend.list_indices() == []


# --- settings ----------------------------------------------------------------------------------------


def test_settings_when_the_orphan_bound_is_under_two_heartbeats_refuses_it() -> None:
    with pytest.raises(ValidationError, match="INDEXER_ORPHAN_AFTER_SECONDS must be at least twice"):
        PipelineSettings(build_heartbeat_seconds=60.0, orphan_after_seconds=100.0)
    assert PipelineSettings(build_heartbeat_seconds=0.5, orphan_after_seconds=1.0).orphan_after_seconds == 1.0
