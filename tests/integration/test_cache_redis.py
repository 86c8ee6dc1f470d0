"""Cache-aside on a real Redis server: single flight across processes, HITs through the API, and a Redis
that stops mid-way (every request still succeeds, served as misses)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from src.cache.aside import CacheAside, CachePolicy, Computed
from src.cache.keys import search_key
from src.cache.redis import create_redis_cache
from src.main import create_app
from src.settings import ApiSettings
from tests.api.conftest import install_fake_backend
from tests.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own (so the test may stop it), on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        require_redis()  # in CI this fails loudly; .ci/run installs redis-server
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


async def test_fetch_generational_when_fifty_misses_across_two_processes_computes_once() -> None:
    require_redis()
    calls = 0

    async def compute(generation: int | None) -> Computed:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return Computed(200, b'{"answer": 42}', "application/json", ("doc-a",))

    policy = CachePolicy(namespace=f"it-{uuid.uuid4().hex[:8]}", lock_wait_seconds=3)
    processes = [
        CacheAside(
            create_redis_cache(
                REDIS_URL, timeout_seconds=1, connect_timeout_seconds=1, failure_threshold=5, reset_seconds=1
            ),
            policy,
        )
        for _ in range(2)
    ]
    key = search_key(policy.namespace, "schema:v1", b"same request")
    try:
        served = await asyncio.gather(
            *(aside.fetch_generational(key, compute, route="search") for aside in processes * 25)
        )
    finally:
        for aside in processes:
            await aside.close()
    assert calls == 1
    assert len(served) == 50
    assert len({s.entry.etag for s in served}) == 1


@pytest.fixture
def near_ttl_seconds() -> float:
    """The in-process tier's trust window (0 turns it off: every read goes to Redis)."""
    return 2.0


@pytest.fixture
async def redis_app(
    own_redis: tuple[str, subprocess.Popen[bytes]], settings: ApiSettings, near_ttl_seconds: float
) -> AsyncIterator[httpx.AsyncClient]:
    url, _ = own_redis
    changes = {"redis_url": url, "redis_timeout_seconds": 0.2, "cache_near_ttl_seconds": near_ttl_seconds}
    app = create_app(settings.replace(**changes))
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    from tests.api.conftest import schema_file

    return ApiSettings.build(index_schema_path=schema_file(tmp_path), cursor_secret="it")


async def test_search_when_redis_stops_midway_every_request_succeeds(
    redis_app: httpx.AsyncClient, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    _, process = own_redis
    params = {"q": "database"}
    first = await redis_app.get("/v1/search", params=params)
    second = await redis_app.get("/v1/search", params=params)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert (await redis_app.get("/readyz")).json()["checks"]["cache"] == "ok"

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    started = time.monotonic()
    after = [await redis_app.get("/v1/search", params=params) for _ in range(20)]
    after.append(await redis_app.get("/v1/documents/nginx"))
    elapsed = time.monotonic() - started
    assert [r.status_code for r in after] == [200] * 21
    # The hot search is still served by the in-process tier; the document was never cached: a miss.
    assert {r.headers["x-cache"] for r in after[:20]} == {"HIT"}
    assert after[20].headers["x-cache"] == "MISS"
    assert after[0].json()["hits"] == first.json()["hits"]
    assert elapsed < 5  # a down Redis costs at most its timeout, then the breaker skips it
    assert (await redis_app.get("/readyz")).json()["checks"]["cache"] == "degraded"


@pytest.mark.parametrize("near_ttl_seconds", [0.0])
async def test_search_when_redis_returns_garbage_serves_miss(
    redis_app: httpx.AsyncClient, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    import redis

    url, _ = own_redis
    params = {"q": "editor"}
    await redis_app.get("/v1/search", params=params)
    client = redis.Redis.from_url(url)
    found = cast(list[bytes], client.keys("search:packages:search:*"))
    keys = [k for k in found if not k.endswith(b":lock")]
    assert keys
    for key in keys:
        client.set(key, b"\x00\x01 not an entry")
    client.close()
    garbled = await redis_app.get("/v1/search", params=params)
    assert (garbled.status_code, garbled.headers["x-cache"]) == (200, "MISS")
    assert (await redis_app.get("/v1/search", params=params)).headers["x-cache"] == "HIT"
