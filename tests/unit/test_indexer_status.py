"""Unit tests of src.indexer.status: the pure evaluation, and read_status over the in-memory fakes."""

from __future__ import annotations

import asyncio
import time

import pytest

from src.indexer.models import Checkpoint, ClusterTime
from src.indexer.status import EXIT_CODES, evaluate_status, read_status
from tests.fakes.change_source import FakeChangeSource, FakeCollection, MemoryCheckpointStore
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import SCHEMA

NOW = 1_800_000_000.0
FAKE_TIME = 1_700_000_000


def _checkpoint(
    *,
    saved_at: float = NOW,
    token_at: float = NOW,
    cluster_time: ClusterTime | None = None,
    position: int = 0,
    consumer: str = "search",
) -> Checkpoint:
    return Checkpoint(
        consumer=consumer,
        resume_token={"_data": str(position)},
        cluster_time=cluster_time,
        seq=0,
        saved_at=saved_at,
        token_at=token_at,
    )


def _evaluate(checkpoint: Checkpoint | None, pending: float | None = None, *, now: float = NOW) -> dict[str, object]:
    return dict(
        evaluate_status(
            "search", checkpoint, now=now, pending_age_seconds=pending, max_lag_seconds=60.0, stall_seconds=300.0
        )
    )


# --- evaluate_status -----------------------------------------------------------------------------


def test_evaluate_status_no_checkpoint() -> None:
    assert _evaluate(None) == {
        "consumer": "search",
        "state": "no-checkpoint",
        "checkpoint_age_seconds": None,
        "token_age_seconds": None,
        "lag_seconds": None,
        "last_cluster_time": None,
    }


def test_evaluate_status_no_checkpoint_ignores_thresholds() -> None:
    assert _evaluate(None, 10_000.0)["state"] == "no-checkpoint"


def test_evaluate_status_fresh_checkpoint_no_pending_is_ok() -> None:
    checkpoint = _checkpoint(saved_at=NOW - 1.23456, token_at=NOW - 2.00049, cluster_time=ClusterTime(FAKE_TIME, 3))
    assert _evaluate(checkpoint) == {
        "consumer": "search",
        "state": "ok",
        "checkpoint_age_seconds": 1.235,
        "token_age_seconds": 2.0,
        "lag_seconds": 0.0,
        "last_cluster_time": FAKE_TIME,
    }


def test_evaluate_status_lag_under_threshold_is_ok_and_rounded() -> None:
    status = _evaluate(_checkpoint(), 59.99949)
    assert status["state"] == "ok"
    assert status["lag_seconds"] == 59.999


def test_evaluate_status_lag_at_threshold_is_ok() -> None:
    assert _evaluate(_checkpoint(), 60.0)["state"] == "ok"


def test_evaluate_status_pending_older_than_max_lag_is_behind() -> None:
    status = _evaluate(_checkpoint(saved_at=NOW - 5.0), 61.5)
    assert status["state"] == "behind"
    assert status["lag_seconds"] == 61.5
    assert status["checkpoint_age_seconds"] == 5.0


def test_evaluate_status_checkpoint_at_stall_threshold_is_not_stalled() -> None:
    assert _evaluate(_checkpoint(saved_at=NOW - 300.0))["state"] == "ok"


def test_evaluate_status_checkpoint_older_than_stall_is_stalled() -> None:
    status = _evaluate(_checkpoint(saved_at=NOW - 300.5))
    assert status["state"] == "stalled"
    assert status["checkpoint_age_seconds"] == 300.5


def test_evaluate_status_stalled_wins_over_behind() -> None:
    status = _evaluate(_checkpoint(saved_at=NOW - 1_000.0), 5_000.0)
    assert status["state"] == "stalled"
    assert status["lag_seconds"] == 5_000.0


def test_evaluate_status_checkpoint_in_future_clamps_to_zero() -> None:
    status = _evaluate(_checkpoint(saved_at=NOW + 10.0, token_at=NOW + 20.0))
    assert status["checkpoint_age_seconds"] == 0.0
    assert status["token_age_seconds"] == 0.0
    assert status["state"] == "ok"


def test_evaluate_status_token_age_from_token_at() -> None:
    status = _evaluate(_checkpoint(saved_at=NOW, token_at=NOW - 3_600.0))
    assert status["token_age_seconds"] == 3_600.0
    assert status["checkpoint_age_seconds"] == 0.0
    assert status["state"] == "ok"


@pytest.mark.parametrize(
    ("cluster_time", "expected"), [(ClusterTime(1_234, 9), 1_234), (ClusterTime(0, 0), 0), (None, None)]
)
def test_evaluate_status_when_checkpoint_has_cluster_time_reports_its_seconds(
    cluster_time: ClusterTime | None, expected: int | None
) -> None:
    assert _evaluate(_checkpoint(cluster_time=cluster_time))["last_cluster_time"] == expected


def test_evaluate_status_consumer_passed_through() -> None:
    status = evaluate_status(
        "other", _checkpoint(consumer="other"), now=NOW, pending_age_seconds=None, max_lag_seconds=1, stall_seconds=1
    )
    assert status["consumer"] == "other"


# --- read_status ---------------------------------------------------------------------------------


def _source_with(count: int) -> tuple[FakeCollection, FakeChangeSource]:
    collection = FakeCollection()
    for number in range(count):
        collection.insert({"_id": f"d{number}", "n": number})
    return collection, FakeChangeSource(collection)


