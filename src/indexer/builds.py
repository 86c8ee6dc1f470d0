"""Index builds that a dead process left behind: told apart from live ones by a heartbeat, then dropped.

A load or reindex builds `<alias>-<timestamp>` and moves the alias onto it at the end. Killed half way
(SIGKILL, OOM, a node lost), it leaves the half-built index behind, which nothing else would delete.
So a build is marked (`SearchBackend.create_index` marks the new index building; `point_alias` clears
the mark) and the builder refreshes the mark's heartbeat while it works (`heartbeats`). An index that
is still marked building, is not the alias target, and whose heartbeat is older than
`INDEXER_ORPHAN_AFTER_SECONDS` is an orphan: the next load or reindex drops it (`drop_orphans`), and
`indexer status` lists it. A build whose heartbeat is fresh (another process is building it now) is
never touched. A build that fails cleanly (an exception) drops its own index (`abandon`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from loguru import logger

from src.indexer.models import OrphanIndex
from src.search.backends.base import SearchBackend
from src.search.errors import SearchError


def find_orphans(
    builds: Mapping[str, float], current: str | None, *, now: float, orphan_after_seconds: float
) -> list[OrphanIndex]:
    """The builds (index → heartbeat) that are orphans: not the alias target, heartbeat older than the bound
    (pure; oldest first)."""
    return [
        OrphanIndex(index=name, age_seconds=round(max(0.0, now - heartbeat), 3))
        for name, heartbeat in sorted(builds.items())
        if name != current and now - heartbeat >= orphan_after_seconds
    ]


async def list_orphans(backend: SearchBackend, *, now: float, orphan_after_seconds: float) -> list[OrphanIndex]:
    """The orphans of `backend`'s alias now (see `find_orphans`)."""
    builds = await backend.building_indices()
    if not builds:
        return []
    return find_orphans(builds, await backend.current_index(), now=now, orphan_after_seconds=orphan_after_seconds)


async def drop_orphans(backend: SearchBackend, *, now: float, orphan_after_seconds: float) -> list[OrphanIndex]:
    """Drop every orphan of the alias (logged) and return them.

    The alias target still marked building (a process killed between moving the alias and clearing the
    mark) is marked built instead. An orphan that cannot be dropped is logged and left for the next run.
    """
    builds = await backend.building_indices()
    if not builds:
        return []
    current = await backend.current_index()
    if current is not None and current in builds:
        logger.info("{}: the alias points at it but it was still marked building; marked built", current)
        await backend.mark_built(current)
    dropped: list[OrphanIndex] = []
    for orphan in find_orphans(builds, current, now=now, orphan_after_seconds=orphan_after_seconds):
        try:
            await backend.drop_index(orphan["index"])
        except (SearchError, ValueError) as err:  # ValueError: the alias moved onto it meanwhile
            logger.warning("orphan index {} not dropped: {}", orphan["index"], err)
            continue
        logger.warning(
            "dropped orphan index {}: a build whose last heartbeat was {:.0f} s ago (its process died)",
            orphan["index"],
            orphan["age_seconds"],
        )
        dropped.append(orphan)
    return dropped


@contextlib.asynccontextmanager
async def heartbeats(backend: SearchBackend, index: str, *, every_seconds: float) -> AsyncIterator[None]:
    """Refresh `index`'s building heartbeat every `every_seconds` while the body runs.

    On exit the beating stops and any beat in progress is waited for (never cancelled half-sent), so no
    late heartbeat can mark the index building again after its alias moved. A failed beat is logged and
    the build goes on: a backend that is down fails the build's own writes anyway.
    """
    stop = asyncio.Event()

    async def beat() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_seconds)
            if stop.is_set():
                return
            try:
                await backend.heartbeat(index)
            except Exception as err:  # never the build's end: its own writes fail if the backend is gone
                logger.warning("{}: build heartbeat failed ({}); retrying in {:g} s", index, err, every_seconds)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        stop.set()
        await task


async def abandon(backend: SearchBackend, index: str) -> None:
    """Drop the index of a build that failed (best effort: what cannot be dropped now is an orphan later)."""
    try:
        await backend.drop_index(index)
    except (SearchError, ValueError) as err:
        logger.warning("failed build {} not dropped ({}); a later run drops it as an orphan", index, err)
        return
    logger.info("failed build {} dropped", index)
