"""The ranking rules (src/search/ranking.py), the same on every engine: run against the fake, Tantivy and the
real Elasticsearch and OpenSearch, through the service as the API runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from src.search.backends.base import SearchBackend
from src.search.models import Document, SearchPage
from src.search.schema import IndexSchema, parse_schema
from src.search.service import SearchOptions, SearchRequest, search_documents
from tests.conftest import BACKENDS, TantivyTemplates, drop_all, load, make_backend, serving_backend

OPTIONS = SearchOptions(cursor_secret=b"ranking-contract")
SCHEMA: IndexSchema = parse_schema(
    {
        "name": "ranking-contract",
        "version": 1,
        "fields": {
            "name": {"type": "keyword", "searchable": True, "boost": 4, "sortable": True},
            "title": {"type": "text", "searchable": True, "boost": 2},
            "body": {"type": "text", "searchable": True},
            "downloads": {"type": "integer", "sortable": True, "filterable": True},
            "stars": {"type": "integer", "sortable": True},
        },
        "custom_ranking": [{"field": "downloads", "order": "desc"}, {"field": "stars", "order": "desc"}],
    }
)
DOCS: list[Document] = [
    {"id": "express", "name": "express", "title": "fast web framework", "downloads": 30_000_000, "stars": 60},
    {"id": "expresso", "name": "expresso", "title": "a coffee timer", "downloads": 12, "stars": 1},
    {"id": "express-x", "name": "express-x", "title": "express helpers", "downloads": 800, "stars": 2},
    {"id": "exprss", "name": "exprss", "title": "obscure tool", "downloads": 3, "stars": 0},
    {"id": "python-lib", "name": "python-lib", "title": "library for snakes", "downloads": 10, "stars": 0},
    {"id": "path", "name": "path", "title": "file paths", "downloads": 9_000_000, "stars": 9},
    {"id": "redis-server", "name": "redis-server", "title": "key value store", "downloads": 500, "stars": 5},
    {"id": "lib-foo-bar-baz", "name": "lib-foo-bar-baz", "title": "four parts", "downloads": 1, "stars": 0},
    {"id": "viewer-a", "name": "viewer-a", "title": "image viewer", "downloads": 100, "stars": 1},
    {"id": "viewer-b", "name": "viewer-b", "title": "image viewer", "downloads": 100_000, "stars": 1},
    {"id": "viewer-c", "name": "viewer-c", "title": "image viewer", "downloads": 100_000, "stars": 7},
    {"id": "viewer-d", "name": "viewer-d", "title": "image viewer", "stars": 3},
    {"id": "mention", "name": "mention", "title": "notes", "body": "see also express for the web", "downloads": 10**9},
]


@pytest.fixture(params=BACKENDS)
def engine_kind(request: pytest.FixtureRequest) -> str:
    """Each implementation's name (for tests that load documents of their own)."""
    return str(request.param)


@pytest.fixture(params=BACKENDS)
async def ranked(
    request: pytest.FixtureRequest, tmp_path: Path, tantivy_templates: TantivyTemplates
) -> AsyncIterator[SearchBackend]:
    """Each engine, loaded with `DOCS` under a schema with two custom ranking fields."""
    async with serving_backend(str(request.param), SCHEMA, DOCS, tmp_path, tantivy_templates) as backend:
        yield backend


async def run(backend: SearchBackend, q: str, **params: object) -> SearchPage:
    request = SearchRequest(q=q, **({"size": 20} | params))  # type: ignore[arg-type]
    return await search_documents(request, backend=backend, schema=SCHEMA, options=OPTIONS)


async def ids(backend: SearchBackend, q: str, **params: object) -> list[str]:
    return [hit["id"] for hit in (await run(backend, q, **params))["hits"]]


async def test_search_when_name_is_exact_ranks_it_before_longer_names_and_mentions(ranked: SearchBackend) -> None:
    found = await ids(ranked, "express ")
    assert found[0] == "express"  # the name itself, before names containing it and documents mentioning it
    assert found.index("express-x") < found.index("mention")  # a name match before a mention, popular or not


