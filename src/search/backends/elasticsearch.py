"""Elasticsearch backend on `AsyncElasticsearch`, using only core Elasticsearch analysis.

Documents are indexed as `{"id", "doc", "t": {...}, "v": {...}}`: `doc` is the original document
(stored, not indexed), `t.<field>` the normalised text of searchable fields (standard tokenizer over
already-normalised text, `index_prefixes` for search-as-you-type), `v.<field>` typed values for
filters, facets and sorting, `x.<field>` whole normalised values of searchable keyword fields.
The query and mapping builders are pure; `ElasticsearchBackend` is the only place that talks to the
client, and `_translate_errors` the one choke point for its exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from src.search.backends.base import BackendHit, BackendPage, BulkItemResult, IndexAction
from src.search.documents import DocumentInvalid, IndexValue, prepare_document
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.models import Document, JSONScalar
from src.search.plan import FUZZY_MAX_EXPANSIONS, Alternative, QueryPlan, build_plan
from src.search.query import BackendQuery, Filter, FilterValue, RangeFilter, SortSpec
from src.search.schema import IndexSchema

type ESBody = dict[str, Any]
"""A raw JSON body handed to the Elasticsearch client (typed by the client as Mapping[str, Any])."""

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
    return {"id": prepared.id, "doc": prepared.source, "t": prepared.text, "v": values, "x": prepared.whole}


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
        "sort": _sort_clause(query.sort),
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
    """The plan as one bool query: every word and phrase, or the whole query as a name; filters; exclusions."""
    positive = [_dis_max([_alternative(alt, "t") for alt in word.alternatives]) for word in plan.words]
    positive += [
        _dis_max([_phrase(field, phrase.tokens, weight) for field, weight in phrase.fields]) for phrase in plan.phrases
    ]
    bool_query: ESBody = {
        "filter": [_filter_clause(item) for item in plan.filters],
        "must_not": _negative_clauses(plan),
    }
    nearby = [
        _dis_max([_phrase(field, pair.tokens, weight, slop=pair.slop) for field, weight in pair.fields])
        for pair in plan.proximity
    ]
    if plan.whole is not None and positive:
        whole = _dis_max([_alternative(alt, "x") for alt in plan.whole.alternatives])
        all_words: ESBody = {"must": positive} | ({"should": nearby} if nearby else {})
        bool_query["should"] = [{"bool": all_words}, whole]
        bool_query["minimum_should_match"] = 1
    else:
        bool_query["must"] = positive or [{"match_all": {}}]
        if nearby:
            bool_query["should"] = nearby  # with `must` present, optional: a bonus only
    return {"bool": bool_query}


def _dis_max(queries: list[ESBody]) -> ESBody:
    return queries[0] if len(queries) == 1 else {"dis_max": {"queries": queries}}


def _alternative(alt: Alternative, prefix: str) -> ESBody:
    field = f"{prefix}.{alt.field}"
    if alt.kind == "exact":
        return {"term": {field: {"value": alt.text, "boost": alt.weight}}}
    if alt.kind == "prefix":
        return {"prefix": {field: {"value": alt.text, "boost": alt.weight}}}
    return {
        "fuzzy": {
            field: {
                "value": alt.text,
                "fuzziness": alt.edits,
                "transpositions": True,
                "prefix_length": 0,
                "max_expansions": FUZZY_MAX_EXPANSIONS,
                "boost": alt.weight,
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


def _sort_clause(sort: SortSpec) -> list[ESBody]:
    order = "desc" if sort.descending else "asc"
    if sort.field is None:
        return [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}]
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


class ElasticsearchBackend:
    """`SearchBackend` on an Elasticsearch 8.x/9.x cluster, behind an alias."""

    kind = "elasticsearch"

    def __init__(
        self,
        client: AsyncElasticsearch,
        *,
        schema: IndexSchema,
        alias: str,
        timeout_seconds: float,
        replicas: int = 0,
        refresh_interval: str = "1s",
    ) -> None:
        self._client = client
        self._schema = schema
        self._alias = alias
        self._timeout = timeout_seconds
        self._replicas = replicas
        self._refresh_interval = refresh_interval

    @asynccontextmanager
    async def _translate_errors(
        self, what: str, *, budget_seconds: float | None = None, read: bool = False
    ) -> AsyncIterator[None]:
        """The one choke point: vendor errors and overruns become our errors.

        Connection errors, timeouts, 429 and 5xx are availability failures (SearchUnavailable: they feed
        the breaker and retries). On a read, any other status (400, 404 of a request path, 405, ...) is
        the engine refusing that request's input: SearchRejected, for that request alone. Writes keep
        every failure retryable; their per-document refusals are reported by `bulk` itself.
        """
        try:
            async with asyncio.timeout(budget_seconds or self._timeout * 2):
                yield
        except TimeoutError as err:
            raise SearchUnavailable(f"elasticsearch {what} timed out") from err
        except (TransportConnectionError, ConnectionTimeout) as err:
            raise SearchUnavailable(f"elasticsearch {what}: {type(err).__name__}") from err
        except ApiError as err:
            if read and is_rejection(err):
                raise SearchRejected(f"elasticsearch refused the {what} request ({err.meta.status})") from err
            raise SearchUnavailable(f"elasticsearch {what} failed: {err}") from err
        except TransportError as err:
            raise SearchUnavailable(f"elasticsearch {what} failed: {err}") from err

    async def search(self, query: BackendQuery) -> BackendPage:
        """Run one page of a search against the alias."""
        body = build_search_body(query, self._schema)
        async with self._translate_errors("search", read=True):
            response = await self._client.search(index=self._alias, body=body)
        return parse_search_response(cast(ESBody, response.body), query)

    async def get(self, doc_id: str) -> Document | None:
        """The stored document, or None."""
        async with self._translate_errors("get", read=True):
            try:
                response = await self._client.get(index=self._alias, id=doc_id, source_includes=["doc"])
            except NotFoundError as err:
                if _is_missing_index(err):
                    raise
                return None
        return cast(Document, response["_source"]["doc"])

    async def ping(self) -> None:
        """Raise SearchUnavailable unless the cluster answers and the alias exists."""
        async with self._translate_errors("ping"):
            exists = await self._client.indices.exists_alias(name=self._alias)
        if not exists:
            raise SearchUnavailable(f"elasticsearch alias {self._alias!r} does not exist; load data first")

    async def create_index(self) -> str:
        """Create `<alias>-<timestamp>` from the schema."""
        name = f"{self._alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        mapping = build_mapping(self._schema, replicas=self._replicas, refresh_interval=self._refresh_interval)
        async with self._translate_errors("create index", budget_seconds=60):
            await self._client.options(request_timeout=60).indices.create(index=name, **mapping)
            await self._client.cluster.health(index=name, wait_for_status="yellow", timeout="30s")
        return name

    async def point_alias(self, index: str) -> None:
        """Move the alias onto `index` in one atomic update_aliases call."""
        async with self._translate_errors("point alias", budget_seconds=60):
            current = await self._aliased_indices()
            actions: list[ESBody] = [{"remove": {"index": old, "alias": self._alias}} for old in current]
            actions.append({"add": {"index": index, "alias": self._alias, "is_write_index": True}})
            await self._client.options(request_timeout=60).indices.update_aliases(actions=actions)

    async def _aliased_indices(self) -> list[str]:
        try:
            response = await self._client.indices.get_alias(name=self._alias)
        except NotFoundError:
            return []
        return sorted(response.body)

    async def current_index(self) -> str | None:
        """The index behind the alias, or None."""
        async with self._translate_errors("get alias"):
            indices = await self._aliased_indices()
        return indices[-1] if indices else None

    async def list_indices(self) -> list[str]:
        """Every `<alias>-*` index, oldest first (timestamps sort lexically)."""
        async with self._translate_errors("list indices"):
            response = await self._client.indices.get(index=f"{self._alias}-*", allow_no_indices=True)
        return sorted(response.body)

    async def drop_index(self, index: str) -> None:
        """Delete a versioned index unless the alias points at it."""
        if index == await self.current_index():
            raise ValueError(f"refusing to drop {index!r}: the alias points at it")
        async with self._translate_errors("drop index", budget_seconds=60):
            await self._client.options(request_timeout=60).indices.delete(index=index)

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        """One bulk request; per-document results, rejected documents reported rather than raised."""
        target = index or self._alias
        operations: list[ESBody] = []
        results: dict[int, BulkItemResult] = {}
        sent: list[int] = []
        for position, action in enumerate(actions):
            meta: ESBody = {"_index": target, "_id": action.doc_id}
            if action.version is not None:
                meta |= {"version": action.version, "version_type": "external_gte"}
            if action.op == "delete":
                operations.append({"delete": meta})
            else:
                try:
                    source = build_source(action.document or {}, self._schema)
                except DocumentInvalid as err:
                    results[position] = BulkItemResult(doc_id=action.doc_id, ok=False, error=str(err))
                    continue
                operations.extend(({"index": meta}, source))
            sent.append(position)
        if operations:
            async with self._translate_errors("bulk", budget_seconds=max(30.0, self._timeout * 10)):
                response = await self._client.options(request_timeout=max(30.0, self._timeout * 10)).bulk(
                    operations=operations
                )
            for position, item in zip(sent, response["items"], strict=True):
                results[position] = _bulk_item(actions[position].doc_id, item)
        return [results[position] for position in range(len(actions))]

    async def refresh(self, index: str | None = None) -> None:
        """Make acknowledged writes searchable now."""
        async with self._translate_errors("refresh", budget_seconds=60):
            await self._client.options(request_timeout=60).indices.refresh(index=index or self._alias)

    async def count(self, index: str | None = None) -> int:
        """Documents in `index` (default: the alias)."""
        async with self._translate_errors("count"):
            response = await self._client.count(index=index or self._alias)
        return int(response["count"])

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()


def is_rejection(err: ApiError) -> bool:
    """Whether the engine refused the request itself (a 4xx other than 429, and not a missing index)."""
    status = err.meta.status
    if status == 429 or status >= 500 or status < 400:
        return False
    return not (isinstance(err, NotFoundError) and _is_missing_index(err))


def _is_missing_index(err: NotFoundError) -> bool:
    body = err.body if isinstance(err.body, dict) else {}
    error = body.get("error")
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def _bulk_item(doc_id: str, item: ESBody) -> BulkItemResult:
    outcome = next(iter(item.values()))
    status = int(outcome.get("status", 500))
    # 409: the index already holds a newer version, which is the out-of-order protection working.
    # 404 on a delete: already gone. Both leave the index in the intended state.
    if status < 300 or status == 409 or (status == 404 and "delete" in item):
        return BulkItemResult(doc_id=doc_id, ok=True)
    error = outcome.get("error", {})
    reason = f"{error.get('type', status)}: {error.get('reason', '')}" if isinstance(error, dict) else str(error)
    return BulkItemResult(doc_id=doc_id, ok=False, retryable=status == 429 or status >= 500, error=reason)


def create_elasticsearch_backend(
    *,
    url: str,
    schema: IndexSchema,
    alias: str,
    timeout_seconds: float,
    api_key: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    replicas: int = 0,
    refresh_interval: str = "1s",
) -> ElasticsearchBackend:
    """Build the client (bounded timeouts, one retry on connection errors only) and the backend."""
    client = AsyncElasticsearch(
        url,
        api_key=api_key,
        basic_auth=basic_auth,
        request_timeout=timeout_seconds,
        max_retries=1,
        retry_on_timeout=False,
    )
    return ElasticsearchBackend(
        client,
        schema=schema,
        alias=alias,
        timeout_seconds=timeout_seconds,
        replicas=replicas,
        refresh_interval=refresh_interval,
    )
