"""Bounded retries with exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    attempts: int = 6
    base_seconds: float = 0.1
    cap_seconds: float = 10.0

    def delay(self, attempt: int, draw: float) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)) for `draw` in [0, 1)."""
        return float(min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt, 64)) * draw)


async def retrying[T](
    action: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    transient: tuple[type[Exception], ...],
    on_retry: Callable[[Exception, int], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """Run `action`, retrying `transient` errors up to `policy.attempts` times in all."""
    attempts = max(1, policy.attempts)
    for attempt in range(attempts):
        try:
            return await action()
        except transient as err:
            if attempt == attempts - 1:
                raise
            if on_retry is not None:
                on_retry(err, attempt)
            await sleep(policy.delay(attempt, draw()))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
