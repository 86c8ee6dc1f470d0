"""One page of hits, and the facet counts, read from a Tantivy searcher.

A page is a window of the engine's own order, re-sorted in Python (sorting.py) and grown until the page
is certain: hits sharing the window's last key may continue past it. Relevance pages sort one tuple per
hit in C (`row_key`); deep pages in id order come from the id term dictionary instead of a sorted top-k.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from typing import cast

import orjson
import tantivy

from src.search.backends.base import BackendHit
from src.search.backends.tantivy.schema import ID_HIGH, ID_LOW, id_key
from src.search.backends.tantivy.sorting import (
    Entry,
    Position,
    compare_positions,
    order_entries,
    position_of,
    row_key,
    tied_keys,
)
from src.search.models import Document, JSONScalar
from src.search.query import BackendQuery, SortSpec
from src.search.schema import FieldSpec, IndexSchema

_DEEP_PAGE_OFFSET = 500
"""From this depth, id-ordered pages come from the id term dictionary instead of a sorted top-k."""


def _id_keys(
    searcher: tantivy.Searcher,
    addresses: list[tantivy.DocAddress],
    after: Position | None,
    ids: dict[tuple[int, int], str],
) -> list[tuple[tuple[int, int], str | None]]:
    """(id key, id or None) of each address: the key from the fast columns, the id (a stored read, remembered
    in `ids`) only where another of them, or the previous page's last hit, has the same key. Many hits can
    share a score (a common word matched by a typo), few ids their first 16 bytes."""
    if not addresses:
        return []
    highs = searcher.fast_field_values(ID_HIGH, addresses)
    lows = searcher.fast_field_values(ID_LOW, addresses)
    keys = [(int(cast(int, high)), int(cast(int, low))) for high, low in zip(highs, lows, strict=True)]
    seen = collections.Counter(keys)
    if after is not None and after[2] is not None:
        seen[after[2]] += 1
    found: list[tuple[tuple[int, int], str | None]] = []
    for address, key in zip(addresses, keys, strict=True):
        doc_id = None
        if seen[key] > 1:
            slot = (address.segment_ord, address.doc)
            doc_id = ids.get(slot)
            if doc_id is None:
                doc_id = ids[slot] = cast(str, searcher.doc(address).get_first("id"))
        found.append((key, doc_id))
    return found


def hit(searcher: tantivy.Searcher, entry: Entry) -> BackendHit:
    """The page's hit for `entry`: its document, score and sort values (the next cursor's)."""
    stored = searcher.doc(entry.address)  # one stored read gives the document and, if not known yet, its id
    doc_id = entry.id if entry.id is not None else cast(str, stored.get_first("id"))
    return BackendHit(
        id=doc_id,
        score=entry.score,
        sort_values=(entry.key, *entry.tie, doc_id),
        document=cast(Document, orjson.loads(cast(bytes, stored.get_first("_source")))),
    )


def search_page(
    searcher: tantivy.Searcher,
    tquery: tantivy.Query,
    query: BackendQuery,
    schema: IndexSchema,
    tschema: tantivy.Schema,
) -> tuple[list[Entry], int]:
    """One page in the query's order (relevance by `_relevance_page`, id order from the id terms when deep,
    a field's order otherwise), and the number of matches."""
    sort = query.sort
    # Relevance over match-all is a constant score: order by the id column, which needs no stored reads.
    by_id = sort.field is None and query.query.is_match_all and not schema.custom
    order_field = "id" if by_id else (f"v_{sort.field.name}" if sort.field else None)
    descending = sort.descending and not by_id
    # Relevance ties: the custom ranking fields' exact values, then the id (as the clusters' sort).
    ties = schema.custom if sort.field is None and not by_id else ()
    tie_order = tuple(tie_descending for _, tie_descending in ties)
    after: Position | None = None
    if query.after:
        after_id = str(query.after[-1])
        after = (query.after[0], tuple(query.after[1:-1]), id_key(after_id), after_id)
    if by_id and query.offset >= _DEEP_PAGE_OFFSET and after is not None:
        return _page_by_id_terms(searcher, tquery, query.limit, cast(str, after[3]), tschema)
    if sort.field is None and not by_id:
        return _relevance_page(searcher, tquery, query, ties, after)
    window = max(query.offset + query.limit * 3, 32)
    ids: dict[tuple[int, int], str] = {}  # stored-id reads survive window growth
    while True:
        result = searcher.search(
            tquery,
            limit=window,
            count=True,
            order_by_field=order_field,
            order=tantivy.Order.Desc if descending else tantivy.Order.Asc,
        )
        total = int(getattr(result, "count", 0) or 0)  # `count` is missing from tantivy's stubs
        entries = [_entry(raw_key, address, sort, by_id) for raw_key, address in result.hits]
        if not by_id:
            tied = tied_keys([entry.key for entry in entries], after)
            entries = _with_id_keys(searcher, entries, tied, after, ids)
            if ties:
                entries = _with_ties(searcher, entries, ties, only=tied)
        exhausted = len(result.hits) < window
        boundary = entries[-1].key if entries and not exhausted else None
        ordered = order_entries(entries, descending, tie_order)
        if after is not None:
            ordered = [e for e in ordered if compare_positions(position_of(e), after, descending, tie_order) > 0]
        if not exhausted and not by_id:
            # Hits sharing the window's last key may continue past the window: only keys strictly
            # before it are certain to be complete.
            ordered = [e for e in ordered if e.key != boundary]
        if exhausted or len(ordered) >= query.limit:
            page = ordered[: query.limit]
            # A page's last hit carries its custom values in its sort values (the next cursor).
            return (_with_ties(searcher, page, ties, only=None) if ties else page), total
        window *= 4


