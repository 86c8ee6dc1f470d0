"""The Query DSL that Elasticsearch and OpenSearch share: the plan's one translation for both.

OpenSearch forked Elasticsearch 7.10, and every construct used here (bool/dis_max/term/prefix/fuzzy/
match_phrase, `index_prefixes`, `search_after`, `track_total_hits`, terms aggregations, external
versions in bulk) means the same on Elasticsearch 8.x/9.x and OpenSearch 2.x/3.x, with only the
analysis their minimal distributions ship (the standard tokenizer and the lowercase filter). So the
query plan (src/search/plan.py) is translated once, here, and each engine's backend file only speaks
its own client.

Documents are indexed as `{"id", "doc", "t": {...}, "v": {...}, "x": {...}, "j": {...}, "r": [...]}`: `doc`
is the original document (stored, not indexed), `t.<field>` the normalised text of searchable fields
(standard tokenizer over already-normalised text, `index_prefixes` for search-as-you-type), `v.<field>`
typed values for filters, facets and sorting, `x.<field>` whole normalised values of searchable keyword
fields, `j.<field>` the same without separators, `r` the bits of the custom ranking bucket (terms "0" to
"5"). Everything here is pure: dicts in, dicts out.

Scores are the ranking rules as one number (src/search/ranking.py): every alternative is a
`function_score` adding its constant digits to its BM25 times the plan's `bm25` factor; relevance sorts by
`_score`, then the custom ranking fields, then the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from src.search.backends.base import BackendHit, BackendPage, BulkItemResult, IndexAction
from src.search.documents import DocumentInvalid, IndexValue, prepare_document
from src.search.models import Document, JSONScalar
from src.search.plan import FUZZY_MAX_EXPANSIONS, Alternative, QueryPlan, build_plan
from src.search.query import BackendQuery, Filter, FilterValue, RangeFilter, SortSpec
from src.search.schema import IndexSchema

type ESBody = dict[str, Any]
"""A raw JSON body of the Query DSL (the clients type it as Mapping[str, Any])."""

_ANALYZER = "normalised"


def build_mapping(schema: IndexSchema, *, replicas: int, refresh_interval: str) -> ESBody:
    """Index settings and mappings derived from the schema (core analysis only)."""
    text_properties = {
        spec.name: {
            "type": "text",
            "analyzer": _ANALYZER,
            "index_prefixes": {"min_chars": 1, "max_chars": 10},
        }
        for spec in schema.searchable
    }
    value_properties = {spec.name: {"type": _VALUE_TYPES[spec.type]} for spec in schema.value_fields}
    whole_properties = {spec.name: {"type": "keyword"} for spec in schema.searchable if spec.type == "keyword"}
    joined_properties = dict(whole_properties)
    return {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": replicas,
            "refresh_interval": refresh_interval,
            "analysis": {
                # Our own Python normalisation did the work: the text is lowercase words separated by
                # single spaces. `whitespace` lives in analysis-common (absent from minimal servers), and
                # `standard` splits such text identically (except runs of CJK ideographs; see README).
                "analyzer": {_ANALYZER: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}}
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": {"type": "keyword"},
                "doc": {"type": "object", "enabled": False},
                "t": {"properties": text_properties},
                "v": {"properties": value_properties},
                "x": {"properties": whole_properties},
                "j": {"properties": joined_properties},
                "r": {"type": "keyword"},
            },
        },
    }


_VALUE_TYPES = {"keyword": "keyword", "integer": "long", "float": "double", "date": "date"}


def build_source(document: Document, schema: IndexSchema) -> ESBody:
    """The indexed form of one document (raises DocumentInvalid when it does not fit the schema)."""
    prepared = prepare_document(document, schema)
    values: dict[str, list[JSONScalar]] = {
        name: [_value_json(item) for item in items] for name, items in prepared.values.items()
    }
    source: ESBody = {"id": prepared.id, "doc": prepared.source, "t": prepared.text, "v": values, "x": prepared.whole}
    if prepared.joined:
        source["j"] = prepared.joined
    if prepared.rank:
        source["r"] = [str(bit) for bit in prepared.rank]
    return source


def _value_json(value: IndexValue | FilterValue) -> JSONScalar:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def build_search_body(query: BackendQuery, schema: IndexSchema) -> ESBody:
    """The search request body for one page: the query plan translated (see src/search/plan.py)."""
    plan = build_plan(query.query, query.filters, schema)
    body: ESBody = {
        "query": translate_plan(plan),
        "size": query.limit,
        "sort": _sort_clause(query.sort, schema),
        "track_total_hits": query.track_total_up_to,
        "_source": ["id", "doc"],
    }
    if query.after is not None:
        body["search_after"] = list(query.after)
    if query.facets:
        body["aggs"] = {
            spec.name: {
                "terms": {
                    "field": f"v.{spec.name}",
                    "size": query.facet_size,
                    "order": [{"_count": "desc"}, {"_key": "asc"}],
                }
            }
            for spec in query.facets
        }
    return body


def translate_plan(plan: QueryPlan) -> ESBody:
    """The plan as one bool query: every word and phrase, or the whole query as a name (the better of the two
    scores); the custom ranking bits; filters; exclusions."""
    epsilon = plan.bm25
    positive = [
        _dis_max([_scored(_alternative(alt, epsilon), alt.weight) for alt in word.alternatives]) for word in plan.words
    ]
    positive += [
        _dis_max([_scored(_phrase(field, phrase.tokens, epsilon), weight) for field, weight in phrase.fields])
        for phrase in plan.phrases
    ]
    nearby = [
        {
            "constant_score": {
                "filter": _dis_max([_phrase(field, pair.tokens, 1.0, slop=pair.slop) for field in pair.fields]),
                "boost": pair.weight,
            }
        }
        for pair in plan.proximity
    ]
    if positive:
        matched: ESBody = {"bool": {"must": positive} | ({"should": nearby} if nearby else {})}
        if plan.whole is not None:
            whole = _dis_max([_scored(_alternative(alt, epsilon), alt.weight) for alt in plan.whole.alternatives])
            matched = {"dis_max": {"queries": [matched, whole]}}
    else:
        matched = {"constant_score": {"filter": {"match_all": {}}, "boost": 1.0}}
    bool_query: ESBody = {
        "must": [matched],
        "filter": [_filter_clause(item) for item in plan.filters],
        "must_not": _negative_clauses(plan),
    }
    if plan.custom:
        bool_query["should"] = [
            {"constant_score": {"filter": {"term": {"r": str(bit)}}, "boost": weight}} for bit, weight in plan.custom
        ]
    return {"bool": bool_query}


def _dis_max(queries: list[ESBody]) -> ESBody:
    return queries[0] if len(queries) == 1 else {"dis_max": {"queries": queries}}


def _scored(query: ESBody, digits: float) -> ESBody:
    """`query`'s own (already scaled) score plus the constant `digits`."""
    if not digits:
        return query
    return {"function_score": {"query": query, "functions": [{"weight": digits}], "boost_mode": "sum"}}


