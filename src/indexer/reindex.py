"""The full reindex with zero downtime, on either backend.

0. drop the orphans of earlier builds that died (src/indexer/builds.py); 1. note the stream position;
2. create `<alias>-<timestamp>` from the schema (marked building, its heartbeat refreshed until 6);
3. copy the collection in batches (at `transform.COPY_VERSION`, the lowest, so any replayed change wins); 4. replay
the changes since the noted position into the new index until caught up; 5. check the document count
against the collection less the dead-lettered documents (replaying again while writes race it);
6. swap the alias atomically (which clears the building mark); 7. replay once more (changes a
concurrently running stream wrote to the old index between 4 and 6); 8. keep the newest
`keep_previous` old finished indices for rollback, delete older ones (never an index still marked
building: another build's, or an orphan the orphan rule decides about); 9. bump the search generation.

Readers see the old index until the swap and the new, complete one after it: never a half-built one.
A reindex that fails before the swap (an exception, a cancellation) drops its new index.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from src.indexer.builds import abandon, drop_orphans, heartbeats
from src.indexer.checkpoint import CheckpointStore
from src.indexer.errors import ReindexFailed
from src.indexer.load import optimize
from src.indexer.models import ChangeBatch, Checkpoint, ResumeToken
from src.indexer.pipeline import Invalidate, Sink, apply_batch
from src.indexer.source import ChangeSource
from src.indexer.transform import to_index_action


@dataclass(frozen=True, slots=True)
class ReindexOptions:
    """Behaviour of a reindex (from settings)."""

    batch_size: int = 1000
    keep_previous: int = 1
    verify_rounds: int = 5
    save_checkpoint: bool = True
    """Whether the reindex leaves a checkpoint (the stream's own reindexes do; a scheduled one running
    beside a live stream leaves the stream's checkpoint alone)."""
    heartbeat_seconds: float = 60.0
    """How often the new index's building heartbeat is refreshed while it is built."""
    orphan_after_seconds: float = 600.0
    """A build of this alias whose heartbeat is older than this is an orphan, dropped before the copy."""


@dataclass(frozen=True, slots=True)
class ReindexResult:
    """What a reindex did."""

    index: str
    documents: int
    copied: int
    replayed: int
    dropped: tuple[str, ...]
    seconds: float
    checkpoint: Checkpoint
    orphans: tuple[str, ...] = ()
    """Indices that dead builds had left behind, dropped before this one started."""


async def run_reindex(
    *,
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    invalidate: Invalidate | None,
    options: ReindexOptions,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> ReindexResult:
    """Rebuild the index from the collection and swap the alias onto it (see the module docstring);
    `clock` is the wall clock build heartbeats are judged by."""
    started = time.monotonic()
    backend = sink.backend
    orphans = await drop_orphans(backend, now=clock(), orphan_after_seconds=options.orphan_after_seconds)
    token = await source.position()
    index = await backend.create_index()
    try:
        async with heartbeats(backend, index, every_seconds=options.heartbeat_seconds):
            copied, replayed, position, indexed, rejected = await _build(
                source, sink, checkpoints, token, index, options, on_progress
            )
        previous = await backend.current_index()
        await backend.point_alias(index)
    except BaseException:
        await abandon(backend, index)
        raise
    logger.info("reindex: alias now on {} ({} documents, previous {})", index, indexed, previous)
    position, count = await _replay(
        source, sink, checkpoints, position, None if options.save_checkpoint else index, rejected
    )
    replayed += count
    await backend.refresh(index)
    checkpoint = Checkpoint(
        consumer=sink.consumer,
        resume_token=position.resume_token,
        cluster_time=position.cluster_time,
        seq=position.seq,
        saved_at=time.time(),
        token_at=time.time(),
    )
    if options.save_checkpoint:
        await checkpoints.save(checkpoint)
    dropped = await _drop_old(sink, index, options.keep_previous)
    if invalidate is not None:
        await invalidate([])
    return ReindexResult(
        index=index,
        documents=indexed,
        copied=copied,
        replayed=replayed,
        dropped=dropped,
        seconds=time.monotonic() - started,
        checkpoint=checkpoint,
        orphans=tuple(orphan["index"] for orphan in orphans),
    )


async def _build(
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    token: ResumeToken,
    index: str,
    options: ReindexOptions,
    on_progress: Callable[[int], None] | None,
) -> tuple[int, int, ChangeBatch, int, set[str]]:
    """Steps 3-5 and the compaction: (copied, replayed, position, indexed, rejected ids)."""
    backend = sink.backend
    logger.info("reindex into {}: copying the collection", index)
    copied = 0
    rejected: set[str] = set()  # ids whose latest write was refused (dead-lettered): not in the index
    async for documents in source.snapshot(options.batch_size):  # inserts at COPY_VERSION
        actions = [to_index_action(document) for document in documents]
        copied += len(await sink.write(actions, index=index, rejected=rejected))
        if on_progress is not None:
            on_progress(len(documents))
    position = ChangeBatch((), token, None, 0)
    replayed = 0
    for _ in range(options.verify_rounds):
        position, count = await _replay(source, sink, checkpoints, position, index, rejected)
        replayed += count
        await backend.refresh(index)
        indexed, expected = await backend.count(index), await source.count() - len(rejected)
        if indexed == expected:
            break
        # Writes racing the two counts: every change since the replay went idle moves a count by at
        # most one, so a gap no larger than those changes is explained by them (the stream and the
        # final replay below apply them); a larger gap means the copy is wrong.
        position, racing = await _replay(source, sink, checkpoints, position, index, rejected)
        replayed += racing
        if abs(indexed - expected) <= racing:
            logger.info("reindex: counts {} / {} differ by concurrent writes only ({})", indexed, expected, racing)
            break
        logger.info("reindex: {} documents indexed, {} in the collection; replaying again", indexed, expected)
    else:
        raise ReindexFailed(
            f"{index} holds {indexed} documents but the collection {expected}: the alias stays where it was "
            "(the new index is dropped)"
        )
    await optimize(backend, index)
    return copied, replayed, position, indexed, rejected


async def _replay(
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    position: ChangeBatch,
    index: str | None,
    rejected: set[str],
) -> tuple[ChangeBatch, int]:
    """Apply every change after `position` until caught up; returns the new position and the count."""
    count = 0
    until = int(time.time())  # changes committed after the replay started are left to the next one
    async for batch in source.batches(
        resume_token=position.resume_token,
        cluster_time=position.cluster_time,
        seq=position.seq,
        until_idle=True,
        until_time=until,
    ):
        await apply_batch(batch, sink=sink, checkpoints=checkpoints, invalidate=None, read_at=time.time(), index=index)
        count += len(batch.events)
        position = batch
    return position, count


async def _drop_old(sink: Sink, current: str, keep_previous: int) -> tuple[str, ...]:
    """Delete finished versioned indices older than the newest `keep_previous` ones before `current`."""
    building = await sink.backend.building_indices()
    indices = [name for name in await sink.backend.list_indices() if name != current and name not in building]
    older = [name for name in indices if name < current]
    doomed = older[: max(0, len(older) - keep_previous)]
    for name in doomed:
        await sink.backend.drop_index(name)
    return tuple(doomed)
