"""Rate limits per client, with the `limits` library.

- **When they apply** (`RATE_LIMIT_ENABLED`): unset, on with `APP_ENV=production` and off otherwise. The
  embedded default (`make run`) serves one local client, whose scripts and loops must not meet a 429 a
  production budget was sized for; every production deployment of this repository (compose, the CDK
  stack) sets `APP_ENV=production` and so keeps them, and either way an explicit value decides.
- **Who is the client**: the peer address, or, when the peer is one of `TRUSTED_PROXIES` (CIDRs), the
  right-most address of `X-Forwarded-For` that is not itself a trusted proxy (the left part of the
  header is whatever the client wrote and is never believed).
- **Overall limit** (`RATE_LIMIT`, e.g. `100/second`): every request but the probes and `/metrics`,
  fast cache hits included, counted in this process's memory (a sliding-window counter: no network
  trip, approximate across processes; the gateway's `limit_req` is the exact first line). Checked by
  `RateLimitMiddleware`, outside everything but the observability layer. The counter is our own
  (`SlidingWindowCounter`, a dict of three numbers per client): `limits`' in-memory storage, with its
  locks and expiry timers, cost about a fifth of a fast cache hit.
- **Engine budget** (`RATE_LIMIT_ENGINE`, lower): requests that reach the engine, checked where a
  cache miss is known (before the single flight and before admission control, so a refused request
  never takes an engine slot and another client's request never pays for this one). Two counters, the
  same limit, charged in this order:
  1. this process's own sliding-window counter (`SlidingWindowCounter`): over it, a 429 at once, with
     no network trip. A client never gets more than the limit from one process, whatever Redis does,
     and a burst past the limit costs Redis nothing.
  2. with `REDIS_URL`, the shared moving window in Redis (`limits`: exact across processes). When
     Redis fails, misses its budget (`REDIS_TIMEOUT_SECONDS`) or its breaker is open, the local
     decision stands (the request was already counted locally) and the miss is counted
     (`search_api_rate_limiter_errors_total`). Limits fail closed for the client over its budget and
     open for everyone else: a Redis outage never lets a burst through, nor refuses a client under it.
  A request the shared window refuses still counts locally (the client asked for it). The local count is
  the sliding-window approximation (the previous window's requests taken as evenly spread): around a
  window's edge it may grant a little more or less than an exact window would; with Redis answering,
  the exact shared window still refuses what is over. Without Redis the local count is the budget.

Over a limit: a 429 problem (`/problems/rate-limited`) with `Retry-After` (seconds, rounded up),
`RateLimit-Policy` and `RateLimit` (the IETF httpapi draft: `"<name>";q=<limit>;w=<window>` and
`"<name>";r=<remaining>;t=<reset seconds>`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

import orjson
from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

from src.api.outermost import CLIENT_KEY
from src.observability.metrics import RATE_LIMITED, RATE_LIMITER_ERRORS
from src.resilience import CircuitBreaker

if TYPE_CHECKING:  # `limits` loads only where a limit is on (not on Lambda, where API Gateway throttles)
    import limits.aio.storage

type Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CLIENT: ContextVar[str | None] = ContextVar("search_api_client", default=None)
"""The client of the request being served (set by RateLimitMiddleware)."""

_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


class Networks(tuple[Network, ...]):
    """Parsed networks whose hash is worked out once (`_trusted`'s cache hashes them on every request,
    and an ip network's hash is slow enough to show in profiles of the fast-hit path)."""

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = tuple.__hash__(self)
        return self._hash


def parse_networks(listed: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (or single addresses); ValueError names a bad one."""
    networks: list[Network] = []
    for part in (item.strip() for item in listed.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError as err:
                raise ValueError(f"not an address or CIDR: {part!r}") from err
    return Networks(networks)


@functools.lru_cache(maxsize=4096)
def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether `address` is in one of `networks` (cached: parsing an address on every request showed in
    profiles of the fast-hit path, and a service sees few distinct peers: its proxies)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The client's address as this service believes it (see the module docstring)."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded.extend(part.strip() for part in value.decode("latin-1").split(","))
    for hop in reversed([part for part in forwarded if part]):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where an address should be: the proxy's word is all we have
    return peer


class RateLimited(Exception):
    """A client is over one of its limits (`name`: all or engine)."""

    def __init__(self, name: str, limit: int, window_seconds: int, reset_in: float) -> None:
        super().__init__(name)
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds
        self.reset_in = reset_in

    def headers(self) -> dict[str, str]:
        """Retry-After and the RateLimit draft headers."""
        reset = max(1, math.ceil(self.reset_in))
        return {
            "retry-after": str(reset),
            "ratelimit-policy": f'"{self.name}";q={self.limit};w={self.window_seconds}',
            "ratelimit": f'"{self.name}";r=0;t={reset}',
        }

    def detail(self) -> str:
        return f"over the {self.name} limit of {self.limit} requests per {self.window_seconds} s; retry later"


def problem_body(limited: RateLimited, instance: str) -> bytes:
    return orjson.dumps(
        {
            "type": "/problems/rate-limited",
            "title": "Too Many Requests",
            "status": 429,
            "detail": limited.detail(),
            "instance": instance,
        }
    )


class SlidingWindowCounter:
    """A per-key sliding-window counter in memory (the approximation Cloudflare and `limits` use).

    The estimate is this window's count plus the previous window's, weighted by how much of the
    previous window the sliding window still covers. Per key: [window index, count, previous count].
    Keys idle for two windows are swept when a new window starts, so memory follows active clients.
    """

    def __init__(self, amount: int, window_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.amount = amount
        self.window = window_seconds
        self._clock = clock
        self._counts: dict[str, list[int]] = {}
        self._swept = -1

    def hit(self, key: str) -> float | None:
        """Count one request of `key`; None when allowed, else the seconds until one would be."""
        now = self._clock()
        index = int(now // self.window)
        if index != self._swept:
            self._sweep(index)
        entry = self._counts.get(key)
        if entry is None or entry[0] < index - 1:
            entry = self._counts[key] = [index, 0, 0]
        elif entry[0] == index - 1:
            entry[:] = [index, 0, entry[1]]
        remaining = 1.0 - (now - index * self.window) / self.window
        if entry[2] * remaining + entry[1] + 1 <= self.amount:
            entry[1] += 1
            return None
        if entry[1] + 1 > self.amount or entry[2] == 0:
            return remaining * self.window  # this window alone is full: wait for the next one
        # The previous window's weight must fall until one more request fits.
        needed = 1.0 - (self.amount - 1 - entry[1]) / entry[2]
        return max(0.0, (remaining - (1.0 - needed)) * self.window)

    def _sweep(self, index: int) -> None:
        self._swept = index
        if len(self._counts) > 1024:
            for key in [key for key, entry in self._counts.items() if entry[0] < index - 1]:
                del self._counts[key]


class RateLimitMiddleware:
    """The overall per-client limit, in memory; sets `CLIENT` for the engine budget further in."""

    def __init__(self, app: ASGIApp, *, limit: str | None, trusted_proxies: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted_proxies
        self.counter: SlidingWindowCounter | None = None
        if limit:
            import limits  # its parser only: "100/second", "1000 per minute", ...

            item = limits.parse(limit)
            self.counter = SlidingWindowCounter(item.amount, item.get_expiry())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = client_address(scope, self.trusted)
        scope[CLIENT_KEY] = client  # the access log's client
        token = CLIENT.set(client)
        try:
            counter = self.counter
            wait = None if counter is None or scope["path"] in _EXEMPT else counter.hit(client)
            if counter is not None and wait is not None:
                limited = RateLimited("all", counter.amount, int(counter.window), wait)
                RATE_LIMITED.labels("all").inc()
                body = problem_body(limited, scope["path"][:256])
                headers = [(name.encode(), value.encode()) for name, value in limited.headers().items()]
                headers.append((b"content-type", b"application/problem+json"))
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await self.app(scope, receive, send)
        finally:
            CLIENT.reset(token)


class SharedWindow(Protocol):
    """The shared half of the engine budget: one count per client across every process."""

    async def hit(self, client: str) -> float | None:
        """Count one request of `client`; None when allowed, else the seconds until one would be.

        Raises whatever its store raises when it cannot answer (the budget counts that and decides locally)."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...


class RedisMovingWindow:
    """`limits`' moving window in Redis or Redis Cluster: exact across processes."""

    def __init__(self, limit: str, *, redis_url: str, cluster: bool, timeout_seconds: float, key_prefix: str) -> None:
        import limits
        import limits.aio.storage
        import limits.aio.strategies

        self.item = limits.parse(limit)
        scheme, rest = redis_url.split("://", 1)
        if cluster:
            self.storage: limits.aio.storage.Storage = limits.aio.storage.RedisClusterStorage(
                f"async+redis+cluster://{rest}",
                implementation="redispy",
                key_prefix=key_prefix,
                socket_timeout=timeout_seconds,
            )
        else:
            self.storage = limits.aio.storage.RedisStorage(
                f"async+{scheme}://{rest}",
                implementation="redispy",
                key_prefix=key_prefix,
                socket_timeout=timeout_seconds,
            )
        self.limiter = limits.aio.strategies.MovingWindowRateLimiter(self.storage)

    async def hit(self, client: str) -> float | None:
        """One moving-window hit (a Lua script); a refusal asks for the window's reset time too."""
        if await self.limiter.hit(self.item, "engine", client):
            return None
        stats = await self.limiter.get_window_stats(self.item, "engine", client)
        return max(0.0, stats.reset_time - time.time())

    async def close(self) -> None:
        """Close the Redis client (at shutdown: an open connection would outlive the loop).

        `limits` has no close of its own; its redis-py bridge holds the client as `bridge.storage`."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()


class EngineBudget:
    """The per-client budget of requests that reach the engine: local first, then shared (see the module
    docstring)."""

    def __init__(
        self,
        limit: str,
        *,
        shared: SharedWindow | None = None,
        timeout_seconds: float = 0.05,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import limits  # its parser only

        item = limits.parse(limit)
        self.amount = item.amount
        self.window_seconds = item.get_expiry()
        self.local = SlidingWindowCounter(self.amount, self.window_seconds, clock=clock)
        self.shared = shared
        self.timeout = timeout_seconds
        self.breaker = breaker
        self.kind = "memory" if shared is None else "redis"

    async def charge(self) -> None:
        """Count one engine request for the current client; RateLimited when over the budget."""
        client = CLIENT.get()
        if client is None:
            return
        wait = self.local.hit(client)
        if wait is None and self.shared is not None:
            wait = await self._shared_hit(self.shared, client)
        if wait is None:
            return
        RATE_LIMITED.labels("engine").inc()
        raise RateLimited("engine", self.amount, self.window_seconds, wait)

    async def _shared_hit(self, shared: SharedWindow, client: str) -> float | None:
        """The shared window's answer, or None (the local decision, allowed) when it has none in time."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            RATE_LIMITER_ERRORS.inc()
            return None
        try:
            async with asyncio.timeout(self.timeout):
                wait = await shared.hit(client)
        except Exception as err:  # the store failed or was slow: the local count decided, and we say so
            if breaker is not None:
                breaker.record_failure(f"{type(err).__name__}: {err}")
            RATE_LIMITER_ERRORS.inc()
            logger.debug("shared engine budget unavailable ({}): the local count decided", type(err).__name__)
            return None
        if breaker is not None:
            breaker.record_success()
        return wait

    async def close(self) -> None:
        """Close the shared window's connections."""
        if self.shared is not None:
            await self.shared.close()


def create_engine_budget(
    limit: str,
    *,
    redis_url: str = "",
    cluster: bool = False,
    timeout_seconds: float = 0.05,
    key_prefix: str = "search-api-limits",
    breaker: CircuitBreaker | None = None,
) -> EngineBudget:
    """The engine budget as configured: local only without `redis_url`, else local then Redis."""
    shared = (
        RedisMovingWindow(
            limit, redis_url=redis_url, cluster=cluster, timeout_seconds=timeout_seconds, key_prefix=key_prefix
        )
        if redis_url
        else None
    )
    return EngineBudget(limit, shared=shared, timeout_seconds=timeout_seconds, breaker=breaker)
