"""A `python -m indexer load` killed mid-copy (SIGKILL) leaves its half-built index behind; `status` lists
it as an orphan and the next load drops it, on every engine.

The killed load reads a named pipe the test writes: it has loaded what the test wrote and waits for more
when it is killed, so "mid-copy" needs no timing. The orphan bound is set low for the second run, and the
test waits until the orphan's heartbeat is older than it (read from the engine, not assumed).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest

from indexer.cli import main as indexer_main
from src.search.backends.base import SearchBackend
from src.search.backends.factory import create_backend
from src.search.schema import load_schema
from src.settings import IndexerSettings, get_indexer_settings
from tests.conftest import ENGINES, drop_all, engine_environment, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BATCH = 50
WAIT_LIMIT_SECONDS = 120.0
"""A guard against a hung step (the test fails), not a timing expectation."""
ORPHAN_AFTER_SECONDS = 1.0


@pytest.fixture(params=ENGINES)
def orphan_settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secantus_url: str
) -> Iterator[IndexerSettings]:
    """Settings (exported to the environment, so the CLI processes share them) for a unique alias."""
    values = {
        "INDEX_ALIAS": f"orphan-{uuid.uuid4().hex[:8]}",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "MONGODB_URL": secantus_url,
        "MONGODB_DATABASE": f"orphan_{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "WARNING",
        **engine_environment(str(request.param)),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_indexer_settings.cache_clear()
    settings = get_indexer_settings()
    yield settings
    asyncio.run(_with_backend(settings, drop_all))


async def _with_backend[T](settings: IndexerSettings, use: Callable[[SearchBackend], Awaitable[T]]) -> T:
    """`use` a backend of the alias, closed afterwards."""
    backend = create_backend(settings, load_schema(settings.index.schema_path))
    try:
        return await use(backend)
    finally:
        await backend.close()


async def _state(backend: SearchBackend) -> tuple[list[str], dict[str, float], str | None]:
    return await backend.list_indices(), await backend.building_indices(), await backend.current_index()


def _lines(first: int, count: int) -> bytes:
    return b"".join(orjson.dumps({"id": f"p{n}", "name": f"package{n}"}) + b"\n" for n in range(first, first + count))


def _open_for_writing(fifo: Path, loader: subprocess.Popen[bytes]) -> int:
    """The pipe's write end, once the loader opened its read end."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            assert loader.poll() is None, f"the load exited with {loader.returncode} before reading"
            assert time.monotonic() < deadline, "the load never opened its input"
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)
        return fd


async def _wait_building_with_documents(backend: SearchBackend, loader: subprocess.Popen[bytes]) -> str:
    """The index the load builds, once it holds at least one batch."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while True:
        assert loader.poll() is None, f"the load exited with {loader.returncode}"
        assert time.monotonic() < deadline, "the load's index never held documents"
        building = list(await backend.building_indices())
        if building:
            await backend.refresh(building[0])
            if await backend.count(building[0]) >= BATCH:
                return building[0]
        await asyncio.sleep(0.05)


async def _wait_older_than(backend: SearchBackend, index: str, seconds: float) -> None:
    """Until `index`'s heartbeat is older than `seconds` (nothing refreshes it: its process is dead)."""
    heartbeat = (await backend.building_indices())[index]
    while time.time() - heartbeat < seconds:
        await asyncio.sleep(0.05)


def test_load_when_killed_mid_copy_leaves_an_orphan_that_the_next_load_drops(
    orphan_settings: IndexerSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fifo = tmp_path / "documents.jsonl"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "indexer", "load", "--batch-size", str(BATCH), str(fifo)]
    loader = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fd = None
    try:
        fd = _open_for_writing(fifo, loader)
        os.write(fd, _lines(0, 3 * BATCH))
        orphan = asyncio.run(
            _with_backend(orphan_settings, lambda backend: _wait_building_with_documents(backend, loader))
        )
        loader.send_signal(signal.SIGKILL)  # mid-copy: it waits for the rest of its input
        loader.wait(timeout=30)
    finally:
        stop_process(loader)
        if fd is not None:
            os.close(fd)
    assert loader.returncode == -signal.SIGKILL
    assert asyncio.run(_with_backend(orphan_settings, lambda backend: backend.list_indices())) == [orphan]

    monkeypatch.setenv("INDEXER_BUILD_HEARTBEAT_SECONDS", str(ORPHAN_AFTER_SECONDS / 2))
    monkeypatch.setenv("INDEXER_ORPHAN_AFTER_SECONDS", str(ORPHAN_AFTER_SECONDS))
    get_indexer_settings.cache_clear()
    asyncio.run(_with_backend(orphan_settings, lambda backend: _wait_older_than(backend, orphan, ORPHAN_AFTER_SECONDS)))
    assert indexer_main(["status"]) == 3  # no stream has run: no checkpoint
    status = json.loads(capsys.readouterr().out)
    assert [found["index"] for found in status["orphans"]] == [orphan]
    assert status["orphans"][0]["age_seconds"] >= ORPHAN_AFTER_SECONDS

    small = tmp_path / "small.jsonl"
    small.write_bytes(_lines(0, 10))
    again = subprocess.run(
        [sys.executable, "-m", "indexer", "load", str(small)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert f"dropped orphans of dead builds: {orphan}" in again.stdout
    indices, building, current = asyncio.run(_with_backend(orphan_settings, _state))
    assert orphan not in indices
    assert indices == [current]
    assert building == {}
