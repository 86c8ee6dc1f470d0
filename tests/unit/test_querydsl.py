"""Unit tests of the shared Query DSL (src.search.backends.querydsl): mapping, documents, queries, responses."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from elasticsearch import ApiError, NotFoundError

from src.search.backends.base import BackendHit, BackendPage, BulkItemResult
from src.search.backends.elasticsearch import is_rejection
from src.search.backends.querydsl import (
    build_mapping,
    build_search_body,
    build_source,
    bulk_item_result,
    parse_search_response,
)
from src.search.documents import DocumentInvalid
from src.search.models import Document
from src.search.query import (
    BackendQuery,
    ParsedQuery,
    RangeFilter,
    SortSpec,
    ValueFilter,
    parse_facets,
    parse_filters,
    parse_q,
    parse_sort,
)
from src.search.ranking import bucket_bits, custom_bucket, tiers_for
from src.search.schema import FieldSpec, IndexSchema, parse_schema

SCHEMA: IndexSchema = parse_schema(
    {
        "name": "test",
        "version": 1,
        "fields": {
            "name": {"type": "keyword", "searchable": True, "boost": 6, "filterable": True, "sortable": True},
            "summary": {"type": "text", "searchable": True, "boost": 2},
            "tags": {"type": "keyword", "multi": True, "filterable": True, "facetable": True},
            "size": {"type": "integer", "filterable": True, "facetable": True, "sortable": True},
            "rating": {"type": "float", "filterable": True},
            "published": {"type": "date", "filterable": True, "sortable": True},
            "notes": {"type": "text", "returned": False},
        },
    }
)
TEXT_ONLY: IndexSchema = parse_schema(
    {"name": "text-only", "version": 1, "fields": {"body": {"type": "text", "searchable": True}}}
)


def _field(name: str) -> FieldSpec:
    spec = SCHEMA.field(name)
    assert spec is not None
    return spec


def _query(
    q: str = "",
    *,
    filters: list[str] | None = None,
    facets: str | None = None,
    sort: str | None = None,
    limit: int = 11,
    after: tuple[Any, ...] | None = None,
    schema: IndexSchema = SCHEMA,
) -> BackendQuery:
    return BackendQuery(
        query=parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=10),
        filters=parse_filters(filters or [], schema),
        facets=parse_facets(facets, schema),
        sort=parse_sort(sort, schema),
        limit=limit,
        after=after,
    )


RELEVANCE_SORT = [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}]
TIERS = tiers_for(SCHEMA, 1)
EPSILON = TIERS.bm25


def _scored(query: dict[str, Any], digits: float) -> dict[str, Any]:
    return {"function_score": {"query": query, "functions": [{"weight": digits}], "boost_mode": "sum"}}


# --- build_mapping -------------------------------------------------------------------------------


def test_build_mapping_from_schema() -> None:
    text = {"type": "text", "analyzer": "normalised", "index_prefixes": {"min_chars": 1, "max_chars": 10}}
    assert build_mapping(SCHEMA, replicas=2, refresh_interval="30s") == {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 2,
            "refresh_interval": "30s",
            "analysis": {
                "analyzer": {"normalised": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}}
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": {"type": "keyword"},
                "doc": {"type": "object", "enabled": False},
                "t": {"properties": {"name": text, "summary": text}},
                "v": {
                    "properties": {
                        "name": {"type": "keyword"},
                        "tags": {"type": "keyword"},
                        "size": {"type": "long"},
                        "rating": {"type": "double"},
                        "published": {"type": "date"},
                    }
                },
                "x": {"properties": {"name": {"type": "keyword"}}},
                "j": {"properties": {"name": {"type": "keyword"}}},
                "r": {"type": "keyword"},
            },
        },
    }


def test_build_mapping_text_only_schema_has_empty_value_and_whole_properties() -> None:
    properties = build_mapping(TEXT_ONLY, replicas=0, refresh_interval="1s")["mappings"]["properties"]
    assert properties["v"] == {"properties": {}}
    assert properties["x"] == {"properties": {}}
    assert properties["j"] == {"properties": {}}
    assert list(properties["t"]["properties"]) == ["body"]


# --- build_source --------------------------------------------------------------------------------


def test_build_source_indexed_form() -> None:
    document: Document = {
        "id": 3,
        "name": "Nginx-Full",
        "summary": "Small, FAST web server",
        "tags": ["web", "http"],
        "size": 512,
        "rating": 4,
        "published": "2024-05-06T09:08:07+02:00",
        "notes": "internal",
    }
    assert build_source(document, SCHEMA) == {
        "id": "3",
        "doc": {**document, "id": "3"},
        "t": {"name": "nginx full", "summary": "small fast web server"},
        "v": {
            "name": ["Nginx-Full"],
            "tags": ["web", "http"],
            "size": [512],
            "rating": [4.0],
            "published": ["2024-05-06T07:08:07+00:00"],
        },
        "x": {"name": ["nginx full"]},
        "j": {"name": ["nginxfull"]},
    }


def test_build_source_when_schema_has_custom_ranking_writes_the_bucket_bits() -> None:
    ranked = dataclasses.replace(SCHEMA, custom=(("size", True),))
    source = build_source({"id": "a", "size": 512}, ranked)
    assert source["r"] == [str(bit) for bit in bucket_bits(custom_bucket(512, descending=True))]


def test_build_source_naive_date_is_utc() -> None:
    assert build_source({"id": "a", "published": "2024-01-02"}, SCHEMA)["v"] == {
        "published": ["2024-01-02T00:00:00+00:00"]
    }


def test_build_source_rejects_invalid_document() -> None:
    with pytest.raises(DocumentInvalid, match=r"^size: a integer value is required, got 'big'$"):
        build_source({"id": "a", "size": "big"}, SCHEMA)


# --- build_search_body ---------------------------------------------------------------------------

MATCH_ALL = {"constant_score": {"filter": {"match_all": {}}, "boost": 1.0}}


def test_build_search_body_match_all() -> None:
    assert build_search_body(_query(), SCHEMA) == {
        "query": {"bool": {"must": [MATCH_ALL], "filter": [], "must_not": []}},
        "size": 11,
        "sort": RELEVANCE_SORT,
        "track_total_hits": 10_000,
        "_source": ["id", "doc"],
    }


def test_build_search_body_when_schema_has_custom_ranking_adds_bits_and_sorts_ties_by_it() -> None:
    ranked = dataclasses.replace(SCHEMA, custom=(("size", True),))
    body = build_search_body(_query("web "), ranked)
    plan_custom = tiers_for(ranked, 1).custom_weights()
    assert body["query"]["bool"]["should"] == [
        {"constant_score": {"filter": {"term": {"r": str(bit)}}, "boost": weight}} for bit, weight in plan_custom
    ]
    assert body["sort"] == [
        {"_score": {"order": "desc"}},
        {"v.size": {"order": "desc", "missing": "_last"}},
        {"id": {"order": "asc"}},
    ]


def test_build_search_body_exact_short_term() -> None:
    body = build_search_body(_query("web "), SCHEMA)
    words = {
        "dis_max": {
            "queries": [
                _scored(
                    {"term": {"t.name": {"value": "web", "boost": EPSILON}}},
                    TIERS.word(0, kind="exact", edits=0, field="name"),
                ),
                _scored(
                    {"term": {"t.summary": {"value": "web", "boost": EPSILON}}},
                    TIERS.word(0, kind="exact", edits=0, field="summary"),
                ),
            ]
        }
    }
    whole = _scored(  # one word: its joined form is itself, one clause finds the name exactly
        {"term": {"j.name": {"value": "web", "boost": EPSILON}}}, TIERS.whole(level="exact", edits=0, field="name")
    )
    assert body["query"]["bool"] == {
        "must": [{"dis_max": {"queries": [{"bool": {"must": [words]}}, whole]}}],
        "filter": [],
        "must_not": [],
    }


def _words(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The all-words path of a body with a whole-value path."""
    return list(body["query"]["bool"]["must"][0]["dis_max"]["queries"][0]["bool"]["must"])


