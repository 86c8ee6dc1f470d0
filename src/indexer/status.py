"""`python -m indexer status`: is the stream healthy, behind, or stalled, and are its dependencies up?

The stream saves a checkpoint after every batch and, when idle, every heartbeat; so a checkpoint older
than the stall threshold means the stream is not running (or stuck). Lag is the age of the oldest
change not yet indexed, read from the change stream itself after the checkpoint. A source database or
search backend that does not answer within the timeout has its own state (and exit code), so
monitoring can tell "down" from "lagging". The report also lists the orphans of dead index builds
(`orphans`: name and heartbeat age, see src/indexer/builds.py), which do not change the state.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from src.indexer.builds import list_orphans
from src.indexer.checkpoint import CheckpointStore
from src.indexer.errors import SourceUnavailable
from src.indexer.models import Checkpoint, IndexerStatus, OrphanIndex
from src.indexer.source import ChangeSource
from src.search.backends.base import SearchBackend
from src.search.errors import SearchUnavailable

EXIT_CODES = {"ok": 0, "behind": 1, "stalled": 2, "no-checkpoint": 3, "source-unreachable": 4, "backend-unreachable": 5}


def evaluate_status(
    consumer: str,
    checkpoint: Checkpoint | None,
    *,
    now: float,
    pending_age_seconds: float | None,
    max_lag_seconds: float,
    stall_seconds: float,
) -> IndexerStatus:
    """The status from a checkpoint and the pending age (pure)."""
    if checkpoint is None:
        return {
            "consumer": consumer,
            "state": "no-checkpoint",
            "checkpoint_age_seconds": None,
            "token_age_seconds": None,
            "lag_seconds": pending_age_seconds,
            "last_cluster_time": None,
        }
    checkpoint_age = max(0.0, now - checkpoint.saved_at)
    lag = pending_age_seconds or 0.0
    state: Literal["ok", "behind", "stalled"] = "ok"
    if checkpoint_age > stall_seconds:
        state = "stalled"
    elif lag > max_lag_seconds:
        state = "behind"
    return {
        "consumer": consumer,
        "state": state,
        "checkpoint_age_seconds": round(checkpoint_age, 3),
        "token_age_seconds": round(max(0.0, now - checkpoint.token_at), 3),
        "lag_seconds": round(lag, 3),
        "last_cluster_time": checkpoint.cluster_time.time if checkpoint.cluster_time else None,
    }


def unreachable(
    consumer: str, state: Literal["source-unreachable", "backend-unreachable"], error: str
) -> IndexerStatus:
    """The status when a dependency did not answer (pure)."""
    return {
        "consumer": consumer,
        "state": state,
        "checkpoint_age_seconds": None,
        "token_age_seconds": None,
        "lag_seconds": None,
        "last_cluster_time": None,
        "error": error,
    }


async def read_status(
    consumer: str,
    *,
    source: ChangeSource,
    checkpoints: CheckpointStore,
    now: float,
    max_lag_seconds: float,
    stall_seconds: float,
    backend: SearchBackend | None = None,
    timeout_seconds: float = 10.0,
    orphan_after_seconds: float | None = None,
) -> IndexerStatus:
    """Load the checkpoint, look at what is pending after it, check the backend answers, and evaluate.

    Each dependency gets `timeout_seconds` at most; one that fails or overruns gives its own state. With
    `orphan_after_seconds`, the backend's orphans (builds dead processes left behind) are listed too:
    they do not change the state (the next load or reindex drops them).
    """
    try:
        async with asyncio.timeout(timeout_seconds):
            checkpoint = await checkpoints.load(consumer)
            pending = await source.pending_age_seconds(checkpoint.resume_token) if checkpoint is not None else None
    except (SourceUnavailable, TimeoutError) as err:
        return unreachable(consumer, "source-unreachable", str(err) or "the source did not answer in time")
    orphans: list[OrphanIndex] | None = None
    if backend is not None:
        try:
            async with asyncio.timeout(timeout_seconds):
                await backend.current_index()
                if orphan_after_seconds is not None:
                    orphans = await list_orphans(backend, now=now, orphan_after_seconds=orphan_after_seconds)
        except (SearchUnavailable, TimeoutError) as err:
            return unreachable(consumer, "backend-unreachable", str(err) or "the backend did not answer in time")
    status = evaluate_status(
        consumer,
        checkpoint,
        now=now,
        pending_age_seconds=pending,
        max_lag_seconds=max_lag_seconds,
        stall_seconds=stall_seconds,
    )
    if orphans is not None:
        status["orphans"] = orphans
    return status
