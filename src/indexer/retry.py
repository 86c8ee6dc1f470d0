"""Bounded retries with exponential backoff and full jitter, run by tenacity.

`RetryPolicy` is the policy (from settings; the sink and the stream also use its `delay` on their own);
`retrying` runs one action under it. Only the `transient` errors are retried; anything else, cancellation
included, propagates at once, and so does the last transient error once the attempts are spent (the error
itself, not a wrapper). The sleep and the jitter draw are injected, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt


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
    """Run `action`, retrying `transient` errors up to `policy.attempts` times in all.

    Before each sleep, `on_retry(error, attempt)` is called (attempt 0 is the first failure): never for
    the final failure, which is raised.
    """
    attempts = max(1, policy.attempts)

    def wait(state: RetryCallState) -> float:
        # tenacity asks for the wait before it checks the stop: no draw for the final failure, which
        # sleeps on nothing (one draw per sleep, as the injected draws of the callers' tests expect).
        if state.attempt_number >= attempts:
            return 0.0
        return policy.delay(state.attempt_number - 1, draw())

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            # Only `transient` errors are retried, so the failure before a sleep is one of them.
            on_retry(cast(Exception, state.outcome.exception()), state.attempt_number - 1)

    async def attempt() -> T:
        # tenacity awaits only what it sees is a coroutine function: a lambda returning an awaitable
        # (how the callers pass their actions) would come back unawaited.
        return await action()

    retryer = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception_type(transient),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retryer(attempt)
