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

RULE_DESCRIPTIONS: dict[str, str] = {
    "words": "every query word matched (else words are dropped from the end)",
    "name": "the whole query is a name: exactly, without its separators, or its start while typing",
    "name_with_typos": "the whole query is a name, misspelled or not",
    "two_typos": "fewer words matched only with two typos",
    "typo": "fewest typos; an exact word, a synonym and a prefix of the last word count as none",
    "proximity": "most pairs of consecutive query words within 2 positions of each other",
    "attribute": "the fields matched, by the rank of their boost",
    "exactness": "the whole query is a name (exact, joined, prefix, misspelled), else words matched as typed",
    "custom": "the custom ranking fields (the first in half-octave buckets; exact values break later ties)",
    "bm25": "the engine's term statistics of the words matched",
    "id": "the document id, ascending: a deterministic tie-break",
}


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
    rules: list[RankingRule] = [
        {"rule": rule, "description": RULE_DESCRIPTIONS[rule]}
        for rule in (*schema.rules, "id")
        if rule != "custom" or schema.custom
    ]
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
        "custom_ranking": [
            {"field": name, "order": "desc" if descending else "asc"} for name, descending in schema.custom
        ],
        "synonyms": {word: list(found) for word, found in schema.synonyms},
        "limits": limits,
    }