def _whole(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole-value path's queries, without their constant digits."""
    whole = body["query"]["bool"]["must"][0]["dis_max"]["queries"][1]
    return _inner(whole["dis_max"]["queries"])


def _inner(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [q["function_score"]["query"] if "function_score" in q else q for q in queries]


def test_build_search_body_term_with_fuzzy_and_prefix() -> None:
    body = build_search_body(_query("ngnix"), SCHEMA)

    def fuzzy(field: str, value: str = "ngnix") -> dict[str, Any]:
        return {
            "fuzzy": {
                field: {
                    "value": value,
                    "fuzziness": 1,
                    "transpositions": True,
                    "prefix_length": 0,
                    "max_expansions": 50,
                    "boost": EPSILON,
                }
            }
        }

    (word,) = _words(body)
    assert _inner(word["dis_max"]["queries"]) == [
        {"term": {"t.name": {"value": "ngnix", "boost": EPSILON}}},
        {"prefix": {"t.name": {"value": "ngnix", "boost": EPSILON}}},
        fuzzy("t.name"),
        {"term": {"t.summary": {"value": "ngnix", "boost": EPSILON}}},
        {"prefix": {"t.summary": {"value": "ngnix", "boost": EPSILON}}},
        fuzzy("t.summary"),
    ]
    digits = [q["function_score"]["functions"][0]["weight"] for q in word["dis_max"]["queries"]]
    assert digits[0] > digits[1] > digits[2]  # exact over prefix over one typo, in the same field
    assert _whole(body) == [
        {"term": {"j.name": {"value": "ngnix", "boost": EPSILON}}},
        {"prefix": {"j.name": {"value": "ngnix", "boost": EPSILON}}},
        fuzzy("x.name"),
    ]


def test_build_search_body_two_edits_for_long_terms_scores_each_edit_count() -> None:
    body = build_search_body(_query("postgresql "), SCHEMA)
    queries = _words(body)[0]["dis_max"]["queries"]
    typos = [
        (q["function_score"]["query"]["fuzzy"]["t.name"], q["function_score"]["functions"][0]["weight"])
        for q in queries
        if "function_score" in q and "t.name" in q["function_score"]["query"].get("fuzzy", {})
    ]
    assert [fuzzy["fuzziness"] for fuzzy, _ in typos] == [1, 2]
    assert typos[0][1] > typos[1][1]  # one typo outranks two
    assert [fuzzy["prefix_length"] for fuzzy, _ in typos] == [0, 1]  # two typos keep the first letter
    whole = [q["fuzzy"]["x.name"] for q in _whole(body) if "fuzzy" in q]
    assert [(fuzzy["fuzziness"], fuzzy["prefix_length"]) for fuzzy in whole] == [(1, 0), (2, 1)]


def test_build_search_body_one_clause_per_term_and_a_proximity_digit() -> None:
    body = build_search_body(_query("web serv"), SCHEMA)
    must = _words(body)
    assert [len(clause["dis_max"]["queries"]) for clause in must] == [2, 6]
    epsilon = tiers_for(SCHEMA, 2).bm25
    assert _inner(must[1]["dis_max"]["queries"])[1] == {"prefix": {"t.name": {"value": "serv", "boost": epsilon}}}
    assert _whole(body)[0] == {"term": {"x.name": {"value": "web serv", "boost": epsilon}}}
    assert _whole(body)[1] == {"term": {"j.name": {"value": "webserv", "boost": epsilon}}}
    (near,) = body["query"]["bool"]["must"][0]["dis_max"]["queries"][0]["bool"]["should"]
    assert near["constant_score"]["boost"] == tiers_for(SCHEMA, 2).proximity(0)


def test_build_search_body_phrases() -> None:
    body = build_search_body(_query('"Web Server"'), SCHEMA)
    assert body["query"]["bool"] == {
        "must": [
            {
                "bool": {
                    "must": [
                        {
                            "dis_max": {
                                "queries": [
                                    _scored(
                                        {"match_phrase": {"t.name": {"query": "web server", "boost": EPSILON}}},
                                        TIERS.word(0, kind="exact", edits=0, field="name"),
                                    ),
                                    _scored(
                                        {"match_phrase": {"t.summary": {"query": "web server", "boost": EPSILON}}},
                                        TIERS.word(0, kind="exact", edits=0, field="summary"),
                                    ),
                                ]
                            }
                        }
                    ]
                }
            }
        ],
        "filter": [],
        "must_not": [],
    }


def test_build_search_body_exclusions() -> None:
    body = build_search_body(_query('-apache -"mod php"'), SCHEMA)
    assert body["query"]["bool"] == {
        "must": [MATCH_ALL],
        "filter": [],
        "must_not": [
            {"term": {"t.name": "apache"}},
            {"term": {"t.summary": "apache"}},
            {"match_phrase": {"t.name": {"query": "mod php", "boost": 1.0}}},
            {"match_phrase": {"t.summary": {"query": "mod php", "boost": 1.0}}},
        ],
    }


def test_build_search_body_no_whole_value_clause_without_keyword_searchable() -> None:
    body = build_search_body(_query("body", schema=TEXT_ONLY), TEXT_ONLY)
    (path,) = body["query"]["bool"]["must"]
    assert "dis_max" not in path or len(path["dis_max"]["queries"]) == 3  # no name path beside the words
    (word,) = path["bool"]["must"]
    epsilon = tiers_for(TEXT_ONLY, 1).bm25
    assert _inner(word["dis_max"]["queries"]) == [
        {"term": {"t.body": {"value": "body", "boost": epsilon}}},
        {"prefix": {"t.body": {"value": "body", "boost": epsilon}}},
        {
            "fuzzy": {
                "t.body": {
                    "value": "body",
                    "fuzziness": 1,
                    "transpositions": True,
                    "prefix_length": 0,
                    "max_expansions": 50,
                    "boost": epsilon,
                }
            }
        },
    ]


def test_build_search_body_value_filters() -> None:
    body = build_search_body(_query(filters=["tags:web", "tags:http", "size:5", "rating:4.5"]), SCHEMA)
    assert body["query"]["bool"]["filter"] == [
        {"terms": {"v.rating": [4.5]}},
        {"terms": {"v.size": [5]}},
        {"terms": {"v.tags": ["web", "http"]}},
    ]


def test_build_search_body_range_filters() -> None:
    body = build_search_body(_query(filters=["size:[1 TO 10}", "rating:{* TO 4.5]", "size:{2 TO *}"]), SCHEMA)
    assert body["query"]["bool"]["filter"] == [
        {"range": {"v.size": {"gte": 1, "lt": 10}}},
        {"range": {"v.rating": {"lte": 4.5}}},
        {"range": {"v.size": {"gt": 2}}},
    ]


def test_build_search_body_date_filters_in_utc() -> None:
    body = build_search_body(
        _query(filters=["published:2024-01-01T02:00:00+02:00", "published:[2024-01-01 TO 2024-02-01T12:00:00-01:00}"]),
        SCHEMA,
    )
    assert body["query"]["bool"]["filter"] == [
        {"terms": {"v.published": ["2024-01-01T00:00:00+00:00"]}},
        {"range": {"v.published": {"gte": "2024-01-01T00:00:00+00:00", "lt": "2024-02-01T13:00:00+00:00"}}},
    ]


def test_build_search_body_hand_built_filters() -> None:
    query = BackendQuery(
        query=ParsedQuery(),
        filters=(
            ValueFilter(
                field=_field("published"), values=(datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=1))),)
            ),
            RangeFilter(field=_field("size"), lower=3, upper=None, include_lower=False),
        ),
        facets=(),
        sort=SortSpec(),
        limit=5,
    )
    assert build_search_body(query, SCHEMA)["query"]["bool"]["filter"] == [
        {"terms": {"v.published": ["2024-03-01T00:00:00+00:00"]}},
        {"range": {"v.size": {"gt": 3}}},
    ]


