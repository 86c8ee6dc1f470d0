"""The Tantivy backend's typo expansion knows which fields hold each term (no term query is built on a
field where the term does not occur), and a plan leaves out the exact clauses of a word no field holds
only while the vocabulary is of the searcher's very index."""

from __future__ import annotations

from pathlib import Path

from src.search.backends.base import IndexAction
from src.search.backends.tantivy import TantivyBackend
from src.search.query import BackendQuery, SortSpec, parse_q
from tests.conftest import load
from tests.fixtures.catalog import SCHEMA


def backend_query(q: str) -> BackendQuery:
    return BackendQuery(
        query=parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=10),
        filters=(),
        facets=(),
        sort=SortSpec(),
        limit=11,
    )


async def test_expand_when_a_term_is_in_one_field_only_names_that_field(tmp_path: Path) -> None:
    backend = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="expansion", timeout_seconds=10)
    try:
        await load(
            backend,
            [
                {"id": "a", "name": "nginx", "title": "web server", "body": "reverse proxy"},
                {"id": "b", "name": "squid", "title": "caching proxy", "body": "web cache"},
            ],
        )
        handle = backend._reader()
        searcher = handle.index.searcher()
        fields = backend._vocabulary_fields["t"]
        found = {term: holders for term, _, _, holders in handle.typos.expand(searcher, fields, "proxi", 1)}
        assert found["proxy"] == frozenset({"t_title", "t_body"})  # never in a name
        servers = {term: holders for term, _, _, holders in handle.typos.expand(searcher, fields, "servr", 1)}
        assert servers["server"] == frozenset({"t_title"})
    finally:
        await backend.close()


async def test_holders_when_the_vocabulary_is_of_the_searchers_index_names_each_terms_fields(tmp_path: Path) -> None:
    backend = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="holders", timeout_seconds=10)
    try:
        await load(backend, [{"id": "a", "name": "nginx", "title": "web server", "body": "reverse proxy"}])
        handle = backend._reader()
        searcher = handle.index.searcher()
        fields = backend._vocabulary_fields["t"]
        assert handle.typos.holders(searcher, fields) is None  # no vocabulary yet: nothing is known
        handle.typos.vocabulary(searcher, fields)
        known = handle.typos.holders(searcher, fields)
        assert known is not None
        assert known["proxy"] == frozenset({"t_body"})
        assert "proxi" not in known
    finally:
        await backend.close()


async def test_holders_when_documents_were_written_since_the_vocabulary_is_unknown(tmp_path: Path) -> None:
    backend = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="holders", timeout_seconds=10)
    try:
        index = await load(backend, [{"id": "a", "name": "nginx", "title": "web server", "body": "reverse proxy"}])
        handle = backend._reader()
        fields = backend._vocabulary_fields["t"]
        handle.typos.vocabulary(handle.index.searcher(), fields)
        await backend.bulk(
            [IndexAction(op="upsert", doc_id="b", document={"id": "b", "name": "squid", "title": "zeppelin"})],
            index=index,
        )
        await backend.refresh(index)
        newer = backend._reader().index.searcher()
        assert handle.typos.holders(newer, fields) is None  # "zeppelin" may be new: no exact clause may be left out
    finally:
        await backend.close()


async def test_search_when_a_word_is_newer_than_the_vocabulary_finds_it_exactly(tmp_path: Path) -> None:
    backend = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="fresh", timeout_seconds=10)
    try:
        index = await load(backend, [{"id": "a", "name": "nginx", "title": "web server", "body": "reverse proxy"}])
        assert (await backend.search(backend_query("servr"))).total == 1  # builds the vocabulary
        await backend.bulk(
            [IndexAction(op="upsert", doc_id="b", document={"id": "b", "name": "squid", "title": "zeppelin"})],
            index=index,
        )
        await backend.refresh(index)
        page = await backend.search(backend_query("zeppelin"))
        assert [hit.id for hit in page.hits] == ["b"]
    finally:
        await backend.close()


async def test_search_when_one_of_two_words_is_misspelled_still_ranks_the_nearby_pair_first(tmp_path: Path) -> None:
    backend = TantivyBackend(tmp_path / "tantivy", schema=SCHEMA, alias="near", timeout_seconds=10)
    try:
        await load(
            backend,
            [
                {"id": "apart", "name": "a", "title": "reverse the order", "body": "of every proxy"},
                {"id": "near", "name": "b", "title": "reverse proxy", "body": "in front of servers"},
            ],
        )
        await backend.search(backend_query("reverse proxy"))  # builds the vocabulary
        # "proxi" is held by no field: its proximity pair is left out, the typo still matches both.
        page = await backend.search(backend_query("reverse proxi"))
        assert {hit.id for hit in page.hits} == {"apart", "near"}
        exact = await backend.search(backend_query("reverse proxy"))
        assert [hit.id for hit in exact.hits] == ["near", "apart"]  # the pair nearby first
    finally:
        await backend.close()
