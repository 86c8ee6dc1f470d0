"""The SearchBackend contract, run against the in-memory fake, Tantivy and a real Elasticsearch.

Searches go through the service (`search_documents`), so what is checked is what the API returns.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from src.search.backends.base import IndexAction, SearchBackend
from src.search.errors import SearchUnavailable
from src.search.models import Document, SearchPage
from src.search.service import SearchOptions, SearchRequest, get_document, search_documents
from tests.conftest import load
from tests.fixtures.catalog import DOCS, SCHEMA

OPTIONS = SearchOptions(cursor_secret=b"contract-secret")
ALL_IDS = sorted(str(doc["id"]) for doc in DOCS)


async def run(backend: SearchBackend, q: str = "", *filters: str, **params: object) -> SearchPage:
    request = SearchRequest(q=q, filters=list(filters), **({"size": 50} | params))  # type: ignore[arg-type]
    return await search_documents(request, backend=backend, schema=SCHEMA, options=OPTIONS)


async def ids(backend: SearchBackend, q: str = "", *filters: str, **params: object) -> list[str]:
    return [hit["id"] for hit in (await run(backend, q, *filters, **params))["hits"]]


# --- typo tolerance ------------------------------------------------------------------------------


async def test_search_when_one_typo_in_four_letter_word_finds_it(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "tmix "))[:1] == ["tmux"]


async def test_search_when_transposition_counts_as_one_edit(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "tmxu "))[:1] == ["tmux"]


async def test_search_when_two_typos_in_four_letter_word_finds_nothing(catalog_backend: SearchBackend) -> None:
    assert "tmux" not in await ids(catalog_backend, "tmiz ")


async def test_search_when_three_letter_word_allows_no_typo(catalog_backend: SearchBackend) -> None:
    assert "vim" not in await ids(catalog_backend, "vym ")
    assert (await ids(catalog_backend, "vim "))[:1] == ["vim"]


async def test_search_when_two_typos_in_eight_letter_word_finds_it(catalog_backend: SearchBackend) -> None:
    found = await ids(catalog_backend, "dxtabasx ")
    assert {"postgresql", "postgis", "redis-server"} <= set(found)


async def test_search_when_two_typos_change_the_first_letter_finds_nothing(catalog_backend: SearchBackend) -> None:
    assert not {"postgresql", "postgis", "redis-server"} & set(await ids(catalog_backend, "ratabasx "))
    # one typo may be anywhere, the first letter too
    assert {"postgresql", "postgis", "redis-server"} <= set(await ids(catalog_backend, "ratabase "))


async def test_search_when_two_typos_in_five_letter_word_finds_nothing(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "edtro ") == []


async def test_search_when_package_name_misspelled_ranks_it_first(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "ngnix"))[0] == "nginx"
    assert (await ids(catalog_backend, "postgrsql"))[0] == "postgresql"
    assert (await ids(catalog_backend, "redis servr"))[0] == "redis-server"


# --- prefix, phrases, exclusions, normalisation ----------------------------------------------------


async def test_search_when_last_word_is_prefix_matches_completions(catalog_backend: SearchBackend) -> None:
    assert {"postgresql", "postgis"} <= set(await ids(catalog_backend, "postg"))


async def test_search_when_last_word_is_finished_does_not_complete(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "postg ") == []


async def test_search_when_phrase_requires_adjacent_words(catalog_backend: SearchBackend) -> None:
    assert set(await ids(catalog_backend, '"web server"')) == {"nginx", "apache2"}
    assert {"nginx", "apache2", "lighttpd"} <= set(await ids(catalog_backend, "web server "))


async def test_search_when_word_excluded_drops_documents(catalog_backend: SearchBackend) -> None:
    found = await ids(catalog_backend, "server -apache")
    assert "apache2" not in found
    assert {"nginx", "lighttpd"} <= set(found)


async def test_search_when_phrase_excluded_drops_documents(catalog_backend: SearchBackend) -> None:
    found = set(await ids(catalog_backend, 'server -"web server"'))
    assert "lighttpd" in found
    assert not {"nginx", "apache2"} & found


async def test_search_when_only_exclusions_matches_the_rest(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "-server") == sorted(
        set(ALL_IDS) - {"nginx", "apache2", "lighttpd"} - set(await ids(catalog_backend, "server "))
    )


async def test_search_when_accents_and_case_differ_still_matches(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "CRÈME ") == ["creme-brulee"]
    assert await ids(catalog_backend, "cafe ") == ["creme-brulee"]
    assert await ids(catalog_backend, "Dessért ") == ["creme-brulee"]


async def test_search_when_words_in_different_fields_all_required(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "network downloader ") == ["wget"]
    relaxed = await run(catalog_backend, "network editor ")  # no document has both: the last word is dropped
    assert relaxed["ignored_words"] == ["editor"]
    assert sorted(hit["id"] for hit in relaxed["hits"]) == ["redis-server", "wget"]


# --- filters ---------------------------------------------------------------------------------------


async def test_search_when_values_of_one_field_are_ored(catalog_backend: SearchBackend) -> None:
    found = await ids(catalog_backend, "", "category:web", "category:net")
    assert found == ["apache2", "curl", "lighttpd", "nginx", "wget"]


async def test_search_when_filters_on_two_fields_are_anded(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "", "category:web", "tags:http") == ["apache2", "nginx"]


async def test_search_when_filter_on_multi_valued_field(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "", "tags:cli") == ["curl", "htop", "tmux", "wget"]


async def test_search_when_integer_ranges(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "", "stock:[4 TO 5]") == ["htop", "lighttpd", "nginx", "tmux"]
    assert await ids(catalog_backend, "", "stock:{4 TO 10}") == ["i18n-tools", "lighttpd", "nginx", "redis-server"]
    assert await ids(catalog_backend, "", "stock:[100 TO *]") == ["curl", "wget"]
    assert await ids(catalog_backend, "", "stock:5") == ["lighttpd", "nginx"]


async def test_search_when_float_ranges(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "", "price:[* TO 1]") == ["curl", "emacs", "postgresql", "vim", "wget"]
    assert await ids(catalog_backend, "", "price:{0 TO 2}") == ["curl", "wget"]


async def test_search_when_date_range(catalog_backend: SearchBackend) -> None:
    found = await ids(catalog_backend, "", "released:[2023-01-01 TO 2023-12-31T23:59:59Z]")
    assert found == ["apache2", "emacs", "postgis", "vim"]


async def test_search_when_filter_and_query_combined(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "database ", "stock:[1 TO *]") == ["postgresql", "redis-server"] or set(
        await ids(catalog_backend, "database ", "stock:[1 TO *]")
    ) == {"postgresql", "redis-server"}


# --- facets, totals, sorting -----------------------------------------------------------------------


async def test_search_when_facets_count_values_by_count_then_value(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "", facets="category,stock")
    assert page["facets"]["category"] == [
        {"value": "database", "count": 3},
        {"value": "utils", "count": 3},
        {"value": "web", "count": 3},
        {"value": "editors", "count": 2},
        {"value": "net", "count": 2},
        {"value": "food", "count": 1},
    ]
    assert page["facets"]["stock"][:3] == [
        {"value": 1, "count": 2},
        {"value": 4, "count": 2},
        {"value": 5, "count": 2},
    ]


async def test_search_when_facets_follow_filters(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "", "category:web", facets="tags")
    assert page["facets"]["tags"] == [{"value": "server", "count": 3}, {"value": "http", "count": 2}]


async def test_search_when_total_is_exact(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "", size=2)
    assert page["total"] == {"value": len(DOCS), "exact": True}
    assert len(page["hits"]) == 2


async def test_search_when_sorted_ascending_ties_by_id(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "", sort="stock") == [
        "postgis", "emacs", "vim", "creme-brulee", "apache2", "htop", "tmux",
        "lighttpd", "nginx", "i18n-tools", "redis-server", "postgresql", "curl", "wget",
    ]  # fmt: skip


async def test_search_when_sorted_descending_ties_by_id(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend, "", sort="-stock") == [
        "curl", "wget", "postgresql", "redis-server", "i18n-tools", "lighttpd", "nginx",
        "htop", "tmux", "apache2", "creme-brulee", "emacs", "vim", "postgis",
    ]  # fmt: skip


async def test_search_when_sorted_field_missing_sorts_last(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "", sort="-price"))[-1] == "creme-brulee"
    assert (await ids(catalog_backend, "", sort="price"))[-1] == "creme-brulee"
    assert (await ids(catalog_backend, "", sort="released"))[-2:] == ["creme-brulee", "i18n-tools"]


async def test_search_when_sorted_by_field_has_no_score(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "server ", sort="name")
    assert [hit["score"] for hit in page["hits"]] == [None] * len(page["hits"])
    relevance = await run(catalog_backend, "server ")
    assert all(isinstance(hit["score"], float) and hit["score"] > 0 for hit in relevance["hits"])


async def test_search_when_match_all_orders_by_id(catalog_backend: SearchBackend) -> None:
    assert await ids(catalog_backend) == ALL_IDS


# --- paging ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "filters", "sort"),
    [
        ("", [], None),
        ("server ", [], None),
        ("s", [], None),
        ("", [], "stock"),
        ("", [], "-price"),
        ("", ["tags:http"], "-released"),
        ("", [], "-category"),
    ],
)
async def test_search_when_paging_with_cursor_visits_each_hit_once_in_order(
    catalog_backend: SearchBackend, q: str, filters: list[str], sort: str | None
) -> None:
    expected = await ids(catalog_backend, q, *filters, sort=sort)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(expected) + 2):
        page = await search_documents(
            SearchRequest(q=q, filters=filters, sort=sort, size=3, cursor=cursor),
            backend=catalog_backend,
            schema=SCHEMA,
            options=OPTIONS,
        )
        seen.extend(hit["id"] for hit in page["hits"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert expected
    assert seen == expected


# --- documents and writes --------------------------------------------------------------------------


async def test_get_when_present_returns_stored_document(catalog_backend: SearchBackend) -> None:
    stored = await catalog_backend.get("nginx")
    assert stored is not None
    assert stored["title"] == "Small, fast web server"
    assert stored["secret"] == "s1"
    projected = await get_document("nginx", backend=catalog_backend, schema=SCHEMA)
    assert projected is not None
    assert "secret" not in projected
    assert projected["id"] == "nginx"


async def test_get_when_absent_returns_none(catalog_backend: SearchBackend) -> None:
    assert await catalog_backend.get("no-such-package") is None
    assert await get_document("no-such-package", backend=catalog_backend, schema=SCHEMA) is None


async def test_bulk_when_upsert_and_delete_change_results(catalog_backend: SearchBackend) -> None:
    changed = {**DOCS[0], "title": "Quantum teleporter", "body": "no longer about the web"}
    results = await catalog_backend.bulk(
        [IndexAction(op="upsert", doc_id="nginx", document=changed), IndexAction(op="delete", doc_id="wget")]
    )
    assert [r.ok for r in results] == [True, True]
    await catalog_backend.refresh()
    assert await ids(catalog_backend, "teleporter ") == ["nginx"]
    assert "nginx" not in await ids(catalog_backend, '"web server"')
    assert await catalog_backend.get("wget") is None
    assert await catalog_backend.count() == len(DOCS) - 1


async def test_bulk_when_document_invalid_reports_it_and_writes_the_rest(catalog_backend: SearchBackend) -> None:
    results = await catalog_backend.bulk(
        [
            IndexAction(op="upsert", doc_id="bad", document={"id": "bad", "stock": "many"}),
            IndexAction(op="upsert", doc_id="good", document={"id": "good", "name": "goodpkg"}),
        ]
    )
    assert [(r.doc_id, r.ok, r.retryable) for r in results] == [("bad", False, False), ("good", True, False)]
    assert results[0].error is not None
    assert "stock" in results[0].error
    await catalog_backend.refresh()
    assert await ids(catalog_backend, "goodpkg ") == ["good"]


async def test_bulk_when_older_version_arrives_late_keeps_newer(empty_backend: SearchBackend) -> None:
    index = await empty_backend.create_index()
    await empty_backend.point_alias(index)
    newer = IndexAction(op="upsert", doc_id="a", document={"id": "a", "name": "newer"}, version=5)
    older = IndexAction(op="upsert", doc_id="a", document={"id": "a", "name": "older"}, version=3)
    assert [r.ok for r in await empty_backend.bulk([newer])] == [True]
    assert [r.ok for r in await empty_backend.bulk([older])] == [True]
    await empty_backend.refresh()
    stored = await empty_backend.get("a")
    assert stored is not None
    assert stored["name"] == "newer"


async def test_optimize_when_index_written_in_batches_keeps_every_document_searchable(
    empty_backend: SearchBackend,
) -> None:
    index = await empty_backend.create_index()
    for batch in (DOCS[:4], DOCS[4:8], DOCS[8:]):
        await empty_backend.bulk(
            [IndexAction(op="upsert", doc_id=str(d["id"]), document=d) for d in batch], index=index
        )
        await empty_backend.refresh(index)
    await empty_backend.optimize(index)
    await empty_backend.point_alias(index)
    assert await ids(empty_backend) == ALL_IDS
    assert (await ids(empty_backend, "tmix "))[:1] == ["tmux"]
    await empty_backend.bulk([IndexAction(op="delete", doc_id="tmux")], index=index)  # still writable
    await empty_backend.refresh(index)
    assert "tmux" not in await ids(empty_backend)


async def test_optimize_when_index_missing_raises_unavailable(empty_backend: SearchBackend) -> None:
    with pytest.raises(SearchUnavailable):
        await empty_backend.optimize("contract-no-such-index")


async def test_point_alias_when_swapped_readers_see_new_index_only_after(catalog_backend: SearchBackend) -> None:
    old = await catalog_backend.current_index()
    new = await catalog_backend.create_index()
    await catalog_backend.bulk(
        [IndexAction(op="upsert", doc_id="solo", document={"id": "solo", "name": "solo"})], index=new
    )
    await catalog_backend.refresh(new)
    assert await catalog_backend.count() == len(DOCS)
    assert await catalog_backend.count(new) == 1
    await catalog_backend.point_alias(new)
    assert await catalog_backend.current_index() == new
    assert await ids(catalog_backend) == ["solo"]
    assert old in await catalog_backend.list_indices()
    with pytest.raises(ValueError, match="alias points at it"):
        await catalog_backend.drop_index(new)
    assert old is not None
    await catalog_backend.drop_index(old)
    assert await catalog_backend.list_indices() == [new]


# --- build marks ---------------------------------------------------------------------------------


async def test_create_index_when_created_is_marked_building_until_the_alias_moves(empty_backend: SearchBackend) -> None:
    before = time.time()
    index = await empty_backend.create_index()
    marks = await empty_backend.building_indices()
    assert list(marks) == [index]
    assert before <= marks[index] <= time.time()
    await empty_backend.point_alias(index)
    assert await empty_backend.building_indices() == {}


async def test_heartbeat_when_building_moves_the_heartbeat_forward(empty_backend: SearchBackend) -> None:
    index = await empty_backend.create_index()
    first = (await empty_backend.building_indices())[index]
    await empty_backend.heartbeat(index)
    second = (await empty_backend.building_indices())[index]
    assert first <= second <= time.time()


async def test_mark_built_when_called_clears_the_mark_and_heartbeat_sets_it_again(empty_backend: SearchBackend) -> None:
    built, other = await empty_backend.create_index(), await empty_backend.create_index()
    await empty_backend.mark_built(built)
    assert list(await empty_backend.building_indices()) == [other]
    await empty_backend.mark_built(built)  # no mark: nothing happens
    await empty_backend.heartbeat(built)
    assert sorted(await empty_backend.building_indices()) == sorted([built, other])
    await empty_backend.drop_index(other)
    assert list(await empty_backend.building_indices()) == [built]
    assert await empty_backend.list_indices() == [built]


async def test_search_when_highlight_requested_marks_matches(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "ngnix revrse", highlight=True)
    assert page["hits"][0]["id"] == "nginx"
    assert page["hits"][0]["highlights"]["body"] == [
        "<mark>nginx</mark> is a high-performance HTTP server and <mark>reverse</mark> proxy"
    ]
    assert page["hits"][0]["highlights"]["name"] == ["<mark>nginx</mark>"]


# --- relaxation and whole-name matching (the query plan) -------------------------------------------


async def test_search_when_a_word_matches_nothing_drops_it_and_says_so(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "nginx zzzqqq ")
    assert [hit["id"] for hit in page["hits"]][:1] == ["nginx"]
    assert page["ignored_words"] == ["zzzqqq"]
    full = await run(catalog_backend, "web server ")
    assert full["ignored_words"] == []


async def test_search_when_relaxing_drops_words_from_the_end(catalog_backend: SearchBackend) -> None:
    page = await run(catalog_backend, "web server qqqxxx wwwzzz ")
    assert page["ignored_words"] == ["qqqxxx", "wwwzzz"]
    assert {"nginx", "apache2", "lighttpd"} <= {hit["id"] for hit in page["hits"]}
    assert (await run(catalog_backend, "qqqxxx wwwzzz "))["hits"] == []


async def test_search_when_a_name_is_typed_without_its_separator_finds_it(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "redisserver "))[:1] == ["redis-server"]
    assert (await ids(catalog_backend, "i18ntools "))[:1] == ["i18n-tools"]


async def test_search_when_a_name_is_split_finds_it(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "light tpd "))[:1] == ["lighttpd"]
    assert (await ids(catalog_backend, "post gis "))[:1] == ["postgis"]


# --- synonyms (from the schema) -----------------------------------------------------------------


async def test_search_when_word_has_equivalent_synonym_finds_its_partner(catalog_backend: SearchBackend) -> None:
    assert (await ids(catalog_backend, "pg "))[:1] == ["postgresql"]


async def test_search_when_synonym_is_one_way_finds_only_in_that_direction(catalog_backend: SearchBackend) -> None:
    assert {"nginx", "lighttpd"} <= set(await ids(catalog_backend, "httpd "))
    assert "lighttpd" not in await ids(catalog_backend, "nginx ")


async def test_search_when_literal_word_and_synonym_both_match_the_literal_ranks_first(
    catalog_backend: SearchBackend,
) -> None:
    found = await ids(catalog_backend, "postgresql ")
    assert found[0] == "postgresql"


async def test_search_when_best_hit_matched_a_corrected_word_suggests_it(catalog_backend: SearchBackend) -> None:
    assert (await run(catalog_backend, "postgrsql "))["suggestion"] == "postgresql"
    assert (await run(catalog_backend, "redis servr "))["suggestion"] == "redis server"
    assert (await run(catalog_backend, "postgresql "))["suggestion"] is None
    assert (await run(catalog_backend, "postg"))["suggestion"] is None  # a prefix while typing is no typo


# --- ranking rules on hand-made documents ------------------------------------------------------------

RANKING_DOCS: list[Document] = [
    {"id": "r-exact", "name": "r-exact", "title": "colected items", "body": "a list"},
    {"id": "r-one-typo", "name": "r-one-typo", "title": "collected items", "body": "a list"},
    {"id": "r-two-typos", "name": "r-two-typos", "title": "corrected items", "body": "a list"},
    {"id": "w-both", "name": "w-both", "title": "quiet fan", "body": "a list"},
    {"id": "w-one", "name": "w-one", "title": "quiet pump", "body": "a list"},
]


async def test_search_when_ranking_exact_beats_one_typo_beats_two(empty_backend: SearchBackend) -> None:
    await load(empty_backend, RANKING_DOCS)
    assert (await ids(empty_backend, "colected "))[:3] == ["r-exact", "r-one-typo", "r-two-typos"]
    assert (await ids(empty_backend, "collected "))[:2] == ["r-one-typo", "r-exact"]


async def test_search_when_ranking_every_word_required_then_relaxed(empty_backend: SearchBackend) -> None:
    await load(empty_backend, RANKING_DOCS)
    assert await ids(empty_backend, "quiet fan ") == ["w-both"]
    relaxed = await run(empty_backend, "quiet zzzz ")
    assert relaxed["ignored_words"] == ["zzzz"]
    assert sorted(hit["id"] for hit in relaxed["hits"]) == ["w-both", "w-one"]


async def test_search_when_schema_has_a_ranking_rule_orders_match_all_by_it_then_id(
    catalog_backend: SearchBackend,
) -> None:
    ranked = dataclasses.replace(SCHEMA, custom=(("stock", True),))
    page = await search_documents(SearchRequest(q="", size=50), backend=catalog_backend, schema=ranked, options=OPTIONS)
    assert [hit["id"] for hit in page["hits"]] == await ids(catalog_backend, "", sort="-stock")
    assert [hit["id"] for hit in page["hits"]][:2] == ["curl", "wget"]  # stock 100, ties by id


async def test_search_when_words_are_near_each_other_ranks_that_document_first(empty_backend: SearchBackend) -> None:
    await load(
        empty_backend,
        [
            {"id": "p-far", "name": "p-far", "title": "quiet blue green red fan", "body": "a list"},
            {"id": "p-near", "name": "p-near", "title": "quiet fan blue green red", "body": "a list"},
        ],
    )
    assert await ids(empty_backend, "quiet fan ") == ["p-near", "p-far"]  # without proximity: a tie, by id
    assert await ids(empty_backend, "fan quiet ") == ["p-near", "p-far"]  # swapped words are still near
