"""Events on a real RabbitMQ: a reindex requested through the API is run by the indexer stream (the alias
moves), and an invalidation reaches every API process at once (fan-out)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr
from pymongo import MongoClient

from src.events import INVALIDATIONS, create_broker, invalidation_event, publish
from src.settings import ApiSettings
from tests.api.conftest import schema_file, started_client
from tests.conftest import BROKER_URL, require_broker, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "events-test-hmac-secret-of-32-bytes!"


def _settings(tmp_path: Path, **update: object) -> ApiSettings:
    return ApiSettings.build(
        index_schema_path=schema_file(tmp_path),
        tantivy_data_dir=tmp_path / "tantivy",
        cursor_secret="events-test-secret",
        redis_url="",
    ).replace(**update)


async def test_invalidation_when_published_reaches_every_api_process_at_once(tmp_path: Path) -> None:
    require_broker()
    configured = _settings(
        tmp_path, broker_url=BROKER_URL, cache_namespace=f"events-{uuid.uuid4().hex[:8]}", cache_near_ttl_seconds=600
    )
    async with started_client(configured) as (first_app, first), started_client(configured) as (second_app, second):
        for client in (first, second):
            await client.get("/v1/documents/a")
            assert (await client.get("/v1/documents/a")).headers["x-cache"] == "HIT"
        services = first_app.state.services
        broker = create_broker(BROKER_URL)
        await broker.start()
        try:
            event = invalidation_event(
                ["a"], None, namespace=services.aside.policy.namespace, fingerprint=services.schema.fingerprint
            )
            assert await publish(broker, event, exchange=INVALIDATIONS)
        finally:
            await broker.stop()
        deadline = time.monotonic() + 30  # a bound on a hang: the loop ends as soon as both dropped it
        states: list[str] = []
        while time.monotonic() < deadline:
            states = [(await client.get("/v1/documents/a")).headers["x-cache"] for client in (first, second)]
            if states == ["MISS", "MISS"]:
                break
            await asyncio.sleep(0.02)
        assert states == ["MISS", "MISS"]  # both processes dropped it (no Redis: nothing else could tell them)
        assert second_app.state.services.request_reindex is not None


async def test_reindex_when_requested_through_the_api_is_run_by_the_stream_and_moves_the_alias(
    tmp_path: Path, secantus_url: str
) -> None:
    require_broker()
    database = f"events_{uuid.uuid4().hex[:8]}"
    mongo: MongoClient[dict[str, object]] = MongoClient(secantus_url)
    mongo[database]["packages"].insert_many(
        [{"_id": f"pkg-{n}", "name": f"package{n}", "summary": f"summary {n}"} for n in range(30)]
    )
    alias = f"ev-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "OPENSEARCH_", "OTEL_"))},
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "INDEX_ALIAS": alias,
        "MONGODB_URL": secantus_url,
        "MONGODB_DATABASE": database,
        "MONGODB_COLLECTION": "packages",
        "INDEXER_METRICS_PORT": "0",
        "INDEXER_CONSUMER": f"consumer-{uuid.uuid4().hex[:6]}",
        "BROKER_URL": BROKER_URL,
        "REDIS_URL": "",
        "CURSOR_SECRET": "events-test-secret",
    }
    configured = ApiSettings.build(
        tantivy_data_dir=tmp_path / "tantivy",
        index_alias=alias,
        mongodb_url=secantus_url,
        mongodb_database=database,
        indexer_consumer=env["INDEXER_CONSUMER"],
        broker_url=BROKER_URL,
        redis_url="",
        cursor_secret="events-test-secret",
        auth_static_key=SecretStr(SECRET),
        auth_algorithms="HS256",
    )
    log = (tmp_path / "indexer.log").open("wb")
    stream = subprocess.Popen([sys.executable, "-m", "indexer", "stream"], cwd=ROOT, env=env, stderr=log)
    try:
        alias_file = tmp_path / "tantivy" / f"{alias}.alias"
        deadline = time.monotonic() + 60
        while not alias_file.exists():
            assert stream.poll() is None, (tmp_path / "indexer.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the stream never built its first index"
            await asyncio.sleep(0.1)
        before = alias_file.read_text().strip()
        minted = jwt.encode(
            {"exp": int(time.time()) + 300, "scope": "search:reindex search:read-status", "sub": "ops"},
            SECRET,
            algorithm="HS256",
        )
        bearer = {"authorization": f"Bearer {minted}"}
        async with started_client(configured) as (_, client):
            accepted = await client.post("/v1/admin/reindex", headers=bearer)
            assert accepted.status_code == 202, accepted.text
            request_id = accepted.json()["request_id"]
            status: dict[str, object] = {}
            waiting = time.monotonic() + 60
            while time.monotonic() < waiting:
                answered = await client.get("/v1/admin/indexer/status", headers=bearer)
                status = answered.json()
                reindex = status.get("reindex")
                if isinstance(reindex, dict) and reindex.get("request_id") == request_id and reindex["state"] == "done":
                    break
                await asyncio.sleep(0.2)
        reindex = status.get("reindex")
        assert isinstance(reindex, dict), status
        assert reindex["state"] == "done"
        assert reindex["requested_by"] == "ops"
        after = alias_file.read_text().strip()
        assert after != before  # the alias moved to the new index
        assert reindex["index"] == after
    finally:
        stop_process(stream)
        log.close()
        mongo.drop_database(database)
        mongo.close()


async def test_lazy_reindex_publisher_when_the_first_request_comes_connects_and_publishes() -> None:
    require_broker()
    from faststream.rabbit import RabbitQueue

    from src.events import LazyReindexPublisher, ReindexRequest

    queue = f"lazy-{uuid.uuid4().hex[:8]}"
    received: list[str] = []
    consumer = create_broker(BROKER_URL)

    @consumer.subscriber(RabbitQueue(queue, auto_delete=True))
    async def on_request(request: ReindexRequest) -> None:
        received.append(request.request_id)

    publisher = LazyReindexPublisher(BROKER_URL, queue=RabbitQueue(queue, auto_delete=True))
    await consumer.start()
    try:
        before = publisher.connected  # nothing at start: a Lambda cold start connects to nothing
        assert await publisher(ReindexRequest(request_id="r1"))
        assert (before, publisher.connected) == (False, True)
        async with asyncio.timeout(30):  # a hang, not a speed
            while not received:
                await asyncio.sleep(0.02)
        assert received == ["r1"]
    finally:
        await publisher.close()
        await consumer.stop()


async def test_lazy_reindex_publisher_when_the_broker_is_down_answers_false() -> None:
    from src.events import LazyReindexPublisher, ReindexRequest

    publisher = LazyReindexPublisher("amqp://guest:guest@127.0.0.1:9/")
    assert await publisher(ReindexRequest(request_id="r1")) is False
    assert publisher.connected is False
    await publisher.close()