def test_build_search_body_facets() -> None:
    query = BackendQuery(
        query=ParsedQuery(),
        filters=(),
        facets=(_field("tags"), _field("size")),
        sort=SortSpec(),
        limit=1,
        facet_size=7,
        track_total_up_to=500,
    )
    body = build_search_body(query, SCHEMA)
    assert body["aggs"] == {
        "tags": {"terms": {"field": "v.tags", "size": 7, "order": [{"_count": "desc"}, {"_key": "asc"}]}},
        "size": {"terms": {"field": "v.size", "size": 7, "order": [{"_count": "desc"}, {"_key": "asc"}]}},
    }
    assert body["track_total_hits"] == 500
    assert body["size"] == 1


def test_build_search_body_no_aggs_without_facets() -> None:
    assert "aggs" not in build_search_body(_query("web"), SCHEMA)


def test_build_search_body_field_sort_descending_missing_last() -> None:
    assert build_search_body(_query(sort="-size"), SCHEMA)["sort"] == [
        {"v.size": {"order": "desc", "missing": "_last"}},
        {"id": {"order": "asc"}},
    ]


def test_build_search_body_field_sort_ascending_missing_last() -> None:
    assert build_search_body(_query(sort="published"), SCHEMA)["sort"] == [
        {"v.published": {"order": "asc", "missing": "_last"}},
        {"id": {"order": "asc"}},
    ]


