"""Unit tests of the relevance benchmark's pure parts: the npm corpus, the npm probe rules, the baselines'
queries and the figures (bench/ is scripts, not a package: loaded by path, as the floors test does)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from src.search.analysis import normalise, tokenize
from src.search.schema import parse_schema

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(1, str(BENCH))  # the bench scripts import their siblings by name, as when run
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the file executes
    spec.loader.exec_module(module)
    return module


corpus = _load("npm_corpus")
npm = _load("npm_probes")
relevance = _load("relevance")

NPM_SCHEMA = parse_schema(
    {
        "name": "npm",
        "version": 1,
        "fields": {
            "name": {"type": "keyword", "searchable": True, "boost": 6, "sortable": True},
            "summary": {"type": "text", "searchable": True, "boost": 2},
            "downloads": {"type": "integer", "sortable": True},
        },
        "ranking": {"field": "downloads", "order": "desc"},
    }
)


def _doc(name: str, downloads: int, summary: str = "") -> dict[str, Any]:
    return {"id": corpus.document_id(name), "name": name, "downloads": downloads, "summary": summary}


def _corpus(*extra: dict[str, Any], filler: int = 100) -> list[dict[str, Any]]:
    """`extra` plus `filler` obscure packages, so that `extra`'s popular ones are in the top 5 %."""
    return [*extra, *(_doc(f"filler-{i:04d}", 500, f"filler number {i}") for i in range(filler))]


def test_document_id_when_scoped_turns_the_slash_into_a_colon() -> None:
    assert corpus.document_id("@babel/core") == "@babel:core"
    assert corpus.document_id("left-pad") == "left-pad"


def test_clean_summary_drops_the_probe_note_only() -> None:
    assert (
        corpus.clean_summary("[tested here: npm i NAME; 23 passed] AWS SDK for JavaScript ") == "AWS SDK for JavaScript"
    )
    assert corpus.clean_summary("A well [tested here] parser") == "A well [tested here] parser"


def test_to_document_when_downloads_unknown_omits_them() -> None:
    assert corpus.to_document(["@a/b", "1.0.0", "", ""]) == {"id": "@a:b", "name": "@a/b", "version": "1.0.0"}
    assert corpus.to_document(["x", "1", "42", "An x"]) == {
        "id": "x",
        "name": "x",
        "version": "1",
        "summary": "An x",
        "downloads": 42,
    }
    assert corpus.to_document(["", "1", "42", "nameless"]) is None


def test_documents_when_two_names_map_to_one_id_raises() -> None:
    with pytest.raises(ValueError, match="@a:b"):
        list(corpus.documents([["@a/b", "1", "1", ""], ["@a/b", "2", "1", ""]]))


def test_main_writes_json_lines_without_the_header(tmp_path: Path) -> None:
    tsv = tmp_path / "npm.tsv"
    tsv.write_text("name\tversion\tdownloads_a_month\tsummary\n@s/p\t1.0.0\t7\t[tested here: x] Pads\n", "utf-8")
    out = tmp_path / "var" / "npm.jsonl"
    corpus.main([str(tsv), "--output", str(out)])
    assert out.read_text("utf-8") == '{"id":"@s:p","name":"@s/p","version":"1.0.0","summary":"Pads","downloads":7}\n'


def test_words_when_scoped_splits_at_the_scope_too() -> None:
    name = "@types/node-fetch"
    assert [name[a:b] for a, b in npm.words(name, 4)] == ["types", "node", "fetch"]
    assert [name[a:b] for a, b in npm.words(name, 5)] == ["types", "fetch"]


def test_one_edit_variants_cover_the_four_edits() -> None:
    variants = set(npm.one_edit_variants("abc", "xb"))
    assert {"bc", "ac", "ab", "bac", "acb", "xbc", "abcx", "abbc", "axc"} <= variants
    assert "abc" not in variants
    assert all(len(v) in (2, 3, 4) for v in variants)


def test_parts_when_scoped_or_with_an_empty_part_is_none() -> None:
    assert npm.parts("redis-server") == ["redis", "server"]
    assert npm.parts("lodash.find_last-x") == ["lodash", "find", "last", "x"]
    assert npm.parts("@scope/a-b") is None
    assert npm.parts("a--b") is None


