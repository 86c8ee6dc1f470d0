"""Warm before ready: the engine answers a real query within its timeout before the process says it is ready.

A process that starts on a large index pays for its first queries: Tantivy builds its typo vocabularies
from the term dictionaries (seconds on a million documents), an engine cluster fills its caches. Until
then `/readyz` is a 503 (a load balancer keeps traffic away) and searches that still arrive get a fast 503
(src/search/backends/guarded.py): they never time out against the cold engine, so they never open the
circuit breaker, and an engine that is down when the process starts is reported once, by the warm-up.

`warm_up` runs a search that takes every costly path (typo expansion of words and of the whole query,
a prefix) until one answers within the timeout. A failed or timed-out attempt is retried after a pause:
the work it started (a vocabulary being built in a worker thread) goes on and serves the next attempt.
An engine that is down or has no index yet simply keeps the process unready until it is there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger

from src.search.backends.base import SearchBackend
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.query import BackendQuery, ParsedQuery, SortSpec, Term

WARM_QUERY = ParsedQuery(
    terms=(Term(text="warmup", edits=1, prefix=False), Term(text="queries", edits=2, prefix=True)),
    whole=Term(text="warmup queries", edits=2, prefix=True),
)
"""Two words with typo budgets and a prefix: every vocabulary and expansion path a search can take."""
REPORT_EVERY_SECONDS = 60.0
"""A warm-up that keeps failing is logged once, then once a minute (never once per attempt)."""


def warm_query() -> BackendQuery:
    """The warm-up search: one small page of `WARM_QUERY` by relevance."""
    return BackendQuery(query=WARM_QUERY, filters=(), facets=(), sort=SortSpec(), limit=2)


async def warm_up(
    backend: SearchBackend,
    ready: asyncio.Event,
    *,
    tried: asyncio.Event | None = None,
    pause_seconds: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Search until an answer comes back within the backend's own timeout, then set `ready`; returns the
    seconds it took. `tried` is set after the first attempt, whatever its outcome (start-up waits for it:
    a warm engine is ready as soon as the process listens). Runs until it succeeds (cancel it to stop)."""
    started = clock()
    attempts = 0
    reported = float("-inf")
    while True:
        attempts += 1
        try:
            await backend.search(warm_query())
        except SearchRejected:
            pass  # the engine answered (refusing an odd query): it is up and warm enough
        except SearchUnavailable as err:
            if tried is not None:
                tried.set()
            if clock() - reported >= REPORT_EVERY_SECONDS:
                reported = clock()
                logger.warning(
                    "the {} backend has not answered its warm-up search ({} attempts in {:.0f} s, last: {}); "
                    "searches answer 503 until it does",
                    backend.kind,
                    attempts,
                    reported - started,
                    err,
                )
            await asyncio.sleep(pause_seconds)
            continue
        took = clock() - started
        ready.set()
        if tried is not None:
            tried.set()
        logger.info("the {} backend is warm after {:.1f} s ({} attempts): ready", backend.kind, took, attempts)
        return took
