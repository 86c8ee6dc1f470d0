"""Seed the source collection from a JSON Lines file (the demo data of a local stack, docker/compose.yaml).

Each document's `id` becomes its `_id` (the indexer turns it back into the search id), written with an
upserting replace: seeding twice leaves one copy of each document. Lines that are not a JSON object with
a valid id are counted and reported by line number, as `load` does; memory is bounded by one batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.errors import PyMongoError

from src.indexer.errors import SourceUnavailable
from src.indexer.load import batched, open_lines, parse_lines
from src.indexer.source import SourceConnection, client_options
from src.search.models import Document


@dataclass(slots=True)
class SeedSummary:
    """What a seed did."""

    documents: int = 0
    errors: int = 0
    skipped: bool = False
    """The collection already held documents and `if_empty` was asked: nothing was written."""
    error_samples: list[str] = field(default_factory=list)


def source_document(doc_id: str, document: Document) -> dict[str, object]:
    """The collection's shape of a search document (pure): its id becomes `_id`."""
    stored: dict[str, object] = {key: value for key, value in document.items() if key != "id"}
    stored["_id"] = doc_id
    return stored


async def seed_collection(
    path: Path,
    *,
    url: str,
    database: str,
    collection: str,
    batch_size: int,
    timeout_seconds: float,
    connection: SourceConnection | None = None,
    if_empty: bool = False,
    max_error_samples: int = 20,
) -> SeedSummary:
    """Upsert every document of `path` into `database.collection`; with `if_empty`, only into an empty one."""
    summary = SeedSummary()
    client: AsyncMongoClient[Mapping[str, Any]] = AsyncMongoClient(
        url, **client_options(connection or SourceConnection(), timeout_seconds=timeout_seconds)
    )
    target = client[database][collection]
    try:
        if if_empty and await target.find_one({}, projection={"_id": 1}) is not None:
            summary.skipped = True
            return summary
        with open_lines(path) as stream:
            for batch in batched(parse_lines(iter(stream)), batch_size):
                writes: list[ReplaceOne[Mapping[str, Any]]] = []
                for item in batch:
                    if item.action is None or item.action.document is None:
                        summary.errors += 1
                        if len(summary.error_samples) < max_error_samples:
                            summary.error_samples.append(f"line {item.line_number}: {item.error}")
                        continue
                    document = source_document(item.action.doc_id, item.action.document)
                    writes.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
                if writes:
                    await target.bulk_write(writes, ordered=False)
                    summary.documents += len(writes)
    except PyMongoError as err:
        raise SourceUnavailable(f"seeding {database}.{collection} failed: {err}") from err
    finally:
        await client.close()
    return summary
