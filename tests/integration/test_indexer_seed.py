"""`python -m indexer seed` on SecantusDB: the demo data of the compose stack goes into the source
collection (id → _id), idempotently; the stream's reindex then serves it."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from indexer.cli import main
from src.search.backends.tantivy import TantivyBackend
from src.search.schema import load_schema
from src.settings import get_indexer_settings

pytestmark = pytest.mark.integration

DEMO = Path("data/debian-packages.jsonl.gz")


@pytest.fixture
def env(secantus_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = {
        "MONGODB_URL": secantus_url,
        "MONGODB_DATABASE": f"seed_{uuid.uuid4().hex[:8]}",
        "MONGODB_COLLECTION": "packages",
        "INDEX_ALIAS": f"seed-{uuid.uuid4().hex[:8]}",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "INDEXER_METRICS_PORT": "0",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_indexer_settings.cache_clear()
    yield values

    async def drop() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus_url)
        await client.drop_database(values["MONGODB_DATABASE"])
        await client.close()

    asyncio.run(drop())


def _collection(env: dict[str, str]) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MONGODB_URL"])
        try:
            return await client[env["MONGODB_DATABASE"]]["packages"].find({}).to_list()
        finally:
            await client.close()

    return asyncio.run(read())


def _slice(tmp_path: Path, count: int, extra: str = "") -> Path:
    with gzip.open(DEMO, "rt") as demo:
        lines = [next(demo) for _ in range(count)]
    path = tmp_path / "slice.jsonl"
    path.write_text("".join(lines) + extra)
    return path


def test_main_seed_writes_ids_as_underscore_id_and_is_idempotent(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _slice(tmp_path, 30, extra='not json\n{"name": "no id"}\n')
    assert main(["seed", str(path), "--batch-size", "7"]) == 0
    out, err = capsys.readouterr()
    assert "30 documents, 2 errors" in out
    assert "line 31" in err
    stored = _collection(env)
    assert len(stored) == 30
    first = next(doc for doc in stored if doc["_id"] == "0ad")
    assert "id" not in first
    assert first["name"] == "0ad"
    assert main(["seed", str(path)]) == 0  # upserts: still one copy of each
    assert len(_collection(env)) == 30


def test_main_seed_if_empty_when_the_collection_holds_documents_skips(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed", str(_slice(tmp_path, 5))]) == 0
    assert main(["seed", str(_slice(tmp_path, 12)), "--if-empty"]) == 0
    assert "already holds documents" in capsys.readouterr().out
    assert len(_collection(env)) == 5


def test_main_seed_then_reindex_serves_the_seeded_documents(env: dict[str, str], tmp_path: Path) -> None:
    assert main(["seed", str(_slice(tmp_path, 20))]) == 0
    assert main(["reindex"]) == 0

    async def fetch() -> object:
        backend = TantivyBackend(
            tmp_path / "tantivy",
            schema=load_schema(get_indexer_settings().index.schema_path),
            alias=env["INDEX_ALIAS"],
            timeout_seconds=10.0,
        )
        try:
            return await backend.get("0ad")
        finally:
            await backend.close()

    found = asyncio.run(fetch())
    assert isinstance(found, dict)
    assert found["id"] == "0ad"


def test_main_seed_when_the_source_is_unreachable_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://127.0.0.1:1/?directConnection=true")
    monkeypatch.setenv("MONGODB_TIMEOUT_SECONDS", "0.5")
    get_indexer_settings.cache_clear()
    assert main(["seed", str(_slice(tmp_path, 3))]) == 1
    assert "seeding catalog.packages failed" in capsys.readouterr().err
