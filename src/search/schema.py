"""The index schema: which fields are searchable (with boosts), filterable, facetable, sortable, returned.

It is configuration (a JSON file named by `INDEX_SCHEMA_PATH`), like Meilisearch's index settings, and
both backends derive their mapping from it. Loading validates it fully, so a bad file fails at start-up
with a message naming the field, never at query time.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, cast

from src.search.analysis import normalise

RULES = (
    "words",
    "name",
    "name_with_typos",
    "two_typos",
    "typo",
    "proximity",
    "attribute",
    "exactness",
    "custom",
    "bm25",
)
"""Every ranking rule; `id` (ascending) always breaks the last ties and is not listed."""
DEFAULT_RULES = ("words", "name", "two_typos", "proximity", "attribute", "exactness", "custom", "typo", "bm25")
"""The order measured best on catalogues with popularity (see src/search/ranking.py and docs/relevance.md's
figures): a name as typed first, words with two typos last, then Meilisearch's proximity, attribute and
exactness, the custom ranking before the last typo count."""
TIER_RULES = frozenset(
    {"words", "name", "name_with_typos", "two_typos", "typo", "proximity", "attribute", "exactness"}
)
"""Rules whose values are whole numbers per document; `bm25` must follow all of them."""

type FieldType = Literal["text", "keyword", "integer", "float", "date"]
FIELD_TYPES: tuple[FieldType, ...] = ("text", "keyword", "integer", "float", "date")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class FieldSpecFile(TypedDict):
    """One field as written in the schema file."""

    type: FieldType
    """text (analysed, searchable only), keyword (exact values), integer, float or date (ISO 8601)."""
    searchable: NotRequired[bool]
    """Matched by `q` (text and keyword fields only)."""
    boost: NotRequired[float]
    """Relative weight of a match in this field; default 1."""
    filterable: NotRequired[bool]
    """Usable in `filter` (not for text fields)."""
    facetable: NotRequired[bool]
    """Usable in `facets` (not for text fields)."""
    sortable: NotRequired[bool]
    """Usable in `sort` (single-valued, not text)."""
    returned: NotRequired[bool]
    """Included in responses; default true."""
    multi: NotRequired[bool]
    """The value may be a list of values (not allowed with sortable)."""


class SynonymsFile(TypedDict):
    """Synonyms, inline in the schema or in a file of their own that the schema names."""

    equivalent: NotRequired[list[list[str]]]
    """Groups of words that all find each other (multi-way): `["postgres", "postgresql"]`."""
    one_way: NotRequired[dict[str, list[str]]]
    """A word that also finds its synonyms, not the other way round: `{"js": ["javascript"]}`."""


class SchemaFile(TypedDict):
    """The schema file's top level."""

    name: str
    """Human-readable name of the data set."""
    version: int
    """Bumped on every change that needs a reindex; part of the cache keys."""
    fields: dict[str, FieldSpecFile]
    """Field name to its spec; `id` is implicit (keyword, returned, sortable tie-break)."""
    synonyms: NotRequired[SynonymsFile | str]
    """Synonyms, or the path (relative to the schema file) of a JSON file holding them."""
    ranking_rules: NotRequired[list[str]]
    """The ranking rules, most significant first (see src/search/ranking.py); default `DEFAULT_RULES`."""
    custom_ranking: NotRequired[list[RankingFile]]
    """Custom ranking fields (popularity, downloads...), applied where `custom` stands in the rules."""
    ranking: NotRequired[RankingFile]
    """The older spelling of a single custom ranking field (`custom_ranking` with one entry)."""


class RankingFile(TypedDict):
    """One custom ranking field as written in the schema file."""

    field: str
    """A sortable integer or float field."""
    order: NotRequired[Literal["asc", "desc"]]
    """desc (default): higher values first."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the index schema, validated."""

    name: str
    type: FieldType
    searchable: bool = False
    boost: float = 1.0
    filterable: bool = False
    facetable: bool = False
    sortable: bool = False
    returned: bool = True
    multi: bool = False

    @property
    def is_numeric(self) -> bool:
        """Integer, float and date fields accept range filters."""
        return self.type in ("integer", "float", "date")

    @property
    def has_value_column(self) -> bool:
        """Whether the backends keep an exact-value (keyword/numeric) column for this field."""
        return self.filterable or self.facetable or self.sortable


