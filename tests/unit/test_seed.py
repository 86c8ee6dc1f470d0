"""The pure part of `python -m indexer seed`: a search document's shape in the source collection."""

from __future__ import annotations

from src.indexer.seed import source_document
from src.indexer.transform import to_document
from src.search.models import Document


def test_source_document_when_seeded_moves_the_id_to_underscore_id() -> None:
    document: Document = {"id": "nginx", "name": "nginx", "tags": ["web"]}
    assert source_document("nginx", document) == {"_id": "nginx", "name": "nginx", "tags": ["web"]}
    assert document["id"] == "nginx"  # the input is left alone


def test_source_document_when_read_back_by_the_indexer_is_the_same_document() -> None:
    document: Document = {"id": "0ad", "name": "0ad", "installed_size": 28591}
    assert to_document(source_document("0ad", document)) == document
