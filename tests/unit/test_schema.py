"""Unit tests of src.search.schema: validation of the index schema and its derived properties."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from src.search.schema import FieldSpec, IndexSchema, SchemaError, load_schema, parse_schema

DATA_SCHEMA = Path(__file__).resolve().parents[2] / "data" / "debian-packages.schema.json"


def _schema_with(fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": "test", "version": 1, "fields": fields}


def _error_of(raw: object) -> str:
    with pytest.raises(SchemaError) as caught:
        parse_schema(raw)
    return str(caught.value)


def test_parse_schema_minimal_field_gets_defaults() -> None:
    schema = parse_schema(_schema_with({"title": {"type": "text"}}))
    assert schema == IndexSchema(
        name="test",
        version=1,
        fields=(
            FieldSpec(
                name="title",
                type="text",
                searchable=False,
                boost=1.0,
                filterable=False,
                facetable=False,
                sortable=False,
                returned=True,
                multi=False,
            ),
        ),
    )


def test_parse_schema_keeps_every_flag_and_boost_as_float() -> None:
    schema = parse_schema(
        _schema_with(
            {
                "name": {"type": "keyword", "searchable": True, "boost": 6, "filterable": True, "sortable": True},
                "tags": {"type": "keyword", "multi": True, "facetable": True, "returned": False},
            }
        )
    )
    assert schema.fields == (
        FieldSpec(name="name", type="keyword", searchable=True, boost=6.0, filterable=True, sortable=True),
        FieldSpec(name="tags", type="keyword", facetable=True, returned=False, multi=True),
    )
    assert type(schema.fields[0].boost) is float


def test_parse_schema_top_level_not_an_object() -> None:
    assert _error_of([1, 2]) == "schema: the top level must be an object"


@pytest.mark.parametrize("name", [None, "", 5])
def test_parse_schema_name_required(name: object) -> None:
    raw: dict[str, object] = {"version": 1, "fields": {"a": {"type": "text"}}}
    if name is not None:
        raw["name"] = name
    assert _error_of(raw) == "schema.name: a non-empty string is required"


@pytest.mark.parametrize("version", [None, 0, -1, True, 1.0, "1"])
def test_parse_schema_version_must_be_positive_integer(version: object) -> None:
    raw: dict[str, object] = {"name": "x", "fields": {"a": {"type": "text"}}}
    if version is not None:
        raw["version"] = version
    assert _error_of(raw) == "schema.version: a positive integer is required"


@pytest.mark.parametrize("fields", [None, {}, [], "a"])
def test_parse_schema_fields_must_be_non_empty_object(fields: object) -> None:
    raw: dict[str, object] = {"name": "x", "version": 1}
    if fields is not None:
        raw["fields"] = fields
    assert _error_of(raw) == "schema.fields: a non-empty object is required"


@pytest.mark.parametrize("name", ["id", "Title", "1abc", "_x", "has-dash", "has space", "", "a" * 64])
def test_parse_schema_bad_field_name(name: str) -> None:
    assert (
        _error_of(_schema_with({name: {"type": "text"}}))
        == f"schema.fields.{name}: names are [a-z][a-z0-9_]* and 'id' is reserved"
    )


def test_parse_schema_longest_field_name_accepted() -> None:
    name = "a" * 63
    assert parse_schema(_schema_with({name: {"type": "text"}})).fields[0].name == name


def test_parse_schema_field_name_with_trailing_newline_rejected() -> None:
    with pytest.raises(SchemaError):
        parse_schema(_schema_with({"title\n": {"type": "text"}}))


def test_parse_schema_field_spec_not_an_object() -> None:
    assert _error_of(_schema_with({"title": "text"})) == "schema.fields.title: must be an object"


def test_parse_schema_unknown_keys_listed_sorted() -> None:
    assert (
        _error_of(_schema_with({"title": {"type": "text", "zeta": 1, "analyzer": "x"}}))
        == "schema.fields.title: unknown keys ['analyzer', 'zeta']"
    )


@pytest.mark.parametrize("ftype", [None, "string", "bool", 1])
def test_parse_schema_bad_type(ftype: object) -> None:
    spec: dict[str, object] = {} if ftype is None else {"type": ftype}
    assert (
        _error_of(_schema_with({"title": spec}))
        == "schema.fields.title.type: one of ['text', 'keyword', 'integer', 'float', 'date'] is required"
    )


@pytest.mark.parametrize("flag", ["searchable", "filterable", "facetable", "sortable", "returned", "multi"])
def test_parse_schema_flag_must_be_bool(flag: str) -> None:
    assert (
        _error_of(_schema_with({"code": {"type": "keyword", flag: 1}}))
        == f"schema.fields.code.{flag}: must be true or false"
    )


@pytest.mark.parametrize("boost", [0, -1.5, True, "2", None])
def test_parse_schema_boost_must_be_positive_number(boost: object) -> None:
    assert (
        _error_of(_schema_with({"title": {"type": "text", "searchable": True, "boost": boost}}))
        == "schema.fields.title.boost: must be a positive number"
    )


def test_parse_schema_nan_boost_rejected() -> None:
    with pytest.raises(SchemaError):
        parse_schema(_schema_with({"title": {"type": "text", "searchable": True, "boost": math.nan}}))


@pytest.mark.parametrize("ftype", ["integer", "float", "date"])
def test_parse_schema_searchable_only_text_or_keyword(ftype: str) -> None:
    assert (
        _error_of(_schema_with({"num": {"type": ftype, "searchable": True}}))
        == "schema.fields.num: only text and keyword fields can be searchable"
    )


@pytest.mark.parametrize("flag", ["filterable", "facetable", "sortable"])
def test_parse_schema_text_has_no_value_column(flag: str) -> None:
    assert (
        _error_of(_schema_with({"body": {"type": "text", flag: True}}))
        == "schema.fields.body: text fields cannot be filterable, facetable or sortable"
    )


def test_parse_schema_date_not_facetable() -> None:
    assert (
        _error_of(_schema_with({"published": {"type": "date", "facetable": True}}))
        == "schema.fields.published: date fields cannot be facetable (use range filters)"
    )


def test_parse_schema_multi_not_sortable() -> None:
    assert (
        _error_of(_schema_with({"tags": {"type": "keyword", "multi": True, "sortable": True}}))
        == "schema.fields.tags: a multi-valued field cannot be sortable"
    )


def test_parse_schema_error_names_the_second_field() -> None:
    raw = _schema_with({"ok": {"type": "keyword"}, "broken": {"type": "nope"}})
    assert _error_of(raw).startswith("schema.fields.broken.type:")


def test_schema_error_is_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


def test_load_schema_debian_packages() -> None:
    schema = load_schema(DATA_SCHEMA)
    assert schema.name == "debian-packages"
    assert schema.version == 1
    assert schema.fingerprint.startswith("debian-packages:v1:")  # plus the digest of its synonyms
    assert schema.synonyms_of("postgres") == ("postgresql",)
    assert [f.name for f in schema.fields] == [
        "name",
        "summary",
        "description",
        "section",
        "priority",
        "tags",
        "maintainer",
        "version",
        "installed_size",
    ]
    assert [(f.name, f.boost) for f in schema.searchable] == [("name", 6.0), ("summary", 2.0), ("description", 1.0)]
    assert [f.name for f in schema.value_fields] == [
        "name",
        "section",
        "priority",
        "tags",
        "maintainer",
        "installed_size",
    ]
    assert schema.returned == (
        "name",
        "summary",
        "description",
        "section",
        "priority",
        "tags",
        "maintainer",
        "version",
        "installed_size",
    )
    assert schema.field("tags") == FieldSpec(name="tags", type="keyword", filterable=True, facetable=True, multi=True)
    assert schema.field("installed_size") == FieldSpec(
        name="installed_size", type="integer", filterable=True, facetable=True, sortable=True
    )


def test_load_schema_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(SchemaError, match=r"^cannot read index schema .*absent\.json: ") as caught:
        load_schema(path)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_load_schema_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text('{"name": "x",', encoding="utf-8")
    with pytest.raises(SchemaError, match=r"^cannot read index schema .*schema\.json: ") as caught:
        load_schema(path)
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


def test_load_schema_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"^cannot read index schema "):
        load_schema(tmp_path)


def test_load_schema_valid_json_invalid_schema(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"name": "x", "version": 1, "fields": {"id": {"type": "keyword"}}}), encoding="utf-8")
    with pytest.raises(SchemaError) as caught:
        load_schema(path)
    assert str(caught.value) == "schema.fields.id: names are [a-z][a-z0-9_]* and 'id' is reserved"


def test_load_schema_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(SchemaError):
        load_schema(path)


@pytest.mark.parametrize(
    ("ftype", "expected"),
    [("text", False), ("keyword", False), ("integer", True), ("float", True), ("date", True)],
)
def test_field_spec_is_numeric(ftype: str, expected: bool) -> None:
    assert parse_schema(_schema_with({"f": {"type": ftype}})).fields[0].is_numeric is expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, False),
        ({"searchable": True}, False),
        ({"filterable": True}, True),
        ({"facetable": True}, True),
        ({"sortable": True}, True),
    ],
)
def test_field_spec_has_value_column(flags: dict[str, bool], expected: bool) -> None:
    spec = parse_schema(_schema_with({"code": {"type": "keyword", **flags}})).fields[0]
    assert spec.has_value_column is expected


def test_index_schema_properties_in_schema_order() -> None:
    schema = parse_schema(
        {
            "name": "books",
            "version": 7,
            "fields": {
                "title": {"type": "text", "searchable": True, "boost": 3},
                "isbn": {"type": "keyword", "searchable": True, "filterable": True, "returned": False},
                "pages": {"type": "integer", "sortable": True},
                "secret": {"type": "keyword", "returned": False},
            },
        }
    )
    assert [f.name for f in schema.searchable] == ["title", "isbn"]
    assert [f.name for f in schema.value_fields] == ["isbn", "pages"]
    assert schema.returned == ("title", "pages")
    assert schema.fingerprint == "books:v7"
    assert schema.field("pages") == FieldSpec(name="pages", type="integer", sortable=True)
    assert schema.field("missing") is None
    assert schema.field("id") is None


def _with_synonyms(synonyms: object) -> dict[str, object]:
    return {
        "name": "s",
        "version": 1,
        "fields": {"name": {"type": "keyword", "searchable": True}},
        "synonyms": synonyms,
    }


def test_parse_schema_when_synonyms_given_resolves_equivalents_and_one_way_pairs() -> None:
    schema = parse_schema(
        _with_synonyms({"equivalent": [["Postgres", "PostgreSQL", "pgsql"]], "one_way": {"JS": ["JavaScript"]}})
    )
    assert schema.synonyms_of("postgres") == ("postgresql", "pgsql")
    assert schema.synonyms_of("pgsql") == ("postgres", "postgresql")
    assert schema.synonyms_of("js") == ("javascript",)
    assert schema.synonyms_of("javascript") == ()
    assert schema.fingerprint.startswith("s:v1:")
    assert schema.fingerprint != parse_schema(_with_synonyms({"one_way": {"js": ["node"]}})).fingerprint


def test_load_schema_when_synonyms_name_a_file_reads_it_beside_the_schema(tmp_path: Path) -> None:
    (tmp_path / "syn.json").write_text('{"one_way": {"k8s": ["kubernetes"]}}', encoding="utf-8")
    (tmp_path / "schema.json").write_text(json.dumps(_with_synonyms("syn.json")), encoding="utf-8")
    assert load_schema(tmp_path / "schema.json").synonyms_of("k8s") == ("kubernetes",)


@pytest.mark.parametrize(
    ("synonyms", "message"),
    [
        ({"equivalent": [["web server", "httpd"]]}, "one word"),
        ({"equivalent": [["alone"]]}, "at least two words"),
        ({"one_way": {"js": []}}, "non-empty list"),
        ({"other": {}}, "`equivalent` and/or `one_way`"),
        ("missing.json", "cannot read synonyms file"),
    ],
)
def test_parse_schema_when_synonyms_invalid_names_them(synonyms: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        parse_schema(_with_synonyms(synonyms))


def test_parse_schema_when_ranking_given_validates_the_field() -> None:
    fields = {"name": {"type": "keyword", "searchable": True}, "size": {"type": "integer", "sortable": True}}
    base: dict[str, object] = {"name": "s", "version": 1, "fields": fields}
    schema = parse_schema({**base, "ranking": {"field": "size"}})
    assert schema.ranking == ("size", True)
    assert parse_schema({**base, "ranking": {"field": "size", "order": "asc"}}).ranking == ("size", False)
    assert schema.fingerprint != parse_schema(base).fingerprint
    for bad, message in (
        ({"field": "name"}, "sortable integer or float"),
        ({"field": "size", "order": "up"}, "asc or desc"),
    ):
        with pytest.raises(SchemaError, match=message):
            parse_schema({**base, "ranking": bad})