class SchemaError(ValueError):
    """The schema file is invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class IndexSchema:
    """The validated index schema."""

    name: str
    version: int
    fields: tuple[FieldSpec, ...]
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Normalised word to the words it also finds, sorted by word (one-way pairs and equivalence groups)."""
    rules: tuple[str, ...] = DEFAULT_RULES
    """The ranking rules, most significant first (validated: see `parse_rules`)."""
    custom: tuple[tuple[str, bool], ...] = ()
    """The custom ranking fields: (sortable numeric field, descending), first one first."""
    # Derived once (every search reads them, some several times): see __post_init__.
    _searchable: tuple[FieldSpec, ...] = field(init=False, repr=False, compare=False)
    _value_fields: tuple[FieldSpec, ...] = field(init=False, repr=False, compare=False)
    _returned: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_searchable", tuple(f for f in self.fields if f.searchable))
        object.__setattr__(self, "_value_fields", tuple(f for f in self.fields if f.has_value_column))
        object.__setattr__(self, "_returned", tuple(f.name for f in self.fields if f.returned))
        if not self.synonyms and not self.custom and self.rules == DEFAULT_RULES:
            fingerprint = f"{self.name}:v{self.version}"
        else:
            digest = hashlib.sha256(json.dumps([self.synonyms, self.custom, self.rules]).encode()).hexdigest()[:8]
            fingerprint = f"{self.name}:v{self.version}:{digest}"
        object.__setattr__(self, "_fingerprint", fingerprint)

    @property
    def ranking(self) -> tuple[str, bool] | None:
        """The first custom ranking field (it orders an empty `q`), or None."""
        return self.custom[0] if self.custom and "custom" in self.rules else None

    def synonyms_of(self, word: str) -> tuple[str, ...]:
        """The words `word` also finds (normalised), none when it has no synonyms."""
        return next((found for key, found in self.synonyms if key == word), ())

    def field(self, name: str) -> FieldSpec | None:
        """The spec of `name`, or None when the schema has no such field."""
        return next((f for f in self.fields if f.name == name), None)

    @property
    def searchable(self) -> tuple[FieldSpec, ...]:
        """Fields matched by `q`, in schema order."""
        return self._searchable

    @property
    def value_fields(self) -> tuple[FieldSpec, ...]:
        """Fields with an exact-value column (filter, facet or sort)."""
        return self._value_fields

    @property
    def returned(self) -> tuple[str, ...]:
        """Names of the fields included in responses."""
        return self._returned

    @property
    def fingerprint(self) -> str:
        """A short stable identity of the schema (name and version, plus a digest of the synonyms when
        there are any, so changing them retires cached results even without a version bump)."""
        return self._fingerprint


def parse_schema(raw: object, *, base: Path | None = None) -> IndexSchema:
    """Validate a decoded schema file; raise SchemaError naming the offending field.

    `base` is the schema file's folder, against which a synonyms file path is resolved.
    """
    if not isinstance(raw, dict):
        raise SchemaError("schema: the top level must be an object")
    data = cast(dict[str, object], raw)
    name = data.get("name")
    version = data.get("version")
    fields = data.get("fields")
    if not isinstance(name, str) or not name:
        raise SchemaError("schema.name: a non-empty string is required")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError("schema.version: a positive integer is required")
    if not isinstance(fields, dict) or not fields:
        raise SchemaError("schema.fields: a non-empty object is required")
    unknown = set(data) - {"name", "version", "fields", "synonyms", "ranking", "ranking_rules", "custom_ranking"}
    if unknown:
        raise SchemaError(f"schema: unknown keys {sorted(unknown)}")
    specs = tuple(_parse_field(key, value) for key, value in cast(dict[str, object], fields).items())
    synonyms = _parse_synonyms(data.get("synonyms"), base) if "synonyms" in data else ()
    if "ranking" in data and "custom_ranking" in data:
        raise SchemaError("schema.ranking: give custom_ranking or the older ranking, not both")
    custom: tuple[tuple[str, bool], ...] = ()
    if "ranking" in data:
        custom = (_parse_ranking(data["ranking"], specs, "schema.ranking"),)
    elif "custom_ranking" in data:
        raw_custom = data["custom_ranking"]
        if not isinstance(raw_custom, list) or not raw_custom:
            raise SchemaError("schema.custom_ranking: a non-empty list of {field, order} is required")
        custom = tuple(
            _parse_ranking(item, specs, f"schema.custom_ranking[{number}]") for number, item in enumerate(raw_custom)
        )
        if len({name for name, _ in custom}) != len(custom):
            raise SchemaError("schema.custom_ranking: a field may appear once")
    rules = parse_rules(data["ranking_rules"]) if "ranking_rules" in data else DEFAULT_RULES
    if custom and "custom" not in rules:
        raise SchemaError("schema.ranking_rules: custom ranking fields are set but the rules have no `custom`")
    return IndexSchema(name=name, version=version, fields=specs, synonyms=synonyms, rules=rules, custom=custom)


def parse_rules(raw: object) -> tuple[str, ...]:
    """Validate `ranking_rules`: known rules, each at most once, `bm25` after every rule that is a tier (the
    engines' BM25 is a continuous score: it can only break the ties the tiers leave). SchemaError if not."""
    where = "schema.ranking_rules"
    if not isinstance(raw, list) or not all(isinstance(rule, str) for rule in raw):
        raise SchemaError(f"{where}: a list of rule names is required")
    rules = tuple(cast(list[str], raw))
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown:
        raise SchemaError(f"{where}: unknown rules {unknown}; the rules are {list(RULES)}")
    if len(set(rules)) != len(rules):
        raise SchemaError(f"{where}: a rule may appear once")
    if "bm25" in rules:
        late = [rule for rule in rules[rules.index("bm25") + 1 :] if rule in TIER_RULES]
        if late:
            raise SchemaError(f"{where}: {late} must come before bm25 (only `custom` may follow it)")
    return rules


