"""The API's cache on a real 3-master Redis Cluster, with one node restarted mid-test."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from src.cache.base import CacheUnavailable
from src.cache.redis import create_redis_cache
from src.main import create_app
from src.settings import ApiSettings
from tests.api.conftest import install_fake_backend, schema_file
from tests.conftest import RedisClusterNodes

pytestmark = pytest.mark.integration


async def test_cache_when_a_cluster_node_restarts_misses_meanwhile_then_recovers(
    redis_cluster: RedisClusterNodes,
) -> None:
    # Budgets of seconds: the stopped node's keys fail at once anyway (connection refused, then the open
    # breaker), and a live node's answer must not time out because this machine is busy.
    cache = create_redis_cache(
        redis_cluster.url,
        timeout_seconds=5,
        connect_timeout_seconds=5,
        failure_threshold=3,
        reset_seconds=0.5,
        cluster=True,
    )
    prefix = f"restart:{uuid.uuid4().hex}:"
    keys = [f"{prefix}{number}" for number in range(60)]  # spread over every node's slots
    try:
        for key in keys:
            await cache.set(key, key.encode(), 60)
        restarted = redis_cluster.ports[1]
        redis_cluster.stop_node(restarted)
        outcomes: list[str] = []
        for key in keys:
            try:
                outcomes.append("hit" if await cache.get(key) == key.encode() else "miss")
            except CacheUnavailable:
                outcomes.append("unavailable")
        assert "unavailable" in outcomes  # the stopped node's keys fail fast, as misses for the API
        redis_cluster.start_node(restarted)
        redis_cluster.wait_healthy()
        deadline = time.monotonic() + 20
        while True:
            try:
                for key in keys:
                    await cache.set(key, b"again", 60)
                    assert await cache.get(key) == b"again"
                break
            except CacheUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)  # the client rediscovers the restarted node; its breaker resets
    finally:
        await cache.close()


async def test_search_when_served_through_the_cluster_hits_and_survives_a_node_stop(
    redis_cluster: RedisClusterNodes, tmp_path: Path
) -> None:
    settings = ApiSettings.build(
        index_schema_path=schema_file(tmp_path),
        redis_url=redis_cluster.url,
        redis_cluster=True,
        cache_namespace=f"cluster-{uuid.uuid4().hex[:8]}",
        redis_timeout_seconds=5,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            params = {"q": "server"}
            first = await client.get("/v1/search", params=params)
            second = await client.get("/v1/search", params=params)
            assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
            assert app.state.services.aside.cache.kind == "redis-cluster+memory"
            for port in list(redis_cluster.ports):
                redis_cluster.stop_node(port)
            try:
                during = [await client.get("/v1/search", params=params) for _ in range(10)]
                assert {(r.status_code, r.headers["x-cache"]) for r in during} == {(200, "HIT")}  # the near tier
            finally:
                for port in redis_cluster.ports:
                    redis_cluster.start_node(port)
                redis_cluster.wait_healthy()
