"""The whole workflow on real engines: `python -m indexer load` the demo data, then search it over HTTP.

Runs on the embedded Tantivy index and on a real Elasticsearch (skipped outside CI when none answers).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.cli import main as indexer_main
from src.main import create_app
from src.search.backends.factory import create_backend
from src.search.schema import load_schema
from src.settings import ApiSettings, get_api_settings
from tests.conftest import ENGINES, drop_all, engine_environment

pytestmark = pytest.mark.integration

DEMO = Path("data/debian-packages.jsonl.gz")
MISSPELLED = {
    "ngnix": "nginx",
    "postgrsql": "postgresql",
    "libreofice": "libreoffice",
    "pyton3": "python3",
    "emcas": "emacs",
    "imagemagik": "imagemagick",
    "opnssh-server": "openssh-server",
    "redis servr": "redis-server",
    "tmxu": "tmux",
    "firefx": "firefox-esr",
}


@pytest.fixture(params=ENGINES)
def demo_settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiSettings]:
    """Settings (also exported to the environment for the CLI) for a unique alias on one backend."""
    monkeypatch.setenv("INDEX_ALIAS", f"demo-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("TANTIVY_DATA_DIR", str(tmp_path / "tantivy"))
    monkeypatch.setenv("CURSOR_SECRET", "integration")
    for name, value in engine_environment(str(request.param)).items():
        monkeypatch.setenv(name, value)
    get_api_settings.cache_clear()
    settings = get_api_settings()
    yield settings
    asyncio.run(_cleanup(settings))


async def _cleanup(settings: ApiSettings) -> None:
    backend = create_backend(settings, load_schema(settings.index.schema_path))
    await drop_all(backend)
    await backend.close()


def test_load_then_search_when_names_misspelled_finds_them_on_first_page(
    demo_settings: ApiSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert indexer_main(["load", str(DEMO)]) == 0
    summary = capsys.readouterr().out
    assert "5000 documents, 0 errors" in summary
    assert indexer_main(["load", "--if-empty", str(DEMO)]) == 0
    assert "nothing to load" in capsys.readouterr().out
    asyncio.run(_search_demo(demo_settings))


async def _search_demo(demo_settings: ApiSettings) -> None:
    app = create_app(demo_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/readyz")).status_code == 200
            for typo, package in MISSPELLED.items():
                response = await client.get("/v1/search", params={"q": typo})
                assert response.status_code == 200
                ids = [hit["id"] for hit in response.json()["hits"]]
                assert package in ids, (typo, ids)
                assert ids[0] == package, (typo, ids)
            document = (await client.get("/v1/documents/nginx")).json()
            assert document["section"] == "httpd"
            faceted = await client.get("/v1/search", params={"q": "web server", "facets": "section", "highlight": "1"})
            body = faceted.json()
            assert body["total"]["value"] > 10
            assert body["facets"]["section"][0]["count"] >= body["facets"]["section"][-1]["count"]
            assert any(
                "<mark>" in fragment
                for hit in body["hits"]
                for frags in hit["highlights"].values()
                for fragment in frags
            )


def test_load_when_recreate_swaps_alias_and_keeps_old_index(
    demo_settings: ApiSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text(
        '{"id": "a", "name": "alpha", "summary": "first"}\n'
        "not json\n"
        '{"id": "b", "name": "beta", "installed_size": "huge"}\n'
        '{"id": "c", "name": "gamma", "summary": "third"}\n'
    )
    assert indexer_main(["load", str(small)]) == 0
    first = capsys.readouterr()
    assert "2 documents, 2 errors" in first.out
    assert "line 2" in first.err
    assert "line 3 (id b)" in first.err
    before = asyncio.run(_current(demo_settings))
    assert indexer_main(["load", "--recreate", str(small)]) == 0
    after = asyncio.run(_current(demo_settings))
    assert after[0] != before[0]
    assert before[0] in after[1]
    assert after[2] == 2


async def _current(settings: ApiSettings) -> tuple[str | None, list[str], int]:
    backend = create_backend(settings, load_schema(settings.index.schema_path))
    try:
        return await backend.current_index(), await backend.list_indices(), await backend.count()
    finally:
        await backend.close()


def test_main_when_file_missing_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert indexer_main(["load", "/nonexistent.jsonl"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_main_when_schema_invalid_returns_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "schema.json"
    bad.write_text('{"name": "x", "version": 0, "fields": {}}')
    monkeypatch.setenv("INDEX_SCHEMA_PATH", str(bad))
    get_api_settings.cache_clear()
    assert indexer_main(["load", str(DEMO)]) == 1
    assert "schema.version" in capsys.readouterr().err
