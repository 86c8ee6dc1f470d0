"""The edge against real servers: the engine budget shared by two API processes through Redis, and the
admin API's indexer status read from a real MongoDB-protocol server (SecantusDB)."""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from src.settings import Settings
from tests.api.conftest import schema_file, started_client
from tests.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.integration

SECRET = "integration-only-hmac-secret-32-bytes!"


def _client(settings: Settings) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
    return started_client(settings, ("198.51.100.20", 4000))


def _settings(tmp_path: Path, **update: object) -> Settings:
    return Settings(
        index_schema_path=schema_file(tmp_path),
        tantivy_data_dir=tmp_path / "tantivy",
        cursor_secret="edge-test-secret",
    ).model_copy(update=update)


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
    assert answered.json()["consumer"] == configured.indexer_consumer
    assert refused.status_code == 401
