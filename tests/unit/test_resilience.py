"""Unit tests of src.resilience: the circuit breaker state machine with a fake clock."""

from __future__ import annotations

from src.resilience import CircuitBreaker, Overloaded, Unavailable
from src.search.errors import SearchError, SearchUnavailable


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _breaker(clock: FakeClock, *, threshold: int = 3, reset: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, reset_seconds=reset, clock=clock)


def _state(breaker: CircuitBreaker) -> str:
    """The state, read through a call (so the type checker does not narrow it between reads)."""
    return breaker.state


def _open(breaker: CircuitBreaker, threshold: int = 3) -> None:
    for _ in range(threshold):
        breaker.record_failure()


def test_circuit_breaker_starts_closed() -> None:
    breaker = _breaker(FakeClock())
    assert _state(breaker) == "closed"
    assert breaker.allow() is True
    assert breaker.allow() is True


def test_circuit_breaker_default_clock_is_monotonic() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=3600.0)
    breaker.record_failure()
    assert _state(breaker) == "open"
    assert breaker.allow() is False


def test_circuit_breaker_stays_closed_below_threshold() -> None:
    breaker = _breaker(FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    assert _state(breaker) == "closed"
    assert breaker.allow() is True


def test_circuit_breaker_opens_after_threshold_failures() -> None:
    breaker = _breaker(FakeClock())
    _open(breaker)
    assert _state(breaker) == "open"
    assert breaker.allow() is False


def test_circuit_breaker_threshold_one_opens_on_first_failure() -> None:
    breaker = _breaker(FakeClock(), threshold=1)
    breaker.record_failure()
    assert _state(breaker) == "open"


def test_circuit_breaker_success_resets_the_count() -> None:
    breaker = _breaker(FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert _state(breaker) == "closed"
    breaker.record_failure()
    assert _state(breaker) == "open"


def test_circuit_breaker_open_refuses_until_reset() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.now += 9.999
    assert _state(breaker) == "open"
    assert breaker.allow() is False
    assert breaker.allow() is False


def test_circuit_breaker_half_open_after_reset_seconds() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.now += 10.0
    assert _state(breaker) == "half-open"


def test_circuit_breaker_half_open_allows_exactly_one_trial() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.now += 10.0
    assert breaker.allow() is True
    assert breaker.allow() is False
    assert breaker.allow() is False
    assert _state(breaker) == "half-open"


def test_circuit_breaker_trial_success_closes() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.now += 10.0
    assert breaker.allow() is True
    breaker.record_success()
    assert _state(breaker) == "closed"
    assert breaker.allow() is True
    assert breaker.allow() is True
    # The failure count restarted: one failure no longer opens it.
    breaker.record_failure()
    assert _state(breaker) == "closed"


def test_circuit_breaker_trial_failure_reopens_and_resets_the_timer() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.now += 15.0
    assert breaker.allow() is True
    breaker.record_failure()
    assert _state(breaker) == "open"
    assert breaker.allow() is False
    clock.now += 9.5  # counted from the trial failure, not from the first opening
    assert _state(breaker) == "open"
    assert breaker.allow() is False
    clock.now += 0.5
    assert _state(breaker) == "half-open"
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_circuit_breaker_failure_while_open_restarts_the_timer() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.now += 5.0
    breaker.record_failure()
    clock.now += 5.0
    assert _state(breaker) == "open"
    clock.now += 5.0
    assert _state(breaker) == "half-open"


def test_allow_when_trial_never_reports_allows_another_after_reset() -> None:
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=5, clock=lambda: clock[0])
    breaker.record_failure()
    clock[0] = 5.0
    assert breaker.allow() is True
    assert breaker.allow() is False
    clock[0] = 10.0  # the trial was cancelled and never reported
    assert breaker.allow() is True


def test_circuit_breaker_when_outage_lasts_logs_once_per_state_change() -> None:
    from loguru import logger

    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=1.0, name="search", clock=clock)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message.record["message"])), level="INFO")
    try:
        for _ in range(50):  # a long outage: many failed calls, several failed trials
            if breaker.allow():
                breaker.record_failure()
            clock.now += 0.25
        breaker.record_success()
    finally:
        logger.remove(sink)
    assert len(lines) == 2
    assert lines[0].startswith("search circuit opened after 2 consecutive failures")
    assert lines[1].startswith("search circuit closed")


def test_circuit_breaker_release_when_trial_rejected_frees_the_trial_without_closing() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, threshold=1, reset=10.0)
    breaker.record_failure()
    clock.now += 10.0
    assert breaker.allow() is True  # the half-open trial
    assert breaker.allow() is False  # only one at a time
    breaker.release()  # the trial's input was rejected: it proved nothing
    assert _state(breaker) == "half-open"
    assert breaker.allow() is True


def test_overloaded_names_capacity_as_the_dependency() -> None:
    refused = Overloaded("32 engine calls in flight")
    assert isinstance(refused, Unavailable)
    assert (refused.detail, refused.dependency) == ("32 engine calls in flight", "capacity")


def test_search_unavailable_is_an_unavailable_and_a_search_error() -> None:
    down = SearchUnavailable("elasticsearch search: ConnectionTimeout")
    assert isinstance(down, Unavailable)
    assert isinstance(down, SearchError)
    assert (down.detail, down.dependency) == ("elasticsearch search: ConnectionTimeout", "search")
    assert SearchUnavailable("warming up", dependency="engine").dependency == "engine"
