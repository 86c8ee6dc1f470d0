"""Probe rules for the npm corpus (`bench/npm_corpus.py`): what users type when they look for a package.

Every probe is made from the corpus by a rule, never picked by hand, with one seeded random stream per
kind (`random.Random(f"{seed}:{kind}")`), so the same seed and corpus give the same probes and a kind's
probes do not move when another kind's rule changes.

Whom users search for: mostly the packages many people use. A uniform sample of 227k names is dominated
by packages downloaded a few hundred times a month, which hardly anyone searches for, and it would hide
the failures users meet every day (a famous name pushed down by an obscure one). A sample of popular
names alone would hide the long tail, which must stay findable too. So the kinds that a user makes from
any name draw half their targets from the top 5 % by monthly downloads (`top5%`) and half uniformly from
every package (`uniform`); the report gives both halves and the whole.

Kinds (the figure that judges each in brackets):

- `name-typo` [s@1]: one edit (substitution, deletion, insertion, transposition) inside one word of at
  least 5 characters of a name, where the result is not itself a name; expected: that package first.
- `name-collision` [s@10]: a real, less downloaded name one edit away from a popular (top 5 %) name, where
  the popular one is the most downloaded name within one edit of it, typed as a finished word: a user who
  meant the famous package must still see it. The edited word has at least 4 characters before and after
  the edit (every engine allows one typo there). One probe per popular name.
- `name-prefix` [s@10]: the first 60-80 % (at least 3 characters) of a name, no trailing space
  (search-as-you-type), where the prefix is not itself a name.
- `separator-joined` [s@1]: an unscoped name of 2-3 parts (`-`, `.`, `_`) typed with every separator
  dropped, as a finished word (`redisserver `), not itself a name.
- `separator-typing` [s@10]: the first 70-90 % of such a joined name (any number of parts) while still
  typing (`redisserv`), reaching at least 2 characters into the second part, not itself a name.
- `separator-joined-4plus` [s@1]: an unscoped name of 4 or more parts, every separator dropped.
- `known-item` [s@10]: the whole summary (3-12 words, shared by no other package) with one word of 5+
  letters misspelled, as the demo data's known-item kind.

Scoped names (`@scope/name`) are targets of the typo, collision, prefix and known-item kinds, typed with
their scope; the separator kinds leave them out (nobody types a scope joined to the name).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from probes import EDITS, Probe, typo

from src.search.analysis import normalise

POPULAR_SHARE = 0.05
"""The `top5%` sample: this share of the packages, by monthly downloads."""
TOP, UNIFORM = "top5%", "uniform"
KINDS = (
    "name-typo",
    "name-collision",
    "name-prefix",
    "separator-joined",
    "separator-typing",
    "separator-joined-4plus",
    "known-item",
)
HEADLINE = {
    "name-typo": "s1",
    "name-collision": "s10",
    "name-prefix": "s10",
    "separator-joined": "s1",
    "separator-typing": "s10",
    "separator-joined-4plus": "s1",
    "known-item": "s10",
}
"""The figure that judges each kind (the issue's "name typo @1, colliding-name @10, ...")."""
NAME_SEPARATORS = "-._@/"
"""What splits an npm name into words (a scope's `@` and `/` too): typos stay inside words."""
PART = re.compile(r"[-._]")
TYPO_MIN_WORD = 5
COLLISION_MIN_WORD = 4
_EDIT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NEIGHBOUR_ALPHABET = _EDIT_ALPHABET + "-._"

type Document = dict[str, Any]
type Rule = Callable[[Document, random.Random], Probe | None]


def build_probes(documents: list[Document], *, per_kind: int, seed: int) -> list[Probe]:
    """Up to `per_kind` probes of every kind in KINDS, deterministic given the seed and the documents."""
    corpus = NpmCorpus(documents)
    probes: list[Probe] = []
    for kind in KINDS:
        rng = random.Random(f"{seed}:{kind}")
        if kind == "name-collision":
            probes += corpus.collisions(rng, per_kind)
        else:
            probes += corpus.sampled(kind, rng, per_kind)
    return probes


def words(name: str, min_chars: int) -> list[tuple[int, int]]:
    """(start, end) of every run of non-separator characters of `name` at least `min_chars` long."""
    pattern = f"[^{re.escape(NAME_SEPARATORS)}]{{{min_chars},}}"
    return [match.span() for match in re.finditer(pattern, name)]


def one_edit_variants(word: str, alphabet: str) -> Iterator[str]:
    """Every string one edit (substitution, deletion, insertion, adjacent transposition) from `word`."""
    for i in range(len(word) + 1):
        for ch in alphabet:
            yield word[:i] + ch + word[i:]
        if i < len(word):
            yield word[:i] + word[i + 1 :]
            for ch in alphabet:
                if ch != word[i]:
                    yield word[:i] + ch + word[i + 1 :]
            if i + 1 < len(word) and word[i] != word[i + 1]:
                yield word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def parts(name: str) -> list[str] | None:
    """The parts of an unscoped name split at `-`, `.` and `_`; None for a scoped name or an empty part."""
    if name.startswith("@"):
        return None
    found = PART.split(name)
    return found if all(found) else None


class NpmCorpus:
    """Lookups over the documents that the probe rules need."""

    def __init__(self, documents: list[Document]) -> None:
        self.docs = sorted(documents, key=lambda d: str(d["id"]))
        self.by_name: dict[str, set[str]] = {}
        self.by_summary: dict[str, set[str]] = {}
        self.by_raw_name: dict[str, Document] = {}
        for doc in self.docs:
            self.by_name.setdefault(normalise(str(doc["name"])), set()).add(doc["id"])
            self.by_summary.setdefault(str(doc.get("summary") or "").lower().strip(), set()).add(doc["id"])
            self.by_raw_name[str(doc["name"])] = doc
        by_downloads = sorted(self.docs, key=lambda d: (-downloads(d), str(d["id"])))
        self.popular = by_downloads[: math.ceil(len(by_downloads) * POPULAR_SHARE)]
        self.rules: dict[str, Rule] = {
            "name-typo": self.name_typo,
            "name-prefix": self.name_prefix,
            "separator-joined": self.separator_joined,
            "separator-typing": self.separator_typing,
            "separator-joined-4plus": self.separator_joined_4plus,
            "known-item": self.known_item,
        }

    def sampled(self, kind: str, rng: random.Random, per_kind: int) -> list[Probe]:
        """Half the probes from the popular targets, half from all, each query once."""
        seen: set[str] = set()
        probes: list[Probe] = []
        for group, pool, quota in ((TOP, self.popular, per_kind // 2), (UNIFORM, self.docs, per_kind - per_kind // 2)):
            candidates = list(pool)
            rng.shuffle(candidates)
            made = 0
            for doc in candidates:
                if made >= quota:
                    break
                probe = self.rules[kind](doc, rng)
                if probe is not None and probe.query not in seen:
                    seen.add(probe.query)
                    probes.append(replace(probe, group=group))
                    made += 1
        return probes

    def expected(self, doc: Document) -> frozenset[str]:
        """Every id whose name normalises as `doc`'s does (the engines cannot tell them apart)."""
        return frozenset(self.by_name[normalise(str(doc["name"]))])

    def is_name(self, typed: str) -> bool:
        """Whether `typed` normalises to a real name (or to nothing): such a query measures nothing."""
        return not normalise(typed) or normalise(typed) in self.by_name

    def name_typo(self, doc: Document, rng: random.Random) -> Probe | None:
        name = str(doc["name"])
        spans = words(name, TYPO_MIN_WORD)
        if not spans:
            return None
        start, end = rng.choice(spans)
        edited = typo(name[start:end], rng.choice(EDITS), rng)
        if edited is None or self.is_name(query := name[:start] + edited + name[end:]):
            return None
        return Probe("name-typo", f"{query} ", self.expected(doc))

    def name_prefix(self, doc: Document, rng: random.Random) -> Probe | None:
        name = str(doc["name"])
        cut = max(3, round(len(name) * rng.uniform(0.6, 0.8)))
        prefix = name[:cut].rstrip(NAME_SEPARATORS)  # no trailing space: the last word stays a prefix
        if cut >= len(name) or len(normalise(prefix).replace(" ", "")) < 3 or self.is_name(prefix):
            return None
        return Probe("name-prefix", prefix, self.expected(doc))

    def separator_joined(self, doc: Document, rng: random.Random) -> Probe | None:
        found = parts(str(doc["name"]))
        if found is None or not 2 <= len(found) <= 3:
            return None
        return self._joined("separator-joined", doc, "".join(found))

    def separator_joined_4plus(self, doc: Document, rng: random.Random) -> Probe | None:
        found = parts(str(doc["name"]))
        if found is None or len(found) < 4:
            return None
        return self._joined("separator-joined-4plus", doc, "".join(found))

    def _joined(self, kind: str, doc: Document, joined: str) -> Probe | None:
        if len(joined) < 5 or self.is_name(joined):
            return None
        return Probe(kind, f"{joined} ", self.expected(doc))

    def separator_typing(self, doc: Document, rng: random.Random) -> Probe | None:
        found = parts(str(doc["name"]))
        if found is None or len(found) < 2:
            return None
        joined = "".join(found)
        cut = round(len(joined) * rng.uniform(0.7, 0.9))
        if not len(found[0]) + 2 <= cut < len(joined) or self.is_name(joined[:cut]):
            return None
        return Probe("separator-typing", joined[:cut], self.expected(doc))

    def known_item(self, doc: Document, rng: random.Random) -> Probe | None:
        summary = str(doc.get("summary") or "").lower().strip()
        split = summary.split()
        editable = [i for i, w in enumerate(split) if w.isalpha() and len(w) >= 5]
        if not 3 <= len(split) <= 12 or not editable or len(self.by_summary[summary]) != 1:
            return None
        i = rng.choice(editable)
        misspelled = typo(split[i], rng.choice(EDITS), rng)
        if misspelled is None:
            return None
        return Probe("known-item", " ".join([*split[:i], misspelled, *split[i + 1 :]]) + " ", frozenset({doc["id"]}))

    def collisions(self, rng: random.Random, per_kind: int) -> list[Probe]:
        """Popular names whose one-edit neighbour is a real, less downloaded name (one probe per name)."""
        found: list[tuple[str, str]] = []  # (popular name, colliding name)
        for doc in self.popular:
            name = str(doc["name"])
            if colliders := sorted(set(self._colliders(name))):
                found.append((name, rng.choice(colliders)))
        rng.shuffle(found)
        probes: list[Probe] = []
        seen: set[str] = set()
        for name, collider in found:
            if len(probes) >= per_kind:
                break
            if normalise(collider) not in seen:
                seen.add(normalise(collider))
                probes.append(Probe("name-collision", f"{collider} ", self.expected(self.by_raw_name[name])))
        return probes

    def _colliders(self, name: str) -> Iterator[str]:
        """Real names one edit inside a 4+ character word of `name`, less downloaded, and whose most
        downloaded neighbour within one edit is `name` itself."""
        own = downloads(self.by_raw_name[name])
        for start, end in words(name, COLLISION_MIN_WORD):
            for edited in one_edit_variants(name[start:end], _EDIT_ALPHABET):
                candidate = name[:start] + edited + name[end:]
                other = self.by_raw_name.get(candidate)
                if (
                    other is None
                    or len(edited) < COLLISION_MIN_WORD
                    or downloads(other) >= own
                    or normalise(candidate) == normalise(name)
                ):
                    continue
                if self._most_downloaded_neighbour(candidate) == name:
                    yield candidate

    def _most_downloaded_neighbour(self, name: str) -> str | None:
        neighbours = (self.by_raw_name.get(v) for v in one_edit_variants(name, _NEIGHBOUR_ALPHABET))
        found = [d for d in neighbours if d is not None and d["name"] != name]
        return str(max(found, key=lambda d: (downloads(d), str(d["id"])))["name"]) if found else None


def downloads(doc: Document) -> int:
    """Monthly downloads, 0 when unknown."""
    value = doc.get("downloads")
    return value if isinstance(value, int) else 0