def test_build_search_body_relevance_sort_ignores_direction() -> None:
    query = BackendQuery(query=ParsedQuery(), filters=(), facets=(), sort=SortSpec(descending=False), limit=3)
    assert build_search_body(query, SCHEMA)["sort"] == RELEVANCE_SORT


def test_build_search_body_search_after() -> None:
    body = build_search_body(_query(sort="-size", after=(512, "pkg-9")), SCHEMA)
    assert body["search_after"] == [512, "pkg-9"]


def test_build_search_body_no_search_after_on_first_page() -> None:
    assert "search_after" not in build_search_body(_query(sort="-size"), SCHEMA)


def test_build_search_body_empty_search_after_is_sent() -> None:
    assert build_search_body(_query(after=()), SCHEMA)["search_after"] == []


# --- parse_search_response -----------------------------------------------------------------------


def _response(*, relation: str = "eq", score: float | None = 2.5) -> dict[str, Any]:
    return {
        "hits": {
            "total": {"value": 42, "relation": relation},
            "hits": [
                {"_score": score, "sort": [score, "a"], "_source": {"id": "a", "doc": {"id": "a", "name": "A"}}},
                {"_score": 1, "sort": [1, "b"], "_source": {"id": 7, "doc": {"id": 7}}},
            ],
        },
        "aggregations": {
            "tags": {"buckets": [{"key": "web", "doc_count": 3}, {"key": "net", "doc_count": 1}]},
            "size": {"buckets": [{"key": 512, "doc_count": "2"}]},
        },
    }


