"""Unit tests of src.api.ratelimit: the engine budget (local count first, then a shared window that may be
slow, failing or refusing), the sliding-window counter, and the Redis window's close."""

from __future__ import annotations

import asyncio

import pytest

from src.api.ratelimit import CLIENT, EngineBudget, RateLimited, RedisMovingWindow, create_engine_budget
from src.observability.metrics import RATE_LIMITER_ERRORS
from src.resilience import CircuitBreaker


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _SharedWindow:
    """A shared window that answers `wait` (None: allowed), raises `error`, or never answers (`silent`)."""

    def __init__(self, *, wait: float | None = None, error: Exception | None = None, silent: bool = False) -> None:
        self.wait = wait
        self.error = error
        self.silent = silent
        self.calls: list[str] = []
        self.closed = False

    async def hit(self, client: str) -> float | None:
        self.calls.append(client)
        if self.silent:
            await asyncio.Event().wait()  # a paused Redis: no answer, ever
        if self.error is not None:
            raise self.error
        return self.wait

    async def close(self) -> None:
        self.closed = True


def _errors() -> float:
    return float(RATE_LIMITER_ERRORS._value.get())


async def _charge_as(budget: EngineBudget, client: str) -> RateLimited | None:
    """One charge as `client`: None when allowed, else the refusal."""
    token = CLIENT.set(client)
    try:
        await budget.charge()
    except RateLimited as refused:
        return refused
    finally:
        CLIENT.reset(token)
    return None


async def test_engine_budget_when_in_memory_refuses_past_the_limit_per_client() -> None:
    budget = create_engine_budget("2/minute")
    assert budget.kind == "memory"
    assert await _charge_as(budget, "198.51.100.1") is None
    assert await _charge_as(budget, "198.51.100.1") is None
    refused = await _charge_as(budget, "198.51.100.1")
    assert refused is not None
    assert refused.headers()["ratelimit-policy"] == '"engine";q=2;w=60'
    assert await _charge_as(budget, "198.51.100.2") is None  # another client has a budget of its own


async def test_engine_budget_when_window_passes_allows_again() -> None:
    clock = _Clock(1000.0)
    budget = EngineBudget("2/second", clock=clock)
    assert [await _charge_as(budget, "a") for _ in range(2)] == [None, None]
    refused = await _charge_as(budget, "a")
    assert refused is not None
    assert refused.headers()["retry-after"] == "1"
    clock.now += 2.0
    assert await _charge_as(budget, "a") is None


async def test_engine_budget_when_shared_window_is_silent_the_local_count_decides() -> None:
    shared = _SharedWindow(silent=True)
    budget = EngineBudget("20/minute", shared=shared, timeout_seconds=0.01)
    before = _errors()
    outcomes = await asyncio.gather(*(_charge_as(budget, "198.51.100.7") for _ in range(100)))
    refused = [outcome for outcome in outcomes if outcome is not None]
    assert len(refused) == 80  # fails closed for the client over its budget, though the store never answered
    assert all(outcome.name == "engine" for outcome in refused)
    assert len(shared.calls) == 20  # the 80 over the local count never reached the store
    assert _errors() == before + 20


async def test_engine_budget_when_shared_window_fails_lets_other_clients_through() -> None:
    shared = _SharedWindow(error=ConnectionError("refused"))
    budget = EngineBudget("3/minute", shared=shared)
    for _ in range(10):
        await _charge_as(budget, "abuser")
    assert [await _charge_as(budget, "neighbour") for _ in range(3)] == [None, None, None]
    assert await _charge_as(budget, "neighbour") is not None


async def test_engine_budget_when_shared_window_refuses_refuses_with_its_reset() -> None:
    shared = _SharedWindow(wait=2.5)  # other processes used this client's budget
    budget = EngineBudget("5/minute", shared=shared)
    refused = await _charge_as(budget, "198.51.100.8")
    assert refused is not None
    assert refused.reset_in == 2.5
    assert refused.headers()["retry-after"] == "3"
    assert shared.calls == ["198.51.100.8"]


async def test_engine_budget_when_shared_window_allows_allows() -> None:
    shared = _SharedWindow()
    budget = EngineBudget("5/minute", shared=shared)
    before = _errors()
    assert await _charge_as(budget, "198.51.100.9") is None
    assert shared.calls == ["198.51.100.9"]
    assert _errors() == before


