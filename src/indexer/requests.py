"""Reindexes requested through the broker (`POST /v1/admin/reindex`), run by the stream process.

One at a time: a request that arrives while a reindex runs is acknowledged at once and coalesced into
one more reindex after the running one (a reindex copies the whole collection, so two requests made
during one run need one more run, not two). Each request's state (queued, coalesced, running, done,
failed, with the index it produced) is kept in MongoDB beside the checkpoints, and `indexer status`
(and the admin API's status route) shows the latest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loguru import logger
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from src.events import ReindexRequest
from src.indexer.reindex import ReindexResult


class MongoReindexLog:
    """The latest reindex request of a consumer, in the checkpoint collection (`_id` = `reindex:<consumer>`)."""

    def __init__(self, database: AsyncDatabase[Mapping[str, Any]], collection: str, consumer: str) -> None:
        self._collection = database[collection]
        self._id = f"reindex:{consumer}"

    async def record(self, **fields: object) -> None:
        """Merge `fields` into the record (failures are logged: the log never stops a reindex)."""
        try:
            await self._collection.update_one({"_id": self._id}, {"$set": fields}, upsert=True)
        except PyMongoError as err:
            logger.warning("could not record the reindex request state: {}", err)

    async def latest(self) -> dict[str, Any] | None:
        """The latest request's record, without its key."""
        try:
            found = await self._collection.find_one({"_id": self._id})
        except PyMongoError:
            return None
        return None if found is None else {key: value for key, value in found.items() if key != "_id"}


class ReindexRequests:
    """Runs requested reindexes one at a time, coalescing the requests that arrive meanwhile."""

    def __init__(self, run: Callable[[], Awaitable[ReindexResult]], log: MongoReindexLog) -> None:
        self._run = run
        self._log = log
        self._task: asyncio.Task[None] | None = None
        self._waiting: list[str] = []

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def handle(self, request: ReindexRequest) -> None:
        """Accept a request: start a reindex, or coalesce it into the one after the running one."""
        if self.running:
            self._waiting.append(request.request_id)
            logger.info("reindex request {} coalesced: a reindex is running", request.request_id)
            await self._log.record(request_id=request.request_id, state="coalesced", requested_at=request.requested_at)
            return
        logger.info("reindex request {} accepted", request.request_id)
        await self._log.record(
            request_id=request.request_id,
            state="queued",
            requested_at=request.requested_at,
            requested_by=request.requested_by,
            coalesced=[],
        )
        self._task = asyncio.create_task(self._loop([request.request_id]))

    async def _loop(self, ids: list[str]) -> None:
        while ids:
            await self._log.record(request_id=ids[-1], state="running", started_at=time.time(), coalesced=ids[:-1])
            try:
                result = await self._run()
            except Exception as err:  # reported in the record; the stream itself goes on
                logger.opt(exception=err).error("requested reindex failed")
                await self._log.record(state="failed", finished_at=time.time(), error=f"{type(err).__name__}: {err}")
            else:
                await self._log.record(
                    state="done", finished_at=time.time(), index=result.index, documents=result.documents
                )
            ids, self._waiting = self._waiting, []

    async def close(self) -> None:
        """Stop a running reindex (the alias is swapped only at its very end, so nothing is half done)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