def test_parse_search_response_relevance() -> None:
    assert parse_search_response(_response(), _query("a")) == BackendPage(
        hits=(
            BackendHit(id="a", score=2.5, sort_values=(2.5, "a"), document={"id": "a", "name": "A"}),
            BackendHit(id="7", score=1.0, sort_values=(1, "b"), document={"id": 7}),
        ),
        total=42,
        total_exact=True,
        facets={"tags": [("web", 3), ("net", 1)], "size": [(512, 2)]},
    )


def test_parse_search_response_score_types() -> None:
    page = parse_search_response(_response(), _query("a"))
    assert [type(hit.score) for hit in page.hits] == [float, float]


def test_parse_search_response_total_gte_is_not_exact() -> None:
    page = parse_search_response(_response(relation="gte"), _query())
    assert (page.total, page.total_exact) == (42, False)


def test_parse_search_response_field_sort_has_no_score() -> None:
    page = parse_search_response(_response(), _query(sort="-size"))
    assert [hit.score for hit in page.hits] == [None, None]
    assert page.hits[0].sort_values == (2.5, "a")


def test_parse_search_response_null_score() -> None:
    page = parse_search_response(_response(score=None), _query())
    assert page.hits[0].score is None
    assert page.hits[1].score == 1.0


def test_parse_search_response_missing_score_key() -> None:
    response = {
        "hits": {"total": {"value": 1, "relation": "eq"}, "hits": [{"sort": ["x"], "_source": {"id": "x", "doc": {}}}]}
    }
    page = parse_search_response(response, _query())
    assert page == BackendPage(
        hits=(BackendHit(id="x", score=None, sort_values=("x",), document={}),),
        total=1,
        total_exact=True,
        facets={},
    )