async def test_engine_budget_when_breaker_opens_stops_asking_the_shared_window() -> None:
    clock = _Clock(0.0)
    shared = _SharedWindow(error=TimeoutError())
    breaker = CircuitBreaker(name="rate-limiter-test", failure_threshold=2, reset_seconds=5.0, clock=clock)
    budget = EngineBudget("100/minute", shared=shared, breaker=breaker)
    before = _errors()
    for _ in range(6):
        assert await _charge_as(budget, "198.51.100.10") is None
    assert len(shared.calls) == 2  # then open: the local count decides without a trip
    assert _errors() == before + 6  # every request the shared window did not decide is counted
    clock.now = 6.0
    shared.error = None
    assert await _charge_as(budget, "198.51.100.10") is None  # the half-open trial succeeds
    assert breaker.state == "closed"
    assert len(shared.calls) == 3


async def test_engine_budget_when_redis_is_unreachable_the_local_count_decides() -> None:
    budget = create_engine_budget("2/minute", redis_url="redis://127.0.0.1:1/0", timeout_seconds=0.2)
    assert budget.kind == "redis"
    before = _errors()
    try:
        assert await _charge_as(budget, "198.51.100.3") is None
        assert await _charge_as(budget, "198.51.100.3") is None
        assert await _charge_as(budget, "198.51.100.3") is not None  # over the local count: no Redis trip
    finally:
        await budget.close()
    assert _errors() == before + 2


async def test_engine_budget_when_no_client_is_known_charges_nothing() -> None:
    budget = EngineBudget("1/minute", shared=_SharedWindow(wait=1.0))
    await budget.charge()
    await budget.charge()


async def test_engine_budget_when_closed_closes_its_shared_window() -> None:
    shared = _SharedWindow()
    await EngineBudget("1/minute", shared=shared).close()
    assert shared.closed
    await EngineBudget("1/minute").close()  # local only: nothing to close


def test_sliding_window_counter_when_window_full_refuses_until_the_next() -> None:
    from src.api.ratelimit import SlidingWindowCounter

    clock = _Clock(100.25)
    counter = SlidingWindowCounter(3, 1.0, clock=clock)
    assert [counter.hit("a") for _ in range(3)] == [None, None, None]
    assert counter.hit("a") == pytest.approx(0.75)  # this window is full: the rest of it
    assert counter.hit("b") is None  # per key


def test_sliding_window_counter_when_previous_window_was_busy_weighs_it_in() -> None:
    from src.api.ratelimit import SlidingWindowCounter

    clock = _Clock(10.0)
    counter = SlidingWindowCounter(10, 1.0, clock=clock)
    for _ in range(10):
        assert counter.hit("a") is None
    clock.now = 11.25  # 75 % of the last window still counts: 7.5 of 10, so two more fit
    assert counter.hit("a") is None
    assert counter.hit("a") is None
    wait = counter.hit("a")  # 7.5 + 2 + 1 > 10: until the old weight falls to 0.7
    assert wait is not None
    assert wait == pytest.approx(0.05)
    clock.now += wait
    assert counter.hit("a") is None
    clock.now = 13.0  # two windows later nothing of it remains
    assert [counter.hit("a") for _ in range(10)] == [None] * 10


def test_sliding_window_counter_when_clients_go_idle_forgets_them() -> None:
    from src.api.ratelimit import SlidingWindowCounter

    clock = _Clock(0.5)
    counter = SlidingWindowCounter(5, 1.0, clock=clock)
    for number in range(2000):
        counter.hit(f"client-{number}")
    clock.now = 3.5
    counter.hit("new")
    assert list(counter._counts) == ["new"]


async def test_redis_moving_window_when_closed_closes_its_redis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    window = RedisMovingWindow(
        "1/minute", redis_url="redis://127.0.0.1:1/0", cluster=False, timeout_seconds=0.2, key_prefix="t"
    )
    client = window.storage.bridge.storage  # type: ignore[attr-defined]
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    monkeypatch.setattr(client, "aclose", aclose)
    await window.close()
    assert closed == [True]