def _relevance_page(
    searcher: tantivy.Searcher,
    tquery: tantivy.Query,
    query: BackendQuery,
    ties: tuple[tuple[str, bool], ...],
    after: Position | None,
) -> tuple[list[Entry], int]:
    """A page in relevance order: score, then the custom ranking values, then the id.

    The ranking rules make equal scores common (a typo of a common word matches thousands of names of
    one length, and they share every rule), and such a group may start high on the first page. Each hit
    becomes one tuple whose plain order is the page's order, sorted in C: the group's hits cost a fast
    column read each, a stored read only for ids alike in their first 16 bytes.
    """
    directions = tuple(descending for _, descending in ties)
    window = max(query.offset + query.limit * 3, 32)
    ids: dict[tuple[int, int], str] = {}
    after_key = None if after is None else row_key(cast(float, after[0]), after[1], directions, after[2], after[3])
    while True:
        result = searcher.search(tquery, limit=window, count=True)
        total = int(getattr(result, "count", 0) or 0)  # `count` is missing from tantivy's stubs
        hits = result.hits
        tied = tied_keys([score for score, _ in hits], after)
        exhausted = len(hits) < window
        if not tied:
            # Every score in the window is its own (and no cursor): Tantivy's order is the page's, and only
            # the page's hits become entries. The last score may continue past the window: not certain.
            certain = hits if exhausted else hits[:-1]
            if exhausted or len(certain) >= query.limit:
                page = [Entry(key=s, id=None, score=s, address=at) for s, at in certain[: query.limit]]
                return (_with_ties(searcher, page, ties, only=None) if ties else page), total
            window *= 4
            continue
        rows = _rows(searcher, hits, tied, ties, directions, after, ids)
        boundary = hits[-1][0] if hits and not exhausted else None
        rows.sort(key=lambda row: row[0])
        if after_key is not None:
            rows = [row for row in rows if row[0] > after_key]
        if not exhausted:
            # Hits sharing the window's last score may continue past the window: only scores strictly
            # above it are certain to be complete.
            rows = [row for row in rows if row[1].key != boundary]
        if exhausted or len(rows) >= query.limit:
            page = [entry for _, entry in rows[: query.limit]]
            return (_with_ties(searcher, page, ties, only=None) if ties else page), total
        # A window mostly made of the boundary's score is inside a large group: grow faster.
        window *= 16 if len(rows) < len(hits) // 2 else 4


def _rows(
    searcher: tantivy.Searcher,
    hits: list[tuple[float, tantivy.DocAddress]],
    tied: set[object],
    ties: tuple[tuple[str, bool], ...],
    directions: tuple[bool, ...],
    after: Position | None,
    ids: dict[tuple[int, int], str],
) -> list[tuple[tuple[object, ...], Entry]]:
    """(sort key, entry) of every hit: a hit whose score no other shares is placed by its score alone; the
    others read their custom values and id keys from the fast columns, and their ids where those collide."""
    positions = [i for i, (score, _) in enumerate(hits) if score in tied]
    addresses = [hits[i][1] for i in positions]
    columns = [searcher.fast_field_values(f"v_{name}", addresses) for name, _ in ties] if addresses else []
    rows: list[tuple[tuple[object, ...], Entry]] = [
        ((-score,), Entry(key=score, id=None, score=score, address=address)) for score, address in hits
    ]
    for row, (i, (key, doc_id)) in enumerate(zip(positions, _id_keys(searcher, addresses, after, ids), strict=True)):
        score, address = hits[i]
        tie = tuple(cast(JSONScalar, column[row]) for column in columns)
        entry = Entry(key=score, id=doc_id, score=score, address=address, tie=tie, id_key=key)
        rows[i] = (row_key(score, tie, directions, key, doc_id), entry)
    return rows


