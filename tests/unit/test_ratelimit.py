"""Unit tests of src.api.ratelimit: the engine budget, in memory and with an unreachable Redis."""

from __future__ import annotations

import pytest

from src.api.ratelimit import CLIENT, EngineBudget, RateLimited
from src.observability.metrics import RATE_LIMITER_ERRORS


async def test_engine_budget_when_in_memory_refuses_past_the_limit_per_client() -> None:
    budget = EngineBudget("2/minute")
    assert budget.kind == "memory"
    token = CLIENT.set("198.51.100.1")
    try:
        await budget.charge()
        await budget.charge()
        with pytest.raises(RateLimited) as refused:
            await budget.charge()
    finally:
        CLIENT.reset(token)
    assert refused.value.headers()["ratelimit-policy"] == '"engine";q=2;w=60'
    other = CLIENT.set("198.51.100.2")
    try:
        await budget.charge()  # another client has a budget of its own
    finally:
        CLIENT.reset(other)


async def test_engine_budget_when_redis_is_unreachable_lets_requests_through_and_counts_it() -> None:
    budget = EngineBudget("1/minute", redis_url="redis://127.0.0.1:1/0", timeout_seconds=0.2)
    assert budget.kind == "redis"
    before = RATE_LIMITER_ERRORS._value.get()
    token = CLIENT.set("198.51.100.3")
    try:
        await budget.charge()
        await budget.charge()  # over the limit, but the limiter cannot know: allowed
    finally:
        CLIENT.reset(token)
    assert RATE_LIMITER_ERRORS._value.get() == before + 2


async def test_engine_budget_when_no_client_is_known_charges_nothing() -> None:
    budget = EngineBudget("1/minute")
    await budget.charge()
    await budget.charge()


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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


async def test_engine_budget_when_closed_closes_its_redis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = EngineBudget("1/minute", redis_url="redis://127.0.0.1:1/0", timeout_seconds=0.2)
    client = budget.storage.bridge.storage  # type: ignore[attr-defined]
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    monkeypatch.setattr(client, "aclose", aclose)
    await budget.close()
    assert closed == [True]
    await EngineBudget("1/minute").close()  # in memory: nothing to close
