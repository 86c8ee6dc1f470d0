"""The Tantivy backend's typo expansion knows which fields hold each term (no term query is built on a
field where the term does not occur)."""

from __future__ import annotations

from pathlib import Path

from src.search.backends.tantivy import TantivyBackend
from tests.conftest import load
from tests.fixtures.catalog import SCHEMA


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
        found = {term: holders for term, _, _, holders in handle.expand(searcher, fields, "proxi", 1)}
        assert found["proxy"] == frozenset({"t_title", "t_body"})  # never in a name
        servers = {term: holders for term, _, _, holders in handle.expand(searcher, fields, "servr", 1)}
        assert servers["server"] == frozenset({"t_title"})
    finally:
        await backend.close()
