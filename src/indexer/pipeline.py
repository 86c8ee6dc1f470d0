"""The stream: source -> transform -> sink -> checkpoint -> cache invalidation, at least once.

One batch at a time is written (one bulk request), and its checkpoint is saved only after the backend
acknowledged every document of it; then the cache is invalidated. A crash anywhere replays from the
last checkpoint: writes are idempotent by id and versioned by cluster time, so a replay or a late,
older event never overwrites newer content. Reading runs ahead of writing through a bounded queue
(backpressure): memory stays within a few batches whatever the collection size.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from loguru import logger

from src.indexer.checkpoint import CheckpointStore, DeadLetterStore
from src.indexer.errors import HistoryLost, SourceUnavailable
from src.indexer.models import ChangeBatch, Checkpoint, DeadLetter
from src.indexer.retry import RetryPolicy, retrying
from src.indexer.source import ChangeSource
from src.indexer.transform import to_index_action
from src.observability.metrics import (
    INDEXER_BATCH_SECONDS,
    INDEXER_DEAD_LETTERS,
    INDEXER_EVENTS,
    INDEXER_FAILURES,
    INDEXER_LAG_SECONDS,
    INDEXER_WRITTEN,
    mark_checkpoint_saved,
)
from src.observability.tracing import span, tracer
from src.search.backends.base import BulkItemResult, IndexAction, SearchBackend
from src.search.errors import SearchUnavailable

type Invalidate = Callable[[Sequence[str]], Awaitable[None]]
"""Retires cached responses of the given document ids and bumps the search generation."""

_TRANSIENT = (SearchUnavailable, SourceUnavailable)


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Behaviour of the stream (from settings)."""

    consumer: str = "search-indexer"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue_batches: int = 2
    token_retention_seconds: float = 3 * 3600.0
    """A checkpoint whose token is older than this is treated as lost history (DocumentDB keeps 3 h)."""
    restart_pause_seconds: float = 1.0


@dataclass(slots=True)
class Sink:
    """Where acknowledged writes go, and what happens to refused ones."""

    backend: SearchBackend
    dead_letters: DeadLetterStore
    consumer: str
    retry: RetryPolicy

    async def write(
        self, actions: Sequence[IndexAction], *, index: str | None = None, rejected: set[str] | None = None
    ) -> list[str]:
        """Bulk-write with retries of transient failures; refused documents go to the dead letters.

        Returns the ids the index now reflects; raises SearchUnavailable when transient failures
        outlast the retry policy (nothing is acknowledged then). With `rejected`, keeps there the ids
        whose latest write was refused (a reindex subtracts them when it checks the count).
        """
        pending = list(actions)
        done: list[str] = []
        for attempt in range(self.retry.attempts):
            batch = list(pending)
            results = await retrying(
                functools.partial(self.backend.bulk, batch, index=index),
                policy=self.retry,
                transient=(SearchUnavailable,),
                on_retry=lambda err, n: self._failed("bulk_request", err),
            )
            retry_next: list[IndexAction] = []
            for action, result in zip(batch, results, strict=True):
                if result.ok:
                    done.append(action.doc_id)
                    INDEXER_WRITTEN.labels(self.consumer, action.op).inc()
                    if rejected is not None:
                        rejected.discard(action.doc_id)
                elif result.retryable:
                    retry_next.append(action)
                else:
                    await self._dead_letter(action, result)
                    if rejected is not None:
                        rejected.add(action.doc_id)
            if not retry_next:
                return done
            pending = retry_next
            INDEXER_FAILURES.labels(self.consumer, "document_retry").inc(len(pending))
            await asyncio.sleep(self.retry.delay(attempt, 0.5))
        raise SearchUnavailable(f"{len(pending)} documents still failing after {self.retry.attempts} attempts")

    async def _dead_letter(self, action: IndexAction, result: BulkItemResult) -> None:
        INDEXER_FAILURES.labels(self.consumer, "rejected").inc()
        INDEXER_DEAD_LETTERS.labels(self.consumer).inc()
        logger.warning("document {} refused for good, dead-lettered: {}", action.doc_id, result.error)
        letter: DeadLetter = {
            "consumer": self.consumer,
            "doc_id": action.doc_id,
            "reason": result.error or "rejected",
            "version": action.version or 0,
            "document": action.document,
            "at": time.time(),
        }
        await retrying(
            lambda: self.dead_letters.put(letter),
            policy=self.retry,
            transient=(SourceUnavailable,),
        )

    def _failed(self, kind: str, err: Exception) -> None:
        INDEXER_FAILURES.labels(self.consumer, kind).inc()
        logger.warning("{} failed, retrying: {}", kind, err)


