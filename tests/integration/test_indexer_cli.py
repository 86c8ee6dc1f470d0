"""The indexer's entrypoints on SecantusDB and Tantivy: stream until SIGTERM, reindex, status exit codes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from indexer.cli import main, run_stream_command
from src.indexer.factory import build_indexer
from src.settings import IndexerSettings, get_indexer_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def env(secantus_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    values = {
        "MONGODB_URL": secantus_url,
        "MONGODB_DATABASE": f"cli_{uuid.uuid4().hex[:8]}",
        "MONGODB_COLLECTION": "packages",
        "INDEX_ALIAS": f"cli-{uuid.uuid4().hex[:8]}",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "INDEXER_HEARTBEAT_SECONDS": "0.2",
        "INDEXER_METRICS_PORT": str(metrics_port),
        "INDEXER_STATUS_STALL_SECONDS": "1.5",
        "INDEXER_STATUS_MAX_LAG_SECONDS": "30",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_indexer_settings.cache_clear()
    return values


def seed(env: dict[str, str], count: int) -> None:
    async def insert() -> None:
        client: AsyncMongoClient[Any] = AsyncMongoClient(env["MONGODB_URL"])
        await client[env["MONGODB_DATABASE"]]["packages"].insert_many(
            [{"_id": f"p{n}", "name": f"package{n}", "installed_size": n} for n in range(count)]
        )
        await client.close()

    asyncio.run(insert())


def test_main_when_stream_then_status_tells_healthy_from_stalled(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    seed(env, 25)
    assert main(["status"]) == 3  # never started
    assert json.loads(capsys.readouterr().out)["state"] == "no-checkpoint"

    assert asyncio.run(stream_until_checkpointed(get_indexer_settings())) == 0
    assert main(["status"]) == 0
    healthy = json.loads(capsys.readouterr().out)
    assert healthy["state"] == "ok"
    assert healthy["checkpoint_age_seconds"] < 1.5

    two_seconds_later = time.time() + 2  # nobody saves checkpoints any more
    assert main(["status"], clock=lambda: two_seconds_later) == 2
    assert json.loads(capsys.readouterr().out)["state"] == "stalled"


async def stream_until_checkpointed(settings: IndexerSettings) -> int:
    """Run the `stream` command until it saved a checkpoint after copying, then stop it as SIGTERM would."""
    stop = asyncio.Event()
    command = asyncio.create_task(run_stream_command(settings, stop=stop))
    indexer = build_indexer(settings)
    try:
        async with asyncio.timeout(30):
            while await indexer.checkpoints.load(settings.indexer.consumer) is None:
                assert not command.done(), command.result()
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await indexer.close()
    return await asyncio.wait_for(command, 30)


def test_main_when_reindex_runs_reports_and_keeps_the_streams_checkpoint(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    seed(env, 30)
    assert main(["reindex"]) == 0
    first = capsys.readouterr().out
    assert "30 documents (30 copied" in first
    assert main(["reindex"]) == 0
    assert "30 documents" in capsys.readouterr().out


def test_main_when_mongodb_unreachable_fails_cleanly(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://127.0.0.1:9/?directConnection=true")
    monkeypatch.setenv("MONGODB_TIMEOUT_SECONDS", "0.3")
    get_indexer_settings.cache_clear()
    started = time.monotonic()
    assert main(["status"]) == 4
    assert time.monotonic() - started < 5
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "source-unreachable"
    assert report["error"]


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_main_when_backend_unreachable_says_so_with_its_own_code(
    kind: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(env, 3)
    monkeypatch.setenv(f"{kind.upper()}_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SEARCH_TIMEOUT_SECONDS", "0.3")
    get_indexer_settings.cache_clear()
    assert main(["status"]) == 5
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "backend-unreachable"
    assert kind in report["error"]


def test_main_when_check_on_a_healthy_source_passes_with_notes(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    seed(env, 3)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok   source reachable")
    assert f"ok   change streams on {env['MONGODB_DATABASE']}.packages" in out
    assert "note checkpoint of 'search-indexer': none yet" in out
    assert "note search backend (tantivy): the alias does not exist yet" in out


def test_main_when_check_finds_broken_dependencies_fails_naming_them(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SEARCH_TIMEOUT_SECONDS", "0.3")
    get_indexer_settings.cache_clear()
    assert main(["check"]) == 1
    assert "fail search backend (elasticsearch)" in capsys.readouterr().out
    monkeypatch.setenv("MONGODB_URL", "mongodb://indexer:hunter2@127.0.0.1:9/?directConnection=true")
    monkeypatch.setenv("MONGODB_TIMEOUT_SECONDS", "0.3")
    get_indexer_settings.cache_clear()
    assert main(["check"]) == 1
    out = capsys.readouterr()
    assert "fail source reachable: mongodb://indexer:***@127.0.0.1:9" in out.out
    assert "hunter2" not in out.out + out.err


async def test_source_when_documentdb_flavor_never_sends_a_retryable_write(secantus_url: str) -> None:
    """The checkpoint and dead-letter writes through a client built as `create_mongo_source` builds it."""
    from pymongo import monitoring

    from src.indexer.checkpoint import MongoCheckpointStore, MongoDeadLetterStore
    from src.indexer.models import Checkpoint
    from src.indexer.source import SourceConnection, client_options

    class Writes(monitoring.CommandListener):
        def __init__(self) -> None:
            self.commands: list[dict[str, Any]] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name in ("update", "insert", "delete", "findAndModify"):
                self.commands.append(dict(event.command))

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            return None

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            return None

    async def write_through(flavor: str) -> list[dict[str, Any]]:
        writes = Writes()
        options = client_options(SourceConnection(flavor=flavor), timeout_seconds=5)  # type: ignore[arg-type]
        client: AsyncMongoClient[Any] = AsyncMongoClient(secantus_url, event_listeners=[writes], **options)
        database = f"docdb_{uuid.uuid4().hex[:8]}"
        try:
            await MongoCheckpointStore(client[database], "checkpoints").save(
                Checkpoint("c", {"_data": "aa"}, None, 0, saved_at=1.0, token_at=1.0)
            )
            await MongoDeadLetterStore(client[database], "dead").put(
                {"consumer": "c", "doc_id": "d", "reason": "r", "version": 1, "document": None, "at": 1.0}
            )
        finally:
            await client.drop_database(database)
            await client.close()
        return writes.commands

    documentdb = await write_through("documentdb")
    assert len(documentdb) == 2
    assert all("txnNumber" not in command for command in documentdb), documentdb
    mongodb = await write_through("mongodb")  # the control: PyMongo's default retries writes on a replica set
    assert any("txnNumber" in command for command in mongodb), mongodb


def test_main_when_stream_checks_first_and_the_preflight_fails_does_not_stream(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SEARCH_TIMEOUT_SECONDS", "0.3")
    get_indexer_settings.cache_clear()
    assert main(["stream", "--check"]) == 1  # returns at once: a stream would run until SIGTERM
    out = capsys.readouterr()
    assert "fail search backend" in out.out
    assert "not streaming" in out.err
