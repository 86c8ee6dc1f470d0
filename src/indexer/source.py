"""The `ChangeSource` seam: a collection's change stream as batches, its snapshot, its position.

Contract (tests/contract/test_change_source_contract.py runs it on the in-memory fake and on a real
MongoDB wire protocol server, SecantusDB):

- `position()` returns a resume token for "now": a stream resumed from it sees every later change.
- `batches(resume_token=...)` yields `ChangeBatch`es of inserts, updates, replaces and deletes in
  commit order, each closing on count, bytes or time; an idle stream yields empty batches carrying a
  fresher token every `heartbeat_seconds`. With `until_idle`, it stops at the first moment nothing is
  pending, or (with `until_time` too) after the first batch reaching an event later than that cluster
  time in seconds, so a replay ends even while writes keep coming. The `resume_token` of a batch
  resumes right after its last event.
- A drop, rename or invalidate raises CollectionGone; a resume point no longer in the history raises
  HistoryLost; connection trouble raises SourceUnavailable.
- `snapshot(batch_size)` yields the collection's documents in `_id` order, each as the insert a copy
  writes (`transform.to_copy_event`: a JSON document with a string `id` at `COPY_VERSION`, its `_id`
  refused on the event when the index cannot hold it); `count()` counts them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from src.indexer.errors import ChangeStreamsDisabled, CollectionGone, HistoryLost, SourceAuthFailed, SourceUnavailable
from src.indexer.models import ChangeBatch, ChangeEvent, ClusterTime, ResumeToken
from src.indexer.transform import UnsupportedEvent, cluster_time_of, to_change_event, to_copy_event

# Only stages DocumentDB supports in change streams ($match, $project, $addFields, $replaceRoot, $redact).
PIPELINE: list[dict[str, Any]] = [
    {
        "$match": {
            "operationType": {
                "$in": ["insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate"]
            }
        }
    },
    {"$project": {"updateDescription": 0}},
]
_HISTORY_LOST_CODES = {286, 136, 280}  # ChangeStreamHistoryLost, CappedPositionLost, ChangeStreamFatalError


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """When a batch closes: whichever comes first."""

    max_events: int = 2000
    max_bytes: int = 4 * 1024 * 1024
    max_seconds: float = 0.25
    heartbeat_seconds: float = 5.0


class ChangeSource(Protocol):
    """A collection whose changes can be streamed and whose content can be copied."""

    async def position(self) -> ResumeToken:
        """A resume token for the current position of the stream."""
        ...

    def batches(
        self,
        *,
        resume_token: ResumeToken,
        cluster_time: ClusterTime | None = None,
        seq: int = 0,
        until_idle: bool = False,
        until_time: int | None = None,
    ) -> AsyncIterator[ChangeBatch]:
        """Batches of changes after `resume_token` (tie-break counter continuing from cluster_time/seq)."""
        ...

    def snapshot(self, batch_size: int) -> AsyncIterator[list[ChangeEvent]]:
        """The collection's documents as copy inserts, `batch_size` at a time, in `_id` order."""
        ...

    async def count(self) -> int:
        """Number of documents in the collection."""
        ...

    async def pending_age_seconds(self, resume_token: ResumeToken) -> float | None:
        """Age of the oldest change after `resume_token` (None when nothing is pending)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _translate(err: PyMongoError) -> Exception:
    """The one choke point for PyMongo errors."""
    if isinstance(err, OperationFailure):
        message = str(err).lower()
        if "change stream" in message and "not enabled" in message:  # DocumentDB, whatever its code
            return ChangeStreamsDisabled(f"change streams are not enabled on the collection: {err}")
        if err.code in _HISTORY_LOST_CODES or "history" in message:
            return HistoryLost(f"the resume point is no longer in the change stream history: {err}")
        if err.code == _AUTH_FAILED:
            return SourceAuthFailed(f"authentication failed: {err.details.get('errmsg') if err.details else err}")
        return SourceUnavailable(f"mongodb operation failed: {err}")
    detail = str(err).split(", Topology Description")[0]  # the rest repeats the same error per server
    return SourceUnavailable(f"mongodb unavailable: {type(err).__name__}: {detail}")


_AUTH_FAILED = 18


class MongoChangeSource:
    """`ChangeSource` on a MongoDB / DocumentDB collection through PyMongo's async API."""

    def __init__(
        self,
        client: AsyncMongoClient[Mapping[str, Any]],
        *,
        database: str,
        collection: str,
        limits: BatchLimits,
        max_await_ms: int = 200,
    ) -> None:
        self._client = client
        self.database = client[database]
        self._collection = self.database[collection]
        self._limits = limits
        self._max_await_ms = max_await_ms

    async def ping(self) -> None:
        """The server answers with these TLS settings and credentials (SourceAuthFailed, SourceUnavailable)."""
        try:
            await self.database.command("ping")
        except PyMongoError as err:
            raise _translate(err) from err

    async def check_change_streams(self) -> None:
        """A change stream opens on the collection (ChangeStreamsDisabled when it cannot)."""
        await self.position()

    async def check_writable(self, collection: str) -> None:
        """A probe document can be written to and deleted from `collection` of the source database."""
        probe = {"_id": "__preflight__", "at": time.time()}
        try:
            await self.database[collection].replace_one({"_id": probe["_id"]}, probe, upsert=True)
            await self.database[collection].delete_one({"_id": probe["_id"]})
        except PyMongoError as err:
            raise _translate(err) from err

    async def position(self) -> ResumeToken:
        """Open a stream and take its first post-batch resume token."""
        try:
            async with await self._collection.watch(PIPELINE, max_await_time_ms=self._max_await_ms) as stream:
                token = stream.resume_token
                if token is None:
                    await stream.try_next()
                    token = stream.resume_token
        except PyMongoError as err:
            raise _translate(err) from err
        if token is None:  # pragma: no cover - servers always give a post-batch token
            raise SourceUnavailable("the server gave no resume token")
        return cast(ResumeToken, dict(token))

    async def batches(
        self,
        *,
        resume_token: ResumeToken,
        cluster_time: ClusterTime | None = None,
        seq: int = 0,
        until_idle: bool = False,
        until_time: int | None = None,
    ) -> AsyncIterator[ChangeBatch]:
        """Tail the change stream (see the module contract)."""
        limits = self._limits
        last_time, last_seq = cluster_time, seq
        try:
            stream = await self._collection.watch(
                PIPELINE,
                full_document="updateLookup",
                resume_after=resume_token,
                max_await_time_ms=self._max_await_ms,
                batch_size=limits.max_events,
            )
        except PyMongoError as err:
            raise _translate(err) from err
        try:
            events: list[ChangeEvent] = []
            size = 0
            opened_at = time.monotonic()
            last_yield = time.monotonic()
            while True:
                try:
                    raw = await stream.try_next()
                except PyMongoError as err:
                    raise _translate(err) from err
                now = time.monotonic()
                if raw is not None:
                    event_time = cluster_time_of(raw)
                    last_seq = last_seq + 1 if event_time == last_time else 0
                    last_time = event_time
                    try:
                        event = to_change_event(raw, last_seq)
                    except UnsupportedEvent as err:
                        raise CollectionGone(str(err)) from err
                    if not events:
                        opened_at = now
                    events.append(event)
                    size += event.size_bytes
                full = len(events) >= limits.max_events or size >= limits.max_bytes
                timed_out = bool(events) and now - opened_at >= limits.max_seconds
                idle = raw is None
                heartbeat = idle and not events and now - last_yield >= limits.heartbeat_seconds
                reached = (
                    until_idle and until_time is not None and last_time is not None and last_time.time > until_time
                )
                if full or timed_out or (idle and events) or heartbeat or (reached and events):
                    token = cast(ResumeToken, dict(stream.resume_token or resume_token))
                    yield ChangeBatch(tuple(events), token, last_time, last_seq)
                    events, size, last_yield = [], 0, time.monotonic()
                    if reached:
                        return
                if idle and until_idle and not events:
                    token = cast(ResumeToken, dict(stream.resume_token or resume_token))
                    yield ChangeBatch((), token, last_time, last_seq)
                    return
        finally:
            await stream.close()

    async def snapshot(self, batch_size: int) -> AsyncIterator[list[ChangeEvent]]:
        """Copy the collection in `_id` order."""
        try:
            batch: list[ChangeEvent] = []
            async for raw in self._collection.find({}, sort=[("_id", 1)], batch_size=batch_size):
                batch.append(to_copy_event(raw))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        except PyMongoError as err:
            raise _translate(err) from err

    async def count(self) -> int:
        """count_documents({})."""
        try:
            return int(await self._collection.count_documents({}))
        except PyMongoError as err:
            raise _translate(err) from err

    async def pending_age_seconds(self, resume_token: ResumeToken) -> float | None:
        """Look (without consuming anything) at the oldest change after `resume_token`."""
        try:
            async with await self._collection.watch(
                PIPELINE, resume_after=resume_token, max_await_time_ms=self._max_await_ms
            ) as stream:
                raw = await stream.try_next()
        except PyMongoError as err:
            raise _translate(err) from err
        if raw is None:
            return None
        return max(0.0, time.time() - cluster_time_of(raw).time)

    async def close(self) -> None:
        """Close the client."""
        await self._client.close()


