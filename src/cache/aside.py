"""The cache-aside policy: hit, stale-while-revalidate, single flight, stale-if-error, negative caching.

`CacheAside.fetch*` takes a key and a `compute` coroutine (the backend call that builds the final
response bytes) and returns a `Served` entry:

- fresh entry: served as HIT, nothing else happens;
- past the soft TTL (before the hard one): served as STALE at once, refreshed once in the background;
- absent or past the hard TTL: computed once per key however many requests wait for it, in this
  process (a shared future) and across processes (a short-lease lock; a waiter polls the cache and
  computes itself when its wait runs out, rather than erroring);
- compute fails with `Unavailable` (src/resilience.py: the search adapters' SearchUnavailable is one;
  admission control's `Overloaded` too) while an entry younger than hard TTL + stale-if-error grace
  exists: that entry is served as STALE, never a 503;
- any cache failure (down, slow, garbage) is a miss, counted, never an error; concurrent misses of one
  key are still computed once in this process.

A response served from the cache (HIT, STALE) states its own time: a body that states how long it took
(a search page's `took_ms`) gets the milliseconds since this request's cache lookup began, not those of the
computation that stored it (`with_took_ms`, a splice of a few bytes). A MISS states its computation's.

Admission control sits here, where a miss is known: at most `max_inflight` engine computations run at
once in this process; one more is refused at once with `Overloaded` (a 503 with Retry-After). Hits,
stale entries and coalesced waiters never wait behind it.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from prometheus_client import Counter

from src.cache.base import Cache, CacheUnavailable
from src.cache.entries import (
    EntryCorrupt,
    decode_entry,
    encode_entry,
    freshness,
    jittered,
    make_entry,
    with_took_ms,
)
from src.cache.flight import single_flight
from src.cache.keys import GenerationalKey, lock_key
from src.cache.models import CacheEntry, Served, XCache
from src.observability.metrics import (
    ADMISSION_REJECTED,
    CACHE_ERRORS,
    CACHE_LOOKUPS,
    CACHE_SKIPPED,
    ENGINE_INFLIGHT,
)
from src.resilience import Overloaded, Unavailable

_DECODED_ENTRIES = 64
"""Decoded entries remembered by `CacheAside._decode_memoised` (at most 64 stored values are kept
alive by it: a few MB at the largest entry size)."""


@functools.cache
def _lookups(route: str, result: str) -> Counter:
    """The lookup counter's child (labels() costs more than the increment; routes and results are few)."""
    return CACHE_LOOKUPS.labels(route, result)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """TTLs and limits of the cache-aside layer (from settings)."""

    namespace: str = "search"
    soft_ttl_seconds: float = 30.0
    hard_ttl_seconds: float = 300.0
    jitter: float = 0.1
    stale_if_error_seconds: float = 600.0
    negative_ttl_seconds: float = 5.0
    max_entry_bytes: int = 512 * 1024
    lock_lease_seconds: float = 5.0
    lock_wait_seconds: float = 2.0
    lock_poll_seconds: float = 0.02
    gzip_min_bytes: int = 1024
    max_inflight: int = 32
    """Engine computations running at once in this process; more are refused with Overloaded."""


@dataclass(frozen=True, slots=True)
class Computed:
    """A freshly computed response, before it becomes a cache entry."""

    status: int
    body: bytes
    content_type: str
    surrogate_keys: tuple[str, ...]
    took_span: tuple[int, int] | None = None
    """Where `body` states how long it took (the took_ms number's start and end), if it does."""


type Compute = Callable[[int | None], Awaitable[Computed]]
"""Builds the response; receives the search generation it is computed under (None when unknown). It raises
`Unavailable` when its dependency cannot answer (a stale entry may be served instead); any other error is
the caller's (a background refresh logs it and keeps the entry)."""