def test_name_typo_when_made_is_one_edit_in_a_long_word_and_not_a_name() -> None:
    found = npm.NpmCorpus(_corpus(_doc("express-validator", 9), _doc("express-validatr", 1)))
    rng = random.Random(1)
    probes = [p for _ in range(200) if (p := found.name_typo(found.by_raw_name["express-validator"], rng))]
    assert probes
    for probe in probes:
        assert probe.query.endswith(" ")
        assert probe.expected == frozenset({"express-validator"})
        assert normalise(probe.query) not in found.by_name
        typed, original = tokenize(probe.query), ["express", "validator"]
        assert len(typed) == 2
        assert sum(a != b for a, b in zip(typed, original, strict=True)) == 1


def test_name_typo_when_no_word_has_five_characters_is_none() -> None:
    found = npm.NpmCorpus(_corpus(_doc("is-odd", 9)))
    assert found.name_typo(found.by_raw_name["is-odd"], random.Random(1)) is None


def test_name_prefix_when_the_prefix_is_a_name_is_none() -> None:
    found = npm.NpmCorpus(_corpus(_doc("reacts", 9), _doc("react", 5), _doc("reac", 1)))
    prefixes = {found.name_prefix(found.by_raw_name["reacts"], random.Random(seed)) for seed in range(50)}
    assert prefixes == {None}  # 60-80 % of "reacts" is "reac" or "react": both real names


def test_name_prefix_when_made_has_no_trailing_space() -> None:
    found = npm.NpmCorpus(_corpus(_doc("@angular/core", 9)))
    probes = {found.name_prefix(found.by_raw_name["@angular/core"], random.Random(seed)) for seed in range(50)}
    assert {p.query for p in probes if p is not None} == {"@angular", "@angular/c"}  # "@angular/" loses its "/"


def test_separator_kinds_join_the_parts() -> None:
    found = npm.NpmCorpus(_corpus(_doc("redis-server", 9), _doc("babel-plugin-transform-runtime", 9)))
    redis, babel = found.by_raw_name["redis-server"], found.by_raw_name["babel-plugin-transform-runtime"]
    rng = random.Random(3)
    assert found.separator_joined(redis, rng).query == "redisserver "
    assert found.separator_joined(babel, rng) is None  # four parts: the 4plus kind's
    assert found.separator_joined_4plus(babel, rng).query == "babelplugintransformruntime "
    assert found.separator_joined_4plus(redis, rng) is None
    typing = {found.separator_typing(redis, random.Random(seed)) for seed in range(30)}
    assert {p.query for p in typing if p is not None} <= {"redisse", "redisser", "redisserv", "redisserve"}
    assert all(not p.query.endswith(" ") for p in typing if p is not None)


def test_separator_kinds_when_scoped_are_none() -> None:
    found = npm.NpmCorpus(_corpus(_doc("@redis/client-core", 9)))
    doc = found.by_raw_name["@redis/client-core"]
    assert found.separator_joined(doc, random.Random(1)) is None
    assert found.separator_typing(doc, random.Random(1)) is None


def test_known_item_when_the_summary_is_shared_is_none() -> None:
    text = "Parse and stringify JSON with comments"
    found = npm.NpmCorpus(_corpus(_doc("json5", 9, text), _doc("json-five", 1, text), _doc("hjson", 2, f"{text}!")))
    assert found.known_item(found.by_raw_name["json5"], random.Random(1)) is None
    probe = found.known_item(found.by_raw_name["hjson"], random.Random(1))
    assert probe is not None
    assert probe.expected == frozenset({"hjson"})
    assert probe.query != f"{text.lower()}! "
    assert len(probe.query.split()) == 6


def test_collisions_expect_the_most_downloaded_name_one_edit_away() -> None:
    docs = _corpus(
        _doc("lodash", 1_000_000),
        _doc("lodah", 10),  # a real name one deletion from lodash: the probe
        _doc("express", 800_000),
        _doc("exprss", 5),  # one edit from express, but its most downloaded neighbour is exprsx
        _doc("exprsx", 2_000_000),  # two edits from express
    )
    found = npm.NpmCorpus(docs)
    probes = found.collisions(random.Random(1), 10)
    assert {(p.query, p.expected) for p in probes} == {
        ("lodah ", frozenset({"lodash"})),
        ("exprss ", frozenset({"exprsx"})),
    }


