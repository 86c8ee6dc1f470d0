"""`Cache` on Redis or Redis Cluster (`redis.asyncio`, hiredis parser), with tight timeouts and a breaker.

`_call` is the one choke point: Redis errors, timeouts and an open circuit all become CacheUnavailable,
which the cache-aside layer turns into a miss. On a single Redis, reading the generation and the
entry it selects is one Lua script (one round trip); on Redis Cluster (`cluster=True`) no command spans
two slots: it is two single-key GETs (the tiered cache in front reads the generation from memory).

The time budget counts Redis's time, not the event loop's: when the budget's timer fires late because
the loop was busy (a traffic spike on this process), the call gets another budget instead of being
called a Redis failure, up to a hard limit. A saturated loop therefore never opens Redis's breaker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterError,
    MaxConnectionsError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from src.cache.base import CacheUnavailable
from src.cache.tokens import lock_token
from src.observability.metrics import REDIS_DURATION
from src.resilience import CircuitBreaker

_GET_GENERATIONAL = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ARGV[2])}
"""
_UNAVAILABLE_REPLIES = (ClusterError, TryAgainError, AskError, ReadOnlyError, RedisClusterException)
"""Availability failures, though some are ResponseErrors and RedisClusterException is not a RedisError."""
_LATE_FRACTION = 0.25
"""A budget timer firing later than this fraction of the budget means the loop, not Redis, was slow."""
_HARD_LIMIT_FACTOR = 20
"""However busy the loop, a call gives up after this many budgets."""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCache:
    """`Cache` on a Redis server."""

    kind = "redis"

    def __init__(self, client: Redis | RedisCluster, *, timeout_seconds: float, breaker: CircuitBreaker) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._timeout = timeout_seconds
        self._breaker = breaker
        self._get_generational = None if self._cluster else client.register_script(_GET_GENERATIONAL)
        self._release = client.register_script(_RELEASE)  # one key: fine on a cluster
        if self._cluster:
            self.kind = "redis-cluster"

    async def _call[T](self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        if not self._breaker.allow():
            raise CacheUnavailable(f"redis {what}: circuit open")
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self._within_budget(action)
            outcome = "ok"
        except MaxConnectionsError as err:  # this process's pool is exhausted by its own load: not a Redis failure
            self._breaker.release()
            raise CacheUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err
        except _UNAVAILABLE_REPLIES as err:  # replies that mean "not now" (cluster down or moving, read-only replica)
            self._breaker.record_failure(f"{type(err).__name__}: {err}")
            raise CacheUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err
        except ResponseError as err:  # Redis answered, refusing this command (WRONGTYPE, OOM...): not an outage
            self._breaker.release()
            raise CacheUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err
        except (RedisError, OSError, TimeoutError) as err:
            self._breaker.record_failure(f"{type(err).__name__}: {err}")
            raise CacheUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err
        finally:
            REDIS_DURATION.labels(what, outcome).observe(time.perf_counter() - started)
        self._breaker.record_success()
        return result

    async def _within_budget[T](self, action: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(action())
        deadline = loop.time() + self._timeout
        limit = deadline + self._timeout * _HARD_LIMIT_FACTOR
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
                if not done:
                    # The reply may have been read in the very loop turn our timer fired in: let the call's
                    # own wake-up run before judging it.
                    for _ in range(2):
                        await asyncio.sleep(0)
                if task.done():
                    return task.result()
                now = loop.time()
                if now - deadline < self._timeout * _LATE_FRACTION or now >= limit:
                    raise TimeoutError(f"no answer within {self._timeout:g} s")
                deadline = now + self._timeout  # the loop was busy: give Redis its budget again
        finally:
            if not task.done():
                task.cancel()

    async def get(self, key: str) -> bytes | None:
        """GET."""
        return cast(bytes | None, await self._call("get", lambda: self._client.get(key)))

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        """Generation and entry in one round trip (a Lua script); two single-key GETs on a cluster."""
        if self._get_generational is None:
            raw_generation = await self.get(generation_key)
            try:
                current = int(raw_generation or b"0")
            except ValueError as err:
                raise CacheUnavailable(f"redis get generational: not a counter {raw_generation!r:.40}") from err
            return current, await self.get(f"{prefix}{current}{suffix}")
        script = self._get_generational
        raw = await self._call("get generational", lambda: script(keys=[generation_key], args=[prefix, suffix]))
        try:
            generation, value = cast(list[bytes | None], raw)
            return int(generation or b"0"), value
        except (TypeError, ValueError) as err:
            raise CacheUnavailable(f"redis get generational: unexpected reply {raw!r:.80}") from err

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """SET with a millisecond expiry."""
        milliseconds = max(1, int(ttl_seconds * 1000))
        await self._call("set", lambda: self._client.set(key, value, px=milliseconds))

    async def delete(self, *keys: str) -> None:
        """DEL."""
        if keys:
            await self._call("delete", lambda: self._client.delete(*keys))

    async def drop_in_process(self, keys: Sequence[str], generation_key: str, generation: int | None) -> None:
        """Nothing is held in this process: every read goes to Redis."""

    async def delete_prefix(self, prefix: str) -> int:
        """SCAN the keys under `prefix` (every primary of a cluster) and UNLINK them in batches.

        Not atomic: values written while it runs may survive. Glob characters in `prefix` are escaped.
        """
        pattern = "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in prefix) + "*"

        async def purge() -> int:
            removed = 0
            batch: list[bytes | str] = []
            async for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    removed += int(await self._client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(await self._client.unlink(*batch))
            return removed

        try:
            return await asyncio.wait_for(purge(), timeout=max(30.0, self._timeout))
        except (RedisError, OSError, TimeoutError) as err:
            raise CacheUnavailable(f"redis delete_prefix: {type(err).__name__}: {err}") from err

    async def incr(self, key: str) -> int:
        """INCR."""
        return int(await self._call("incr", lambda: self._client.incr(key)))

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        """SET NX PX: the lease expires on its own if the holder dies."""
        token = lock_token()
        milliseconds = max(1, int(lease_seconds * 1000))
        taken = await self._call("acquire", lambda: self._client.set(key, token, nx=True, px=milliseconds))
        return token if taken else None

    async def release(self, key: str, token: str) -> None:
        """Delete the lock only if `token` still holds it (compare-and-delete in Lua)."""
        await self._call("release", lambda: self._release(keys=[key], args=[token]))

    async def ping(self) -> None:
        """PING."""
        await self._call("ping", lambda: self._client.ping())

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def create_redis_cache(
    url: str,
    *,
    timeout_seconds: float,
    connect_timeout_seconds: float,
    failure_threshold: int,
    reset_seconds: float,
    cluster: bool = False,
    max_connections: int = 256,
) -> RedisCache:
    """A RedisCache (cluster-aware when `cluster`) with no client-side retries: the breaker decides.

    The socket timeout is the hard limit only; the budget itself is enforced by `_within_budget`.
    """
    socket_timeout = max(1.0, timeout_seconds * _HARD_LIMIT_FACTOR)
    client: Redis | RedisCluster
    if cluster:
        client = RedisCluster.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout_seconds,
            retry=Retry(NoBackoff(), 1),  # one retry after a MOVED/ASK or a node change; the breaker decides
            max_connections=max_connections,
        )
    else:
        client = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout_seconds,
            retry_on_timeout=False,
            health_check_interval=30,
            max_connections=max_connections,
        )
    breaker = CircuitBreaker(name="redis", failure_threshold=failure_threshold, reset_seconds=reset_seconds)
    return RedisCache(client, timeout_seconds=timeout_seconds, breaker=breaker)