async def _read(source: FakeChangeSource, store: MemoryCheckpointStore, now: float) -> dict[str, object]:
    return dict(
        await read_status(
            "search", source=source, checkpoints=store, now=now, max_lag_seconds=60.0, stall_seconds=300.0
        )
    )


async def test_read_status_no_checkpoint() -> None:
    _, source = _source_with(2)
    assert await _read(source, MemoryCheckpointStore(), NOW) == {
        "consumer": "search",
        "state": "no-checkpoint",
        "checkpoint_age_seconds": None,
        "token_age_seconds": None,
        "lag_seconds": None,
        "last_cluster_time": None,
    }


async def test_read_status_no_checkpoint_does_not_touch_source() -> None:
    _, source = _source_with(0)
    source.down = True  # would raise SourceUnavailable if pending_age_seconds were asked
    status = await _read(source, MemoryCheckpointStore(), NOW)
    assert status["state"] == "no-checkpoint"


async def test_read_status_checkpoint_at_current_position_is_ok() -> None:
    _, source = _source_with(3)
    position = await source.position()
    store = MemoryCheckpointStore()
    await store.save(
        Checkpoint(
            consumer="search",
            resume_token=position,
            cluster_time=ClusterTime(FAKE_TIME, 3),
            seq=0,
            saved_at=NOW - 2.0,
            token_at=NOW - 4.0,
        )
    )
    assert await _read(source, store, NOW) == {
        "consumer": "search",
        "state": "ok",
        "checkpoint_age_seconds": 2.0,
        "token_age_seconds": 4.0,
        "lag_seconds": 0.0,
        "last_cluster_time": FAKE_TIME,
    }


async def test_read_status_writes_after_checkpoint_is_behind() -> None:
    collection, source = _source_with(1)
    store = MemoryCheckpointStore()
    await store.save(_checkpoint(saved_at=NOW, token_at=NOW, cluster_time=ClusterTime(FAKE_TIME, 1), position=1))
    collection.insert({"_id": "late", "n": 99})
    before = time.time()
    status = await _read(source, store, NOW)
    after = time.time()
    assert status["state"] == "behind"
    lag = status["lag_seconds"]
    assert isinstance(lag, float)
    assert round(before - FAKE_TIME, 3) <= lag <= round(after - FAKE_TIME, 3)
    assert lag > 60.0
    assert status["checkpoint_age_seconds"] == 0.0
    assert status["last_cluster_time"] == FAKE_TIME


async def test_read_status_uses_named_consumer_checkpoint() -> None:
    _, source = _source_with(1)
    store = MemoryCheckpointStore()
    await store.save(_checkpoint(consumer="other", position=0))
    status = await _read(source, store, NOW)
    assert status["state"] == "no-checkpoint"


async def test_read_status_when_store_fails_is_source_unreachable() -> None:
    _, source = _source_with(0)
    status = await _read(source, MemoryCheckpointStore(fail=True), NOW)
    assert status["state"] == "source-unreachable"
    assert status["error"] == "checkpoint store down"
    assert EXIT_CODES["source-unreachable"] == 4


async def test_read_status_when_source_fails_is_source_unreachable() -> None:
    _, source = _source_with(0)
    store = MemoryCheckpointStore()
    await store.save(_checkpoint())
    source.down = True
    status = await _read(source, store, NOW)
    assert (status["state"], status["error"]) == ("source-unreachable", "fake source is down")


async def test_read_status_when_source_hangs_is_source_unreachable_within_the_timeout() -> None:
    class Hanging(MemoryCheckpointStore):
        async def load(self, consumer: str) -> Checkpoint | None:
            await asyncio.Event().wait()
            return None

    _, source = _source_with(0)
    status = await read_status(
        "search", source=source, checkpoints=Hanging(), now=NOW, max_lag_seconds=1, stall_seconds=1, timeout_seconds=0
    )
    assert status["state"] == "source-unreachable"


async def test_read_status_when_backend_down_is_backend_unreachable() -> None:
    _, source = _source_with(0)
    store = MemoryCheckpointStore()
    await store.save(_checkpoint())
    backend = FakeSearchBackend(schema=SCHEMA)
    backend.down = True
    status = await read_status(
        "search", source=source, checkpoints=store, now=NOW, max_lag_seconds=60, stall_seconds=300, backend=backend
    )
    assert status["state"] == "backend-unreachable"
    assert EXIT_CODES["backend-unreachable"] == 5
    backend.down = False
    healthy = await read_status(
        "search", source=source, checkpoints=store, now=NOW, max_lag_seconds=60, stall_seconds=300, backend=backend
    )
    assert healthy["state"] == "ok"


async def test_read_status_when_a_dead_build_was_left_behind_lists_it_and_stays_ok() -> None:
    _, source = _source_with(0)
    store = MemoryCheckpointStore()
    await store.save(_checkpoint(position=0))
    backend = FakeSearchBackend(schema=SCHEMA, clock=lambda: NOW - 900.0)
    served = await backend.create_index()
    await backend.point_alias(served)
    dead = await backend.create_index()
    backend.clock = lambda: NOW - 10.0
    await backend.create_index()  # live: its heartbeat is 10 s old
    status = await read_status(
        "search",
        source=source,
        checkpoints=store,
        now=NOW,
        max_lag_seconds=60.0,
        stall_seconds=300.0,
        backend=backend,
        orphan_after_seconds=600.0,
    )
    assert status["state"] == "ok"
    assert status.get("orphans") == [{"index": dead, "age_seconds": 900.0}]
