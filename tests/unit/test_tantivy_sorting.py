"""Unit tests of src.search.backends.tantivy.sorting: the page order of hits and cursor positions (pure)."""

from __future__ import annotations

import functools
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from src.search.backends.tantivy.schema import id_key
from src.search.backends.tantivy.sorting import Position, compare_positions, row_key, tied_keys


def test_tied_keys_when_hits_share_keys_or_meet_the_cursor_names_only_those() -> None:
    assert tied_keys([3.0, 2.0, 2.0, 1.0], None) == {2.0}
    assert tied_keys([3.0, 2.0, 1.0], (1.0, (), None, "b")) == {1.0}  # the previous page ended inside key 1.0
    assert tied_keys([None, None, 5], None) == {None}


def test_compare_positions_when_a_value_is_missing_sorts_it_last_in_both_directions() -> None:
    present: Position = (1, (), None, "a")
    missing: Position = (None, (), None, "b")
    assert compare_positions(present, missing, descending=False) == -1
    assert compare_positions(present, missing, descending=True) == -1
    assert compare_positions(missing, present, descending=True) == 1


def test_compare_positions_when_keys_are_equal_orders_by_custom_values_then_id() -> None:
    first: Position = (2.0, (10, None), id_key("b"), "b")
    second: Position = (2.0, (10, 5), id_key("a"), "a")
    assert compare_positions(first, second, True, (True, False)) == 1  # a missing custom value sorts last
    same_ties: Position = (2.0, (10, None), id_key("a"), "a")
    assert compare_positions(first, same_ties, True, (True, False)) == 1  # then the id ascending


def test_compare_positions_when_ids_share_sixteen_bytes_compares_the_ids() -> None:
    a, b = "x" * 16 + "a", "x" * 16 + "b"
    assert id_key(a) == id_key(b)
    assert compare_positions((1.0, (), id_key(a), a), (1.0, (), id_key(b), b), True) == -1


_IDS = st.text(alphabet="ab\u00e9\U0001f600", min_size=1, max_size=20)
_POSITIONS = st.tuples(
    st.sampled_from([0.5, 1.0, 2.0]),
    st.tuples(st.one_of(st.none(), st.integers(0, 3)), st.one_of(st.none(), st.integers(0, 3))),
    _IDS,
)


@given(st.lists(_POSITIONS, min_size=2, max_size=12, unique_by=lambda p: p[2]), st.tuples(st.booleans(), st.booleans()))
def test_row_key_orders_hits_as_compare_positions_does_in_relevance_order(
    drawn: list[tuple[float, tuple[int | None, int | None], str]], directions: tuple[bool, bool]
) -> None:
    positions: list[Position] = [(score, tie, id_key(doc_id), doc_id) for score, tie, doc_id in drawn]

    def compare(a: Position, b: Position) -> int:
        return compare_positions(a, b, True, directions)

    by_tuples = sorted(positions, key=lambda p: row_key(cast(float, p[0]), p[1], directions, p[2], p[3]))
    assert by_tuples == sorted(positions, key=functools.cmp_to_key(compare))