def _parse_ranking(raw: object, specs: tuple[FieldSpec, ...], where: str) -> tuple[str, bool]:
    if not isinstance(raw, dict) or set(raw) - {"field", "order"}:
        raise SchemaError(f"{where}: an object with `field` and optionally `order` is required")
    name, order = raw.get("field"), raw.get("order", "desc")
    spec = next((s for s in specs if s.name == name), None)
    if spec is None or not spec.sortable or spec.type not in ("integer", "float"):
        raise SchemaError(f"{where}.field: {name!r} must be a sortable integer or float field")
    if order not in ("asc", "desc"):
        raise SchemaError(f"{where}.order: asc or desc")
    return spec.name, order == "desc"


def _parse_synonyms(raw: object, base: Path | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    where = "schema.synonyms"
    if isinstance(raw, str):
        path = (base or Path()) / raw
        where = f"synonyms file {path}"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SchemaError(f"cannot read {where}: {err}") from err
    if not isinstance(raw, dict) or set(raw) - {"equivalent", "one_way"}:
        raise SchemaError(f"{where}: an object with `equivalent` and/or `one_way` is required")
    found: dict[str, dict[str, None]] = {}

    def word(value: object, at: str) -> str:
        tokens = normalise(value).split() if isinstance(value, str) else []
        if len(tokens) != 1:
            raise SchemaError(f"{at}: {value!r} must be one word (multi-word synonyms are not supported)")
        return tokens[0]

    groups = raw.get("equivalent", [])
    if not isinstance(groups, list):
        raise SchemaError(f"{where}.equivalent: a list of lists of words is required")
    for number, group in enumerate(groups):
        if not isinstance(group, list) or len(group) < 2:
            raise SchemaError(f"{where}.equivalent[{number}]: a list of at least two words is required")
        words = [word(item, f"{where}.equivalent[{number}]") for item in group]
        for one in words:
            found.setdefault(one, {}).update(dict.fromkeys(other for other in words if other != one))
    one_way = raw.get("one_way", {})
    if not isinstance(one_way, dict):
        raise SchemaError(f"{where}.one_way: an object of word to list of words is required")
    for key, targets in one_way.items():
        at = f"{where}.one_way.{key}"
        if not isinstance(targets, list) or not targets:
            raise SchemaError(f"{at}: a non-empty list of words is required")
        source = word(key, at)
        found.setdefault(source, {}).update(dict.fromkeys(w for t in targets if (w := word(t, at)) != source))
    return tuple(sorted((key, tuple(targets)) for key, targets in found.items() if targets))


def _parse_field(name: str, raw: object) -> FieldSpec:
    where = f"schema.fields.{name}"
    if not _FIELD_NAME.fullmatch(name) or name == "id":
        raise SchemaError(f"{where}: names are [a-z][a-z0-9_]* and 'id' is reserved")
    if not isinstance(raw, dict):
        raise SchemaError(f"{where}: must be an object")
    spec = cast(dict[str, object], raw)
    unknown = set(spec) - {"type", "boost", *_FLAG_DEFAULTS}
    if unknown:
        raise SchemaError(f"{where}: unknown keys {sorted(unknown)}")
    ftype = spec.get("type")
    if ftype not in FIELD_TYPES:
        raise SchemaError(f"{where}.type: one of {list(FIELD_TYPES)} is required")
    flags = {key: spec.get(key, default) for key, default in _FLAG_DEFAULTS.items()}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise SchemaError(f"{where}.{key}: must be true or false")
    boost = spec.get("boost", 1.0)
    if not isinstance(boost, int | float) or isinstance(boost, bool) or not math.isfinite(boost) or boost <= 0:
        raise SchemaError(f"{where}.boost: must be a positive number")
    field = FieldSpec(
        name=name,
        type=ftype,
        boost=float(boost),
        **cast(dict[str, bool], flags),
    )
    _check_capabilities(field, where)
    return field


_FLAG_DEFAULTS: dict[str, bool] = {
    "searchable": False,
    "filterable": False,
    "facetable": False,
    "sortable": False,
    "returned": True,
    "multi": False,
}


def _check_capabilities(field: FieldSpec, where: str) -> None:
    if field.searchable and field.type not in ("text", "keyword"):
        raise SchemaError(f"{where}: only text and keyword fields can be searchable")
    if field.type == "text" and field.has_value_column:
        raise SchemaError(f"{where}: text fields cannot be filterable, facetable or sortable")
    if field.type == "date" and field.facetable:
        raise SchemaError(f"{where}: date fields cannot be facetable (use range filters)")
    if field.sortable and field.multi:
        raise SchemaError(f"{where}: a multi-valued field cannot be sortable")


def load_schema(path: Path) -> IndexSchema:
    """Read and validate the schema file at `path`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON and undecodable UTF-8 alike
        raise SchemaError(f"cannot read index schema {path}: {err}") from err
    return parse_schema(raw, base=path.parent)
