"""Unit tests of src.indexer.retry: backoff with full jitter, and the retry loop with a fake sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from src.indexer.retry import RetryPolicy, retrying


class Transient(Exception):
    """A failure worth retrying."""


class Fatal(Exception):
    """A failure not worth retrying."""


class FakeSleep:
    """Records the delays it is asked to sleep; never sleeps."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Script:
    """An action that raises the scripted errors in turn, then returns `result`."""

    def __init__(self, errors: list[BaseException], result: str = "done") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def _draws(*values: float) -> Callable[[], float]:
    remaining = list(values)
    return lambda: remaining.pop(0)


POLICY = RetryPolicy(attempts=4, base_seconds=1.0, cap_seconds=3.0)


# --- RetryPolicy.delay ---------------------------------------------------------------------------


def test_retry_policy_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(attempts=6, base_seconds=0.1, cap_seconds=10.0)


def test_delay_draw_zero_is_zero() -> None:
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=10.0)
    assert [policy.delay(attempt, 0.0) for attempt in range(6)] == [0.0] * 6


def test_delay_scales_with_draw_and_doubles_per_attempt() -> None:
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=100.0)
    assert [policy.delay(attempt, 0.5) for attempt in range(4)] == [0.25, 0.5, 1.0, 2.0]


def test_delay_full_jitter_below_bound() -> None:
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=100.0)
    draw = 0.999999
    for attempt in range(6):
        bound = 0.5 * 2**attempt
        assert 0.0 <= policy.delay(attempt, draw) < bound
        assert policy.delay(attempt, draw) == pytest.approx(bound * draw)


def test_delay_capped() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=3.0)
    assert policy.delay(1, 1.0) == 2.0
    assert policy.delay(2, 1.0) == 3.0
    assert policy.delay(10, 1.0) == 3.0
    assert policy.delay(10, 0.5) == 1.5


def test_delay_returns_float() -> None:
    assert type(RetryPolicy(base_seconds=1, cap_seconds=10).delay(0, 1)) is float


def test_delay_capped_for_huge_attempt() -> None:
    assert RetryPolicy(base_seconds=0.1, cap_seconds=10.0).delay(1024, 0.5) == 5.0


# --- retrying ------------------------------------------------------------------------------------


async def test_retrying_returns_first_success() -> None:
    action, sleep = Script([]), FakeSleep()
    result = await retrying(action, policy=POLICY, transient=(Transient,), sleep=sleep, draw=_draws())
    assert result == "done"
    assert action.calls == 1
    assert sleep.delays == []


async def test_retrying_retries_transient_errors_with_backoff() -> None:
    action, sleep = Script([Transient("a"), Transient("b"), Transient("c")]), FakeSleep()
    result = await retrying(action, policy=POLICY, transient=(Transient,), sleep=sleep, draw=_draws(0.5, 0.5, 0.5))
    assert result == "done"
    assert action.calls == 4
    assert sleep.delays == [0.5, 1.0, 1.5]  # 1*2^0*0.5, 1*2^1*0.5, min(3, 4)*0.5


async def test_retrying_uses_injected_draw_per_retry() -> None:
    action, sleep = Script([Transient(), Transient()]), FakeSleep()
    await retrying(action, policy=POLICY, transient=(Transient,), sleep=sleep, draw=_draws(0.0, 0.25))
    assert sleep.delays == [0.0, 0.5]


async def test_retrying_any_listed_transient_type() -> None:
    action, sleep = Script([KeyError("k"), Transient()]), FakeSleep()
    result = await retrying(action, policy=POLICY, transient=(Transient, KeyError), sleep=sleep, draw=_draws(1.0, 1.0))
    assert result == "done"
    assert action.calls == 3
    assert sleep.delays == [1.0, 2.0]


async def test_retrying_non_transient_propagates_immediately() -> None:
    error = Fatal("nope")
    action, sleep = Script([error]), FakeSleep()
    retries: list[tuple[Exception, int]] = []
    with pytest.raises(Fatal) as info:
        await retrying(
            action,
            policy=POLICY,
            transient=(Transient,),
            on_retry=lambda err, attempt: retries.append((err, attempt)),
            sleep=sleep,
            draw=_draws(),
        )
    assert info.value is error
    assert action.calls == 1
    assert sleep.delays == []
    assert retries == []


