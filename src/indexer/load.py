"""Bulk-load a JSON Lines file (optionally gzipped) into the configured backend.

Reading is streamed and batched, so memory stays bounded by one batch whatever the file size; the file
is opened once, so it may be a pipe (`/dev/stdin`, a FIFO). A line that is not a JSON object with an id,
that is longer than the document size limit (the line is the document's JSON encoding), or that the
backend refuses, is counted as an error and reported with its line number; the load goes on.

A load that creates an index builds it as a reindex does (src/indexer/builds.py): it first drops the
orphans of dead builds, keeps its new index's building heartbeat fresh while it loads, and drops the
index when it fails before the alias moves.
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import orjson
from loguru import logger

from src.indexer.builds import abandon, drop_orphans, heartbeats
from src.indexer.transform import size_refusal
from src.search.backends.base import IndexAction, SearchBackend
from src.search.documents import DocumentInvalid, document_id
from src.search.errors import SearchUnavailable
from src.search.models import Document


@dataclass(slots=True)
class LoadSummary:
    """What a load did."""

    documents: int = 0
    errors: int = 0
    seconds: float = 0.0
    index: str = ""
    created: bool = False
    error_samples: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    """Indices that dead builds had left behind, dropped before this load."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One line of the input: an action to apply, or the reason it cannot be loaded."""

    line_number: int
    action: IndexAction | None
    error: str | None = None


def open_lines(path: Path) -> IO[bytes]:
    """Open a JSON Lines file, transparently gunzipping `.gz` files (by magic number, not name); opened
    once and the magic peeked, so a pipe works too."""
    stream = path.open("rb")
    if stream.peek(2)[:2] == b"\x1f\x8b":
        return cast(IO[bytes], _ClosingGzipFile(stream))
    return stream


class _ClosingGzipFile(gzip.GzipFile):
    """A GzipFile that closes the file it reads from (GzipFile leaves a file object it was given open)."""

    def __init__(self, stream: io.BufferedReader) -> None:
        super().__init__(fileobj=stream, mode="rb")
        self._owned = stream

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()


def parse_lines(lines: Iterator[bytes], *, max_document_bytes: int | None = None) -> Iterator[ParsedLine]:
    """Turn raw lines into upsert actions (pure); blank lines are skipped, longer ones refused unread."""
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        too_large = size_refusal(len(line), max_document_bytes) if max_document_bytes is not None else None
        if too_large is not None:
            yield ParsedLine(line_number=number, action=None, error=too_large)
            continue
        try:
            decoded = orjson.loads(raw)
            if not isinstance(decoded, dict):
                raise DocumentInvalid("a JSON object is required")
            document = cast(Document, decoded)
            action = IndexAction(op="upsert", doc_id=document_id(document), document=document)
        except (orjson.JSONDecodeError, DocumentInvalid) as err:
            yield ParsedLine(line_number=number, action=None, error=str(err))
            continue
        yield ParsedLine(line_number=number, action=action)


def batched(items: Iterator[ParsedLine], size: int) -> Iterator[list[ParsedLine]]:
    """Group items into lists of at most `size`."""
    batch: list[ParsedLine] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def load_file(
    path: Path,
    *,
    backend: SearchBackend,
    batch_size: int,
    recreate: bool = False,
    on_progress: Callable[[int], None] | None = None,
    max_error_samples: int = 20,
    max_document_bytes: int | None = None,
    heartbeat_seconds: float = 60.0,
    orphan_after_seconds: float = 600.0,
) -> LoadSummary:
    """Load `path` into the alias, creating a versioned index and the alias when there is none.

    With `recreate`, load into a new versioned index and swap the alias onto it at the end (readers
    keep the old index until then). Orphans of dead builds (heartbeat older than `orphan_after_seconds`)
    are dropped first; a created index's heartbeat is refreshed every `heartbeat_seconds`.
    """
    started = time.perf_counter()
    summary = LoadSummary()
    dropped = await drop_orphans(backend, now=time.time(), orphan_after_seconds=orphan_after_seconds)
    summary.orphans = [orphan["index"] for orphan in dropped]
    current = await backend.current_index()
    if current is not None and not recreate:
        summary.index = current
        await _load_lines(path, backend, summary, batch_size, on_progress, max_error_samples, max_document_bytes)
        await backend.refresh(summary.index)
        summary.seconds = time.perf_counter() - started
        return summary
    summary.index = await backend.create_index()
    summary.created = True
    try:
        async with heartbeats(backend, summary.index, every_seconds=heartbeat_seconds):
            await _load_lines(path, backend, summary, batch_size, on_progress, max_error_samples, max_document_bytes)
            await backend.refresh(summary.index)
            await optimize(backend, summary.index)
        await backend.point_alias(summary.index)
    except BaseException:
        await abandon(backend, summary.index)
        raise
    summary.seconds = time.perf_counter() - started
    return summary


async def _load_lines(
    path: Path,
    backend: SearchBackend,
    summary: LoadSummary,
    batch_size: int,
    on_progress: Callable[[int], None] | None,
    max_error_samples: int,
    max_document_bytes: int | None,
) -> None:
    """Every line of `path` into `summary.index`, batch by batch, counted in `summary`."""
    with open_lines(path) as stream:
        for batch in batched(parse_lines(iter(stream), max_document_bytes=max_document_bytes), batch_size):
            actions = [item.action for item in batch if item.action is not None]
            for item in batch:
                if item.error is not None:
                    _record_error(summary, f"line {item.line_number}: {item.error}", max_error_samples)
            results = await backend.bulk(actions, index=summary.index) if actions else []
            numbers = [item.line_number for item in batch if item.action is not None]
            for number, result in zip(numbers, results, strict=True):
                if result.ok:
                    summary.documents += 1
                else:
                    _record_error(summary, f"line {number} (id {result.doc_id}): {result.error}", max_error_samples)
            if on_progress is not None:
                on_progress(len(batch))


async def optimize(backend: SearchBackend, index: str) -> None:
    """Compact the freshly built `index` before its alias moves (see `SearchBackend.optimize`).

    Best effort: a failure is logged and the alias still moves, since searches are correct unmerged (only
    slower, until the engine merges on its own); an unreachable engine fails the alias swap next anyway.
    """
    started = time.perf_counter()
    try:
        await backend.optimize(index)
    except SearchUnavailable as err:
        logger.warning("{}: not compacted ({}); serving it as written", index, err)
        return
    logger.info("{}: compacted in {:.1f} s", index, time.perf_counter() - started)


def _record_error(summary: LoadSummary, message: str, limit: int) -> None:
    summary.errors += 1
    if len(summary.error_samples) < limit:
        summary.error_samples.append(message)
