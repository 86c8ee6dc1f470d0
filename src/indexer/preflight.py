"""`python -m indexer check`: can the stream run here? One line per check, each with a fix when it fails.

Failures (non-zero exit): the source does not answer with these TLS settings and credentials; change
streams are not enabled on the collection; the checkpoint or dead-letter collection is not writable;
the search backend does not answer. States the stream repairs by itself are notes, not failures: no
checkpoint yet (it copies the collection first), a checkpoint older than the change-stream retention (it
reindexes), the alias missing (it is created).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from src.indexer.checkpoint import CheckpointStore
from src.indexer.errors import ChangeStreamsDisabled, SourceAuthFailed, SourceUnavailable
from src.search.backends.base import SearchBackend
from src.search.errors import SearchUnavailable


class CheckedSource(Protocol):
    """What the preflight asks of the source."""

    async def ping(self) -> None:
        """Raise SourceUnavailable (or SourceAuthFailed) unless the server answers."""
        ...

    async def check_change_streams(self) -> None:
        """Raise ChangeStreamsDisabled (or SourceUnavailable) unless a change stream opens."""
        ...

    async def check_writable(self, collection: str) -> None:
        """Raise SourceUnavailable unless a probe document can be written to `collection`."""
        ...


@dataclass(frozen=True, slots=True)
class CheckLine:
    """One check's outcome."""

    state: Literal["ok", "note", "fail"]
    what: str
    detail: str = ""
    fix: str = ""

    def render(self) -> str:
        """`ok   what: detail` (and `     fix: ...` on a failure)."""
        line = f"{self.state:<4} {self.what}" + (f": {self.detail}" if self.detail else "")
        return line + (f"\n     fix: {self.fix}" if self.fix else "")


@dataclass(frozen=True, slots=True)
class PreflightTarget:
    """What is checked, for the messages."""

    source: str
    """The source as shown (no credentials)."""
    database: str
    collection: str
    checkpoint_collection: str
    dead_letter_collection: str
    consumer: str
    flavor: str
    token_retention_seconds: float


async def preflight(
    target: PreflightTarget,
    *,
    source: CheckedSource,
    checkpoints: CheckpointStore,
    backend: SearchBackend,
    now: float,
) -> list[CheckLine]:
    """Run every check; a source that does not answer skips the checks that need it."""
    lines: list[CheckLine] = []
    try:
        await source.ping()
        lines.append(CheckLine("ok", "source reachable", target.source))
    except SourceAuthFailed as err:
        fix = "check MONGODB_USERNAME / MONGODB_PASSWORD (or the credentials in MONGODB_URL) and MONGODB_AUTH_MECHANISM"
        lines.append(CheckLine("fail", "source authentication", str(err), fix))
    except SourceUnavailable as err:
        fix = "check MONGODB_URL, the network path, and MONGODB_TLS / MONGODB_TLS_CA_FILE for a TLS server"
        lines.append(CheckLine("fail", "source reachable", f"{target.source}: {err}", fix))
    if lines[-1].state == "ok":
        lines.append(await _change_streams(target, source))
        for collection in (target.checkpoint_collection, target.dead_letter_collection):
            lines.append(await _writable(target, source, collection))
        lines.append(await _checkpoint(target, checkpoints, now))
    lines.append(await _backend(backend))
    return lines


async def _change_streams(target: PreflightTarget, source: CheckedSource) -> CheckLine:
    what = f"change streams on {target.database}.{target.collection}"
    try:
        await source.check_change_streams()
    except ChangeStreamsDisabled as err:
        fix = (
            "run db.adminCommand({modifyChangeStreams: 1, database: "
            f'"{target.database}", collection: "{target.collection}", enable: true}})'
            if target.flavor == "documentdb"
            else "change streams need a replica set (or DocumentDB with modifyChangeStreams)"
        )
        return CheckLine("fail", what, str(err), fix)
    except SourceUnavailable as err:
        return CheckLine(
            "fail", what, str(err), "change streams need a replica set; check the user may read the collection"
        )
    return CheckLine("ok", what)


async def _writable(target: PreflightTarget, source: CheckedSource, collection: str) -> CheckLine:
    what = f"{target.database}.{collection} writable"
    try:
        await source.check_writable(collection)
    except SourceUnavailable as err:
        fix = "grant the indexer's user readWrite on the database"
        if target.flavor != "documentdb" and "retryable" in str(err).lower():
            fix = "set MONGODB_FLAVOR=documentdb (DocumentDB rejects retryable writes)"
        return CheckLine("fail", what, str(err), fix)
    return CheckLine("ok", what)


async def _checkpoint(target: PreflightTarget, checkpoints: CheckpointStore, now: float) -> CheckLine:
    what = f"checkpoint of {target.consumer!r}"
    try:
        checkpoint = await checkpoints.load(target.consumer)
    except SourceUnavailable as err:
        return CheckLine("fail", what, str(err), "grant the indexer's user read on the checkpoint collection")
    if checkpoint is None:
        return CheckLine("note", what, "none yet: the stream will copy the collection first")
    age = now - checkpoint.token_at
    if age > target.token_retention_seconds:
        return CheckLine("note", what, f"{age:.0f} s old, past the retention: the stream will reindex")
    return CheckLine("ok", what, f"{age:.0f} s old")


async def _backend(backend: SearchBackend) -> CheckLine:
    what = f"search backend ({backend.kind})"
    try:
        current = await backend.current_index()
    except SearchUnavailable as err:
        setting = {
            "elasticsearch": "ELASTICSEARCH_URL",
            "opensearch": "OPENSEARCH_URL",
            "tantivy": "TANTIVY_DATA_DIR",
        }.get(backend.kind, "ELASTICSEARCH_URL, OPENSEARCH_URL or TANTIVY_DATA_DIR")
        return CheckLine("fail", what, str(err), f"check {setting} and that it answers")
    if current is None:
        return CheckLine("note", what, "the alias does not exist yet: the stream will create it")
    return CheckLine("ok", what, f"alias points at {current}")
