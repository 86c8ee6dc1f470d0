"""The edge against real servers: the engine budget shared by two API processes through Redis, the
admin API's indexer status read from a real MongoDB-protocol server (SecantusDB), and the API process
itself (`python -m src`) under hostile clients: a 150 MB unauthenticated upload, 200 slow-header
connections, a hostile Host.

The hostile-client tests assert what the server does (the status, the close, memory that does not grow
by the upload's size), never how fast: each wait is bounded only so a hang fails instead of blocking.
The searches made during the slow-header attack print their latencies (`pytest -s`), for the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from src.settings import ApiSettings
from tests.api.conftest import schema_file, started_client
from tests.conftest import REDIS_URL, require_redis, stop_process, wait_ready

pytestmark = pytest.mark.integration

SECRET = "integration-only-hmac-secret-32-bytes!"


def _client(settings: ApiSettings) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
    return started_client(settings, ("198.51.100.20", 4000))


def _settings(tmp_path: Path, **update: object) -> ApiSettings:
    return ApiSettings.build(
        index_schema_path=schema_file(tmp_path),
        tantivy_data_dir=tmp_path / "tantivy",
        cursor_secret="edge-test-secret",
    ).replace(**update)


async def test_engine_budget_when_two_processes_share_redis_is_exact_across_them(tmp_path: Path) -> None:
    require_redis()
    shared = {
        "redis_url": REDIS_URL,
        "cache_namespace": f"edge-{uuid.uuid4().hex[:8]}",
        "rate_limit_enabled": True,
        "rate_limit": "1000/minute",
        "rate_limit_engine": "3/hour",  # counted under this test's own namespace
    }
    async with (
        _client(_settings(tmp_path, **shared)) as (_, first),
        _client(_settings(tmp_path, **shared)) as (
            _,
            second,
        ),
    ):
        statuses = [
            (await first.get("/v1/search", params={"q": "server"})).status_code,
            (await second.get("/v1/search", params={"q": "database"})).status_code,
            (await first.get("/v1/search", params={"q": "editor"})).status_code,
            (await second.get("/v1/search", params={"q": "network"})).status_code,
        ]
    assert statuses == [200, 200, 200, 429]  # three misses in all, whichever process served them


async def test_indexer_status_when_the_source_is_real_reports_it_to_an_authorized_operator(
    tmp_path: Path, secantus_url: str
) -> None:
    configured = _settings(
        tmp_path,
        mongodb_url=secantus_url,
        mongodb_database=f"edge_{uuid.uuid4().hex[:8]}",
        auth_static_key=SecretStr(SECRET),
        auth_algorithms="HS256",
    )
    minted = jwt.encode({"exp": int(time.time()) + 60, "scope": "search:read-status"}, SECRET, algorithm="HS256")
    async with _client(configured) as (_, client):
        answered = await client.get("/v1/admin/indexer/status", headers={"authorization": f"Bearer {minted}"})
        refused = await client.get("/v1/admin/indexer/status")
    assert answered.status_code == 200, answered.text
    assert answered.json()["state"] == "no-checkpoint"  # a reachable source that was never streamed
    assert answered.json()["consumer"] == configured.indexer.consumer
    assert refused.status_code == 401


# --- the API process under hostile clients -------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
HEAD_SECONDS = 2.0
HANG = 60.0
"""Only a bound on a hang (a 2-core machine shared with other work): every wait ends when the server acts."""


@dataclass(frozen=True, slots=True)
class Served:
    """The API process (`python -m src`) on the embedded engine with a slice of the demo data."""

    url: str
    port: int
    pid: int

    def rss_bytes(self) -> int:
        """The process's resident set size now (Linux /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One API process for these tests, with a 2 s head deadline; stopped by its pid at the end."""
    directory = tmp_path_factory.mktemp("edge-api")
    with gzip.open(ROOT / "data" / "debian-packages.jsonl.gz", "rt") as demo:
        (directory / "docs.jsonl").write_text("".join(demo.readlines()[:300]))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "OPENSEARCH_", "OTEL_"))},
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "REDIS_URL": "",
        "BROKER_URL": "",
        "TANTIVY_DATA_DIR": str(directory / "tantivy"),
        "CURSOR_SECRET": "edge-test",
        "APP_PORT": str(port),
        "HTTP_HEADER_TIMEOUT_SECONDS": str(HEAD_SECONDS),
        "ACCESS_LOG": "false",
        "RATE_LIMIT_ENABLED": "false",  # one test client makes every request here
    }
    subprocess.run(
        [sys.executable, "-m", "indexer", "load", str(directory / "docs.jsonl")],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (directory / "api.log").open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env, stderr=stderr)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        yield Served(url=url, port=port, pid=process.pid)
    finally:
        stop_process(process)


