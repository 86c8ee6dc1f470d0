"""Payloads of the search module: JSON values, documents and the GET /v1/search response."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

type JSONScalar = str | int | float | bool | None
type JSONValue = JSONScalar | list[JSONValue] | dict[str, JSONValue]
type Document = dict[str, JSONValue]
"""A document as stored in the source collection and returned by the API (always has an `id`)."""


class SearchTotal(TypedDict):
    """How many documents matched the query."""

    value: int
    """Number of matching documents, or a lower bound of it when `exact` is false."""
    exact: bool
    """True when `value` is the exact count; false when counting stopped at the configured bound."""


class FacetBucket(TypedDict):
    """One value of a facet and how many matching documents carry it."""

    value: JSONScalar
    """The field value (a string for keyword fields, a number for numeric ones)."""
    count: int
    """Number of matching documents with this value."""


class SearchHit(TypedDict):
    """One result of GET /v1/search."""

    id: str
    """Document id in the source collection; also the search index id."""
    score: float | None
    """Relevance score, comparable only within one query; null when sorted by a field."""
    document: Document
    """The stored document, limited to the fields the index schema marks as returned."""
    highlights: dict[str, list[str]]
    """Per field, fragments of the original text with matches wrapped in <mark>; HTML-escaped."""
    ranking_score_details: NotRequired[RankingDetails]
    """With `ranking_score_details=true`: each ranking rule's value for this hit (which rule placed it where)."""


class WordsDetail(TypedDict):
    """The `words` rule of one hit."""

    matched: int
    """Query words (and phrases) the hit matches."""
    of: int
    """Query words (and phrases) searched with (after any ignored words)."""


class NameDetail(TypedDict):
    """The `name` rule of one hit."""

    matched: bool
    """The whole query matches a name (exactly, without separators or as a prefix; `name_with_typos`: or
    within the typo budget)."""


class TypoDetail(TypedDict):
    """The `typo` rule of one hit."""

    typos: int
    """Typos over the counted words (an exact word, a synonym and a prefix count none); fewer rank first."""
    counted_words: int
    """How many of the first words count (see docs/relevance.md, ranking)."""


class ProximityDetail(TypedDict):
    """The `proximity` rule of one hit."""

    close_pairs: int
    """Pairs of consecutive query words found near each other; more rank first."""
    of: int
    """Pairs there are."""


class AttributeDetail(TypedDict):
    """The `attribute` rule of one hit."""

    value: int
    """Sum over the counted words of their best field's boost rank (0 for the lowest boost); higher first."""
    max: int
    """The value when every counted word matches in the highest-boost field."""


class ExactnessDetail(TypedDict):
    """The `exactness` rule of one hit."""

    name_match: Literal["exact", "joined", "prefix", "typo"] | None
    """The whole query is a name: exactly, with the name's separators dropped, its start while typing, or with
    typos; null otherwise."""
    exact_words: int
    """Words matched as typed (not as a prefix, typo or synonym)."""


class CustomDetail(TypedDict):
    """The `custom` rule of one hit."""

    bucket: int | None
    """The half-octave bucket of the first custom ranking field in the score (null when not in the score)."""
    values: list[JSONScalar]
    """The custom ranking fields' values, which break the ties left after BM25."""


class RankingDetails(TypedDict):
    """Each ranking rule's value for one hit, in the schema's rule order (as Meilisearch's
    `_rankingScoreDetails`)."""

    words: WordsDetail
    """How many query words matched."""
    name: NotRequired[NameDetail]
    """Whether the whole query is a name, as typed (when the rule is on)."""
    name_with_typos: NotRequired[NameDetail]
    """Whether the whole query is a name, misspelled or not (when the rule is on)."""
    typo: NotRequired[TypoDetail]
    """Typos (when the rule is on)."""
    proximity: NotRequired[ProximityDetail]
    """Close pairs of words (when the rule is on and the query has several words)."""
    attribute: NotRequired[AttributeDetail]
    """Fields matched (when the rule is on and fields have different boosts)."""
    exactness: NotRequired[ExactnessDetail]
    """Whole-name and exact-word matches (when the rule is on)."""
    custom: NotRequired[CustomDetail]
    """The custom ranking (when the schema has one)."""
    bm25: NotRequired[float]
    """The engine's term statistics (BM25) of the words matched: the tie-break after the rules."""


