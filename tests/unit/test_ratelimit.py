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
