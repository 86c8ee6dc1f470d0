"""On-disk storage: an open index (reader, writer, typo vocabularies), build markers, a batch of writes.

An index being built holds a marker file, `BUILD_MARKER`, from its creation until its alias moves onto
it, rewritten atomically with each heartbeat. A batch of writes commits once, skipping any write older
than the stored version (out-of-order protection, as the clusters' external versions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import orjson
import tantivy

from src.search.backends.base import BulkItemResult, IndexAction
from src.search.backends.tantivy.expansion import TypoVocabularies
from src.search.backends.tantivy.schema import add_prepared, register_analyzer
from src.search.documents import DocumentInvalid, prepare_document
from src.search.schema import IndexSchema

_WRITER_HEAP_BYTES = 64_000_000
BUILD_MARKER = "search-api-build.json"
"""The building mark's file, in the index's folder."""


class IndexHandle:
    """One open Tantivy index: its reader side, a lazily created writer, and its typo vocabularies."""

    def __init__(self, path: Path, tschema: tantivy.Schema) -> None:
        self.name = path.name
        self.index = tantivy.Index(tschema, path=str(path), reuse=True)
        register_analyzer(self.index)
        self._writer: tantivy.IndexWriter | None = None
        self.typos = TypoVocabularies()

    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self.index.writer(_WRITER_HEAP_BYTES, 1)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None


def write_batch(
    handle: IndexHandle, actions: list[IndexAction], schema: IndexSchema, tschema: tantivy.Schema
) -> list[BulkItemResult]:
    """Apply `actions` to `handle`'s index and commit once: one result per action (a write older than the
    stored version is acknowledged and skipped; a document the schema refuses is an error result)."""
    writer = handle.writer()
    versions = _stored_versions(handle, {a.doc_id for a in actions if a.version is not None}, tschema)
    results: list[BulkItemResult] = []
    for action in actions:
        if action.version is not None:
            if versions.get(action.doc_id, -1) > action.version:
                results.append(BulkItemResult(doc_id=action.doc_id, ok=True))  # a newer write won
                continue
            versions[action.doc_id] = action.version
        if action.op == "delete":
            writer.delete_documents_by_term("id", action.doc_id)
            results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
            continue
        try:
            prepared = prepare_document(action.document or {}, schema)
        except DocumentInvalid as err:
            results.append(BulkItemResult(doc_id=action.doc_id, ok=False, error=str(err)))
            continue
        doc = tantivy.Document()
        add_prepared(doc, prepared, action.version or 0)
        writer.delete_documents_by_term("id", prepared.id)
        writer.add_document(doc)
        results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
    writer.commit()
    handle.index.reload()
    return results


def _stored_versions(handle: IndexHandle, doc_ids: set[str], tschema: tantivy.Schema) -> dict[str, int]:
    if not doc_ids:
        return {}
    searcher = handle.index.searcher()
    result = searcher.search(
        tantivy.Query.term_set_query(tschema, "id", sorted(doc_ids)), limit=len(doc_ids), count=False
    )
    addresses = [address for _, address in result.hits]
    values = searcher.fast_field_values("_version", addresses)
    ids = [cast(str, searcher.doc(address).get_first("id")) for address in addresses]
    return {doc_id: int(value) for doc_id, value in zip(ids, values, strict=True) if value is not None}


def write_marker(folder: Path, heartbeat: float) -> None:
    """Write the building marker atomically (a reader never sees half a file)."""
    tmp = folder / f"{BUILD_MARKER}.tmp"
    tmp.write_bytes(orjson.dumps({"state": "building", "heartbeat": heartbeat}))
    os.replace(tmp, folder / BUILD_MARKER)


def read_marker(folder: Path) -> float | None:
    """The marker's heartbeat, None without a marker; an unreadable one is as old as can be (0)."""
    try:
        raw = (folder / BUILD_MARKER).read_bytes()
    except FileNotFoundError:
        return None
    try:
        heartbeat = orjson.loads(raw).get("heartbeat")
    except (orjson.JSONDecodeError, AttributeError):
        return 0.0
    return float(heartbeat) if isinstance(heartbeat, int | float) else 0.0
