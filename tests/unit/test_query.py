"""Unit tests of src.search.query: parsing of q, filter, facets and sort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from src.search.errors import InvalidParameter
from src.search.query import (
    ParsedQuery,
    RangeFilter,
    SortSpec,
    Term,
    ValueFilter,
    coerce_value,
    parse_facets,
    parse_filters,
    parse_q,
    parse_sort,
)
from src.search.schema import FieldSpec, IndexSchema, parse_schema

SCHEMA: IndexSchema = parse_schema(
    {
        "name": "test",
        "version": 1,
        "fields": {
            "title": {"type": "text", "searchable": True, "boost": 2},
            "name": {"type": "keyword", "searchable": True, "filterable": True, "sortable": True},
            "tags": {"type": "keyword", "multi": True, "filterable": True, "facetable": True},
            "section": {"type": "keyword", "facetable": True},
            "size": {"type": "integer", "filterable": True, "facetable": True, "sortable": True},
            "rating": {"type": "float", "filterable": True, "sortable": True},
            "published": {"type": "date", "filterable": True, "sortable": True},
            "note": {"type": "keyword"},
        },
    }
)


def _field(name: str) -> FieldSpec:
    spec = SCHEMA.field(name)
    assert spec is not None
    return spec


NAME, TAGS, SECTION, SIZE, RATING, PUBLISHED, NOTE = map(
    _field, ["name", "tags", "section", "size", "rating", "published", "note"]
)


def _q(q: str, *, max_terms: int = 10) -> ParsedQuery:
    return parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=max_terms)


def _filter_error(raw: list[str]) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        parse_filters(raw, SCHEMA)
    assert caught.value.parameter == "filter"
    return caught.value


# --- parse_q -------------------------------------------------------------------------------------


def test_parse_q_single_word_is_prefix_while_typing() -> None:
    assert _q("nginx") == ParsedQuery(
        terms=(Term(text="nginx", edits=1, prefix=True),),
        whole=Term(text="nginx", edits=1, prefix=True),
    )


def test_parse_q_trailing_whitespace_closes_last_word() -> None:
    assert _q("nginx ") == ParsedQuery(
        terms=(Term(text="nginx", edits=1, prefix=False),),
        whole=Term(text="nginx", edits=1, prefix=False),
    )


def test_parse_q_trailing_tab_closes_last_word() -> None:
    assert _q("nginx\t").terms == (Term(text="nginx", edits=1, prefix=False),)


@pytest.mark.parametrize(
    ("word", "edits"),
    [("a", 0), ("abc", 0), ("abcd", 1), ("abcdefg", 1), ("abcdefgh", 2), ("abcdefghijklmnop", 2)],
)
def test_parse_q_typo_budget_by_length(word: str, edits: int) -> None:
    assert _q(word + " ").terms == (Term(text=word, edits=edits, prefix=False),)


def test_parse_q_typo_budget_uses_given_thresholds() -> None:
    parsed = parse_q("ab abc ", one_edit_min_chars=2, two_edits_min_chars=3, max_terms=10)
    assert parsed.terms == (Term(text="ab", edits=1, prefix=False), Term(text="abc", edits=2, prefix=False))


def test_parse_q_prefix_only_on_last_word() -> None:
    parsed = _q("web serv")
    assert parsed.terms == (Term(text="web", edits=0, prefix=False), Term(text="serv", edits=1, prefix=True))
    assert parsed.whole == Term(text="web serv", edits=2, prefix=True)


def test_parse_q_words_are_normalised() -> None:
    parsed = _q("  Crème   BRÛLÉE ")
    assert parsed.terms == (Term(text="creme", edits=1, prefix=False), Term(text="brulee", edits=1, prefix=False))
    assert parsed.whole == Term(text="creme brulee", edits=2, prefix=False)


def test_parse_q_hyphenated_word_gives_each_token() -> None:
    parsed = _q("foo-bar")
    assert parsed.terms == (Term(text="foo", edits=0, prefix=False), Term(text="bar", edits=0, prefix=True))
    assert parsed.whole == Term(text="foo bar", edits=1, prefix=True)


def test_parse_q_trailing_punctuation_keeps_prefix() -> None:
    assert _q("nginx!").terms == (Term(text="nginx", edits=1, prefix=True),)


def test_parse_q_phrase() -> None:
    parsed = _q('"Hello World" nginx')
    assert parsed == ParsedQuery(
        terms=(Term(text="nginx", edits=1, prefix=True),),
        phrases=(("hello", "world"),),
        whole=Term(text="nginx", edits=1, prefix=True),
    )
    assert parsed.is_match_all is False


def test_parse_q_phrase_after_last_word_closes_it() -> None:
    parsed = _q('nginx "hello world"')
    assert parsed.terms == (Term(text="nginx", edits=1, prefix=False),)
    assert parsed.phrases == (("hello", "world"),)
    assert parsed.whole == Term(text="nginx", edits=1, prefix=False)


def test_parse_q_unclosed_quote_is_phrase_to_the_end() -> None:
    parsed = _q('nginx "hello wor')
    assert parsed.terms == (Term(text="nginx", edits=1, prefix=False),)
    assert parsed.phrases == (("hello", "wor"),)


def test_parse_q_phrase_only_is_not_match_all() -> None:
    parsed = _q('"web server"')
    assert parsed == ParsedQuery(phrases=(("web", "server"),))
    assert parsed.whole is None
    assert parsed.is_match_all is False


def test_parse_q_exclusion() -> None:
    parsed = _q("nginx -apache")
    assert parsed == ParsedQuery(
        terms=(Term(text="nginx", edits=1, prefix=False),),
        excluded_terms=("apache",),
        whole=Term(text="nginx", edits=1, prefix=False),
    )


def test_parse_q_exclusion_of_hyphenated_word_becomes_excluded_phrase() -> None:
    parsed = _q("-foo-bar")
    assert parsed == ParsedQuery(excluded_phrases=(("foo", "bar"),))
    assert parsed.is_match_all is True


def test_parse_q_excluded_quoted_phrase() -> None:
    assert _q('-"Foo Bar" baz') == ParsedQuery(
        terms=(Term(text="baz", edits=0, prefix=True),),
        excluded_phrases=(("foo", "bar"),),
        whole=Term(text="baz", edits=0, prefix=True),
    )


def test_parse_q_excluded_single_word_phrase_is_excluded_term() -> None:
    assert _q('-"Apache"') == ParsedQuery(excluded_terms=("apache",))


def test_parse_q_exclusions_only_is_match_all() -> None:
    parsed = _q("-apache -lighttpd")
    assert parsed == ParsedQuery(excluded_terms=("apache", "lighttpd"))
    assert parsed.is_match_all is True


def test_parse_q_hyphen_inside_word_is_not_exclusion() -> None:
    assert _q("x-y ").excluded_terms == ()
    assert _q("x-y ").terms == (Term(text="x", edits=0, prefix=False), Term(text="y", edits=0, prefix=False))


@pytest.mark.parametrize("q", ["", "   ", "- -- !!!", '""', '-""', "_"])
def test_parse_q_nothing_searchable_is_match_all(q: str) -> None:
    parsed = _q(q)
    assert parsed == ParsedQuery()
    assert parsed.is_match_all is True


def test_parse_q_dangling_minus_closes_last_word() -> None:
    assert _q("nginx -").terms == (Term(text="nginx", edits=1, prefix=False),)


def test_parse_q_at_max_terms_is_allowed() -> None:
    assert len(_q('a "b c" -d', max_terms=4).terms) == 1


@pytest.mark.parametrize(
    ("q", "words", "truncated"),
    [
        ("a b c d", ["a", "b", "c"], ("d",)),
        ('a "b c" d', ["a"], ("d",)),
        ("a b -c -d", ["a", "b"], ("-d",)),
        ("a b c-d-e f", ["a", "b", "c"], ("d", "e", "f")),
        ("a-b-c-d", ["a", "b", "c"], ("d",)),
        ("a b -c-d -e", ["a", "b"], ("-c-d", "-e")),
        ('a b "c d e"', ["a", "b"], ('"c d e"',)),
    ],
)
def test_parse_q_when_over_max_terms_keeps_the_first_words(
    q: str, words: list[str], truncated: tuple[str, ...]
) -> None:
    parsed = _q(q, max_terms=3)
    assert [term.text for term in parsed.terms] == words
    assert parsed.truncated == truncated
    assert not any(term.prefix for term in parsed.terms)  # the word being typed was cut off


def test_parse_q_when_excluded_phrase_is_over_max_terms_leaves_it_out() -> None:
    parsed = _q('-"a b c d e f"', max_terms=3)
    assert parsed.excluded_phrases == ()
    assert parsed.truncated == ('-"a b c d e f"',)


# --- parse_filters -------------------------------------------------------------------------------


def test_parse_filters_empty() -> None:
    assert parse_filters([], SCHEMA) == ()


def test_parse_filters_groups_values_of_one_field_sorted_by_field() -> None:
    assert parse_filters(["tags:web", "size:5", "tags:net", "tags:web"], SCHEMA) == (
        ValueFilter(field=SIZE, values=(5,)),
        ValueFilter(field=TAGS, values=("web", "net")),
    )


def test_parse_filters_strips_whitespace_around_name_and_value() -> None:
    assert parse_filters([" tags :  web  "], SCHEMA) == (ValueFilter(field=TAGS, values=("web",)),)


def test_parse_filters_quoted_values() -> None:
    assert parse_filters(['tags:"web server"', 'size:"42"', 'name:"a:b"'], SCHEMA) == (
        ValueFilter(field=NAME, values=("a:b",)),
        ValueFilter(field=SIZE, values=(42,)),
        ValueFilter(field=TAGS, values=("web server",)),
    )


def test_parse_filters_single_quote_char_is_kept() -> None:
    assert parse_filters(['tags:"'], SCHEMA) == (ValueFilter(field=TAGS, values=('"',)),)


def test_parse_filters_value_keeps_later_colons() -> None:
    assert parse_filters(["published:2024-01-01T10:30:00Z"], SCHEMA) == (
        ValueFilter(field=PUBLISHED, values=(datetime(2024, 1, 1, 10, 30, tzinfo=UTC),)),
    )


def test_parse_filters_float_value() -> None:
    assert parse_filters(["rating:4.5", "rating:3"], SCHEMA) == (ValueFilter(field=RATING, values=(4.5, 3.0)),)


def test_parse_filters_inclusive_range() -> None:
    assert parse_filters(["size:[1 TO 10]"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=1, upper=10, include_lower=True, include_upper=True),
    )


def test_parse_filters_exclusive_range() -> None:
    assert parse_filters(["size:{1 TO 10}"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=1, upper=10, include_lower=False, include_upper=False),
    )


def test_parse_filters_mixed_range() -> None:
    assert parse_filters(["size:[1 TO 10}", "rating:{0.5 TO 4.5]"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=1, upper=10, include_lower=True, include_upper=False),
        RangeFilter(field=RATING, lower=0.5, upper=4.5, include_lower=False, include_upper=True),
    )


def test_parse_filters_range_tolerates_inner_spaces() -> None:
    assert parse_filters(["size:[ 1   TO   10 ]"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=1, upper=10, include_lower=True, include_upper=True),
    )


def test_parse_filters_open_lower_end() -> None:
    assert parse_filters(["size:{* TO 10}"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=None, upper=10, include_lower=True, include_upper=False),
    )


def test_parse_filters_open_upper_end() -> None:
    assert parse_filters(["size:{5 TO *}"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=5, upper=None, include_lower=False, include_upper=True),
    )


def test_parse_filters_equal_bounds_allowed() -> None:
    assert parse_filters(["size:[5 TO 5]"], SCHEMA) == (
        RangeFilter(field=SIZE, lower=5, upper=5, include_lower=True, include_upper=True),
    )


def test_parse_filters_value_and_range_on_same_field() -> None:
    assert parse_filters(["size:[1 TO 10]", "size:5"], SCHEMA) == (
        ValueFilter(field=SIZE, values=(5,)),
        RangeFilter(field=SIZE, lower=1, upper=10, include_lower=True, include_upper=True),
    )


def test_parse_filters_date_range_naive_gets_utc() -> None:
    assert parse_filters(["published:[2024-01-01 TO 2024-02-01T10:00:00+02:00}"], SCHEMA) == (
        RangeFilter(
            field=PUBLISHED,
            lower=datetime(2024, 1, 1, tzinfo=UTC),
            upper=datetime(2024, 2, 1, 10, tzinfo=timezone(timedelta(hours=2))),
            include_lower=True,
            include_upper=False,
        ),
    )


def test_parse_filters_both_ends_open_rejected() -> None:
    assert _filter_error(["size:[* TO *]"]).detail == "range '[* TO *]' has no bound"


def test_parse_filters_lower_above_upper_rejected() -> None:
    assert _filter_error(["size:[10 TO 1]"]).detail == "range '[10 TO 1]' has its lower bound above its upper bound"


def test_parse_filters_date_lower_above_upper_rejected() -> None:
    # Bounds compare as instants: 01:00+02:00 is 23:00Z the day before, so it is below a naive (UTC) midnight.
    assert parse_filters(["published:[2024-01-01T01:00:00+02:00 TO 2024-01-01T00:00:00]"], SCHEMA)[0] == (
        RangeFilter(
            field=PUBLISHED,
            lower=datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))),
            upper=datetime(2024, 1, 1, tzinfo=UTC),
        )
    )
    assert (
        _filter_error(["published:[2024-01-02 TO 2024-01-01]"]).detail
        == "range '[2024-01-02 TO 2024-01-01]' has its lower bound above its upper bound"
    )


def test_parse_filters_float_lower_above_upper_rejected() -> None:
    assert (
        _filter_error(["rating:{4.5 TO 4.25}"]).detail
        == "range '{4.5 TO 4.25}' has its lower bound above its upper bound"
    )


def test_parse_filters_range_on_keyword_rejected() -> None:
    assert _filter_error(["tags:[a TO z]"]).detail == "field 'tags' is not numeric or a date: ranges are not allowed"


@pytest.mark.parametrize("value", ["[1 TO 10", "[1 TO]", "[1 - 10]", "[1 to 10]", "{1 TO 10 TO 20}", "[]"])
def test_parse_filters_malformed_range(value: str) -> None:
    assert (
        _filter_error([f"size:{value}"]).detail == f"malformed range {value!r}: use [a TO b], {{a TO b}} or * for open"
    )


@pytest.mark.parametrize("name", ["nope", "section", "note", "title", "id"])
def test_parse_filters_unknown_or_not_filterable_field(name: str) -> None:
    assert _filter_error([f"{name}:x"]).detail == f"field {name!r} is not filterable"


@pytest.mark.parametrize("item", ["tags", "tags:", "tags:   ", ":web", "  :web"])
def test_parse_filters_not_field_value(item: str) -> None:
    assert _filter_error([item]).detail == f"{item!r} is not of the form field:value or field:[a TO b]"


@pytest.mark.parametrize("item", ["", "   "])
def test_parse_filters_when_value_is_empty_ignores_it(item: str) -> None:
    assert parse_filters([item], SCHEMA) == ()
    assert parse_filters([item, "tags:web"], SCHEMA) == parse_filters(["tags:web"], SCHEMA)


@pytest.mark.parametrize(
    ("item", "raw", "ftype", "field"),
    [
        ("size:abc", "abc", "integer", "size"),
        ("size:1.5", "1.5", "integer", "size"),
        ("size:true", "true", "integer", "size"),
        ("size:[x TO 5]", "x", "integer", "size"),
        ("size:[1 TO 5.5]", "5.5", "integer", "size"),
        ("rating:abc", "abc", "float", "rating"),
        ("rating:nan", "nan", "float", "rating"),
        ("rating:NaN", "NaN", "float", "rating"),
        ("rating:inf", "inf", "float", "rating"),
        ("rating:-inf", "-inf", "float", "rating"),
        ("rating:Infinity", "Infinity", "float", "rating"),
        ("rating:1e400", "1e400", "float", "rating"),
        ("rating:[nan TO 5]", "nan", "float", "rating"),
        ("published:yesterday", "yesterday", "date", "published"),
        ("published:2024-13-01", "2024-13-01", "date", "published"),
        ("published:[2024-01-01 TO soon]", "soon", "date", "published"),
    ],
)
def test_parse_filters_bad_typed_value(item: str, raw: str, ftype: str, field: str) -> None:
    assert _filter_error([item]).detail == f"{raw!r} is not a valid {ftype} for field {field!r}"


def test_parse_filters_first_bad_item_wins_even_after_good_ones() -> None:
    assert _filter_error(["tags:web", "nope:1"]).detail == "field 'nope' is not filterable"


def test_parse_filters_integer_out_of_64_bit_range_rejected() -> None:
    with pytest.raises(InvalidParameter):
        parse_filters(["size:9223372036854775808"], SCHEMA)


# --- coerce_value --------------------------------------------------------------------------------


def test_coerce_value_each_type() -> None:
    assert coerce_value(NAME, "a b", parameter="filter") == "a b"
    assert coerce_value(SIZE, "-7", parameter="filter") == -7
    assert coerce_value(RATING, "2.5", parameter="filter") == 2.5
    assert coerce_value(PUBLISHED, "2024-03-04T05:06:07", parameter="filter") == datetime(
        2024, 3, 4, 5, 6, 7, tzinfo=UTC
    )


def test_coerce_value_keeps_explicit_timezone() -> None:
    value = coerce_value(PUBLISHED, "2024-03-04T05:06:07-05:00", parameter="filter")
    assert value == datetime(2024, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))
    assert isinstance(value, datetime)
    assert value.utcoffset() == timedelta(hours=-5)


def test_coerce_value_error_names_given_parameter() -> None:
    with pytest.raises(InvalidParameter) as caught:
        coerce_value(SIZE, "x", parameter="after")
    assert caught.value.parameter == "after"
    assert caught.value.detail == "'x' is not a valid integer for field 'size'"


# --- parse_facets --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", ",", " , ,"])
def test_parse_facets_empty(raw: str | None) -> None:
    assert parse_facets(raw, SCHEMA) == ()


def test_parse_facets_in_order_deduplicated() -> None:
    assert parse_facets(" size , tags,,size,section ", SCHEMA) == (SIZE, TAGS, SECTION)


@pytest.mark.parametrize("name", ["nope", "name", "published", "title"])
def test_parse_facets_not_facetable(name: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_facets(f"tags,{name}", SCHEMA)
    assert caught.value.parameter == "facets"
    assert caught.value.detail == f"field {name!r} is not facetable"


# --- parse_sort ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_parse_sort_relevance_by_default(raw: str | None) -> None:
    assert parse_sort(raw, SCHEMA) == SortSpec(field=None, descending=True)


def test_parse_sort_ascending() -> None:
    assert parse_sort("size", SCHEMA) == SortSpec(field=SIZE, descending=False)


def test_parse_sort_descending() -> None:
    assert parse_sort(" -published ", SCHEMA) == SortSpec(field=PUBLISHED, descending=True)


@pytest.mark.parametrize(("raw", "name"), [("tags", "tags"), ("-nope", "nope"), ("-", ""), ("--size", "-size")])
def test_parse_sort_not_sortable(raw: str, name: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_sort(raw, SCHEMA)
    assert caught.value.parameter == "sort"
    assert caught.value.detail == f"field {name!r} is not sortable"
