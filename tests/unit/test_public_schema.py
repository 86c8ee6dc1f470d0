"""GET /v1/schema's payload, dict-in/dict-out."""

from __future__ import annotations

from src.search.models import QueryLimits
from src.search.public_schema import public_schema
from src.search.schema import parse_schema
from tests.fixtures.catalog import SCHEMA

LIMITS: QueryLimits = {
    "max_query_chars": 256,
    "max_query_terms": 16,
    "max_filters": 20,
    "default_size": 10,
    "max_size": 100,
    "one_edit_min_chars": 4,
    "two_edits_min_chars": 8,
}


def test_public_schema_when_catalog_lists_capabilities_per_field() -> None:
    found = public_schema(SCHEMA, LIMITS)
    assert found["name"] == "contract-catalog"
    assert found["fingerprint"] == SCHEMA.fingerprint
    assert found["searchable"] == ["name", "title", "body"]
    assert found["filterable"] == ["name", "category", "tags", "price", "stock", "released", "secret"]
    assert found["facetable"] == ["category", "tags", "stock"]
    assert found["sortable"] == ["name", "category", "price", "stock", "released"]
    name = found["fields"][0]
    assert name == {
        "name": "name",
        "type": "keyword",
        "searchable": True,
        "boost": 4.0,
        "filterable": True,
        "facetable": False,
        "sortable": True,
        "returned": True,
        "multi": False,
    }
    secret = next(field for field in found["fields"] if field["name"] == "secret")
    assert secret["returned"] is False  # filterable, so its name is usable, but never in a document
    assert found["limits"] == LIMITS


def test_public_schema_when_synonyms_lists_both_directions_of_equivalents_and_one_way_only_forward() -> None:
    synonyms = public_schema(SCHEMA, LIMITS)["synonyms"]
    assert synonyms["pg"] == ["postgresql"]
    assert synonyms["postgresql"] == ["pg"]
    assert synonyms["httpd"] == ["nginx", "lighttpd"]
    assert "nginx" not in synonyms


def test_public_schema_when_a_field_is_neither_returned_nor_usable_leaves_it_out() -> None:
    schema = parse_schema(
        {
            "name": "s",
            "version": 2,
            "fields": {
                "title": {"type": "text", "searchable": True},
                "internal": {"type": "keyword", "searchable": True, "returned": False},
            },
        }
    )
    found = public_schema(schema, LIMITS)
    assert [field["name"] for field in found["fields"]] == ["title"]
    assert found["searchable"] == ["title"]


def test_public_schema_when_custom_ranking_lists_the_rules_in_order() -> None:
    schema = parse_schema(
        {
            "name": "s",
            "version": 1,
            "fields": {"title": {"type": "text", "searchable": True}, "pop": {"type": "integer", "sortable": True}},
            "ranking": {"field": "pop", "order": "asc"},
        }
    )
    found = public_schema(schema, LIMITS)
    assert found["custom_ranking"] == [{"field": "pop", "order": "asc"}]
    assert [rule["rule"] for rule in found["ranking_rules"]] == [
        "words",
        "name",
        "two_typos",
        "proximity",
        "attribute",
        "exactness",
        "custom",
        "typo",
        "bm25",
        "id",
    ]
    assert "custom" not in [rule["rule"] for rule in public_schema(SCHEMA, LIMITS)["ranking_rules"]]
    assert public_schema(SCHEMA, LIMITS)["custom_ranking"] == []
