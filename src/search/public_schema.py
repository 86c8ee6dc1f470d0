"""The public part of the index schema (GET /v1/schema), pure: what a client may put in `q`, `filter`,
`facets` and `sort`, the ranking rules and synonyms in force, and the request limits, so the preview page
and other clients need no hard-coded field lists.

A field that is neither returned nor usable in `filter`, `facets` or `sort` is left out: its name is of no
use to a client (it may still be searched).
"""

from __future__ import annotations

from src.search.models import PublicSchema, QueryLimits, RankingRule, SchemaField
from src.search.schema import FieldSpec, IndexSchema

MAX_PAGE_SIZE = 100
"""The largest `size` of GET /v1/search."""

RANKING_RULES: tuple[RankingRule, ...] = (
    {"rule": "words", "description": "every query word matched (else words are dropped from the end)"},
    {"rule": "typo", "description": "fewest typos: exact over synonym over prefix over one typo over two"},
    {"rule": "proximity", "description": "consecutive query words found within 2 positions of each other"},
    {"rule": "attribute", "description": "the field matched, by its boost"},
    {"rule": "exactness", "description": "the whole query equals, starts, or is a typo of a name"},
    {"rule": "bm25", "description": "the engine's term statistics"},
    {"rule": "custom", "description": "the schema's custom ranking field (orders an empty q)"},
    {"rule": "id", "description": "the document id, ascending: a deterministic tie-break"},
)


def _public(spec: FieldSpec) -> bool:
    return spec.returned or spec.has_value_column


def _field(spec: FieldSpec) -> SchemaField:
    return {
        "name": spec.name,
        "type": spec.type,
        "searchable": spec.searchable,
        "boost": spec.boost,
        "filterable": spec.filterable,
        "facetable": spec.facetable,
        "sortable": spec.sortable,
        "returned": spec.returned,
        "multi": spec.multi,
    }


def public_schema(schema: IndexSchema, limits: QueryLimits) -> PublicSchema:
    """The GET /v1/schema payload of `schema` under this deployment's `limits`."""
    fields = [spec for spec in schema.fields if _public(spec)]
    rules = [rule for rule in RANKING_RULES if rule["rule"] != "custom" or schema.ranking is not None]
    custom = schema.ranking
    return {
        "name": schema.name,
        "version": schema.version,
        "fingerprint": schema.fingerprint,
        "fields": [_field(spec) for spec in fields],
        "searchable": [spec.name for spec in fields if spec.searchable],
        "filterable": [spec.name for spec in fields if spec.filterable],
        "facetable": [spec.name for spec in fields if spec.facetable],
        "sortable": [spec.name for spec in fields if spec.sortable],
        "ranking_rules": rules,
        "custom_ranking": None if custom is None else {"field": custom[0], "order": "desc" if custom[1] else "asc"},
        "synonyms": {word: list(found) for word, found in schema.synonyms},
        "limits": limits,
    }