UPLOAD_BYTES = 150 * 1024 * 1024
CHUNK = b"x" * 65536


async def _upload(port: int, head: bytes, chunk: bytes) -> tuple[bytes, int]:
    """Send `head`, then `chunk` after chunk until UPLOAD_BYTES are sent or the server stops taking them,
    while reading the response: (the response's status line, body bytes the socket took).

    On the socket itself: asyncio's streams drop a response already received once a write fails (the
    server closes a connection it stopped reading; the kernel still holds what it sent)."""
    loop = asyncio.get_running_loop()
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setblocking(False)

        async def send_all() -> None:
            nonlocal sent
            with contextlib.suppress(ConnectionError):
                await loop.sock_sendall(connection, head)
                while sent < UPLOAD_BYTES:
                    await loop.sock_sendall(connection, chunk)
                    sent += len(chunk)

        sender = asyncio.create_task(send_all())
        received = b""
        try:
            async with asyncio.timeout(HANG):
                with contextlib.suppress(ConnectionError):
                    while data := await loop.sock_recv(connection, 65536):  # until the server closes
                        received += data
                await sender
        finally:
            sender.cancel()
    return received.partition(b"\r\n")[0], sent


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        pytest.param(f"content-length: {UPLOAD_BYTES}".encode(), b"413", id="content-length"),
        pytest.param(b"transfer-encoding: chunked", b"401", id="chunked"),
    ],
)
async def test_serve_when_an_unauthenticated_admin_body_is_150_mb_refuses_it_unread(
    served: Served, framing: bytes, status: bytes
) -> None:
    head = (
        b"POST /v1/admin/cache/purge HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n" + framing + b"\r\n\r\n"
    )
    chunk = CHUNK if framing.startswith(b"content-length") else b"10000\r\n" + CHUNK + b"\r\n"
    await _upload(served.port, head, chunk)  # once first: what is measured is the upload, not first use
    before = served.rss_bytes()
    answered, sent = await _upload(served.port, head, chunk)
    grown = served.rss_bytes() - before
    print(f"\n{framing.decode()}: {answered.decode().strip()}, {sent / 2**20:.1f} MiB taken by the socket, "
          f"RSS {before / 2**20:.1f} MiB -> +{grown / 2**20:.2f} MiB")  # fmt: skip
    assert answered.split()[1] == status
    assert sent < UPLOAD_BYTES  # the server stopped taking it
    assert grown < 10 * 2**20
    async with httpx.AsyncClient(base_url=served.url) as client:
        assert (await client.get("/v1/search", params={"q": "vim"})).status_code == 200


async def _slow_head(port: int) -> bytes:
    """A request head sent one header line every 0.5 s, for ever: what the server answers before it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def trickle() -> None:
        writer.write(b"GET /v1/search?q=slow HTTP/1.1\r\nhost: t\r\n")
        with contextlib.suppress(ConnectionError):
            for number in range(int(HANG / 0.5)):
                await asyncio.sleep(0.5)
                writer.write(b"x-slow-%d: 1\r\n" % number)
                await writer.drain()

    sender = asyncio.create_task(trickle())
    received = b""
    try:
        async with asyncio.timeout(HANG):
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    received += chunk
    finally:
        sender.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return received


async def test_serve_when_200_connections_send_headers_slowly_closes_them_and_searches_go_on(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:

        async def search(number: int) -> float:
            started = time.perf_counter()
            response = await client.get("/v1/search", params={"q": f"editor {number}"})
            assert response.status_code == 200
            return time.perf_counter() - started

        quiet = [await search(number) for number in range(20)]
        attack = [asyncio.create_task(_slow_head(served.port)) for _ in range(200)]
        during: list[float] = []
        while not all(task.done() for task in attack):
            during.append(await search(len(during)))
            await asyncio.sleep(0.05)
        answered = await asyncio.gather(*attack)
    print(f"\nsearch latency, quiet: median {statistics.median(quiet) * 1000:.1f} ms, max {max(quiet) * 1000:.1f} ms;"
          f" with 200 slow heads: median {statistics.median(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms"
          f" ({len(during)} searches)")  # fmt: skip
    assert len(answered) == 200
    assert all(response.startswith(b"HTTP/1.1 408 ") for response in answered)  # then closed
    assert len(during) > 0


async def test_serve_when_the_host_is_hostile_redirects_relative(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        redirected = await client.get("/v1/search/", params={"q": "vim"}, headers={"host": "evil.example"})
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "/v1/search?q=vim"