async def test_retrying_non_transient_after_transient_stops() -> None:
    fatal = Fatal("later")
    action, sleep = Script([Transient(), fatal, Transient()]), FakeSleep()
    with pytest.raises(Fatal) as info:
        await retrying(action, policy=POLICY, transient=(Transient,), sleep=sleep, draw=_draws(1.0))
    assert info.value is fatal
    assert action.calls == 2
    assert sleep.delays == [1.0]


async def test_retrying_exhausted_raises_last_error() -> None:
    errors: list[Exception] = [Transient(f"e{i}") for i in range(4)]
    action, sleep = Script(list(errors)), FakeSleep()
    with pytest.raises(Transient) as info:
        await retrying(action, policy=POLICY, transient=(Transient,), sleep=sleep, draw=_draws(1.0, 1.0, 1.0))
    assert info.value is errors[-1]
    assert str(info.value) == "e3"
    assert action.calls == 4
    assert sleep.delays == [1.0, 2.0, 3.0]  # no sleep after the final failure


async def test_retrying_single_attempt_never_retries() -> None:
    action, sleep = Script([Transient("only")]), FakeSleep()
    with pytest.raises(Transient, match="only"):
        await retrying(action, policy=RetryPolicy(attempts=1), transient=(Transient,), sleep=sleep, draw=_draws())
    assert action.calls == 1
    assert sleep.delays == []


async def test_retrying_on_retry_called_per_retry_not_final() -> None:
    errors: list[Exception] = [Transient(f"e{i}") for i in range(4)]
    action, sleep = Script(list(errors)), FakeSleep()
    retries: list[tuple[Exception, int]] = []
    with pytest.raises(Transient):
        await retrying(
            action,
            policy=POLICY,
            transient=(Transient,),
            on_retry=lambda err, attempt: retries.append((err, attempt)),
            sleep=sleep,
            draw=_draws(0.0, 0.0, 0.0),
        )
    assert retries == [(errors[0], 0), (errors[1], 1), (errors[2], 2)]


async def test_retrying_on_retry_before_sleep() -> None:
    events: list[str] = []

    async def sleep(seconds: float) -> None:
        events.append(f"sleep {seconds}")

    action = Script([Transient()])
    await retrying(
        action,
        policy=POLICY,
        transient=(Transient,),
        on_retry=lambda err, attempt: events.append(f"retry {attempt}"),
        sleep=sleep,
        draw=_draws(1.0),
    )
    assert events == ["retry 0", "sleep 1.0"]


async def test_retrying_on_retry_not_called_on_success() -> None:
    retries: list[tuple[Exception, int]] = []
    await retrying(
        Script([]),
        policy=POLICY,
        transient=(Transient,),
        on_retry=lambda err, attempt: retries.append((err, attempt)),
        sleep=FakeSleep(),
        draw=_draws(),
    )
    assert retries == []


async def test_retrying_default_sleep_and_draw_with_zero_base() -> None:
    action = Script([Transient(), Transient()])
    result = await retrying(action, policy=RetryPolicy(attempts=3, base_seconds=0.0), transient=(Transient,))
    assert result == "done"
    assert action.calls == 3


async def test_retrying_awaits_an_action_returning_an_awaitable() -> None:
    # How the callers pass actions (`lambda: store.save(x)`): a plain callable whose result is awaited.
    script = Script([Transient()])
    result = await retrying(
        lambda: script(), policy=POLICY, transient=(Transient,), sleep=FakeSleep(), draw=_draws(0.0)
    )
    assert result == "done"
    assert script.calls == 2


async def test_retrying_cancelled_action_propagates_without_retry() -> None:
    action, sleep = Script([asyncio.CancelledError()]), FakeSleep()
    with pytest.raises(asyncio.CancelledError):
        await retrying(action, policy=POLICY, transient=(Transient, Exception), sleep=sleep, draw=_draws())
    assert action.calls == 1
    assert sleep.delays == []


async def test_retrying_cancelled_while_backing_off_stops_at_once() -> None:
    # A stop (task cancellation) during the sleep between attempts ends the loop: no further attempt.
    asleep = asyncio.Event()

    async def sleep(seconds: float) -> None:
        asleep.set()
        await asyncio.Event().wait()  # until cancelled

    action = Script([Transient(), Transient()])
    task = asyncio.create_task(retrying(action, policy=POLICY, transient=(Transient,), sleep=sleep, draw=_draws(1.0)))
    await asleep.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert action.calls == 1