def test_parse_search_response_empty_without_aggregations() -> None:
    response = {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
    assert parse_search_response(response, _query()) == BackendPage(hits=(), total=0, total_exact=True, facets={})


# --- bulk_item_result ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        {"index": {"_id": "d", "status": 201, "result": "created"}},
        {"index": {"_id": "d", "status": 200, "result": "updated"}},
        {"delete": {"_id": "d", "status": 200, "result": "deleted"}},
        {"index": {"_id": "d", "status": 409, "error": {"type": "version_conflict_engine_exception"}}},
        {"delete": {"_id": "d", "status": 409, "error": {"type": "version_conflict_engine_exception"}}},
        {"delete": {"_id": "d", "status": 404, "result": "not_found"}},
    ],
)
def test_bulk_item_result_ok(item: dict[str, Any]) -> None:
    assert bulk_item_result("d", item) == BulkItemResult(doc_id="d", ok=True, retryable=False, error=None)


def test_bulk_item_result_404_on_index_is_an_error() -> None:
    item = {"index": {"status": 404, "error": {"type": "index_not_found_exception", "reason": "no such index [x]"}}}
    assert bulk_item_result("d", item) == BulkItemResult(
        doc_id="d", ok=False, retryable=False, error="index_not_found_exception: no such index [x]"
    )


def test_bulk_item_result_mapper_error_not_retryable() -> None:
    item = {
        "index": {
            "_id": "d",
            "status": 400,
            "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [v.size] of type [long]"},
        }
    }
    assert bulk_item_result("d", item) == BulkItemResult(
        doc_id="d",
        ok=False,
        retryable=False,
        error="mapper_parsing_exception: failed to parse field [v.size] of type [long]",
    )


@pytest.mark.parametrize("status", [429, 500, 503])
def test_bulk_item_result_retryable_statuses(status: int) -> None:
    item = {"index": {"status": status, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}}
    assert bulk_item_result("d", item) == BulkItemResult(
        doc_id="d", ok=False, retryable=True, error="es_rejected_execution_exception: busy", pressure=status == 429
    )


def test_bulk_item_result_error_without_type_or_reason() -> None:
    assert bulk_item_result("d", {"index": {"status": 503, "error": {}}}) == BulkItemResult(
        doc_id="d", ok=False, retryable=True, error="503: "
    )


def test_bulk_item_result_string_error() -> None:
    assert bulk_item_result("d", {"index": {"status": 400, "error": "bad thing"}}) == BulkItemResult(
        doc_id="d", ok=False, retryable=False, error="bad thing"
    )


def test_bulk_item_result_missing_status_is_retryable_500() -> None:
    assert bulk_item_result("d", {"index": {}}) == BulkItemResult(doc_id="d", ok=False, retryable=True, error="500: ")


def _api_error(status: int, body: object = None) -> ApiError:
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

    meta = ApiResponseMeta(
        status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=NodeConfig("http", "x", 9200)
    )
    error_class = NotFoundError if status == 404 else ApiError
    return error_class("error", meta=meta, body=body)


@pytest.mark.parametrize(
    ("status", "body", "rejected"),
    [
        (400, {"error": {"type": "parse_exception"}}, True),
        (405, None, True),
        (404, {"error": {"type": "illegal_argument_exception"}}, True),
        (404, {"error": {"type": "index_not_found_exception"}}, False),  # the alias is gone: unavailable
        (401, {"error": {"type": "security_exception"}}, False),  # credentials: the deployment's fault
        (403, None, False),
        (429, None, False),
        (500, None, False),
        (503, None, False),
    ],
)
def test_is_rejection_when_engine_answers_with_status(status: int, body: object, rejected: bool) -> None:
    assert is_rejection(_api_error(status, body)) is rejected