def _with_id_keys(
    searcher: tantivy.Searcher,
    entries: list[Entry],
    tied: set[object],
    after: Position | None,
    ids: dict[tuple[int, int], str],
) -> list[Entry]:
    """`entries` whose key is shared with their id keys and, where those collide, ids (`_id_keys`)."""
    wanted = [i for i, entry in enumerate(entries) if entry.key in tied]
    if not wanted:
        return entries
    found = list(entries)
    read = _id_keys(searcher, [entries[i].address for i in wanted], after, ids)
    for i, (key, doc_id) in zip(wanted, read, strict=True):
        found[i] = dataclasses.replace(entries[i], id_key=key, id=doc_id)
    return found


def _with_ties(
    searcher: tantivy.Searcher, entries: list[Entry], ties: tuple[tuple[str, bool], ...], only: set[object] | None
) -> list[Entry]:
    """`entries` with their custom ranking values read (from the fast columns) where not read yet: every
    one, or only those whose key is in `only`."""
    wanted = [i for i, e in enumerate(entries) if not e.tie and (only is None or e.key in only)]
    if not wanted:
        return entries
    addresses = [entries[i].address for i in wanted]
    columns = [searcher.fast_field_values(f"v_{name}", addresses) for name, _ in ties]
    found = list(entries)
    for row, i in enumerate(wanted):
        tie = tuple(cast(JSONScalar, column[row]) for column in columns)
        found[i] = dataclasses.replace(entries[i], tie=tie)
    return found


def _page_by_id_terms(
    searcher: tantivy.Searcher, tquery: tantivy.Query, limit: int, after_id: str, tschema: tantivy.Schema
) -> tuple[list[Entry], int]:
    """A deep page in id order from the id term dictionary, which Tantivy walks in Rust.

    Ordering a top-k by a text fast field costs per hit up to offset + k; listing the matching ids
    costs per matching document but far less each, so it wins on deep pages.
    """
    matching = sorted(term for term, count in searcher.terms_with_prefix("id", "", filter_query=tquery) if count)
    position = bisect.bisect_right(matching, after_id)
    page_ids = matching[position : position + limit]
    if not page_ids:
        return [], len(matching)
    found = searcher.search(tantivy.Query.term_set_query(tschema, "id", page_ids), limit=len(page_ids))
    by_id = {cast(str, searcher.doc(address).get_first("id")): address for _, address in found.hits}
    entries = [Entry(key=1.0, id=doc_id, score=1.0, address=by_id[doc_id]) for doc_id in page_ids]
    return entries, len(matching)


def _entry(raw_key: object, address: tantivy.DocAddress, sort: SortSpec, by_id: bool) -> Entry:
    """A hit as the collector gave it (its id key and id are read later, where they order something)."""
    if by_id:
        return Entry(key=1.0, id=cast(str, raw_key), score=1.0, address=address)
    if sort.field is None:
        return Entry(key=cast(float, raw_key), id=None, score=cast(float, raw_key), address=address)
    return Entry(key=cast(JSONScalar, raw_key), id=None, score=None, address=address)


def facet_counts(
    searcher: tantivy.Searcher, tquery: tantivy.Query, facets: tuple[FieldSpec, ...], size: int
) -> dict[str, list[tuple[JSONScalar, int]]]:
    """Each facet's value counts among the matches: `size` of them, by count descending, then value."""
    if not facets:
        return {}
    # Ask for more buckets than shown so the count-then-value order below decides the cut, as in ES.
    spec = {f.name: {"terms": {"field": f"v_{f.name}", "size": size + 100}} for f in facets}
    raw = cast(dict[str, dict[str, list[dict[str, object]]]], searcher.aggregate(tquery, spec))
    result: dict[str, list[tuple[JSONScalar, int]]] = {}
    for field in facets:
        buckets = [
            (_facet_key(field, bucket["key"]), int(cast(int, bucket["doc_count"])))
            for bucket in raw.get(field.name, {}).get("buckets", [])
        ]
        buckets.sort(key=lambda item: (-item[1], item[0]))
        result[field.name] = buckets[:size]
    return result


def _facet_key(field: FieldSpec, key: object) -> JSONScalar:
    if field.type == "integer" and isinstance(key, float) and key.is_integer():
        return int(key)
    return cast(JSONScalar, key)
