"""Ranking rules as one score: bucket sort, the same on every engine (pure).

The schema lists the rules, most significant first (Meilisearch's `rankingRules`, Algolia's `ranking`):

- `words`: how many query words the document matches. Matching requires every word (or the whole query as a
  name; relaxation drops words from the end only when nothing matches), so within one result list it is the
  same for every hit: it is reported, never a tier.
- `name`: the whole query is a name as typed (a keyword field's whole value: exactly, without its
  separators, or its start while typing).
- `name_with_typos`: the same, or a name within the whole query's typo budget: whoever typed a name,
  misspelled or not, meant it before any document that merely mentions the words (catalogues with long
  descriptions and no popularity: the Debian demo).
- `two_typos`: fewer words matched only with two typos (the loosest matches go last, whatever else).
- `typo`: fewest typos over the query's words; an exact word, a synonym and a prefix of the last word count
  as zero typos.
- `proximity`: how many pairs of consecutive query words stand within `PROXIMITY_SLOP` positions in a field.
- `attribute`: how important the fields matched are (their boost's rank among the schema's boosts).
- `exactness`: the whole query is a name (a keyword field's whole value: exactly, then with its separators
  dropped, then as the start of a name while typing), else how many words matched as typed (not as a
  prefix, a typo or a synonym); a misspelled name counts as every word matched as typed, so the next rule
  (popularity, by default) decides between `readdirp` misspelled as `readdir` and `readdir-glob`.
- `custom`: the schema's first custom ranking field (popularity), in half-octave buckets of its value.
- `bm25`: the engine's term statistics of the words matched (a typo scored by the real terms it expands to).
- then the custom ranking fields' exact values, then the id (engine sort keys, not part of the score).

The default order (`schema.DEFAULT_RULES`): words, name, two_typos, proximity, attribute, exactness, custom,
typo, bm25. Measured on catalogues with popularity (npm, PyPI; docs/benchmarks.md has the figures), it keeps the
famous packages that contain the query first (`react` → react-dom, not `reactn` one typo away), lets a famous
name one typo from an obscure exact one reach the first page (a misspelling that is another real name), and
still puts a name typed as a prefix before a typo. Its cost: a match with one typo in a more important field
ranks before an exact match in a less important one (Meilisearch's order, typo first, is one setting away).

Engines order hits by one float, so the rules become the digits of one number (a mixed radix): each rule's
value is a whole number below its base, its unit is the product of the bases of the rules after it, and BM25,
scaled by `bm25` into [0, 1), is the fraction below every digit. Sorting by that number *is* sorting by the
rules in order: no weight of a later rule can make up for one unit of an earlier one. Each alternative way a
word can match carries its digits as a constant (typo, attribute and exactness of that match), a document's
words add up, proximity adds its unit per pair, the whole-name match carries the digits of a match of every
word, and the custom bucket is added through one clause per bit of the bucket (terms the indexer writes), so
every engine computes it with plain boolean queries.

Engines score in 32-bit floats (24 significant bits): the digits are kept within `MAX_INTEGER_BITS` so the
number stays exact and BM25 keeps at least 5 bits below it. Ranking digits count the first `MAX_RANKED_WORDS`
words (the rest must still match and add BM25); the custom bucket gets what bits are left, up to
`CUSTOM_BITS` (fewer, coarser buckets on long queries).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

from src.search.models import JSONScalar, RankingDetails
from src.search.schema import IndexSchema

PROXIMITY_SLOP = 2
MAX_RANKED_WORDS = 6
"""Words (and phrases) whose typos, proximity, attribute and exactness rank; later ones match and add BM25."""
MAX_INTEGER_BITS = 18
"""The digits' range: below 2^18, a 32-bit float score keeps 2^-5 for the BM25 fraction at worst."""
CUSTOM_BITS = 6
"""Bits of the custom ranking bucket written at index time: 64 half-octave buckets of the value."""
BM25_CEILING = 48.0
"""BM25 one word is assumed to stay below (idf of a term in one of a million documents is ~14, times at
most k1 + 1 = 2.2 for term frequency, times a few expansions of a typo): the fraction stays below 1."""