async def apply_batch(
    batch: ChangeBatch,
    *,
    sink: Sink,
    checkpoints: CheckpointStore,
    invalidate: Invalidate | None,
    read_at: float,
    index: str | None = None,
    rejected: set[str] | None = None,
) -> Checkpoint:
    """Write one batch, then save its checkpoint, then invalidate caches; returns the checkpoint.

    Traced as children of the current span (the stream's `indexer batch`): transform, bulk (the
    engine client's own spans below it), checkpoint, invalidate.
    """
    with span("indexer transform", events=len(batch.events)):
        actions = [to_index_action(event) for event in batch.events]
    with span("indexer bulk", documents=len(actions)):
        ids = await sink.write(actions, index=index, rejected=rejected) if actions else []
    checkpoint = Checkpoint(
        consumer=sink.consumer,
        resume_token=batch.resume_token,
        cluster_time=batch.cluster_time,
        seq=batch.seq,
        saved_at=time.time(),
        token_at=read_at,
    )
    if index is None:  # a reindex replaying into an unaliased index does not own the checkpoint
        with span("indexer checkpoint"):
            await retrying(lambda: checkpoints.save(checkpoint), policy=sink.retry, transient=(SourceUnavailable,))
    if ids and invalidate is not None:
        try:
            with span("indexer invalidate", documents=len(ids)):
                await invalidate(ids)
        except Exception as err:
            INDEXER_FAILURES.labels(sink.consumer, "invalidate").inc()
            logger.warning("cache invalidation failed for {} documents: {}", len(ids), err)
    if batch.events and batch.cluster_time is not None:
        INDEXER_LAG_SECONDS.labels(sink.consumer).set(max(0.0, time.time() - batch.cluster_time.time))
    mark_checkpoint_saved(sink.consumer)
    return checkpoint


async def stream_once(
    checkpoint: Checkpoint,
    *,
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    invalidate: Invalidate | None,
    options: StreamOptions,
    stop: asyncio.Event | None = None,
) -> Checkpoint:
    """Tail from `checkpoint` until `stop` is set or the source fails; returns the last checkpoint.

    The reader fills a queue of at most `options.queue_batches` batches; the writer drains it.
    """
    if time.time() - checkpoint.token_at > options.token_retention_seconds:
        raise HistoryLost(
            f"the checkpointed resume token is {time.time() - checkpoint.token_at:.0f} s old, past the "
            f"{options.token_retention_seconds:.0f} s retention of the change stream"
        )
    queue: asyncio.Queue[tuple[ChangeBatch, float, int, int] | None] = asyncio.Queue(maxsize=options.queue_batches)

    async def read() -> None:
        try:
            waiting_since = time.time_ns()
            async for batch in source.batches(
                resume_token=checkpoint.resume_token, cluster_time=checkpoint.cluster_time, seq=checkpoint.seq
            ):
                INDEXER_EVENTS.labels(options.consumer).inc(len(batch.events))
                received = time.time_ns()
                await queue.put((batch, received / 1e9, waiting_since, received))
                waiting_since = time.time_ns()
                if stop is not None and stop.is_set():
                    break
        finally:
            await queue.put(None)

    reader = asyncio.create_task(read())
    last = checkpoint
    try:
        while (item := await queue.get()) is not None:
            batch, read_at, read_started, read_ended = item
            started = time.monotonic()
            with span("indexer batch", consumer=options.consumer, events=len(batch.events)):
                # The read (waiting on the change stream included) happened before this span began.
                tracer().start_span("indexer read", start_time=read_started).end(end_time=read_ended)
                last = await apply_batch(
                    batch, sink=sink, checkpoints=checkpoints, invalidate=invalidate, read_at=read_at
                )
            INDEXER_BATCH_SECONDS.labels(options.consumer).observe(time.monotonic() - started)
        await reader  # re-raises what ended the reader (source errors, history lost, collection gone)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return last
