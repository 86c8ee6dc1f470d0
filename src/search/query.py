"""Pure parsing of the GET /v1/search parameters into a backend-neutral query.

Every function here takes values (the raw parameters, the index schema, thresholds) and returns
frozen dataclasses, or raises `InvalidParameter` naming the parameter. Both backends translate the
same `BackendQuery`, which is what keeps their behaviour identical.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from src.search.analysis import allowed_edits, tokenize
from src.search.errors import InvalidParameter
from src.search.models import JSONScalar
from src.search.schema import FieldSpec, IndexSchema

type FilterValue = str | int | float | datetime

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Integer fields hold signed 64-bit values on both backends."""

# A quoted phrase (possibly unclosed at the end of q) or a bare word, each optionally negated.
_QUERY_PART = re.compile(r'(?P<neg>-?)(?:"(?P<phrase>[^"]*)"?|(?P<word>[^\s"]+))')
_RANGE = re.compile(r"^(?P<open>[\[{])\s*(?P<lower>\S+)\s+TO\s+(?P<upper>\S+)\s*(?P<close>[\]}])$")


@dataclass(frozen=True, slots=True)
class Term:
    """One query word after normalisation."""

    text: str
    edits: int
    """Typo budget (0, 1 or 2 edits; a transposition counts as one)."""
    prefix: bool
    """Also match index terms starting with `text` (the last word, while the user is still typing)."""


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """The `q` parameter: required terms, required phrases and exclusions."""

    terms: tuple[Term, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded_terms: tuple[str, ...] = ()
    excluded_phrases: tuple[tuple[str, ...], ...] = ()
    whole: Term | None = None
    """All words as one string, matched against whole keyword values (ranks `nginx` first for "ngnix")."""
    truncated: tuple[str, ...] = ()
    """What `q` held past `max_terms` words, left out of the search (words, `"phrases"`, `-exclusions`)."""

    @property
    def is_match_all(self) -> bool:
        """No positive clause: every document matches (minus exclusions)."""
        return not self.terms and not self.phrases


@dataclass(frozen=True, slots=True)
class ValueFilter:
    """`field:value` filters on one field; a document matches when it has any of the values."""

    field: FieldSpec
    values: tuple[FilterValue, ...]


@dataclass(frozen=True, slots=True)
class RangeFilter:
    """`field:[a TO b]` (inclusive) or `field:{a TO b}` (exclusive); None is an open end (`*`)."""

    field: FieldSpec
    lower: FilterValue | None
    upper: FilterValue | None
    include_lower: bool = True
    include_upper: bool = True


type Filter = ValueFilter | RangeFilter


@dataclass(frozen=True, slots=True)
class SortSpec:
    """The requested order: a sortable field, or relevance when `field` is None; ties by id."""

    field: FieldSpec | None = None
    descending: bool = True


@dataclass(frozen=True, slots=True)
class BackendQuery:
    """Everything a backend needs to run one search page."""

    query: ParsedQuery
    filters: tuple[Filter, ...]
    facets: tuple[FieldSpec, ...]
    sort: SortSpec
    limit: int
    """Hits to return: the page size plus one, which tells whether another page exists."""
    after: tuple[JSONScalar, ...] | None = None
    """Sort values of the previous page's last hit (`[sort value, id]`), or None on the first page."""
    offset: int = 0
    """How many hits earlier pages returned (a hint for backends without search_after)."""
    facet_size: int = 20
    track_total_up_to: int = 10_000


def parse_q(q: str, *, one_edit_min_chars: int, two_edits_min_chars: int, max_terms: int) -> ParsedQuery:
    """Parse `q`: words are required (typo tolerant), `"..."` is a phrase, `-` excludes.

    The last word is also a prefix unless `q` ends with whitespace (the user finished typing it).
    Words that normalise to several tokens (`foo-bar`) contribute each token as a term; an excluded
    one becomes an excluded phrase. Past `max_terms` words (a description pasted into a search box), the
    first ones are kept and the rest is listed in `truncated`, as Meilisearch and Algolia do.
    """
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    excluded_terms: list[str] = []
    excluded_phrases: list[tuple[str, ...]] = []
    truncated: list[str] = []
    used = 0
    last_word_is_open = False
    for match in _QUERY_PART.finditer(q):
        negated = bool(match.group("neg"))
        is_phrase = match.group("phrase") is not None
        tokens = tuple(tokenize(match.group("phrase") if is_phrase else match.group("word")))
        last_word_is_open = False
        if not tokens:
            continue
        if truncated or used + len(tokens) > max_terms:
            if not truncated and not is_phrase and not negated and used < max_terms:
                words.extend(tokens[: max_terms - used])  # a hyphenated word: keep the tokens that fit
                truncated.extend(tokens[max_terms - used :])
                used = max_terms
            else:
                truncated.append(match.group(0))  # as typed
            continue
        used += len(tokens)
        if negated:
            if len(tokens) == 1:
                excluded_terms.append(tokens[0])
            else:
                excluded_phrases.append(tokens)
        elif is_phrase:
            phrases.append(tokens)
        else:
            words.extend(tokens)
            last_word_is_open = match.end() == len(q)
    if truncated:
        last_word_is_open = False  # the word typed last was not kept
    terms = tuple(
        Term(
            text=word,
            edits=allowed_edits(word, one_edit_min_chars=one_edit_min_chars, two_edits_min_chars=two_edits_min_chars),
            prefix=last_word_is_open and position == len(words) - 1,
        )
        for position, word in enumerate(words)
    )
    whole_text = " ".join(words)
    whole = (
        Term(
            text=whole_text,
            edits=allowed_edits(
                whole_text, one_edit_min_chars=one_edit_min_chars, two_edits_min_chars=two_edits_min_chars
            ),
            prefix=last_word_is_open,
        )
        if words
        else None
    )
    return ParsedQuery(
        whole=whole,
        terms=terms,
        phrases=tuple(phrases),
        excluded_terms=tuple(excluded_terms),
        excluded_phrases=tuple(excluded_phrases),
        truncated=tuple(truncated),
    )


def parse_filters(raw: list[str], schema: IndexSchema) -> tuple[Filter, ...]:
    """Parse repeated `field:value` / `field:[a TO b]` parameters against the schema.

    Values of one field are OR-ed into one ValueFilter; different fields (and ranges) are AND-ed.
    """
    values: dict[str, list[FilterValue]] = {}
    ranges: list[RangeFilter] = []
    for item in raw:
        if not item.strip():
            continue  # an empty `filter=` (an unfilled form field) filters nothing
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise InvalidParameter("filter", f"{item!r} is not of the form field:value or field:[a TO b]")
        spec = schema.field(name)
        if spec is None or not spec.filterable:
            raise InvalidParameter("filter", f"field {name!r} is not filterable")
        value = value.strip()
        if value[0] in "[{":
            ranges.append(_parse_range(spec, value))
        else:
            values.setdefault(name, []).append(coerce_value(spec, _unquote(value), parameter="filter"))
    value_filters = tuple(
        ValueFilter(field=_require(schema.field(name)), values=tuple(dict.fromkeys(found)))
        for name, found in sorted(values.items())
    )
    return value_filters + tuple(ranges)


def _require(spec: FieldSpec | None) -> FieldSpec:
    assert spec is not None  # parse_filters looked each name up before grouping it
    return spec


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse_range(spec: FieldSpec, value: str) -> RangeFilter:
    if not spec.is_numeric:
        raise InvalidParameter("filter", f"field {spec.name!r} is not numeric or a date: ranges are not allowed")
    found = _RANGE.match(value)
    if found is None:
        raise InvalidParameter("filter", f"malformed range {value!r}: use [a TO b], {{a TO b}} or * for open")
    lower_raw, upper_raw = found.group("lower"), found.group("upper")
    lower = None if lower_raw == "*" else coerce_value(spec, lower_raw, parameter="filter")
    upper = None if upper_raw == "*" else coerce_value(spec, upper_raw, parameter="filter")
    if lower is None and upper is None:
        raise InvalidParameter("filter", f"range {value!r} has no bound")
    if lower is not None and upper is not None and _as_number(lower) > _as_number(upper):
        raise InvalidParameter("filter", f"range {value!r} has its lower bound above its upper bound")
    return RangeFilter(
        field=spec,
        lower=lower,
        upper=upper,
        include_lower=found.group("open") == "[" or lower is None,
        include_upper=found.group("close") == "]" or upper is None,
    )


def _as_number(value: FilterValue) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):  # pragma: no cover - ranges only exist on numeric and date fields
        raise TypeError(value)
    return float(value)