type MatchKind = Literal["exact", "synonym", "prefix", "typo"]
type WholeLevel = Literal["exact", "joined", "prefix", "typo"]


@dataclass(frozen=True, slots=True)
class Tiers:
    """The mixed radix of one query: which rules are digits, their bases and units."""

    words: int
    """Clauses of the query (words and phrases), all required."""
    ranked: int
    """How many of them count in the digits (the first ones)."""
    bases: tuple[tuple[str, int], ...]
    """(rule, base) of each digit, most significant first."""
    units: dict[str, float]
    """Each digit rule's unit (1 for the least significant one)."""
    custom_bits: int
    """Bits of the custom bucket in the score (0 when `custom` is not a digit or no bits are left)."""
    bm25: float
    """The factor of the engine's BM25 score: the whole query's stays below 1."""
    levels: dict[str, int]
    """Each searchable field's attribute level (0 for the lowest boost)."""
    _typo: float = field(init=False, repr=False, compare=False)
    _attribute: float = field(init=False, repr=False, compare=False)
    _exactness: float = field(init=False, repr=False, compare=False)
    _two_typos: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Read for every alternative of every query: looked up once here.
        object.__setattr__(self, "_typo", self.units.get("typo", 0.0))
        object.__setattr__(self, "_attribute", self.units.get("attribute", 0.0))
        object.__setattr__(self, "_exactness", self.units.get("exactness", 0.0))
        object.__setattr__(self, "_two_typos", self.units.get("two_typos", 0.0))

    def word(self, position: int, *, kind: MatchKind, edits: int, field: str) -> float:
        """The digits of one word (at `position` in the query) matching as `kind` in `field`."""
        if position >= self.ranked:
            return 0.0
        exact = 2 * self._exactness if kind == "exact" else 0.0
        mild = self._two_typos if edits < 2 else 0.0
        return (2 - edits) * self._typo + mild + self.levels[field] * self._attribute + exact

    def proximity(self, position: int) -> float:
        """The digit of the pair of words at `position` and `position + 1` standing close."""
        return self.units.get("proximity", 0.0) if position + 1 < self.ranked else 0.0

    def whole(self, *, level: WholeLevel, edits: int, field: str) -> float:
        """The digits of the whole query matching `field`'s whole value: a match of every word, adjacent, in
        that field, plus the whole-name exactness (`exact` over `joined`, separators dropped)."""
        n = self.ranked
        exactness = {"exact": 2 * n + 3, "joined": 2 * n + 2, "prefix": 2 * n + 1, "typo": 2 * n}[level]
        return (
            (self.units.get("name", 0.0) if level != "typo" else 0.0)
            + self.units.get("name_with_typos", 0.0)
            + (2 * n - edits) * self.units.get("typo", 0.0)
            + (n - (1 if edits >= 2 else 0)) * self.units.get("two_typos", 0.0)
            + max(0, n - 1) * self.units.get("proximity", 0.0)
            + n * self.levels[field] * self.units.get("attribute", 0.0)
            + exactness * self.units.get("exactness", 0.0)
        )

    def custom_weights(self) -> tuple[tuple[int, float], ...]:
        """(bucket bit, weight) of the custom bucket's bits in the score, most significant first."""
        unit = self.units.get("custom")
        if unit is None or not self.custom_bits:
            return ()
        low = CUSTOM_BITS - self.custom_bits
        return tuple((bit, float(2 ** (bit - low)) * unit) for bit in range(CUSTOM_BITS - 1, low - 1, -1))

    def explain(self, score: float | None, custom_values: tuple[JSONScalar, ...] = ()) -> RankingDetails:
        """Which rule placed a hit where: its score taken apart into the rules' values."""
        details: RankingDetails = {"words": {"matched": self.words, "of": self.words}}
        if score is None:
            return details
        digits = math.floor(score + 1e-6)
        fraction = max(0.0, score - digits)
        values: dict[str, int] = {}
        for rule, base in reversed(self.bases):
            digits, values[rule] = divmod(digits, base)
        n = self.ranked
        if "name" in values:
            details["name"] = {"matched": values["name"] == 1}
        if "name_with_typos" in values:
            details["name_with_typos"] = {"matched": values["name_with_typos"] == 1}
        if "typo" in values:
            details["typo"] = {"typos": 2 * n - values["typo"], "counted_words": n}
        if "proximity" in values:
            details["proximity"] = {"close_pairs": values["proximity"], "of": max(0, n - 1)}
        if "attribute" in values:
            details["attribute"] = {"value": values["attribute"], "max": n * max(self.levels.values(), default=0)}
        if "exactness" in values:
            value = values["exactness"]
            levels: dict[int, Literal["exact", "joined", "prefix", "typo"]] = {
                2 * n + 3: "exact",
                2 * n + 2: "joined",
                2 * n + 1: "prefix",
                2 * n: "typo",
            }
            name = levels.get(value)
            details["exactness"] = {"name_match": name, "exact_words": n if name else value // 2}
        if "custom" in values or custom_values:
            details["custom"] = {"bucket": values.get("custom"), "values": list(custom_values)}
        details["bm25"] = round(fraction / self.bm25, 4) if self.bm25 else 0.0
        return details


def tiers_for(schema: IndexSchema, words: int) -> Tiers:
    """The mixed radix of a query of `words` required clauses under the schema's rules (remembered: every
    search needs it, and a schema has few query lengths)."""
    boosts = tuple((spec.name, spec.boost) for spec in schema.searchable)
    return _tiers(schema.rules, bool(schema.custom), boosts, words)


@functools.lru_cache(maxsize=256)
def _tiers(rules: tuple[str, ...], has_custom: bool, boosts: tuple[tuple[str, float], ...], words: int) -> Tiers:
    distinct = sorted({boost for _, boost in boosts})
    levels = {name: distinct.index(boost) for name, boost in boosts}
    top = max(levels.values(), default=0)
    bm25_at = rules.index("bm25") if "bm25" in rules else len(rules)
    custom_digit = has_custom and "custom" in rules[:bm25_at]
    ranked = min(words, MAX_RANKED_WORDS)

    def bases_of(n: int) -> dict[str, int]:
        return {
            "name": 2,
            "name_with_typos": 2,
            "two_typos": n + 1,
            "typo": 2 * n + 1,
            "proximity": max(1, n),
            "attribute": n * top + 1,
            "exactness": 2 * n + 4,
        }

    while ranked > 1 and math.prod(b for r, b in bases_of(ranked).items() if r in rules) > 2 ** (MAX_INTEGER_BITS - 1):
        ranked -= 1  # many distinct boosts: fewer ranked words keep the digits exact
    tier_bases = bases_of(ranked)
    used = math.prod(base for rule, base in tier_bases.items() if rule in rules)
    custom_bits = max(0, min(CUSTOM_BITS, MAX_INTEGER_BITS - math.ceil(math.log2(used)))) if custom_digit else 0
    all_bases = tier_bases | {"custom": 2**custom_bits}
    bases = tuple(
        (rule, all_bases[rule])
        for rule in rules[:bm25_at]
        if rule in all_bases and all_bases[rule] > 1 and (rule != "custom" or custom_bits)
    )
    units: dict[str, float] = {}
    unit = 1.0
    for rule, base in reversed(bases):
        units[rule] = unit
        unit *= base
    return Tiers(
        words=words,
        ranked=ranked,
        bases=bases,
        units=units,
        custom_bits=custom_bits,
        bm25=1.0 / (BM25_CEILING * max(1, words)) if "bm25" in rules else 0.0,
        levels=levels,
    )


def custom_bucket(value: JSONScalar, *, descending: bool) -> int:
    """The half-octave bucket of a custom ranking value, 0 to 2^CUSTOM_BITS - 1, higher ranking first.

    Values below 1 (and a missing value) share the lowest bucket of a descending rule; an ascending rule
    mirrors the buckets, so its smallest values rank first (a missing value still ranks last).
    """
    top = 2**CUSTOM_BITS - 1
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return 0
    bucket: int = min(top, int(2 * math.log2(1 + max(0.0, float(value)))))
    return bucket if descending else top - bucket


def bucket_bits(bucket: int) -> tuple[int, ...]:
    """The bits set in a bucket: the terms written to the rank field (`2` for a bucket with 4 in it)."""
    return tuple(bit for bit in range(CUSTOM_BITS) if bucket >> bit & 1)
