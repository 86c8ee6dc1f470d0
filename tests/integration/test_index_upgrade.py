"""An index built by an older version (before the joined names `j` and the custom ranking bits `r`) keeps
working: the engine clusters take this version's writes after adding the fields, Tantivy (whose schema is fixed
at creation) says so clearly and `indexer load --if-empty` rebuilds it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from indexer.cli import main as indexer_main
from src.search.backends.base import IndexAction
from src.search.backends.cluster import ClusterBackend
from src.search.backends.querydsl import build_mapping
from src.search.backends.tantivy import TantivyBackend
from src.search.errors import IndexIncompatible
from src.search.service import SearchOptions, SearchRequest, search_documents
from src.settings import get_indexer_settings
from tests.conftest import cluster_backend, load
from tests.fixtures.catalog import DOCS, SCHEMA

pytestmark = pytest.mark.integration

RANKED = dataclasses.replace(SCHEMA, custom=(("stock", True),))
OPTIONS = SearchOptions(cursor_secret=b"upgrade")


@pytest.fixture(params=["elasticsearch", "opensearch"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClusterBackend[Any]]:
    async with cluster_backend(str(request.param), RANKED, tmp_path) as backend:
        yield backend


async def _old_index(backend: ClusterBackend[Any], *, r_type: str | None = None) -> str:
    """An index with the mapping of the previous version (no `j`, no `r`, or `r` of another type)."""
    mapping = build_mapping(RANKED, replicas=0, refresh_interval="1s")
    properties = mapping["mappings"]["properties"]
    del properties["j"], properties["r"]
    if r_type is not None:
        properties["r"] = {"type": r_type}
    name = f"{backend._alias}-00000000000000000000"
    async with backend._translate_errors("create index"):
        await backend._create_index(name, mapping)
    await backend.point_alias(name)
    return name


async def test_bulk_when_index_predates_the_new_fields_adds_them_and_takes_the_writes(
    engine: ClusterBackend[Any],
) -> None:
    await _old_index(engine)
    results = await engine.bulk([IndexAction(op="upsert", doc_id=str(d["id"]), document=d) for d in DOCS])
    assert all(result.ok for result in results), [r for r in results if not r.ok]
    await engine.refresh()
    page = await search_documents(SearchRequest(q="redisserv"), backend=engine, schema=RANKED, options=OPTIONS)
    assert [hit["id"] for hit in page["hits"]][:1] == ["redis-server"]  # the joined name, written now


async def test_bulk_when_index_holds_a_field_differently_says_it_is_incompatible(engine: ClusterBackend[Any]) -> None:
    await _old_index(engine, r_type="long")
    with pytest.raises(IndexIncompatible, match="refused this version's fields"):
        await engine.bulk([IndexAction(op="upsert", doc_id="nginx", document=DOCS[0])])


async def test_search_when_tantivy_index_has_another_layout_says_how_to_rebuild(tmp_path: Path) -> None:
    old = TantivyBackend(tmp_path, schema=SCHEMA, alias="upgrade", timeout_seconds=10)
    await load(old, DOCS)
    await old.close()
    new = TantivyBackend(tmp_path, schema=RANKED, alias="upgrade", timeout_seconds=10)
    try:
        with pytest.raises(IndexIncompatible, match="indexer load --recreate"):
            await new.count()
    finally:
        await new.close()


def test_load_if_empty_when_tantivy_index_has_another_layout_rebuilds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    alias = f"upgrade-{uuid.uuid4().hex[:8]}"
    old = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias=alias, timeout_seconds=10)

    async def build_old() -> None:
        await load(old, DOCS)
        await old.close()

    asyncio.run(build_old())
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS), encoding="utf-8")
    schema_file = tmp_path / "ranked.schema.json"
    schema_file.write_text(
        json.dumps(
            {
                "name": SCHEMA.name,
                "version": SCHEMA.version,
                "fields": {
                    "name": {"type": "keyword", "searchable": True},
                    "stock": {"type": "integer", "sortable": True},
                },
                "custom_ranking": [{"field": "stock", "order": "desc"}],
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("TANTIVY_DATA_DIR", str(tmp_path / "tantivy"))
    monkeypatch.setenv("INDEX_ALIAS", alias)
    monkeypatch.setenv("INDEX_SCHEMA_PATH", str(schema_file))
    for name in ("ELASTICSEARCH_URL", "OPENSEARCH_URL"):
        monkeypatch.delenv(name, raising=False)
    get_indexer_settings.cache_clear()
    try:
        assert indexer_main(["load", "--if-empty", str(data)]) == 0
        captured = capsys.readouterr()
        assert "rebuilding it" in captured.err
        assert f"{len(DOCS)} documents, 0 errors" in captured.out
        assert indexer_main(["load", "--if-empty", str(data)]) == 0
        assert "nothing to load" in capsys.readouterr().out  # now it opens
    finally:
        get_indexer_settings.cache_clear()
