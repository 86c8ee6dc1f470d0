"""The engine budget with a real Redis: one client's burst of uncached searches gets 429s and another
client's searches succeed, with Redis answering and with Redis paused (SIGSTOP: connections open, no
replies, the way a stuck or overloaded Redis looks), the cache on the same Redis."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.main import create_app
from src.settings import ApiSettings
from tests.conftest import require_redis, stop_process
from tests.fixtures.burst import LIMITS, burst

pytestmark = pytest.mark.integration


@dataclass
class PausableRedis:
    """A redis-server of the test's own, which the test may pause and resume."""

    url: str
    process: subprocess.Popen[bytes]

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def pausable_redis(tmp_path: Path) -> Iterator[PausableRedis]:
    """Started on a free loopback port; resumed and stopped at teardown whatever the test did."""
    binary = shutil.which("redis-server")
    if binary is None:
        require_redis()  # in CI this fails loudly; .ci/run installs redis-server
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*command, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    redis = PausableRedis(f"redis://127.0.0.1:{port}/0", process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not accept connections within 30 s"
                time.sleep(0.05)
        yield redis
    finally:
        if process.poll() is None:
            redis.resume()  # a stopped process does not act on SIGTERM
        stop_process(process)


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    from tests.api.conftest import schema_file

    return ApiSettings.build(index_schema_path=schema_file(tmp_path), cursor_secret="it", **LIMITS)


@pytest.mark.parametrize("paused", [False, True], ids=["redis-up", "redis-paused"])
async def test_engine_budget_when_one_client_bursts_with_redis_refuses_it_and_serves_the_other(
    pausable_redis: PausableRedis, settings: ApiSettings, paused: bool
) -> None:
    app = create_app(settings.replace(redis_url=pausable_redis.url))
    async with app.router.lifespan_context(app):
        if paused:
            pausable_redis.pause()
        try:
            outcome = await burst(app)
        finally:
            pausable_redis.resume()
    assert outcome.abuser.count(429) == 80
    assert outcome.abuser.count(200) == 20
    assert outcome.neighbour_success() >= 0.95
    assert 503 not in outcome.abuser + outcome.neighbour