class CacheAside:
    """Cache-aside over any `Cache`; one instance per process, shared by all requests."""

    def __init__(
        self,
        cache: Cache,
        policy: CachePolicy,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cache = cache
        self.policy = policy
        self._clock = clock
        # A generator of its own, not the `random` module's shared one: that state belongs to whatever else
        # runs in the process (Hypothesis, drawing in the test's thread while the app served in another, saw
        # it move and failed the run).
        self._draw = draw or random.Random().random  # noqa: S311 - jitter, not a secret
        self.timer = timer
        """Seconds of a monotonic clock: how long a response served from the cache took (its took_ms)."""
        self._inflight: dict[str, asyncio.Future[Served]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.engine_inflight = 0
        """Engine computations running now (admission control's count)."""
        self.admit: Callable[[], Awaitable[None]] | None = None
        """Called once per request that will reach the engine (a miss), before it joins a single flight and
        before admission control: the per-client engine budget (its RateLimited refuses this request only,
        so a client over its budget never holds an engine slot another client could use)."""
        self._decoded: OrderedDict[int, tuple[bytes, CacheEntry]] = OrderedDict()
        """Stored values decoded lately, by identity (see `_decode_memoised`)."""

    async def fetch_generational(self, key: GenerationalKey, compute: Compute, *, route: str) -> Served:
        """Serve the entry under `key` at the current generation (one cache round trip)."""
        started = self.timer()
        try:
            generation, raw = await self.cache.get_generational(key.generation_key, key.prefix, key.suffix)
        except CacheUnavailable as err:
            return await self._uncached(f"{key.prefix}?{key.suffix}", compute, route, "get", err)
        return await self._resolve(key.at(generation), raw, generation, compute, route, started)

    async def fetch(self, key: str, compute: Compute, *, route: str) -> Served:
        """Serve the entry under a fixed `key`."""
        started = self.timer()
        try:
            raw = await self.cache.get(key)
        except CacheUnavailable as err:
            return await self._uncached(key, compute, route, "get", err)
        return await self._resolve(key, raw, None, compute, route, started)

    async def peek_fresh(self, key: GenerationalKey | str, *, route: str) -> Served | None:
        """A fresh entry if there is one, else None; no side effects beyond counting the hit.

        The fast path in front of the routes uses it; anything else (stale, miss, cache errors) is
        left to `fetch*`, which handles and counts it.
        """
        started = self.timer()
        try:
            if isinstance(key, GenerationalKey):
                _, raw = await self.cache.get_generational(key.generation_key, key.prefix, key.suffix)
            else:
                raw = await self.cache.get(key)
        except CacheUnavailable:
            return None
        if raw is None:
            return None
        try:
            entry = self._decode_memoised(raw)
        except EntryCorrupt:
            return None
        if freshness(entry, self._clock()) != "fresh":
            return None
        _lookups(route, "hit").inc()
        return self._served(entry, "HIT", started)

    def _served(self, entry: CacheEntry, x_cache: XCache, started: float) -> Served:
        """`entry` served from the cache, stating its own time (see the module docstring)."""
        if entry.took is None:
            return Served(entry, x_cache)
        return Served(with_took_ms(entry, (self.timer() - started) * 1000), x_cache, origin=entry)

    def _decode_memoised(self, raw: bytes) -> CacheEntry:
        """`decode_entry`, remembered for the last few stored values by identity: the in-process tier
        hands out the same bytes object for every hit of an entry, and a hit should not parse it again
        (bytes are immutable and the memo holds them, so an identity cannot be reused while remembered)."""
        memo = self._decoded
        remembered = memo.get(id(raw))
        if remembered is not None and remembered[0] is raw:
            return remembered[1]
        entry = decode_entry(raw)
        memo[id(raw)] = (raw, entry)
        if len(memo) > _DECODED_ENTRIES:
            memo.popitem(last=False)
        return entry

    async def _uncached(self, key: str, compute: Compute, route: str, operation: str, err: Exception) -> Served:
        """The cache failed: compute without it, still once per key in this process."""
        _cache_failed(operation, err)

        async def run() -> Served:
            return Served(self._entry(await self._admitted(compute, None)), "MISS")

        if self.admit is not None:
            await self.admit()
        served = await self._coalesced(key, run)
        _lookups(route, "miss").inc()
        return served

    async def _admitted(self, compute: Compute, generation: int | None) -> Computed:
        """Run `compute` unless `max_inflight` computations already run (Overloaded, at once)."""
        if self.engine_inflight >= self.policy.max_inflight:
            ADMISSION_REJECTED.inc()
            raise Overloaded(f"{self.engine_inflight} engine calls in flight (the limit); retry shortly")
        self.engine_inflight += 1
        ENGINE_INFLIGHT.inc()
        try:
            return await compute(generation)
        finally:
            self.engine_inflight -= 1
            ENGINE_INFLIGHT.dec()

    async def _resolve(
        self, key: str, raw: bytes | None, generation: int | None, compute: Compute, route: str, started: float
    ) -> Served:
        entry = self._decode(key, raw)
        if entry is not None:
            state = freshness(entry, self._clock())
            if state == "fresh":
                _lookups(route, "hit").inc()
                return self._served(entry, "HIT", started)
            if state == "stale":
                self._refresh_in_background(key, generation, compute)
                _lookups(route, "stale").inc()
                return self._served(entry, "STALE", started)
        if self.admit is not None:
            await self.admit()
        served = await self._single_flight(key, generation, compute, entry, started)
        _lookups(route, served.x_cache.lower()).inc()
        return served

    def _decode(self, key: str, raw: bytes | None) -> CacheEntry | None:
        if raw is None:
            return None
        try:
            return self._decode_memoised(raw)
        except EntryCorrupt as err:
            _cache_failed("decode", err)
            return None

    async def _single_flight(
        self, key: str, generation: int | None, compute: Compute, expired: CacheEntry | None, started: float
    ) -> Served:
        return await self._coalesced(key, lambda: self._compute_locked(key, generation, compute, expired, started))

    async def _coalesced(self, key: str, run: Callable[[], Awaitable[Served]]) -> Served:
        """One `run` per key at a time in this process; concurrent callers share its outcome."""
        return await single_flight(self._inflight, key, run)

    async def _compute_locked(
        self, key: str, generation: int | None, compute: Compute, expired: CacheEntry | None, started: float
    ) -> Served:
        token, held_elsewhere = await self._acquire(key)
        if held_elsewhere:
            found = await self._wait_for(key)
            if found is not None:
                return self._served(found, "HIT", started)
            # The other computer is slow or dead: compute ourselves rather than fail the request.
        try:
            return await self._compute_and_store(key, generation, compute, expired, started)
        finally:
            if token is not None:
                await self._release(key, token)

    async def _compute_and_store(
        self, key: str, generation: int | None, compute: Compute, expired: CacheEntry | None, started: float
    ) -> Served:
        try:
            computed = await self._admitted(compute, generation)
        except Unavailable:  # Overloaded included: a stale copy beats a 503
            if expired is not None and self._clock() < expired.hard_expires_at + self.policy.stale_if_error_seconds:
                logger.debug("backend unavailable: serving a stale entry for {}", key)  # counted as STALE
                return self._served(expired, "STALE", started)
            raise
        entry = self._entry(computed)
        await self._store(key, entry)
        return Served(entry, "MISS")

    def _entry(self, computed: Computed) -> CacheEntry:
        policy = self.policy
        if computed.status == 200:
            soft = jittered(policy.soft_ttl_seconds, jitter=policy.jitter, draw=self._draw())
            hard = jittered(policy.hard_ttl_seconds, jitter=policy.jitter, draw=self._draw())
        else:
            soft = hard = policy.negative_ttl_seconds
        return make_entry(
            status=computed.status,
            body=computed.body,
            content_type=computed.content_type,
            surrogate_keys=computed.surrogate_keys,
            now=self._clock(),
            soft_ttl=soft,
            hard_ttl=hard,
            gzip_min_bytes=policy.gzip_min_bytes,
            took_span=computed.took_span,
        )

    async def _store(self, key: str, entry: CacheEntry) -> None:
        if len(entry.body) > self.policy.max_entry_bytes:
            CACHE_SKIPPED.labels("too_large").inc()
            return
        # Kept past the hard TTL only for stale-if-error (not for negative entries).
        grace = self.policy.stale_if_error_seconds if entry.status == 200 else 0.0
        ttl = entry.hard_expires_at - self._clock() + grace
        try:
            await self.cache.set(key, encode_entry(entry), ttl)
        except CacheUnavailable as err:
            _cache_failed("set", err)

    async def _acquire(self, key: str) -> tuple[str | None, bool]:
        """(token, held_elsewhere); a cache failure means no lock and no waiting."""
        try:
            token = await self.cache.acquire(lock_key(key), self.policy.lock_lease_seconds)
        except CacheUnavailable as err:
            _cache_failed("acquire", err)
            return None, False
        return token, token is None

    async def _release(self, key: str, token: str) -> None:
        try:
            await self.cache.release(lock_key(key), token)
        except CacheUnavailable as err:
            _cache_failed("release", err)

    async def _wait_for(self, key: str) -> CacheEntry | None:
        deadline = time.monotonic() + self.policy.lock_wait_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(self.policy.lock_poll_seconds)
            try:
                raw = await self.cache.get(key)
            except CacheUnavailable as err:
                _cache_failed("get", err)
                return None
            entry = self._decode(key, raw)
            if entry is not None and freshness(entry, self._clock()) == "fresh":
                return entry
        return None

    def _refresh_in_background(self, key: str, generation: int | None, compute: Compute) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        task = asyncio.create_task(self._refresh(key, generation, compute))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, key: str, generation: int | None, compute: Compute) -> None:
        try:
            token, held_elsewhere = await self._acquire(key)
            if held_elsewhere:
                return  # another process is refreshing it
            try:
                entry = self._entry(await self._admitted(compute, generation))
                await self._store(key, entry)
            finally:
                if token is not None:
                    await self._release(key, token)
        except Unavailable as err:  # the breaker logs outages once; the entry stays
            logger.debug("background refresh of {} failed: {}", key, err)
        except Exception as err:  # nobody awaits this task: a refused refresh (or a bug) keeps the entry, logged
            logger.opt(exception=err).warning("background refresh of {} failed", key)
        finally:
            self._refreshing.discard(key)

    async def drain(self) -> None:
        """Wait for background refreshes (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel background refreshes and close the cache."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.cache.close()


def _cache_failed(operation: str, err: Exception) -> None:
    CACHE_ERRORS.labels(operation).inc()
    # Counted, and logged at debug only: the Redis breaker logs each state change once.
    logger.debug("cache {} failed, serving as a miss: {}", operation, err)
