"""The `CheckpointStore` seam: where each consumer resumes, saved after the backend acknowledged.

Contract (tests/contract/test_checkpoint_contract.py: in-memory fakes and SecantusDB): `load(consumer)`
returns the last checkpoint saved for that consumer, or None; `save` replaces it; consumers are
independent. The `DeadLetterStore` keeps one letter per consumer and document (the latest refusal) and
`letters(consumer)` lists them by document id. Failures raise SourceUnavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from src.indexer.errors import SourceUnavailable
from src.indexer.models import Checkpoint, ClusterTime, DeadLetter, ResumeToken


class CheckpointStore(Protocol):
    """Resume tokens by consumer name."""

    async def load(self, consumer: str) -> Checkpoint | None:
        """The consumer's checkpoint, or None when it never saved one."""
        ...

    async def save(self, checkpoint: Checkpoint) -> None:
        """Replace the consumer's checkpoint."""
        ...


class DeadLetterStore(Protocol):
    """Documents the backend refused for good."""

    async def put(self, letter: DeadLetter) -> None:
        """Keep a refused document with its reason (the latest one per consumer and document)."""
        ...

    async def letters(self, consumer: str) -> list[DeadLetter]:
        """The consumer's letters, by document id."""
        ...


class MongoCheckpointStore:
    """Checkpoints in a MongoDB collection, one document per consumer (`_id` = consumer name)."""

    def __init__(self, database: AsyncDatabase[Mapping[str, Any]], collection: str) -> None:
        self._collection = database[collection]

    async def load(self, consumer: str) -> Checkpoint | None:
        """find_one by consumer."""
        try:
            raw = await self._collection.find_one({"_id": consumer})
        except PyMongoError as err:
            raise SourceUnavailable(f"cannot read checkpoint: {err}") from err
        if raw is None:
            return None
        time_part, inc_part = raw.get("cluster_time"), raw.get("cluster_inc")
        return Checkpoint(
            consumer=consumer,
            resume_token=cast(ResumeToken, dict(raw["token"])),
            cluster_time=ClusterTime(int(time_part), int(cast(int, inc_part))) if time_part is not None else None,
            seq=int(raw.get("seq", 0)),
            saved_at=float(raw["saved_at"]),
            token_at=float(raw["token_at"]),
        )

    async def save(self, checkpoint: Checkpoint) -> None:
        """replace_one with upsert."""
        document = {
            "_id": checkpoint.consumer,
            "token": checkpoint.resume_token,
            "cluster_time": checkpoint.cluster_time.time if checkpoint.cluster_time else None,
            "cluster_inc": checkpoint.cluster_time.inc if checkpoint.cluster_time else None,
            "seq": checkpoint.seq,
            "saved_at": checkpoint.saved_at,
            "token_at": checkpoint.token_at,
        }
        try:
            await self._collection.replace_one({"_id": checkpoint.consumer}, document, upsert=True)
        except PyMongoError as err:
            raise SourceUnavailable(f"cannot save checkpoint: {err}") from err


class MongoDeadLetterStore:
    """Dead letters in a MongoDB collection."""

    def __init__(self, database: AsyncDatabase[Mapping[str, Any]], collection: str) -> None:
        self._collection = database[collection]

    async def put(self, letter: DeadLetter) -> None:
        """One letter per consumer and document: the latest refusal replaces an earlier one."""
        key = f"{letter['consumer']}:{letter['doc_id']}"
        try:
            await self._collection.replace_one({"_id": key}, dict(letter), upsert=True)
        except PyMongoError as err:
            raise SourceUnavailable(f"cannot write dead letter: {err}") from err

    async def letters(self, consumer: str) -> list[DeadLetter]:
        """find by consumer, ordered by document id."""
        try:
            found = await self._collection.find({"consumer": consumer}).sort("doc_id", 1).to_list()
        except PyMongoError as err:
            raise SourceUnavailable(f"cannot read dead letters: {err}") from err
        return [
            DeadLetter(
                consumer=str(raw["consumer"]),
                doc_id=str(raw["doc_id"]),
                reason=str(raw["reason"]),
                version=int(raw["version"]),
                document=raw.get("document"),
                at=float(raw.get("at", 0.0)),
            )
            for raw in found
        ]
