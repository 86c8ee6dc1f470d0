"""The reindex request log on a real MongoDB-protocol server (SecantusDB)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from src.indexer.requests import MongoReindexLog

pytestmark = pytest.mark.integration


async def test_reindex_log_when_fields_are_recorded_merges_them_into_the_latest(secantus_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(secantus_url)
    database = client[f"log_{uuid.uuid4().hex[:8]}"]
    try:
        log = MongoReindexLog(database, "indexer_checkpoints", "consumer-1")  # type: ignore[arg-type]
        assert await log.latest() is None
        await log.record(request_id="r1", state="queued", coalesced=[])
        await log.record(state="done", index="idx-2")
        assert await log.latest() == {"request_id": "r1", "state": "done", "coalesced": [], "index": "idx-2"}
    finally:
        await client.drop_database(database.name)
        await client.close()


async def test_read_indexer_status_when_a_reindex_was_requested_shows_it(secantus_url: str, tmp_path: Path) -> None:
    import time

    from src.indexer.factory import read_indexer_status
    from src.settings import IndexerSettings

    database = f"status_{uuid.uuid4().hex[:8]}"
    settings = IndexerSettings.build(
        mongodb_url=secantus_url,
        mongodb_database=database,
        tantivy_data_dir=tmp_path / "tantivy",
        redis_url="",
        elasticsearch_url="",
        opensearch_url="",
    )
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(secantus_url)
    try:
        log = MongoReindexLog(client[database], settings.indexer.checkpoint_collection, settings.indexer.consumer)  # type: ignore[arg-type]
        await log.record(request_id="r9", state="running")
        status = await read_indexer_status(settings, now=time.time())
        assert status.get("reindex") == {"request_id": "r9", "state": "running"}, status
    finally:
        await client.drop_database(database)
        await client.close()
