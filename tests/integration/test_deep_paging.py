"""Cursor paging past 10,000 hits on the real engines (Elasticsearch's from+size stops there)."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from src.indexer.load import load_file
from src.search.backends.base import IndexAction, SearchBackend
from src.search.service import SearchOptions, SearchRequest, search_documents
from tests.conftest import ENGINES, drop_all, make_backend
from tests.fixtures.catalog import SCHEMA

pytestmark = pytest.mark.integration

COUNT = 10_250


@pytest.mark.parametrize("kind", ENGINES)
async def test_search_when_paging_past_ten_thousand_hits_visits_all(kind: str, tmp_path: Path) -> None:
    source = tmp_path / "many.jsonl.gz"
    with gzip.open(source, "wb") as out:
        for number in range(COUNT):
            out.write(orjson.dumps({"id": f"doc-{number:05d}", "name": f"pkg{number}", "stock": number % 7}) + b"\n")
    backend: SearchBackend = await make_backend(kind, SCHEMA, tmp_path)
    try:
        summary = await load_file(source, backend=backend, batch_size=2_000)
        assert summary.documents == COUNT
        deleted = ["doc-00000", "doc-05000", "doc-10249"]
        await backend.bulk([IndexAction(op="delete", doc_id=doc_id) for doc_id in deleted])
        await backend.refresh()
        options = SearchOptions(cursor_secret=b"deep", track_total_up_to=10_000)
        seen: list[str] = []
        cursor: str | None = None
        totals: list[tuple[int, bool]] = []
        while True:
            page = await search_documents(
                SearchRequest(size=100, cursor=cursor), backend=backend, schema=SCHEMA, options=options
            )
            totals.append((page["total"]["value"], page["total"]["exact"]))
            seen.extend(hit["id"] for hit in page["hits"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == COUNT - len(deleted)
        assert seen == sorted(seen)
        assert not set(deleted) & set(seen)
        # The engine clusters stop counting at the bound and say so; Tantivy always counts exactly.
        assert totals[0] in ((10_000, False), (COUNT - len(deleted), True))
        assert totals[-1] == totals[0]
    finally:
        await drop_all(backend)
        await backend.close()
