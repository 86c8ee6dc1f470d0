"""The stream: source -> transform -> sink -> checkpoint -> cache invalidation, at least once.

One batch at a time is written (one bulk request), and its checkpoint is saved only after the backend
acknowledged every document of it; then the cache is invalidated. A crash anywhere replays from the
last checkpoint: writes are idempotent by id and versioned by cluster time, so a replay or a late,
older event never overwrites newer content. Reading runs ahead of writing through a bounded queue
(backpressure): memory stays within a few batches whatever the collection size.

Nothing one document does stops the stream: a document the engine cannot take (an `_id` the index
cannot hold, a size over INDEXER_MAX_DOCUMENT_BYTES, a mapping error, a size the engine refuses on its
own) is dead-lettered with its reason. A busy engine holds the stream back, visibly (see
`src.indexer.pressure`), and a stop is honoured whatever the queue holds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson
from loguru import logger

from src.indexer.checkpoint import CheckpointStore, DeadLetterStore
from src.indexer.errors import HistoryLost, SourceUnavailable
from src.indexer.models import ChangeBatch, Checkpoint, DeadLetter
from src.indexer.pressure import PressureWatch
from src.indexer.retry import RetryPolicy, retrying
from src.indexer.source import ChangeSource
from src.indexer.transform import refusal, to_index_action
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
from src.search.errors import EnginePressure, SearchUnavailable
from src.search.models import Document

type Invalidate = Callable[[Sequence[str]], Awaitable[None]]
"""Retires cached responses of the given document ids and bumps the search generation."""

DEAD_LETTER_MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
"""A dead letter keeps the refused document up to this size (and INDEXER_MAX_DOCUMENT_BYTES): MongoDB
refuses records over 16 MiB, and the source collection still holds the document."""
REASON_MAX_CHARS = 1000
"""A refusal's reason is cut to this length in its dead letter and log line: Elasticsearch quotes a whole
refused field value in its reason ("Preview of field's value: ...")."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Behaviour of the stream (from settings)."""

    consumer: str = "search-indexer"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue_batches: int = 2
    token_retention_seconds: float = 3 * 3600.0
    """A checkpoint whose token is older than this is treated as lost history (DocumentDB keeps 3 h)."""
    restart_pause_seconds: float = 1.0
    shutdown_grace_seconds: float = 8.0
    """After the stop, how long the batch in flight may take to finish before it is cancelled."""


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """What the sink refuses up front, and when the engine holding writes back is a stall (from settings)."""

    max_document_bytes: int = 2 * 1024 * 1024
    """Larger documents (their JSON encoding) are dead-lettered unsent (INDEXER_MAX_DOCUMENT_BYTES)."""
    pressure_alert_seconds: float = 60.0
    """Writes refused for the engine's load for longer than this are a stall (INDEXER_PRESSURE_ALERT_SECONDS)."""


@dataclass(slots=True)
class _Outcome:
    """What one `Sink.write` acknowledged, and the refused ids it keeps in the caller's `rejected`."""

    rejected: set[str] | None
    ids: list[str] = field(default_factory=list)

    def acknowledged(self, action: IndexAction) -> None:
        self.ids.append(action.doc_id)
        if self.rejected is not None:
            self.rejected.discard(action.doc_id)

    def refused(self, action: IndexAction) -> None:
        if self.rejected is not None:
            self.rejected.add(action.doc_id)

    def gone(self, action: IndexAction) -> None:
        """A delete the index already agrees with (it never holds a document with such an `_id`)."""
        if self.rejected is not None:
            self.rejected.discard(action.doc_id)


