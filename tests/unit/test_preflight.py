"""Unit tests of src.indexer.preflight and the source's connection options, on fakes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pymongo.errors import OperationFailure

from indexer.cli import redacted
from src.indexer.errors import ChangeStreamsDisabled, SourceAuthFailed, SourceUnavailable
from src.indexer.models import Checkpoint
from src.indexer.preflight import CheckLine, PreflightTarget, preflight
from src.indexer.source import SourceConnection, _translate, client_options
from tests.fakes.change_source import MemoryCheckpointStore
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import SCHEMA

NOW = 1_800_000_000.0
# What DocumentDB answers when change streams were not enabled with modifyChangeStreams.
DOCUMENTDB_DISABLED = OperationFailure(
    "Change stream is not enabled for this collection. Use modifyChangeStreams to enable it.", code=None
)


def target(flavor: str = "documentdb") -> PreflightTarget:
    return PreflightTarget(
        source="mongodb://db.example:27017/",
        database="catalog",
        collection="packages",
        checkpoint_collection="checkpoints",
        dead_letter_collection="dead",
        consumer="search",
        flavor=flavor,
        token_retention_seconds=10_800,
    )


@dataclass
class Source:
    """A source whose each check can be made to fail with a given error."""

    ping_error: Exception | None = None
    stream_error: Exception | None = None
    write_error: Exception | None = None

    async def ping(self) -> None:
        if self.ping_error:
            raise self.ping_error

    async def check_change_streams(self) -> None:
        if self.stream_error:
            raise self.stream_error

    async def check_writable(self, collection: str) -> None:
        if self.write_error:
            raise self.write_error


async def run(
    source: Source, *, checkpoint: Checkpoint | None = None, backend_down: bool = False, **kw: str
) -> list[CheckLine]:
    store = MemoryCheckpointStore()
    if checkpoint is not None:
        await store.save(checkpoint)
    backend = FakeSearchBackend(schema=SCHEMA)
    await backend.point_alias(await backend.create_index())
    backend.down = backend_down
    return await preflight(target(**kw), source=source, checkpoints=store, backend=backend, now=NOW)


def states(lines: list[CheckLine]) -> list[tuple[str, str]]:
    return [(line.state, line.what) for line in lines]


async def test_preflight_when_healthy_without_checkpoint_notes_the_first_copy() -> None:
    lines = await run(Source())
    assert states(lines) == [
        ("ok", "source reachable"),
        ("ok", "change streams on catalog.packages"),
        ("ok", "catalog.checkpoints writable"),
        ("ok", "catalog.dead writable"),
        ("note", "checkpoint of 'search'"),
        ("ok", "search backend (fake)"),
    ]
    assert "copy the collection first" in lines[4].detail


async def test_preflight_when_change_streams_disabled_on_documentdb_names_the_command() -> None:
    lines = await run(Source(stream_error=_translate(DOCUMENTDB_DISABLED)))
    failed = [line for line in lines if line.state == "fail"]
    assert [line.what for line in failed] == ["change streams on catalog.packages"]
    assert 'modifyChangeStreams: 1, database: "catalog", collection: "packages", enable: true' in failed[0].fix
    assert "fix: run db.adminCommand" in failed[0].render()


async def test_preflight_when_credentials_refused_fails_without_the_other_source_checks() -> None:
    lines = await run(Source(ping_error=SourceAuthFailed("authentication failed: bad password")))
    assert states(lines) == [("fail", "source authentication"), ("ok", "search backend (fake)")]
    assert "MONGODB_PASSWORD" in lines[0].fix


async def test_preflight_when_writes_rejected_as_retryable_suggests_the_documentdb_flavor() -> None:
    error = SourceUnavailable("mongodb operation failed: Retryable writes are not supported")
    lines = await run(Source(write_error=error), flavor="mongodb")
    failed = [line for line in lines if line.state == "fail"]
    assert len(failed) == 2
    assert all("MONGODB_FLAVOR=documentdb" in line.fix for line in failed)


async def test_preflight_when_checkpoint_is_past_the_retention_notes_the_reindex() -> None:
    old = Checkpoint("search", {"_data": "00"}, None, 0, saved_at=NOW - 20_000, token_at=NOW - 20_000)
    lines = await run(Source(), checkpoint=old)
    assert ("note", "checkpoint of 'search'") in states(lines)
    assert "will reindex" in lines[4].detail


async def test_preflight_when_backend_down_fails_it() -> None:
    lines = await run(Source(), backend_down=True)
    assert lines[-1].state == "fail"
    assert "ELASTICSEARCH_URL" in lines[-1].fix


def test_translate_when_documentdb_refuses_maps_to_our_errors() -> None:
    assert isinstance(_translate(DOCUMENTDB_DISABLED), ChangeStreamsDisabled)
    auth = _translate(OperationFailure("Authentication failed.", code=18, details={"errmsg": "Authentication failed."}))
    assert isinstance(auth, SourceAuthFailed)
    assert str(auth) == "authentication failed: Authentication failed."


def test_client_options_when_documentdb_turns_retryable_writes_off_and_reads_the_primary() -> None:
    plain = client_options(SourceConnection(), timeout_seconds=2)
    assert "retryWrites" not in plain
    assert plain["serverSelectionTimeoutMS"] == 2000
    documentdb = client_options(
        SourceConnection(
            flavor="documentdb",
            tls=True,
            tls_ca_file="/etc/ssl/global-bundle.pem",
            username="indexer",
            password="s3cret",
            auth_mechanism="SCRAM-SHA-1",
        ),
        timeout_seconds=2,
    )
    assert documentdb["retryWrites"] is False
    assert documentdb["readPreference"] == "primary"
    assert (documentdb["tls"], documentdb["tlsCAFile"]) == (True, "/etc/ssl/global-bundle.pem")
    assert (documentdb["username"], documentdb["password"], documentdb["authMechanism"]) == (
        "indexer",
        "s3cret",
        "SCRAM-SHA-1",
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://indexer:s3cret@db:27017/?tls=true", "mongodb://indexer:***@db:27017/?tls=true"),
        ("mongodb://db:27017/", "mongodb://db:27017/"),
    ],
)
def test_redacted_when_url_has_a_password_hides_it(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_source_connection_when_settings_left_empty_uses_no_tls_files_and_no_password() -> None:
    from src.indexer.factory import source_connection
    from src.settings import IndexerSettings

    empty = source_connection(
        IndexerSettings.build(mongodb_tls_ca_file="", mongodb_password="", mongodb_username="").source
    )
    assert (empty.tls_ca_file, empty.password, empty.username) == (None, None, "")
    full = source_connection(
        IndexerSettings.build(
            mongodb_flavor="documentdb",
            mongodb_tls=True,
            mongodb_tls_ca_file="/ca.pem",
            mongodb_username="indexer",
            mongodb_password="pw",
        ).source
    )
    assert (full.flavor, full.tls, full.tls_ca_file, full.password) == ("documentdb", True, "/ca.pem", "pw")
    assert "pw" not in repr(IndexerSettings.build(mongodb_password="pw"))
