"""One plan, three engines: on the demo data, generated queries match the same documents on Tantivy as on
Elasticsearch and on OpenSearch, and a misspelled name ranks the same package first on each."""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from src.indexer.load import load_file
from src.search.backends.base import SearchBackend
from src.search.backends.tantivy import TantivyBackend
from src.search.schema import load_schema
from src.search.service import SearchOptions, SearchRequest, search_documents
from tests.conftest import drop_all, make_backend

pytestmark = pytest.mark.integration

DEMO = Path("data/debian-packages.jsonl.gz")
SCHEMA = load_schema(Path("data/debian-packages.schema.json"))
OPTIONS = SearchOptions(cursor_secret=b"agree")


def generated_queries(seed: int = 3, count: int = 60) -> tuple[list[str], list[tuple[str, str]]]:
    """Word queries (one and two words from summaries, one misspelled) and misspelled names with the
    package they name."""
    rng = random.Random(seed)
    with gzip.open(DEMO, "rt", encoding="utf-8") as lines:
        documents = sorted((json.loads(line) for line in lines), key=lambda doc: str(doc["id"]))
    sample = rng.sample(documents, count)
    words = [w for doc in sample for w in str(doc.get("summary", "")).lower().split() if w.isalpha() and len(w) >= 5]
    queries = [f"{w} " for w in words[:count]]
    queries += [f"{a} {b} " for a, b in zip(words[: count // 2], words[count // 2 : count], strict=False)]
    queries += [f"{w[:2]}{w[3:]} " for w in words[:count]]  # one deletion
    names = [(str(doc["name"]), str(doc["id"])) for doc in sample if len(str(doc["name"])) >= 6]
    misspelled = [(f"{name[:3]}{name[4]}{name[3]}{name[5:]} ", doc_id) for name, doc_id in names]  # a transposition
    return queries, misspelled


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tantivy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SearchBackend]:
    alias = f"agree-{uuid.uuid4().hex[:8]}"
    backend = TantivyBackend(tmp_path_factory.mktemp("agree"), schema=SCHEMA, alias=alias, timeout_seconds=30)
    try:
        await load_file(DEMO, backend=backend, batch_size=250)
        yield backend
    finally:
        await backend.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["elasticsearch", "opensearch"])
async def engines(
    request: pytest.FixtureRequest, tantivy: SearchBackend, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[SearchBackend, SearchBackend]]:
    """Tantivy beside one engine cluster, both holding the demo data."""
    cluster = await make_backend(str(request.param), SCHEMA, tmp_path_factory.mktemp("cluster"))
    try:
        await load_file(DEMO, backend=cluster, batch_size=250)  # aiohttp warns on bodies over 1 MB
        yield tantivy, cluster
    finally:
        await drop_all(cluster)
        await cluster.close()


async def _matched(backend: SearchBackend, q: str) -> tuple[int, list[str]]:
    page = await search_documents(
        SearchRequest(q=q, sort="name", size=100), backend=backend, schema=SCHEMA, options=OPTIONS
    )
    return page["total"]["value"], [hit["id"] for hit in page["hits"]]


@pytest.mark.asyncio(loop_scope="module")
async def test_search_when_queries_generated_match_the_same_documents_on_each_engine(
    engines: tuple[SearchBackend, SearchBackend],
) -> None:
    tantivy, elastic = engines
    queries, _ = generated_queries()
    differing = [q for q in queries if await _matched(tantivy, q) != await _matched(elastic, q)]
    assert len(queries) >= 150
    assert not differing, differing[:10]


@pytest.mark.asyncio(loop_scope="module")
async def test_search_when_name_misspelled_ranks_it_first_on_each_engine(
    engines: tuple[SearchBackend, SearchBackend],
) -> None:
    _, misspelled = generated_queries()
    firsts: dict[str, list[str | None]] = {}
    for q, doc_id in misspelled:
        for backend in engines:
            page = await search_documents(SearchRequest(q=q), backend=backend, schema=SCHEMA, options=OPTIONS)
            firsts.setdefault(q, []).append(page["hits"][0]["id"] if page["hits"] else None)
        assert firsts[q][0] == firsts[q][1], (q, doc_id, firsts[q])
    found = sum(firsts[q][0] == doc_id for q, doc_id in misspelled)
    assert found >= 0.95 * len(misspelled), firsts
