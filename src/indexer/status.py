"""`python -m indexer status`: is the stream healthy, behind, or stalled?

The stream saves a checkpoint after every batch and, when idle, every heartbeat; so a checkpoint older
than the stall threshold means the stream is not running (or stuck). Lag is the age of the oldest
change not yet indexed, read from the change stream itself after the checkpoint.
"""

from __future__ import annotations

from typing import Literal

from src.indexer.checkpoint import CheckpointStore
from src.indexer.models import Checkpoint, IndexerStatus
from src.indexer.source import ChangeSource

EXIT_CODES = {"ok": 0, "behind": 1, "stalled": 2, "no-checkpoint": 3}


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


async def read_status(
    consumer: str,
    *,
    source: ChangeSource,
    checkpoints: CheckpointStore,
    now: float,
    max_lag_seconds: float,
    stall_seconds: float,
) -> IndexerStatus:
    """Load the checkpoint, look at what is pending after it, and evaluate."""
    checkpoint = await checkpoints.load(consumer)
    pending = await source.pending_age_seconds(checkpoint.resume_token) if checkpoint is not None else None
    return evaluate_status(
        consumer,
        checkpoint,
        now=now,
        pending_age_seconds=pending,
        max_lag_seconds=max_lag_seconds,
        stall_seconds=stall_seconds,
    )
