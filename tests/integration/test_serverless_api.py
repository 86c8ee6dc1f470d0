"""The API's Lambda handler (`src.serverless.api.handler`) invoked with API Gateway HTTP API events,
on a real engine: Tantivy in a temporary directory and the Elasticsearch at ELASTICSEARCH_URL."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from src.search.backends.factory import create_backend
from src.search.models import Document
from src.search.schema import load_schema
from src.serverless import api
from src.serverless.gateway import http_api_event
from src.settings import get_api_settings
from tests.conftest import BROKER_URL, ENGINES, drop_all, engine_environment, load, require_broker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "data" / "debian-packages.schema.json"


def demo_documents(count: int) -> list[Document]:
    with gzip.open(ROOT / "data" / "debian-packages.jsonl.gz", "rt") as lines:
        return [json.loads(line) for line in itertools.islice(lines, count)]


def engine_env(kind: str, tmp_path: Path) -> dict[str, str]:
    alias = f"lambda-{uuid.uuid4().hex[:8]}"
    env = {"INDEX_ALIAS": alias, "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"), "TANTIVY_RELOAD_INTERVAL_SECONDS": "0"}
    return env | {name: value for name, value in engine_environment(kind).items() if value}


@asynccontextmanager
async def loaded(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, str]]:
    """The handler's environment, with 300 demo packages loaded into the engine; the index is dropped after."""
    env = engine_env(kind, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_api_settings.cache_clear()
    backend = create_backend(get_api_settings(), load_schema(SCHEMA_PATH))
    await load(backend, demo_documents(300))
    try:
        yield env
    finally:
        await drop_all(backend)
        await backend.close()


@pytest.fixture(params=ENGINES)
async def loaded_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    async with loaded(str(request.param), tmp_path, monkeypatch) as env:
        yield env


@pytest.fixture
async def elasticsearch_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, str]]:
    async with loaded("elasticsearch", tmp_path, monkeypatch) as env:
        yield env


@pytest.fixture
def invoke(loaded_env: dict[str, str]) -> Iterator[Any]:
    """Calls the handler as Lambda does, in a thread of its own (the handler runs its own event loop)."""

    def call(method: str, target: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return api.handler(http_api_event(method, target, headers=headers), None)

    try:
        yield call
    finally:
        api.reset()


def body_of(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    return orjson.loads(response["body"])


def test_handler_when_searching_answers_as_the_api_does(invoke: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke("GET", "/healthz")["statusCode"] == 200
    first = invoke("GET", "/v1/search?q=strategy+game&size=3")
    assert first["statusCode"] == 200, first
    page = body_of(first)
    assert [hit["id"] for hit in page["hits"]][:1] == ["0ad"]
    headers = first["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-cache"] == "MISS"
    assert "s-maxage=60" in headers["cache-control"]
    second = invoke("GET", "/v1/search?size=3&q=strategy+game")  # same request: the app and its cache live on
    assert second["headers"]["x-cache"] == "HIT"
    assert invoke("GET", "/v1/search?q=strategy+game&size=3", {"If-None-Match": headers["etag"]})["statusCode"] == 304
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [(r["path"], r["status"], r["CacheHits"], r["CacheMisses"]) for r in records] == [
        ("/healthz", 200, 0, 0),
        ("/v1/search", 200, 0, 1),
        ("/v1/search", 200, 1, 0),
        ("/v1/search", 304, 1, 0),
    ]
    assert records[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SearchApi"


def test_handler_when_input_is_bad_answers_problem_details_as_text(invoke: Any) -> None:
    invalid = invoke("GET", "/v1/search?q=game&size=0")
    assert invalid["statusCode"] == 422
    assert invalid["headers"]["content-type"] == "application/problem+json"
    assert body_of(invalid)["errors"][0]["parameter"] == "size"
    missing = invoke("GET", "/v1/documents/no-such-package")
    assert missing["statusCode"] == 404
    assert body_of(missing)["status"] == 404
    found = invoke("GET", "/v1/documents/0install")
    assert body_of(found)["name"] == "0install"


def test_handler_when_client_accepts_gzip_sends_base64(invoke: Any) -> None:
    invoke("GET", "/v1/search?q=game&size=20")
    cached = invoke("GET", "/v1/search?q=game&size=20", {"Accept-Encoding": "gzip"})
    assert cached["headers"].get("content-encoding") == "gzip"
    assert cached["isBase64Encoded"] is True


IMPORT_PROBE = """
import sys
from src.serverless import api
from src.serverless.gateway import http_api_event
imported_alone = sorted(name for name in sys.modules if name.startswith(("src.main", "fastapi", "elasticsearch")))
for target in ("/healthz", "/v1/search?q=strategy"):
    assert api.handler(http_api_event("GET", target), None)["statusCode"] == 200
import json
print(json.dumps({"alone": imported_alone, "modules": sorted(sys.modules)}))
"""


def test_handler_import_when_engine_is_elasticsearch_loads_no_tantivy_nor_indexer(
    elasticsearch_env: dict[str, str],
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "INDEX_", "TANTIVY_"))}
    found = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=ROOT,
        env=env | elasticsearch_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    report = json.loads(found.stdout.strip().splitlines()[-1])
    assert report["alone"] == []  # importing the handler imports nothing of the app
    modules = set(report["modules"])
    assert {"src.main", "elasticsearch"} <= modules
    assert not {name for name in modules if name == "tantivy" or name.startswith(("tantivy.", "src.indexer"))}
    assert "src.search.backends.tantivy" not in modules
    assert not {name for name in modules if name.split(".")[0] in ("faststream", "numpy", "jwt")}


async def test_handler_when_reindex_is_requested_publishes_through_a_broker_connected_on_demand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_broker()
    import time

    import jwt
    from faststream.rabbit import RabbitQueue

    from src.events import ReindexRequest, create_broker

    secret = "serverless-test-hmac-secret-of-32-bytes"
    for name, value in {
        "BROKER_URL": BROKER_URL,
        "BROKER_SUBSCRIBE": "false",
        "AUTH_STATIC_KEY": secret,
        "AUTH_ALGORITHMS": "HS256",
    }.items():
        monkeypatch.setenv(name, value)
    bearer = jwt.encode({"sub": "op", "scope": "search:reindex", "exp": int(time.time()) + 300}, secret, "HS256")
    async with loaded("tantivy", tmp_path, monkeypatch):

        def calls() -> tuple[bool, int, int]:
            try:
                health = api.handler(http_api_event("GET", "/healthz"), None)["statusCode"]
                connected_at_start = api.runtime().app.state.services.request_reindex.connected
                headers = {"Authorization": f"Bearer {bearer}"}
                accepted = api.handler(http_api_event("POST", "/v1/admin/reindex", headers=headers), None)
                return connected_at_start, health, accepted["statusCode"]
            finally:
                api.reset()

        connected_at_start, health, status = await asyncio.to_thread(calls)
    assert (connected_at_start, health, status) == (False, 200, 202)
    received: list[str] = []
    consumer = create_broker(BROKER_URL)

    @consumer.subscriber(RabbitQueue("search.reindex", durable=True))
    async def on_request(request: ReindexRequest) -> None:
        received.append(request.requested_by or "")

    await consumer.start()
    try:
        async with asyncio.timeout(10):
            while not received:
                await asyncio.sleep(0.02)
    finally:
        await consumer.stop()
    assert received == ["op"]
