"""End to end through a real Varnish (Debian's varnish + varnish-modules' xkey, the shipped VCL) in front of
the real API process, with the indexer stream tailing a real SecantusDB, invalidating Redis and the API's
in-process tier (events on the real RabbitMQ) and purging by surrogate key.

A GET through Varnish is cached; a document update in the collection is purged by key; the next GET
through Varnish shows the new value within the indexer's batch time (plus the API's index reload).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import pytest
from pymongo import MongoClient

from tests.conftest import BROKER_URL, REDIS_URL, require_broker, require_redis, require_server, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _varnishd() -> str:
    binary = shutil.which("varnishd") or ("/usr/sbin/varnishd" if Path("/usr/sbin/varnishd").exists() else None)
    message = "varnishd not installed (apt-get install varnish varnish-modules)"
    require_server("Varnish", lambda: binary is not None, message)
    assert binary is not None
    return binary


def _wait(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s")
        time.sleep(0.05)


@pytest.fixture
def stack(tmp_path: Path, secantus_url: str) -> Iterator[dict[str, object]]:
    """Collection → indexer stream → Tantivy + Redis → API → Varnish, every process ours to stop."""
    require_redis()
    require_broker()  # the invalidation events reach the API's in-process tier at once
    varnishd = _varnishd()
    api_port, varnish_port = _free_port(), _free_port()
    database = f"cdn_{uuid.uuid4().hex[:8]}"
    mongo: MongoClient[dict[str, object]] = MongoClient(secantus_url)
    collection = mongo[database]["packages"]
    collection.insert_many(
        [{"_id": f"pkg-{n}", "name": f"package{n}", "summary": f"summary {n}", "section": "web"} for n in range(20)]
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "OPENSEARCH_", "OTEL_"))},
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "TANTIVY_RELOAD_INTERVAL_SECONDS": "0.2",
        "INDEX_ALIAS": f"cdn-{uuid.uuid4().hex[:8]}",
        "REDIS_URL": REDIS_URL,
        "CACHE_NAMESPACE": f"cdn-{uuid.uuid4().hex[:8]}",
        "CURSOR_SECRET": "cdn-test",
        "APP_PORT": str(api_port),
        "MONGODB_URL": secantus_url,
        "MONGODB_DATABASE": database,
        "MONGODB_COLLECTION": "packages",
        "INDEXER_METRICS_PORT": "0",
        "INDEXER_BATCH_MAX_SECONDS": "0.05",
        "CACHE_NEAR_TTL_SECONDS": "0.5",  # how long an API process may serve a deleted entry from memory
        "CDN_PURGE_REPEAT_SECONDS": "1",  # the second purge, after the API's tier and index caught up
        "BROKER_URL": BROKER_URL,
        "CDN_PURGER": "xkey",
        "CDN_PURGE_URL": f"http://127.0.0.1:{varnish_port}/",
        "LOG_LEVEL": "DEBUG",
    }
    vcl = tmp_path / "varnish.vcl"
    shipped = (ROOT / "docker" / "varnish.vcl").read_text()
    vcl.write_text(
        shipped.replace('.host = "gateway";', '.host = "127.0.0.1";').replace(
            '.port = "8080";', f'.port = "{api_port}";'
        )
    )
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("indexer", "api", "varnish")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            subprocess.Popen([sys.executable, "-m", "indexer", "stream"], cwd=ROOT, env=env, stderr=logs["indexer"])
        )
        processes.append(subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env, stderr=logs["api"]))
        api = f"http://127.0.0.1:{api_port}"
        _wait(lambda: httpx.get(f"{api}/v1/documents/pkg-1", timeout=2).status_code == 200, 60, "the API serves data")
        processes.append(
            subprocess.Popen(
                [
                    varnishd,
                    "-F",
                    "-j",
                    "none",
                    "-T",
                    "none",
                    "-a",
                    f"127.0.0.1:{varnish_port}",
                    "-f",
                    str(vcl),
                    "-n",
                    str(tmp_path / "varnish"),
                    "-s",
                    "malloc,32m",
                ],
                stdout=logs["varnish"],
                stderr=logs["varnish"],
            )
        )
        cdn = f"http://127.0.0.1:{varnish_port}"
        _wait(lambda: httpx.get(f"{cdn}/healthz", timeout=2).status_code == 200, 30, "Varnish answers")
        yield {"cdn": cdn, "collection": collection, "indexer_log": tmp_path / "indexer.log"}
    finally:
        for process in reversed(processes):
            stop_process(process)
        for log in logs.values():
            log.close()
        mongo.drop_database(database)
        mongo.close()


def _summary(response: httpx.Response) -> str:
    return str(response.json()["summary"])


def test_varnish_when_a_document_changes_is_purged_by_key_and_serves_the_new_value(
    stack: dict[str, object],
) -> None:
    cdn = str(stack["cdn"])
    collection = stack["collection"]
    first = httpx.get(f"{cdn}/v1/documents/pkg-7", timeout=5)
    cached = httpx.get(f"{cdn}/v1/documents/pkg-7", timeout=5)
    search = httpx.get(f"{cdn}/v1/search", params={"q": "package7 "}, timeout=5)
    search_cached = httpx.get(f"{cdn}/v1/search", params={"q": "package7 "}, timeout=5)
    assert first.headers["x-cdn-cache"] == "MISS"
    assert cached.headers["x-cdn-cache"] == "HIT"
    assert search_cached.headers["x-cdn-cache"] == "HIT"
    assert "doc-pkg-7" in first.headers["surrogate-key"]
    assert _summary(cached) == "summary 7"
    assert search.json()["hits"][0]["id"] == "pkg-7"

    updated_at = time.time()
    collection.update_one({"_id": "pkg-7"}, {"$set": {"summary": "renamed by the test"}})  # type: ignore[attr-defined]
    fresh: httpx.Response | None = None
    # Half the CDN's TTL (60 s): an update shown by then was purged, not expired; the loop ends as soon as it
    # shows (a second or two when the machine is idle, more beside other work).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.get(f"{cdn}/v1/documents/pkg-7", timeout=5)
        if _summary(response) == "renamed by the test":
            fresh = response
            break
        time.sleep(0.02)
    fresh_at = time.time()
    assert fresh is not None, "the CDN never showed the update within half its TTL"
    assert fresh.headers["x-cdn-cache"] == "MISS"  # fetched again after a purge (its TTL is 60 s)
    searched = httpx.get(f"{cdn}/v1/search", params={"q": "package7 "}, timeout=5)
    assert searched.json()["hits"][0]["document"]["summary"] == "renamed by the test"  # purged too (doc key)

    purges = [
        orjson.loads(line)
        for line in Path(str(stack["indexer_log"])).read_text().splitlines()
        if '"message":"CDN purge sent"' in line
    ]
    sent_at = [datetime.fromisoformat(line["ts"].replace("Z", "+00:00")).timestamp() for line in purges]
    after_update = [moment for moment in sent_at if moment >= updated_at - 0.01]
    assert after_update, "no purge was sent after the update"
    purge_ms = (after_update[0] - updated_at) * 1000
    fresh_ms = (fresh_at - updated_at) * 1000
    print(f"\nupdate written -> purge sent: {purge_ms:.0f} ms; -> fresh GET through Varnish: {fresh_ms:.0f} ms")
    assert purge_ms <= fresh_ms + 50