class SearchPage(TypedDict):
    """The response of GET /v1/search."""

    hits: list[SearchHit]
    """This page of results, best first (or in the requested sort order)."""
    total: SearchTotal
    """How many documents matched."""
    facets: dict[str, list[FacetBucket]]
    """Value counts per requested facet field, most frequent first, ties by value."""
    next_cursor: str | None
    """Opaque cursor for the next page; null on the last page."""
    ignored_words: list[str]
    """Query words left out because requiring all of them found nothing (dropped from the end); usually empty."""
    suggestion: str | None
    """"Did you mean": the query as the best hit spells it, when that hit matched only corrected words."""
    took_ms: float
    """Time spent in the service for this request, in milliseconds."""


class Problem(TypedDict):
    """An RFC 9457 problem details body (application/problem+json)."""

    type: str
    """A URI reference naming the problem type."""
    title: str
    """Short human-readable summary of the problem type."""
    status: int
    """The HTTP status code."""
    detail: str
    """Human-readable explanation of this occurrence."""
    instance: NotRequired[str]
    """The request path that produced the problem."""
    errors: NotRequired[list[ProblemError]]
    """For 422: one entry per invalid parameter."""
    dependency: NotRequired[str]
    """For 503: the dependency that failed (e.g. "search")."""


class ProblemError(TypedDict):
    """One invalid request parameter."""

    parameter: str
    """The name of the query or path parameter (e.g. "size", "filter")."""
    detail: str
    """What is wrong with it."""


class SchemaField(TypedDict):
    """One field of GET /v1/schema: its type and what requests may do with it."""

    name: str
    """The field name, as used in `filter`, `facets` and `sort` and in returned documents."""
    type: Literal["text", "keyword", "integer", "float", "date"]
    """text (analysed), keyword (exact values), integer, float or date (ISO 8601)."""
    searchable: bool
    """Matched by `q`."""
    boost: float
    """Relative weight of a match in this field (meaningful when searchable)."""
    filterable: bool
    """Usable in `filter` (`field:value`; ranges on integer, float and date fields)."""
    facetable: bool
    """Usable in `facets`."""
    sortable: bool
    """Usable in `sort` (`field` or `-field`)."""
    returned: bool
    """Included in returned documents."""
    multi: bool
    """The value may be a list of values."""


class RankingRule(TypedDict):
    """One step of the ranking, in the order the engines apply them."""

    rule: str
    """The rule's name: words, typo, proximity, attribute, exactness, custom, bm25 or id."""
    description: str
    """What the rule compares."""


class CustomRanking(TypedDict):
    """One custom ranking field of the schema."""

    field: str
    """A sortable integer or float field."""
    order: Literal["asc", "desc"]
    """desc: higher values first."""


class QueryLimits(TypedDict):
    """Limits a GET /v1/search request must stay within (a 422 names the parameter otherwise)."""

    max_query_chars: int
    """Longest `q`, in characters."""
    max_query_terms: int
    """Most words in `q`."""
    max_filters: int
    """Most `filter` parameters."""
    default_size: int
    """Hits per page when `size` is not given."""
    max_size: int
    """Largest `size`."""
    one_edit_min_chars: int
    """A word of at least this many characters tolerates one typo."""
    two_edits_min_chars: int
    """A word of at least this many characters tolerates two typos."""


class PublicSchema(TypedDict):
    """The response of GET /v1/schema: the public part of the index schema."""

    name: str
    """The data set's name."""
    version: int
    """The schema version (bumped on every change that needs a reindex)."""
    fingerprint: str
    """Identity of the schema in force (name, version and a digest of the synonyms and ranking)."""
    fields: list[SchemaField]
    """Every field requests can use or responses return, in schema order (`id` is implicit)."""
    searchable: list[str]
    """Names of the fields `q` matches, in schema order."""
    filterable: list[str]
    """Names of the fields `filter` accepts."""
    facetable: list[str]
    """Names of the fields `facets` accepts."""
    sortable: list[str]
    """Names of the fields `sort` accepts (`field` or `-field`); `id` always breaks ties."""
    ranking_rules: list[RankingRule]
    """The ranking, first rule first."""
    custom_ranking: list[CustomRanking]
    """The custom ranking fields, first first (the first orders an empty `q`); empty when there are none."""
    synonyms: dict[str, list[str]]
    """Normalised word to the words it also finds (equivalent groups appear under every member)."""
    limits: QueryLimits
    """Request limits of this deployment."""
