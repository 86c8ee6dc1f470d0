"""The page order of hits, in Python: Tantivy has no multi-key sort nor search_after.

A hit's position is `(sort key, custom ranking values, id key, id)`: the sort key (a field's value, or
the score), then the custom ranking fields (each in its own direction, relevance order only), then the id
ascending, as the clusters sort. The id key (`schema.id_key`) and the id are read only where they decide
(`tied_keys`), and a cursor's position compares against hits the same way. Pure: values in, order out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import cast

import tantivy

from src.search.models import JSONScalar


@dataclass(frozen=True, slots=True)
class Entry:
    """One hit as its page orders it: its sort key, and what breaks ties (each read only where it decides)."""

    key: JSONScalar
    id: str | None
    """None until needed: a hit whose key no other hit shares is placed by its key alone, and a page's
    hits read their id with their document."""
    score: float | None
    address: tantivy.DocAddress
    tie: tuple[JSONScalar, ...] = ()
    """The custom ranking fields' values (relevance order only), read where the key is shared."""
    id_key: tuple[int, int] | None = None
    """`id_key(id)` from the fast columns, read where the key is shared; the id itself is read only when
    another hit (or the previous page's last) has the same."""


type Position = tuple[JSONScalar, tuple[JSONScalar, ...], tuple[int, int] | None, str | None]
"""(sort key, custom ranking values, id key, id): what orders a hit."""


def _before(a: JSONScalar, b: JSONScalar, descending: bool) -> int:
    """-1 when `a` sorts before `b`, 1 after, 0 equal; a missing value sorts last in both directions."""
    if a == b:
        return 0
    if a is None:
        return 1
    if b is None:
        return -1
    less = cast(float, a) < cast(float, b)
    return (1 if less else -1) if descending else (-1 if less else 1)


def compare_positions(a: Position, b: Position, descending: bool, tie_order: tuple[bool, ...] = ()) -> int:
    """Order by sort key, then the custom ranking values (each in its own direction), then id ascending: its
    key first, the id where the keys are equal (ties, id keys and ids are read only where they decide)."""
    (key_a, tie_a, id_key_a, id_a), (key_b, tie_b, id_key_b, id_b) = a, b
    if order := _before(key_a, key_b, descending):
        return order
    for value_a, value_b, tie_descending in zip(tie_a, tie_b, tie_order, strict=False):
        if order := _before(value_a, value_b, tie_descending):
            return order
    if id_key_a is not None and id_key_b is not None and id_key_a != id_key_b:
        return -1 if id_key_a < id_key_b else 1
    # Equal id keys (ids alike for 16 bytes, or the same id) or none read: the ids are (see search_page).
    assert id_a is not None
    assert id_b is not None
    return (id_a > id_b) - (id_a < id_b)


def tied_keys(keys: list[object], after: Position | None) -> set[object]:
    """The keys whose hits the id must order: shared by several hits, or the previous page's last key."""
    seen: set[object] = set()
    tied: set[object] = set()
    for key in keys:
        (tied if key in seen else seen).add(key)
    if after is not None:
        tied.add(after[0])
    return tied


def row_key(
    score: float,
    tie: tuple[JSONScalar, ...],
    directions: tuple[bool, ...],
    key: tuple[int, int] | None,
    doc_id: str | None,
) -> tuple[object, ...]:
    """A relevance hit's position as a tuple whose plain order is the page's: score descending, each custom
    value in its direction with a missing one last, then the id (its key, then itself where keys collide)."""
    values: list[object] = [-score]
    for value, descending in zip(tie, directions, strict=False):
        number = cast(float, value)
        values.append((1, 0.0) if value is None else (0, -number if descending else number))
    values.append(key if key is not None else (0, 0))
    values.append(doc_id or "")
    return tuple(values)


def position_of(entry: Entry) -> Position:
    return (entry.key, entry.tie, entry.id_key, entry.id)


def order_entries(entries: list[Entry], descending: bool, tie_order: tuple[bool, ...] = ()) -> list[Entry]:
    def compare(a: Entry, b: Entry) -> int:
        return compare_positions(position_of(a), position_of(b), descending, tie_order)

    return sorted(entries, key=functools.cmp_to_key(compare))