def test_build_probes_is_deterministic_and_half_popular() -> None:
    popular = [_doc(f"popular-package-{i:02d}", 10_000 + i, f"the popular package number {i} here") for i in range(40)]
    docs = _corpus(*popular, filler=800)
    first = npm.build_probes(docs, per_kind=20, seed=7)
    assert first == npm.build_probes(list(reversed(docs)), per_kind=20, seed=7)
    assert first != npm.build_probes(docs, per_kind=20, seed=8)
    typos = [p for p in first if p.kind == "name-typo"]
    assert len(typos) == 20
    assert {p.group for p in typos[:10]} == {npm.TOP}
    popular_ids = {d["id"] for d in npm.NpmCorpus(docs).popular}
    assert all(p.expected <= popular_ids for p in typos[:10])
    assert {p.group for p in typos[10:]} == {npm.UNIFORM}
    assert len({p.query for p in first}) == len(first)


def test_plain_query_while_typing_is_bool_prefix() -> None:
    assert relevance.plain_query("expre", NPM_SCHEMA)["multi_match"]["type"] == "bool_prefix"
    assert "type" not in relevance.plain_query("expre ", NPM_SCHEMA)["multi_match"]


def test_tuned_query_while_typing_adds_the_prefix_clauses() -> None:
    complete = relevance.tuned_query("Expres ", NPM_SCHEMA, relevance.Tuned("sum", 2.0))
    typing = relevance.tuned_query("Expres", NPM_SCHEMA, relevance.Tuned("sum", 2.0))
    assert complete["function_score"]["boost_mode"] == "sum"
    assert complete["function_score"]["functions"] == [
        {"field_value_factor": {"field": "downloads", "modifier": "log1p", "factor": 1, "missing": 0}, "weight": 2.0}
    ]
    complete_clauses = complete["function_score"]["query"]["bool"]["should"]
    typing_clauses = typing["function_score"]["query"]["bool"]["should"]
    assert [next(iter(c)) for c in complete_clauses] == ["multi_match", "term"]
    assert [next(iter(c)) for c in typing_clauses] == ["multi_match", "term", "match_phrase_prefix", "prefix"]
    assert typing_clauses[1] == {"term": {"name.raw": {"value": "expres", "boost": 12.0}}}
    assert typing_clauses[3] == {"prefix": {"name.raw": {"value": "expres", "boost": 6.0}}}


def test_tuned_query_without_a_descending_ranking_has_no_function_score() -> None:
    name = {"type": "keyword", "searchable": True}
    plain = {"name": "x", "version": 1, "fields": {"name": name}}
    assert "bool" in relevance.tuned_query("x ", parse_schema(plain))
    ascending = {
        "name": "x",
        "version": 1,
        "fields": {"name": name, "size": {"type": "integer", "sortable": True}},
        "ranking": {"field": "size", "order": "asc"},
    }
    assert "bool" in relevance.tuned_query("x ", parse_schema(ascending))


def test_baseline_index_maps_the_name_twice_and_the_ranking_field() -> None:
    settings, mappings = relevance.baseline_index(NPM_SCHEMA)
    assert mappings["properties"] == {
        "name": {
            "type": "text",
            "analyzer": "standard",
            "fields": {"raw": {"type": "keyword", "normalizer": "lowercased"}},
        },
        "summary": {"type": "text", "analyzer": "standard"},
        "downloads": {"type": "long"},
    }
    assert settings["analysis"]["normalizer"]["lowercased"] == {"type": "custom", "filter": ["lowercase"]}


def test_figures_report_the_groups_apart() -> None:
    probe = relevance.Probe
    probes = [
        probe("name-typo", "a ", frozenset({"a"}), group="top5%"),
        probe("name-typo", "b ", frozenset({"b"}), group="uniform"),
        probe("name-typo", "c ", frozenset({"c"}), group="uniform"),
    ]
    run = relevance.SystemRun({probes[0]: ["a"], probes[1]: ["x", "b"], probes[2]: None}, {}, 0.0, 0.0)
    found = relevance.figures(probes, run, ["name-typo"])
    assert set(found) == {"name-typo", "name-typo/top5%", "name-typo/uniform"}
    assert found["name-typo/top5%"] == {"s1": 1.0, "s10": 1.0, "mrr": 1.0, "n": 1, "errors": 0}
    assert found["name-typo/uniform"] == {"s1": 0.0, "s10": 0.5, "mrr": 0.25, "n": 2, "errors": 1}
    assert found["name-typo"]["n"] == 3