async def test_search_when_typos_tie_the_popular_name_comes_first(ranked: SearchBackend) -> None:
    found = await ids(ranked, "expres ")  # one typo from express (popular) and from exprss (obscure)
    assert found.index("express") < found.index("exprss")


async def test_search_when_misspelling_is_another_real_name_that_name_comes_first_the_popular_one_next(
    ranked: SearchBackend,
) -> None:
    found = await ids(ranked, "exprss ")
    assert found[:2] == ["exprss", "express"]  # the exact name, then the famous one a typo away


async def test_search_when_last_word_is_a_prefix_it_ranks_before_a_typo(ranked: SearchBackend) -> None:
    found = await ids(ranked, "pyth")
    assert found[0] == "python-lib"  # a prefix counts as no typo; path (a typo, popular) follows
    assert found.index("python-lib") < found.index("path")


async def test_search_when_name_typed_without_separators_finds_it_whole_and_while_typing(
    ranked: SearchBackend,
) -> None:
    assert (await ids(ranked, "redisserver "))[:1] == ["redis-server"]
    assert (await ids(ranked, "redisserv"))[:1] == ["redis-server"]
    assert (await ids(ranked, "libfoobarbaz "))[:1] == ["lib-foo-bar-baz"]
    assert (await ids(ranked, "libfoobar"))[:1] == ["lib-foo-bar-baz"]


async def test_search_when_every_rule_ties_orders_by_custom_fields_then_id(ranked: SearchBackend) -> None:
    found = await ids(ranked, "image viewer ")
    assert found == ["viewer-c", "viewer-b", "viewer-a", "viewer-d"]  # downloads, then stars, missing last


async def test_search_when_paged_with_custom_ties_pages_join_into_the_full_order(ranked: SearchBackend) -> None:
    full = await ids(ranked, "viewer", size=20)
    seen: list[str] = []
    cursor = None
    while True:
        page = await run(ranked, "viewer", size=1, **({"cursor": cursor} if cursor else {}))
        seen += [hit["id"] for hit in page["hits"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == full


async def test_search_when_details_asked_every_engine_explains_the_same_values(ranked: SearchBackend) -> None:
    page = await run(ranked, "expres ", ranking_score_details=True)
    details = {hit["id"]: hit.get("ranking_score_details") for hit in page["hits"]}
    express = details["express"]
    assert express is not None
    assert express["words"] == {"matched": 1, "of": 1}
    assert express.get("name") == {"matched": False}  # a misspelled name is not a name as typed
    assert express.get("typo") == {"typos": 1, "counted_words": 1}
    assert express.get("exactness") == {"name_match": "typo", "exact_words": 1}
    custom = express.get("custom")
    assert custom is not None
    assert custom["values"] == [30_000_000, 60]
    assert custom["bucket"] is not None
    assert custom["bucket"] > 40
    assert express.get("bm25", 0) > 0


async def test_search_when_many_hits_tie_orders_them_by_id_across_pages(tmp_path: Path, engine_kind: str) -> None:
    twins: list[Document] = [
        {"id": doc_id, "name": f"twin-{number}", "title": "same words here"}
        for number, doc_id in enumerate(
            [
                "zz-short",
                "a-shared-prefix-of-sixteen-bytes-2",  # ids alike in their first 16 bytes: ordered by the rest
                "a-shared-prefix-of-sixteen-bytes-10",
                "a-shared-prefix-of-sixteen-bytes-1",
                "b",
                "a-shared-prefix",
                "ä-after-z-in-code-points",
            ]
        )
    ]
    backend = await make_backend(engine_kind, SCHEMA, tmp_path)
    try:
        await load(backend, twins)
        expected = sorted(str(doc["id"]) for doc in twins)  # code point order is UTF-8 byte order
        assert await ids(backend, "same words here ") == expected
        seen: list[str] = []
        cursor = None
        while True:
            page = await run(backend, "same words here ", size=2, **({"cursor": cursor} if cursor else {}))
            seen += [hit["id"] for hit in page["hits"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected
    finally:
        await drop_all(backend)
        await backend.close()
