"""In-memory ChangeSource, CheckpointStore and DeadLetterStore following the contracts in src/indexer/.

The fake collection keeps a change log like an oplog: writes append raw events shaped as MongoDB's
(so the real transform runs on them), `prune()` forgets history (resuming from before it raises
HistoryLost), `drop()` appends a drop event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bson import Timestamp

from src.indexer.errors import CollectionGone, HistoryLost, SourceUnavailable
from src.indexer.models import ChangeBatch, ChangeEvent, Checkpoint, ClusterTime, DeadLetter, ResumeToken
from src.indexer.source import BatchLimits
from src.indexer.transform import UnsupportedEvent, to_change_event, to_copy_event


@dataclass
class FakeCollection:
    """Documents plus an append-only change log; cluster time advances one increment per write."""

    documents: dict[str, dict[str, object]] = field(default_factory=dict)
    log: list[dict[str, object]] = field(default_factory=list)
    pruned_before: int = 0
    time: int = 1_700_000_000
    inc: int = 0
    shared_time: bool = False
    """When true, writes share one cluster time (as the operations of a transaction do)."""

    def _event(self, op: str, doc_id: object, document: dict[str, object] | None) -> None:
        if not self.shared_time:
            self.inc += 1
        event: dict[str, object] = {
            "operationType": op,
            "documentKey": {"_id": doc_id},
            "clusterTime": Timestamp(self.time, max(self.inc, 1)),
            "ns": {"db": "fake", "coll": "items"},
        }
        if document is not None:
            event["fullDocument"] = dict(document)
        self.log.append(event)

    def insert(self, document: dict[str, object]) -> None:
        """Insert; the change event carries the `_id` as it is (of any BSON kind), the dict keys its text."""
        self.documents[str(document["_id"])] = dict(document)
        self._event("insert", document["_id"], document)

    def update(self, doc_id: str, changes: dict[str, object]) -> None:
        self.documents[doc_id] = {**self.documents[doc_id], **changes}
        self._event("update", doc_id, None)  # updateLookup: read at stream time

    def replace(self, document: dict[str, object]) -> None:
        doc_id = str(document["_id"])
        self.documents[doc_id] = dict(document)
        self._event("replace", doc_id, document)

    def delete(self, doc_id: str) -> None:
        self.documents.pop(doc_id, None)
        self._event("delete", doc_id, None)

    def drop(self) -> None:
        self.documents.clear()
        self.log.append({"operationType": "drop", "ns": {"db": "fake", "coll": "items"}})

    def prune(self) -> None:
        """Forget all history so far (like an oplog rolling over)."""
        self.pruned_before = len(self.log)


@dataclass
class FakeChangeSource:
    """`ChangeSource` over a FakeCollection."""

    collection: FakeCollection
    limits: BatchLimits = field(default_factory=lambda: BatchLimits(max_events=100, heartbeat_seconds=0.05))
    down: bool = False
    failures_left: int = 0
    """Calls that fail before the source answers again (a source that is down for a while)."""
    failed: int = 0
    poll_seconds: float = 0.005

    def _check(self) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            self.failed += 1
            raise SourceUnavailable("fake source is down for a while")
        if self.down:
            raise SourceUnavailable("fake source is down")

    async def position(self) -> ResumeToken:
        self._check()
        return {"_data": str(len(self.collection.log))}

    async def batches(
        self,
        *,
        resume_token: ResumeToken,
        cluster_time: ClusterTime | None = None,
        seq: int = 0,
        until_idle: bool = False,
        until_time: int | None = None,
    ) -> AsyncIterator[ChangeBatch]:
        self._check()
        position = int(str(resume_token["_data"]))
        if position < self.collection.pruned_before:
            raise HistoryLost(f"resume point {position} is before {self.collection.pruned_before}")
        last_time, last_seq = cluster_time, seq
        last_yield = time.monotonic()
        while True:
            self._check()
            pending = self.collection.log[position : position + self.limits.max_events]
            if pending:
                events: list[ChangeEvent] = []
                for raw in pending:
                    if raw["operationType"] == "update":
                        current = self.collection.documents.get(str(raw["documentKey"]["_id"]))  # type: ignore[index]
                        raw = {**raw, "fullDocument": current} if current is not None else raw
                    stamp = raw.get("clusterTime")
                    event_time = ClusterTime(stamp.time, stamp.inc) if isinstance(stamp, Timestamp) else None
                    last_seq = last_seq + 1 if event_time == last_time else 0
                    last_time = event_time
                    try:
                        events.append(to_change_event(raw, last_seq))
                    except UnsupportedEvent as err:
                        raise CollectionGone(str(err)) from err
                position += len(pending)
                yield ChangeBatch(tuple(events), {"_data": str(position)}, last_time, last_seq)
                last_yield = time.monotonic()
                if until_idle and until_time is not None and last_time is not None and last_time.time > until_time:
                    return
                continue
            if until_idle:
                yield ChangeBatch((), {"_data": str(position)}, last_time, last_seq)
                return
            if time.monotonic() - last_yield >= self.limits.heartbeat_seconds:
                yield ChangeBatch((), {"_data": str(position)}, last_time, last_seq)
                last_yield = time.monotonic()
            await asyncio.sleep(self.poll_seconds)

    async def snapshot(self, batch_size: int) -> AsyncIterator[list[ChangeEvent]]:
        self._check()
        ordered = [to_copy_event(self.collection.documents[key]) for key in sorted(self.collection.documents)]
        for start in range(0, len(ordered), batch_size):
            yield ordered[start : start + batch_size]

    async def count(self) -> int:
        self._check()
        return len(self.collection.documents)

    async def pending_age_seconds(self, resume_token: ResumeToken) -> float | None:
        self._check()
        position = int(str(resume_token["_data"]))
        if position >= len(self.collection.log):
            return None
        stamp = self.collection.log[position].get("clusterTime")
        return max(0.0, time.time() - stamp.time) if isinstance(stamp, Timestamp) else 0.0

    async def close(self) -> None:
        return None


@dataclass
class MemoryCheckpointStore:
    """Checkpoints in a dict; `fail` simulates the database being down."""

    saved: dict[str, Checkpoint] = field(default_factory=dict)
    fail: bool = False

    async def load(self, consumer: str) -> Checkpoint | None:
        if self.fail:
            raise SourceUnavailable("checkpoint store down")
        return self.saved.get(consumer)

    async def save(self, checkpoint: Checkpoint) -> None:
        if self.fail:
            raise SourceUnavailable("checkpoint store down")
        self.saved[checkpoint.consumer] = checkpoint


@dataclass
class MemoryDeadLetters:
    """Dead letters in a dict, one per consumer and document, as the contract says."""

    by_key: dict[tuple[str, str], DeadLetter] = field(default_factory=dict)
    fail: bool = False

    async def put(self, letter: DeadLetter) -> None:
        if self.fail:
            raise SourceUnavailable("dead-letter store down")
        self.by_key[(letter["consumer"], letter["doc_id"])] = letter

    async def letters(self, consumer: str) -> list[DeadLetter]:
        if self.fail:
            raise SourceUnavailable("dead-letter store down")
        return [self.by_key[key] for key in sorted(self.by_key) if key[0] == consumer]