@dataclass(frozen=True, slots=True)
class SourceConnection:
    """How to reach the source database, beyond its URL (options in the URL work too)."""

    flavor: Literal["mongodb", "documentdb"] = "mongodb"
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_key_file: str | None = None
    username: str = ""
    password: str | None = None
    auth_mechanism: str = ""


def client_options(connection: SourceConnection, *, timeout_seconds: float) -> dict[str, Any]:
    """Keyword options of `AsyncMongoClient` for `connection` (pure; the password is passed, never logged).

    DocumentDB rejects retryable writes (PyMongo's default), so that flavour turns them off, and reads
    from the primary (change streams and checkpoints must see the latest writes).
    """
    milliseconds = int(timeout_seconds * 1000)
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": milliseconds,
        "connectTimeoutMS": milliseconds,
        "socketTimeoutMS": milliseconds * 5,
    }
    if connection.flavor == "documentdb":
        options |= {"retryWrites": False, "readPreference": "primary"}
    if connection.tls:
        options["tls"] = True
        if connection.tls_ca_file:
            options["tlsCAFile"] = connection.tls_ca_file
        if connection.tls_cert_key_file:
            options["tlsCertificateKeyFile"] = connection.tls_cert_key_file
    if connection.username:
        options["username"] = connection.username
        options["password"] = connection.password or ""
        if connection.auth_mechanism:
            options["authMechanism"] = connection.auth_mechanism
    return options


def create_mongo_source(
    url: str,
    *,
    database: str,
    collection: str,
    limits: BatchLimits,
    timeout_seconds: float,
    connection: SourceConnection | None = None,
) -> MongoChangeSource:
    """A client with bounded timeouts (and the connection's TLS, credentials and flavour), and the source on it."""
    client: AsyncMongoClient[Mapping[str, Any]] = AsyncMongoClient(
        url, **client_options(connection or SourceConnection(), timeout_seconds=timeout_seconds)
    )
    return MongoChangeSource(client, database=database, collection=collection, limits=limits)
