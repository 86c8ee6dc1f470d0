"""Unit tests of src.search.documents: validation and splitting of documents for indexing."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from src.search.documents import DocumentInvalid, PreparedDocument, document_id, prepare_document, project
from src.search.models import Document, JSONValue
from src.search.ranking import bucket_bits, custom_bucket
from src.search.schema import IndexSchema, parse_schema

SCHEMA: IndexSchema = parse_schema(
    {
        "name": "test",
        "version": 1,
        "fields": {
            "title": {"type": "text", "searchable": True, "boost": 2},
            "body": {"type": "text"},
            "name": {"type": "keyword", "searchable": True, "filterable": True, "sortable": True},
            "tags": {"type": "keyword", "multi": True, "searchable": True, "facetable": True},
            "code": {"type": "keyword", "filterable": True},
            "size": {"type": "integer", "filterable": True, "sortable": True},
            "counts": {"type": "integer", "multi": True, "facetable": True},
            "rating": {"type": "float", "filterable": True},
            "published": {"type": "date", "filterable": True, "sortable": True},
            "secret": {"type": "keyword", "returned": False},
        },
    }
)


def _error(document: Document) -> str:
    with pytest.raises(DocumentInvalid) as caught:
        prepare_document(document, SCHEMA)
    return str(caught.value)


def _values(field: str, value: JSONValue) -> list[object]:
    return list(prepare_document({"id": "1", field: value}, SCHEMA).values[field])


# --- document_id ---------------------------------------------------------------------------------


def test_document_id_string() -> None:
    assert document_id({"id": "abc"}) == "abc"


def test_document_id_integer_becomes_string() -> None:
    assert document_id({"id": 42}) == "42"
    assert document_id({"id": 0}) == "0"


@pytest.mark.parametrize("raw", [None, "", True, False, 1.5, ["a"], {"a": 1}])
def test_document_id_invalid(raw: JSONValue) -> None:
    with pytest.raises(DocumentInvalid) as caught:
        document_id({"id": raw})
    assert str(caught.value) == "id: a non-empty string (or integer) is required"


def test_document_id_missing() -> None:
    with pytest.raises(DocumentInvalid) as caught:
        document_id({"title": "x"})
    assert str(caught.value) == "id: a non-empty string (or integer) is required"


def test_document_invalid_is_value_error() -> None:
    assert issubclass(DocumentInvalid, ValueError)


# --- prepare_document ----------------------------------------------------------------------------


def test_prepare_document_full() -> None:
    document: Document = {
        "id": 7,
        "title": "Crème Brûlée — the HOW-TO",
        "body": {"free": "form"},
        "name": "Nginx-Full",
        "tags": ["Web Server", "HTTP", None],
        "code": 12,
        "size": 1024,
        "counts": [1, 2.0],
        "rating": 4,
        "published": "2024-05-06T07:08:09",
        "secret": "s",
        "extra": [1, 2],
    }
    assert prepare_document(document, SCHEMA) == PreparedDocument(
        id="7",
        source={
            "id": "7",
            "title": "Crème Brûlée — the HOW-TO",
            "body": {"free": "form"},
            "name": "Nginx-Full",
            "tags": ["Web Server", "HTTP", None],
            "code": 12,
            "size": 1024,
            "counts": [1, 2.0],
            "rating": 4,
            "published": "2024-05-06T07:08:09",
            "secret": "s",
            "extra": [1, 2],
        },
        text={"title": "creme brulee the how to", "name": "nginx full", "tags": "web server http"},
        values={
            "name": ["Nginx-Full"],
            "tags": ["Web Server", "HTTP"],
            "code": ["12"],
            "size": [1024],
            "counts": [1, 2],
            "rating": [4.0],
            "published": [datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)],
        },
        whole={"name": ["nginx full"], "tags": ["web server", "http"]},
        joined={"name": ["nginxfull"], "tags": ["webserver", "http"]},
    )


def test_prepare_document_when_schema_has_custom_ranking_writes_the_bucket_bits() -> None:
    ranked = dataclasses.replace(SCHEMA, custom=(("size", True),))
    assert prepare_document({"id": 1, "size": 1024}, ranked).rank == bucket_bits(custom_bucket(1024, descending=True))
    assert prepare_document({"id": 1}, ranked).rank == ()  # missing: the lowest bucket, no bit set
    assert prepare_document({"id": 1, "size": 1024}, SCHEMA).rank == ()


def test_prepare_document_does_not_mutate_input() -> None:
    document: Document = {"id": 5, "name": "x"}
    prepare_document(document, SCHEMA)
    assert document == {"id": 5, "name": "x"}


def test_prepare_document_only_id() -> None:
    assert prepare_document({"id": "a"}, SCHEMA) == PreparedDocument(
        id="a", source={"id": "a"}, text={}, values={}, whole={}
    )


def test_prepare_document_null_fields_are_skipped() -> None:
    prepared = prepare_document({"id": "a", "title": None, "size": None, "tags": None}, SCHEMA)
    assert (prepared.text, prepared.values, prepared.whole) == ({}, {}, {})
    assert prepared.source == {"id": "a", "title": None, "size": None, "tags": None}


def test_prepare_document_missing_id() -> None:
    assert _error({"title": "x"}) == "id: a non-empty string (or integer) is required"


def test_prepare_document_text_list_allowed_without_multi() -> None:
    prepared = prepare_document({"id": "a", "title": ["First Part", "Second-Part", 3]}, SCHEMA)
    assert prepared.text == {"title": "first part second part 3"}


def test_prepare_document_numbers_as_searchable_text() -> None:
    prepared = prepare_document({"id": "a", "title": 3.5, "name": 42}, SCHEMA)
    assert prepared.text == {"title": "3 5", "name": "42"}
    assert prepared.whole == {"name": ["42"]}
    assert prepared.values == {"name": ["42"]}


def test_prepare_document_multi_values() -> None:
    prepared = prepare_document({"id": "a", "tags": ["Web", "Net"], "counts": [3, 1, 3]}, SCHEMA)
    assert prepared.text == {"tags": "web net"}
    assert prepared.whole == {"tags": ["web", "net"]}
    assert prepared.values == {"tags": ["Web", "Net"], "counts": [3, 1, 3]}


def test_prepare_document_multi_field_single_value() -> None:
    prepared = prepare_document({"id": "a", "tags": "Web"}, SCHEMA)
    assert prepared.whole == {"tags": ["web"]}
    assert prepared.text == {"tags": "web"}
    assert prepared.values == {"tags": ["Web"]}


def test_prepare_document_empty_multi_list() -> None:
    prepared = prepare_document({"id": "a", "tags": [], "counts": []}, SCHEMA)
    assert prepared.text == {"tags": ""}
    assert prepared.whole == {"tags": []}
    assert prepared.values == {"tags": [], "counts": []}


@pytest.mark.parametrize("field", ["name", "code", "size", "rating", "published", "secret"])
def test_prepare_document_list_on_single_valued_field_rejected(field: str) -> None:
    assert _error({"id": "a", field: ["x"]}) == f"{field}: a single value is required, not a list"


def test_prepare_document_list_on_unvalidated_field_rejected() -> None:
    # Even a keyword field with no search or value column must be single-valued.
    assert _error({"id": "a", "secret": []}) == "secret: a single value is required, not a list"


@pytest.mark.parametrize(
    ("field", "value", "type_name"),
    [("title", True, "bool"), ("title", {"a": 1}, "dict"), ("name", False, "bool"), ("tags", [["x"]], "list")],
)
def test_prepare_document_searchable_value_must_be_text(field: str, value: JSONValue, type_name: str) -> None:
    assert _error({"id": "a", field: value}) == f"{field}: text is required, got {type_name}"


def test_prepare_document_non_searchable_text_is_not_validated() -> None:
    prepared = prepare_document({"id": "a", "body": {"nested": [1, True]}}, SCHEMA)
    assert (prepared.text, prepared.values) == ({}, {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), ("Mixed Case", "Mixed Case"), (5, "5"), (1.5, "1.5"), (2.0, "2.0")],
)
def test_prepare_document_keyword_coercion(value: JSONValue, expected: str) -> None:
    assert _values("code", value) == [expected]


@pytest.mark.parametrize("value", [True, {"a": 1}])
def test_prepare_document_keyword_rejections(value: JSONValue) -> None:
    assert _error({"id": "a", "code": value}) == f"code: a keyword value is required, got {value!r}"


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (-3, -3), (5.0, 5), (1e3, 1000)])
def test_prepare_document_integer_coercion(value: JSONValue, expected: int) -> None:
    values = _values("size", value)
    assert values == [expected]
    assert type(values[0]) is int


@pytest.mark.parametrize("value", [True, False, 1.5, "5", math.inf, math.nan])
def test_prepare_document_integer_rejections(value: JSONValue) -> None:
    assert _error({"id": "a", "size": value}) == f"size: a integer value is required, got {value!r}"


def test_prepare_document_integer_out_of_64_bit_range_rejected() -> None:
    with pytest.raises(DocumentInvalid):
        prepare_document({"id": "a", "size": 2**63}, SCHEMA)


@pytest.mark.parametrize(("value", "expected"), [(4, 4.0), (4.25, 4.25), (-0.5, -0.5)])
def test_prepare_document_float_coercion(value: JSONValue, expected: float) -> None:
    values = _values("rating", value)
    assert values == [expected]
    assert type(values[0]) is float


@pytest.mark.parametrize("value", [True, "4.5", math.nan])
def test_prepare_document_float_rejections(value: JSONValue) -> None:
    assert _error({"id": "a", "rating": value}) == f"rating: a float value is required, got {value!r}"


def test_prepare_document_float_infinity_rejected() -> None:
    with pytest.raises(DocumentInvalid):
        prepare_document({"id": "a", "rating": math.inf}, SCHEMA)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-06", datetime(2024, 5, 6, tzinfo=UTC)),
        ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09+02:00", datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))),
    ],
)
def test_prepare_document_date_coercion(value: str, expected: datetime) -> None:
    values = _values("published", value)
    assert values == [expected]
    assert isinstance(values[0], datetime)
    assert values[0].utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", 1714978089, True])
def test_prepare_document_date_rejections(value: JSONValue) -> None:
    assert _error({"id": "a", "published": value}) == f"published: a date value is required, got {value!r}"


def test_prepare_document_rejection_message_truncates_value() -> None:
    value = "x" * 100
    assert _error({"id": "a", "published": value}) == f"published: a date value is required, got '{'x' * 39}"


def test_prepare_document_multi_rejects_bad_item() -> None:
    assert _error({"id": "a", "counts": [1, "two"]}) == "counts: a integer value is required, got 'two'"


# --- project -------------------------------------------------------------------------------------


def test_project_keeps_id_and_returned_fields() -> None:
    document: Document = {"id": "a", "title": "T", "secret": "s", "size": 3, "unknown": 1}
    assert project(document, SCHEMA) == {"id": "a", "title": "T", "size": 3}


def test_project_keeps_order_and_nulls() -> None:
    document: Document = {"size": None, "id": 9, "name": "n"}
    assert list(project(document, SCHEMA).items()) == [("size", None), ("id", 9), ("name", "n")]


def test_project_without_id() -> None:
    assert project({"secret": "s"}, SCHEMA) == {}