def _alternative(alt: Alternative, boost: float) -> ESBody:
    field = f"{alt.group}.{alt.field}"
    if alt.kind == "exact":
        return {"term": {field: {"value": alt.text, "boost": boost}}}
    if alt.kind == "prefix":
        return {"prefix": {field: {"value": alt.text, "boost": boost}}}
    return {
        "fuzzy": {
            field: {
                "value": alt.text,
                "fuzziness": alt.edits,
                "transpositions": True,
                "prefix_length": alt.prefix_length,
                "max_expansions": FUZZY_MAX_EXPANSIONS,
                "boost": boost,
            }
        }
    }


def _phrase(field: str, tokens: tuple[str, ...], boost: float, *, slop: int = 0) -> ESBody:
    body: ESBody = {"query": " ".join(tokens), "boost": boost}
    if slop:
        body["slop"] = slop
    return {"match_phrase": {f"t.{field}": body}}


def _negative_clauses(plan: QueryPlan) -> list[ESBody]:
    clauses: list[ESBody] = [
        {"term": {f"t.{field}": term}} for term in plan.excluded_terms for field in plan.searchable
    ]
    clauses.extend(_phrase(field, phrase, 1.0) for phrase in plan.excluded_phrases for field in plan.searchable)
    return clauses


def _filter_clause(item: Filter) -> ESBody:
    field = f"v.{item.field.name}"
    if isinstance(item, RangeFilter):
        bounds: ESBody = {}
        if item.lower is not None:
            bounds["gte" if item.include_lower else "gt"] = _value_json(item.lower)
        if item.upper is not None:
            bounds["lte" if item.include_upper else "lt"] = _value_json(item.upper)
        return {"range": {field: bounds}}
    return {"terms": {field: [_value_json(value) for value in item.values]}}


