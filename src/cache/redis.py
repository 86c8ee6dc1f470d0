"""`Cache` on Redis (`redis.asyncio` with the hiredis parser), with tight timeouts and a circuit breaker.

`_call` is the one choke point: Redis errors, timeouts and an open circuit all become CacheUnavailable,
which the cache-aside layer turns into a miss. Reading the generation and the entry it selects is one
Lua script, so a cached search costs one round trip.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from src.cache.base import CacheUnavailable
from src.resilience import CircuitBreaker

_GET_GENERATIONAL = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ARGV[2])}
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCache:
    """`Cache` on a Redis server."""

    kind = "redis"

    def __init__(self, client: Redis, *, timeout_seconds: float, breaker: CircuitBreaker) -> None:
        self._client = client
        self._timeout = timeout_seconds
        self._breaker = breaker
        self._get_generational = client.register_script(_GET_GENERATIONAL)
        self._release = client.register_script(_RELEASE)

    async def _call[T](self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        if not self._breaker.allow():
            raise CacheUnavailable(f"redis {what}: circuit open")
        try:
            async with asyncio.timeout(self._timeout):
                result = await action()
        except ResponseError as err:  # Redis answered, refusing this command (WRONGTYPE, OOM...): not an outage
            self._breaker.release()
            raise CacheUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err
        except (RedisError, OSError, TimeoutError) as err:
            self._breaker.record_failure(f"{type(err).__name__}: {err}")
            raise CacheUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err
        self._breaker.record_success()
        return result

    async def get(self, key: str) -> bytes | None:
        """GET."""
        return cast(bytes | None, await self._call("get", lambda: self._client.get(key)))

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        """Generation and entry in one round trip (a Lua script)."""
        raw = await self._call(
            "get generational", lambda: self._get_generational(keys=[generation_key], args=[prefix, suffix])
        )
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

    async def incr(self, key: str) -> int:
        """INCR."""
        return int(await self._call("incr", lambda: self._client.incr(key)))

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        """SET NX PX: the lease expires on its own if the holder dies."""
        token = uuid.uuid4().hex
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
    url: str, *, timeout_seconds: float, connect_timeout_seconds: float, failure_threshold: int, reset_seconds: float
) -> RedisCache:
    """A RedisCache with bounded socket timeouts and no client-side retries (the breaker decides)."""
    client = Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=connect_timeout_seconds,
        retry_on_timeout=False,
        health_check_interval=30,
    )
    breaker = CircuitBreaker(name="redis", failure_threshold=failure_threshold, reset_seconds=reset_seconds)
    return RedisCache(client, timeout_seconds=timeout_seconds, breaker=breaker)
