"""A circuit breaker in front of the read calls of any SearchBackend.

After repeated SearchUnavailable failures the circuit opens and reads fail at once (the cache then
serves stale entries) instead of each request waiting for a timeout. A SearchRejected (the engine
refused that request's input) is that request's error alone: it never moves the breaker. Writes pass
straight through.

With `warm` (src/search/warmup.py), a search before the engine is warm fails at once with SearchUnavailable,
which does not count as a failure: a cold engine must not open the circuit, and requests that arrive before
the process says it is ready must not pile onto the warm-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from src.observability.metrics import BACKEND_FAILURES, BACKEND_REJECTIONS, ENGINE_DURATION
from src.observability.tracing import span
from src.resilience import CircuitBreaker
from src.search.backends.base import BackendPage, BulkItemResult, IndexAction, SearchBackend
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.models import Document
from src.search.query import BackendQuery


class GuardedBackend:
    """`SearchBackend` delegating to `inner`, with `breaker` guarding search, get and ping."""

    def __init__(
        self,
        inner: SearchBackend,
        breaker: CircuitBreaker,
        *,
        warm: asyncio.Event | None = None,
    ) -> None:
        self.inner = inner
        self.breaker = breaker
        self.kind = inner.kind
        self.warm = warm

    @property
    def is_warm(self) -> bool:
        """Whether the engine answered its warm-up search (always, without a warm-up)."""
        return self.warm is None or self.warm.is_set()

    def _check_warm(self) -> None:
        if self.warm is not None and not self.warm.is_set():
            raise SearchUnavailable(f"{self.kind}: warming up (the engine has not answered its first search yet)")

    async def _guard[T](self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise SearchUnavailable(f"{self.kind}: circuit open after repeated failures")
        started = time.perf_counter()
        outcome = "ok"
        try:
            with span(f"{self.kind} {operation}", **{"db.system.name": self.kind, "db.operation.name": operation}):
                result = await call()
        except SearchUnavailable as err:
            outcome = "unavailable"
            self.breaker.record_failure(err.detail)
            BACKEND_FAILURES.labels(self.kind).inc()
            raise
        except SearchRejected:
            outcome = "rejected"
            self.breaker.release()
            BACKEND_REJECTIONS.labels(self.kind).inc()
            raise
        finally:
            ENGINE_DURATION.labels(self.kind, operation, outcome).observe(time.perf_counter() - started)
        self.breaker.record_success()
        return result

    async def search(self, query: BackendQuery) -> BackendPage:
        """Guarded search (after the warm-up, when there is one)."""
        self._check_warm()
        return await self._guard("search", lambda: self.inner.search(query))

    async def get(self, doc_id: str) -> Document | None:
        """Guarded get."""
        return await self._guard("get", lambda: self.inner.get(doc_id))

    async def ping(self) -> None:
        """Ping the backend itself, even with the circuit open (readiness must see recovery)."""
        await self.inner.ping()

    async def create_index(self) -> str:
        """Pass-through."""
        return await self.inner.create_index()

    async def point_alias(self, index: str) -> None:
        """Pass-through."""
        await self.inner.point_alias(index)

    async def heartbeat(self, index: str) -> None:
        """Pass-through."""
        await self.inner.heartbeat(index)

    async def mark_built(self, index: str) -> None:
        """Pass-through."""
        await self.inner.mark_built(index)

    async def building_indices(self) -> dict[str, float]:
        """Pass-through."""
        return await self.inner.building_indices()

    async def current_index(self) -> str | None:
        """Pass-through."""
        return await self.inner.current_index()

    async def list_indices(self) -> list[str]:
        """Pass-through."""
        return await self.inner.list_indices()

    async def drop_index(self, index: str) -> None:
        """Pass-through."""
        await self.inner.drop_index(index)

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        """Pass-through."""
        return await self.inner.bulk(actions, index=index)

    async def refresh(self, index: str | None = None) -> None:
        """Pass-through."""
        await self.inner.refresh(index)

    async def optimize(self, index: str) -> None:
        """Pass-through."""
        await self.inner.optimize(index)

    async def count(self, index: str | None = None) -> int:
        """Pass-through."""
        return await self.inner.count(index)

    async def close(self) -> None:
        """Close the inner backend."""
        await self.inner.close()