@dataclass(slots=True)
class Sink:
    """Where acknowledged writes go, and what happens to refused ones."""

    backend: SearchBackend
    dead_letters: DeadLetterStore
    consumer: str
    retry: RetryPolicy
    limits: WriteLimits = field(default_factory=WriteLimits)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    draw: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    """The clock the pressure watch measures blocked writes by."""
    pressure: PressureWatch = field(init=False)
    _writes: itertools.count[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.pressure = PressureWatch(self.consumer, alert_seconds=self.limits.pressure_alert_seconds, clock=self.clock)

    async def write(
        self, actions: Sequence[IndexAction], *, index: str | None = None, rejected: set[str] | None = None
    ) -> list[str]:
        """Bulk-write; refused documents go to the dead letters, the rest is acknowledged or this raises.

        - Up front (`transform.refusal`): an `_id` the index cannot hold, or a document over
          `limits.max_document_bytes`, is dead-lettered unsent (a delete of such an `_id` needs nothing:
          the index never holds one).
        - Transient failures (the engine unreachable, 5xx) are retried per `retry`; past it
          SearchUnavailable is raised, with nothing more acknowledged.
        - Refused for the engine's load or the request's size (413/429, the whole request or some of its
          documents): the refused documents are sent again in halves after a backoff, down to single
          ones. One the engine refuses for its own size is dead-lettered; one refused because the
          engine is busy is retried with capped backoff for as long as it takes, counted, logged and
          alerted on (`PressureWatch`).

        Returns the ids the index now reflects. With `rejected`, keeps there the ids whose latest write
        was refused (a reindex subtracts them when it checks the count).
        """
        outcome = _Outcome(rejected)
        sendable: list[IndexAction] = []
        for action in actions:
            reason = refusal(action, max_document_bytes=self.limits.max_document_bytes)
            if reason is None:
                sendable.append(action)
            elif action.op == "delete":
                outcome.gone(action)
            else:
                await self._dead_letter(action, reason, outcome)
        if sendable:
            write = next(self._writes)
            try:
                await self._send(sendable, index=index, outcome=outcome, write=write, depth=0)
            finally:
                self.pressure.cleared(write)
        return outcome.ids

    async def _send(
        self, actions: list[IndexAction], *, index: str | None, outcome: _Outcome, write: int, depth: int
    ) -> None:
        """Write `actions` until each one is acknowledged or dead-lettered (see `write`)."""
        pending = actions
        rounds = 0  # of per-document transient failures: bounded by the retry policy
        backoff = depth  # grows with each split and each round refused for the engine's load
        while pending:
            answer = await self._bulk(pending, index)
            retry: list[IndexAction] = []
            if isinstance(answer, EnginePressure):
                refused, reason = pending, answer.detail
            else:
                refused, retry, reason = await self._settle(pending, answer, outcome)
                if not refused:
                    self.pressure.cleared(write)  # the engine takes writes again
            if refused:
                self.pressure.refused(write, len(refused), reason)
                await self.sleep(self.retry.delay(backoff, self.draw()))
                backoff += 1
                if len(refused) > 1:  # halves: smaller requests pass, and a document too large alone shows
                    half = len(refused) // 2
                    await self._send(refused[:half], index=index, outcome=outcome, write=write, depth=depth + 1)
                    await self._send(refused[half:], index=index, outcome=outcome, write=write, depth=depth + 1)
                    refused = []
            if retry:
                rounds += 1
                if rounds >= self.retry.attempts:
                    raise SearchUnavailable(
                        f"{len(retry)} documents still failing after {self.retry.attempts} attempts"
                    )
                INDEXER_FAILURES.labels(self.consumer, "document_retry").inc(len(retry))
                await self.sleep(self.retry.delay(rounds - 1, 0.5))
            pending = refused + retry

    async def _bulk(self, batch: list[IndexAction], index: str | None) -> list[BulkItemResult] | EnginePressure:
        """One bulk request, transient failures retried; a refusal for load or size is returned, not raised
        (it is not retried as it is: `_send` splits the request)."""

        async def call() -> list[BulkItemResult] | EnginePressure:
            try:
                return await self.backend.bulk(batch, index=index)
            except EnginePressure as err:
                return err

        return await retrying(
            call,
            policy=self.retry,
            transient=(SearchUnavailable,),
            on_retry=lambda err, n: self._failed("bulk_request", err),
            sleep=self.sleep,
            draw=self.draw,
        )

    async def _settle(
        self, batch: list[IndexAction], results: list[BulkItemResult], outcome: _Outcome
    ) -> tuple[list[IndexAction], list[IndexAction], str]:
        """Record one answer: (refused for the engine's load, to retry as transient, the engine's words)."""
        refused: list[IndexAction] = []
        retry: list[IndexAction] = []
        reason = ""
        for action, result in zip(batch, results, strict=True):
            if result.ok:
                outcome.acknowledged(action)
                INDEXER_WRITTEN.labels(self.consumer, action.op).inc()
            elif result.pressure:
                refused.append(action)
                reason = result.error or "429"
            elif result.retryable:
                retry.append(action)
            else:
                await self._dead_letter(action, result.error or "rejected", outcome)
        return refused, retry, reason

    async def _dead_letter(self, action: IndexAction, reason: str, outcome: _Outcome) -> None:
        if len(reason) > REASON_MAX_CHARS:
            reason = f"{reason[:REASON_MAX_CHARS]}... ({len(reason)} characters)"
        INDEXER_FAILURES.labels(self.consumer, "rejected").inc()
        INDEXER_DEAD_LETTERS.labels(self.consumer).inc()
        logger.warning("document {} refused for good, dead-lettered: {}", action.doc_id, reason)
        letter: DeadLetter = {
            "consumer": self.consumer,
            "doc_id": action.doc_id,
            "reason": reason,
            "version": action.version or 0,
            "document": self._kept(action.document),
            "at": time.time(),
        }
        await retrying(
            lambda: self.dead_letters.put(letter),
            policy=self.retry,
            transient=(SourceUnavailable,),
            sleep=self.sleep,
            draw=self.draw,
        )
        outcome.refused(action)

    def _kept(self, document: Document | None) -> Document | None:
        """The document as its dead letter keeps it: None when too large to store (see
        DEAD_LETTER_MAX_DOCUMENT_BYTES)."""
        if document is None:
            return None
        limit = min(self.limits.max_document_bytes, DEAD_LETTER_MAX_DOCUMENT_BYTES)
        return document if len(orjson.dumps(document)) <= limit else None

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

    The reader fills a queue of at most `options.queue_batches` batches; the writer drains it. Neither
    ever waits on the other once that one has ended. Once `stop` is set the reader is cancelled and the
    writer takes no new batch: the one in flight may finish (`run_stream` bounds how long), the queued
    ones are dropped unacknowledged (never checkpointed: the next run reads them again).
    """
    if time.time() - checkpoint.token_at > options.token_retention_seconds:
        raise HistoryLost(
            f"the checkpointed resume token is {time.time() - checkpoint.token_at:.0f} s old, past the "
            f"{options.token_retention_seconds:.0f} s retention of the change stream"
        )
    # The age gauge starts from the checkpoint's own age: a stream that never gets a batch through
    # (restarted while the engine refuses it) shows its stall from the start.
    mark_checkpoint_saved(options.consumer, age_seconds=max(0.0, time.time() - checkpoint.saved_at))
    queue: asyncio.Queue[tuple[ChangeBatch, float, int, int]] = asyncio.Queue(maxsize=options.queue_batches)

    async def read() -> None:
        waiting_since = time.time_ns()
        async for batch in source.batches(
            resume_token=checkpoint.resume_token, cluster_time=checkpoint.cluster_time, seq=checkpoint.seq
        ):
            INDEXER_EVENTS.labels(options.consumer).inc(len(batch.events))
            received = time.time_ns()
            await queue.put((batch, received / 1e9, waiting_since, received))
            waiting_since = time.time_ns()

    stop = stop or asyncio.Event()
    reader = asyncio.create_task(read())
    stopping = asyncio.create_task(stop.wait())
    last = checkpoint
    try:
        while (item := await _next_batch(queue, reader, stop, stopping)) is not None:
            batch, read_at, read_started, read_ended = item
            started = time.monotonic()
            with span("indexer batch", consumer=options.consumer, events=len(batch.events)):
                # The read (waiting on the change stream included) happened before this span began.
                tracer().start_span("indexer read", start_time=read_started).end(end_time=read_ended)
                last = await apply_batch(
                    batch, sink=sink, checkpoints=checkpoints, invalidate=invalidate, read_at=read_at
                )
            INDEXER_BATCH_SECONDS.labels(options.consumer).observe(time.monotonic() - started)
        if not stop.is_set():
            await reader  # re-raises what ended the reader (source errors, history lost, collection gone)
    finally:
        reader.cancel()
        stopping.cancel()
        await asyncio.gather(reader, stopping, return_exceptions=True)
    return last


async def _next_batch[T](
    queue: asyncio.Queue[T], reader: asyncio.Task[None], stop: asyncio.Event, stopping: asyncio.Task[bool]
) -> T | None:
    """The next queued item; None once `stop` is set (`stopping` is its waiter), or once the reader has
    ended and the queue is drained."""
    while not stop.is_set():
        if not queue.empty():
            return queue.get_nowait()
        if reader.done():
            return None
        getter = asyncio.ensure_future(queue.get())
        await asyncio.wait({getter, reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return None if stop.is_set() else getter.result()
        getter.cancel()  # an item it was woken for stays queued (asyncio.Queue.get on cancellation)
        await asyncio.gather(getter, return_exceptions=True)
    return None
