"""Unavailability, and a small circuit breaker shared by the Redis and search adapters.

`Unavailable` is what every layer understands of a dependency that cannot answer now: the search
adapters raise it (as `SearchUnavailable`), the cache-aside layer serves a stale copy instead of it and
raises `Overloaded` (one kind of it) for admission control, and the edge answers it with a 503 naming
the dependency. It lives here, under all of them, so none of them imports another for it.

Closed: calls go through; `failure_threshold` consecutive failures open it. Open: calls are refused at
once for `reset_seconds`. Half-open: one trial call goes through; success closes, failure reopens.
Only availability failures are recorded as failures (the adapters classify them); a call the
dependency answered by rejecting its input is `release`d: it neither opens nor closes the circuit.

A long outage is logged once per state change (and counted), never once per request. The clock is
injected so the state machine is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from loguru import logger

from src.observability.metrics import BREAKER_OPEN, BREAKER_TRANSITIONS

type BreakerState = Literal["closed", "open", "half-open"]


class Unavailable(Exception):
    """A dependency cannot answer now: down, timed out, its circuit open, or admission refused (a 503
    with Retry-After at the edge, unless a cached copy is served instead)."""

    def __init__(self, detail: str, *, dependency: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.dependency = dependency
        """What was unavailable ("search", "capacity", ...): the problem response and the metric name it."""


class Overloaded(Unavailable):
    """Admission control refused an engine call: too many are in flight in this process (a fast 503).

    Raised before the engine is called, so it never counts towards the engine's circuit breaker.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail, dependency="capacity")


class CircuitBreaker:
    """Fail fast after repeated failures instead of paying a timeout on every call."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_seconds: float,
        name: str = "dependency",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self._reopened = 0

    @property
    def state(self) -> BreakerState:
        """The current state (open turns half-open once `reset_seconds` have passed)."""
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self._reset else "open"

    def allow(self) -> bool:
        """Whether a call may go through now (in half-open state, only one trial at a time)."""
        state = self.state
        if state == "closed":
            return True
        now = self._clock()
        # A trial that never reported (cancelled, or failed in an unexpected way) must not block forever.
        if state == "half-open" and (self._trial_started is None or now - self._trial_started >= self._reset):
            self._trial_started = now
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close."""
        if self._opened_at is not None:
            logger.info(
                "{} circuit closed: calls succeed again (it reopened {} times meanwhile)", self.name, self._reopened
            )
            self._transition("closed")
        self._failures = 0
        self._opened_at = None
        self._trial_started = None
        self._reopened = 0

    def record_failure(self, detail: str = "") -> None:
        """A call failed for availability reasons: open when the threshold is reached or the trial failed."""
        self._failures += 1
        self._trial_started = None
        if self._opened_at is not None:
            if self.state == "half-open":  # the trial failed: a state change (calls still in flight are not)
                self._reopened += 1
                BREAKER_TRANSITIONS.labels(self.name, "open").inc()
            self._opened_at = self._clock()
        elif self._failures >= self._threshold:
            self._opened_at = self._clock()
            logger.warning(
                "{} circuit opened after {} consecutive failures ({}): failing fast, retrying every {:g} s",
                self.name,
                self._failures,
                detail or "no detail",
                self._reset,
            )
            self._transition("open")

    def release(self) -> None:
        """The call proved nothing either way (its input was rejected): free a half-open trial slot."""
        self._trial_started = None

    def _transition(self, state: BreakerState) -> None:
        BREAKER_TRANSITIONS.labels(self.name, state).inc()
        BREAKER_OPEN.labels(self.name).set(1 if state == "open" else 0)