def coerce_value(spec: FieldSpec, raw: str, *, parameter: str) -> FilterValue:
    """Turn a filter value into the field's type, or raise InvalidParameter naming `parameter`."""
    try:
        match spec.type:
            case "integer":
                integer = int(raw)
                if not INT64_MIN <= integer <= INT64_MAX:
                    raise ValueError(raw)
                return integer
            case "float":
                real = float(raw)
                if not math.isfinite(real):
                    raise ValueError(raw)
                return real
            case "date":
                parsed = datetime.fromisoformat(raw)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            case _:
                return raw
    except ValueError as err:
        raise InvalidParameter(parameter, f"{raw!r} is not a valid {spec.type} for field {spec.name!r}") from err


def parse_facets(raw: str | None, schema: IndexSchema) -> tuple[FieldSpec, ...]:
    """Parse the comma-separated `facets` parameter; each name must be facetable."""
    if not raw:
        return ()
    specs: list[FieldSpec] = []
    for name in dict.fromkeys(part.strip() for part in raw.split(",")):
        if not name:
            continue
        spec = schema.field(name)
        if spec is None or not spec.facetable:
            raise InvalidParameter("facets", f"field {name!r} is not facetable")
        specs.append(spec)
    return tuple(specs)


def parse_sort(raw: str | None, schema: IndexSchema) -> SortSpec:
    """Parse `sort`: `field` ascending, `-field` descending; empty means relevance."""
    if raw is None or not raw.strip():
        return SortSpec()
    raw = raw.strip()
    descending = raw.startswith("-")
    name = raw.removeprefix("-")
    spec = schema.field(name)
    if spec is None or not spec.sortable:
        raise InvalidParameter("sort", f"field {name!r} is not sortable")
    return SortSpec(field=spec, descending=descending)
