"""Structures of the indexer: change events, batches, checkpoints, dead letters, status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from src.search.models import Document, JSONValue

type ResumeToken = dict[str, JSONValue]
"""An opaque change-stream resume token (`{"_data": "..."}` on MongoDB and DocumentDB)."""


@dataclass(frozen=True, slots=True)
class ClusterTime:
    """A BSON timestamp: seconds and an increment ordering events within the second."""

    time: int
    inc: int


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change of the source collection (or one document of a snapshot, as an insert), reduced to what
    indexing needs."""

    op: Literal["insert", "update", "replace", "delete"]
    doc_id: str
    """The document's `_id` as a string (ObjectId in hex); Extended JSON when `refused`."""
    document: Document | None
    """The whole document after the change (updateLookup); None for deletes, or when already gone."""
    version: int
    """Monotonic version from the cluster time plus a tie-break (see `transform.event_version`);
    `transform.COPY_VERSION` for a snapshot's document."""
    size_bytes: int
    """Size of the document's JSON encoding (64 without one), for batching by bytes."""
    refused: str | None = None
    """Why the index cannot hold this document's `_id` (see `transform.id_refusal`): never sent, dead-lettered."""


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Events read together; `resume_token` is where to resume after all of them are indexed."""

    events: tuple[ChangeEvent, ...]
    resume_token: ResumeToken
    cluster_time: ClusterTime | None
    """Cluster time of the last event (None for an idle batch that only moves the token)."""
    seq: int
    """Tie-break counter reached at the last event (continues across batches of one cluster time)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a consumer resumes: saved only after the backend acknowledged everything before it."""

    consumer: str
    resume_token: ResumeToken
    cluster_time: ClusterTime | None
    seq: int
    saved_at: float
    """Wall-clock time of the save (epoch seconds)."""
    token_at: float
    """Wall-clock time the token was read from the stream: its age tells whether it may have expired."""


class DeadLetter(TypedDict):
    """A document the backend refused for good, kept with the reason in the dead-letter collection."""

    consumer: str
    """The consumer that met it."""
    doc_id: str
    """Source document id."""
    reason: str
    """What the backend (or the schema check) said."""
    version: int
    """Version of the refused write."""
    document: Document | None
    """The refused document."""
    at: float
    """When it was dead-lettered (epoch seconds)."""


class OrphanIndex(TypedDict):
    """A versioned index a dead load or reindex left behind (see src/indexer/builds.py)."""

    index: str
    """The index name (`<alias>-<timestamp>`)."""
    age_seconds: float
    """Seconds since its build's last heartbeat."""


class IndexerStatus(TypedDict):
    """What `python -m indexer status` reports."""

    consumer: str
    """The consumer name."""
    state: Literal["ok", "behind", "stalled", "no-checkpoint", "source-unreachable", "backend-unreachable"]
    """ok; behind (lag over the threshold); stalled (no checkpoint save for too long); never started; or
    the source database / the search backend did not answer within the timeout."""
    checkpoint_age_seconds: float | None
    """Seconds since the last checkpoint save."""
    token_age_seconds: float | None
    """Seconds since the checkpointed resume token was read from the stream."""
    lag_seconds: float | None
    """Age (by the wall clock) of the oldest change after the checkpoint; 0 when nothing is pending."""
    last_cluster_time: int | None
    """Seconds part of the checkpoint's cluster time."""
    error: NotRequired[str]
    """What failed, when a dependency was unreachable."""
    orphans: NotRequired[list[OrphanIndex]]
    """Versioned indices that dead builds left behind, oldest first (the next load or reindex drops them);
    present whenever the backend answered."""
    reindex: NotRequired[dict[str, Any]]
    """The latest reindex requested through the broker: request_id, state (queued, coalesced, running,
    done, failed), times, the index it produced."""