def _sort_clause(sort: SortSpec, schema: IndexSchema) -> list[ESBody]:
    order = "desc" if sort.descending else "asc"
    if sort.field is None:  # the rules, then the custom ranking fields' exact values, then the id
        ties = [
            {f"v.{name}": {"order": "desc" if descending else "asc", "missing": "_last"}}
            for name, descending in schema.custom
        ]
        return [{"_score": {"order": "desc"}}, *ties, {"id": {"order": "asc"}}]
    return [{f"v.{sort.field.name}": {"order": order, "missing": "_last"}}, {"id": {"order": "asc"}}]


def parse_search_response(response: ESBody, query: BackendQuery) -> BackendPage:
    """Turn the raw response into a BackendPage (pure)."""
    hits_part = response["hits"]
    hits = tuple(
        BackendHit(
            id=str(hit["_source"]["id"]),
            score=float(hit["_score"]) if query.sort.field is None and hit.get("_score") is not None else None,
            sort_values=tuple(hit["sort"]),
            document=cast(Document, hit["_source"]["doc"]),
        )
        for hit in hits_part["hits"]
    )
    total = hits_part["total"]
    facets = {
        name: [(bucket["key"], int(bucket["doc_count"])) for bucket in agg["buckets"]]
        for name, agg in response.get("aggregations", {}).items()
    }
    return BackendPage(hits=hits, total=int(total["value"]), total_exact=total["relation"] == "eq", facets=facets)


def build_bulk_operations(
    actions: Sequence[IndexAction], *, target: str, schema: IndexSchema
) -> tuple[list[ESBody], list[int], dict[int, BulkItemResult]]:
    """The bulk request body for `actions`: (operations, positions sent, results of refused documents).

    A document that does not fit the schema is refused here (not sent); every write carries its
    external version (`external_gte`), so an older event never replaces a newer document.
    """
    operations: list[ESBody] = []
    refused: dict[int, BulkItemResult] = {}
    sent: list[int] = []
    for position, action in enumerate(actions):
        meta: ESBody = {"_index": target, "_id": action.doc_id}
        if action.version is not None:
            meta |= {"version": action.version, "version_type": "external_gte"}
        if action.op == "delete":
            operations.append({"delete": meta})
        else:
            try:
                source = build_source(action.document or {}, schema)
            except DocumentInvalid as err:
                refused[position] = BulkItemResult(doc_id=action.doc_id, ok=False, error=str(err))
                continue
            operations.extend(({"index": meta}, source))
        sent.append(position)
    return operations, sent, refused


def bulk_item_result(doc_id: str, item: ESBody) -> BulkItemResult:
    """One item of a bulk response as our result (409 and a delete's 404 are success)."""
    outcome = next(iter(item.values()))
    status = int(outcome.get("status", 500))
    # 409: the index already holds a newer version, which is the out-of-order protection working.
    # 404 on a delete: already gone. Both leave the index in the intended state.
    if status < 300 or status == 409 or (status == 404 and "delete" in item):
        return BulkItemResult(doc_id=doc_id, ok=True)
    error = outcome.get("error", {})
    reason = f"{error.get('type', status)}: {error.get('reason', '')}" if isinstance(error, dict) else str(error)
    return BulkItemResult(
        doc_id=doc_id, ok=False, retryable=status == 429 or status >= 500, error=reason, pressure=status == 429
    )
