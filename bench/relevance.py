"""Benchmark: relevance of GET /v1/search on typo, separator, known-item and prefix probes.

Loads a JSON Lines file (default the demo data) into the embedded Tantivy index (a temp dir) and, when
ELASTICSEARCH_URL is set, into Elasticsearch under a unique `relevance-<random>` alias plus a BASELINE
index (plain `standard` text fields, `multi_match` with `fuzziness: AUTO`, the schema's boosts), and when
OPENSEARCH_URL is set, into OpenSearch under another such alias. It builds
probes from the data with a fixed seed (the same seed and data give the same probes), runs each one
through `search_documents` (size 10) and prints, per probe kind, success@1, success@10 and MRR@10, or
for `summary-word-typo` the overlap of the top 10 of the misspelled word with the top 10 of the correct
word. Every engine index the script creates is deleted at the end.

Name, summary-word and known-item queries end with a space (complete words: no prefix matching of the
last word); `name-prefix` queries do not (search-as-you-type). Queries the API refuses (InvalidParameter,
e.g. too many words) count as failures.

    .venv/bin/python bench/relevance.py --probes 200
    ELASTICSEARCH_URL=http://127.0.0.1:9200 OPENSEARCH_URL=http://127.0.0.1:9201 \
        .venv/bin/python bench/relevance.py --probes 100 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import string
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elasticsearch import AsyncElasticsearch, BadRequestError  # noqa: E402
from elasticsearch.helpers import async_bulk  # noqa: E402

from src.indexer.load import load_file, open_lines  # noqa: E402
from src.search.analysis import normalise, tokenize  # noqa: E402
from src.search.backends.base import SearchBackend  # noqa: E402
from src.search.backends.elasticsearch import create_elasticsearch_backend  # noqa: E402
from src.search.backends.opensearch import create_opensearch_backend  # noqa: E402
from src.search.backends.tantivy import TantivyBackend  # noqa: E402
from src.search.errors import InvalidParameter, SearchRejected  # noqa: E402
from src.search.schema import IndexSchema, load_schema  # noqa: E402
from src.search.service import SearchOptions, SearchRequest, search_documents  # noqa: E402

DEFAULT_DATA = ROOT / "data" / "debian-packages.jsonl.gz"
DEFAULT_SCHEMA = ROOT / "data" / "debian-packages.schema.json"
EDITS = ("substitution", "deletion", "insertion", "transposition")
OVERLAP_KIND = "summary-word-typo"
NAME_KINDS = tuple(f"name-{edit}" for edit in EDITS)
KINDS = (*NAME_KINDS, "separator-dropped", "separator-added", OVERLAP_KIND, "known-item", "name-prefix")
SEPARATORS = "-._+"
CLUSTER_BATCH = 250
"""Documents per bulk request to an engine cluster: aiohttp warns (an error under the tests) on bodies over 1 MB."""
LETTERS = string.ascii_lowercase
TOP = 10

type Document = dict[str, Any]
type Figures = dict[str, dict[str, float]]
type Search = Callable[[str, str], Awaitable[list[str] | None]]
"""(query, probe kind) -> the top ids, or None when the query was refused."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One query and the ids that count as a hit (any of them)."""

    kind: str
    query: str
    expected: frozenset[str]
    correct: str | None = None
    """For the overlap kind: the query with the word spelled correctly (same form as `query`)."""


@dataclass(slots=True)
class SystemRun:
    """What one system returned for every probe, and how long it took."""

    tops: dict[Probe, list[str] | None]
    correct_tops: dict[str, list[str] | None]
    load_seconds: float
    query_seconds: float


def read_documents(path: Path) -> list[Document]:
    """Every JSON object with a string id and name in a JSON Lines file (gzipped or not)."""
    with open_lines(path) as stream:
        decoded = (orjson.loads(line) for line in stream if line.strip())
        return [d for d in decoded if isinstance(d, dict) and isinstance(d.get("id"), str) and d.get("name")]


def typo(word: str, edit: str, rng: random.Random) -> str | None:
    """`word` with one random edit of kind `edit` that never touches a separator; None when impossible."""
    inner = [i for i, ch in enumerate(word) if ch not in SEPARATORS]
    if edit == "insertion":
        i = rng.randrange(len(word) + 1)
        return word[:i] + rng.choice(LETTERS) + word[i:]
    if edit == "transposition":
        pairs = [i for i in inner if i + 1 < len(word) and word[i + 1] not in SEPARATORS and word[i] != word[i + 1]]
        if not pairs:
            return None
        i = rng.choice(pairs)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if not inner:
        return None
    i = rng.choice(inner)
    if edit == "deletion":
        return word[:i] + word[i + 1 :]
    return word[:i] + rng.choice([ch for ch in LETTERS if ch != word[i]]) + word[i + 1 :]


def build_probes(documents: list[Document], *, per_kind: int, seed: int) -> list[Probe]:
    """Up to `per_kind` probes of every kind in KINDS, deterministic given the seed and the documents."""
    corpus = _Corpus(sorted(documents, key=lambda d: d["id"]))
    probes: list[Probe] = []
    for kind in KINDS:
        rng = random.Random(f"{seed}:{kind}")  # one stream per kind: kinds do not shift each other
        candidates = list(corpus.docs)
        rng.shuffle(candidates)
        seen: set[str] = set()  # queries (correct words for the overlap kind) already used
        for doc in candidates:
            if len(seen) >= per_kind:
                break
            if (probe := corpus.probe(kind, doc, rng)) is not None and (probe.correct or probe.query) not in seen:
                seen.add(probe.correct or probe.query)
                probes.append(probe)
    return probes


class _Corpus:
    """Lookups over the documents that the probe rules need."""

    def __init__(self, docs: list[Document]) -> None:
        self.docs = docs
        self.by_name: dict[str, set[str]] = {}
        self.by_summary: dict[str, set[str]] = {}
        self.vocabulary: set[str] = set()
        for doc in docs:
            self.by_name.setdefault(normalise(str(doc["name"])), set()).add(doc["id"])
            self.by_summary.setdefault(str(doc.get("summary") or "").lower().strip(), set()).add(doc["id"])
            self.vocabulary.update(tokenize(f"{doc['name']} {doc.get('summary') or ''} {doc.get('description') or ''}"))

    def probe(self, kind: str, doc: Document, rng: random.Random) -> Probe | None:
        """A probe of `kind` made from `doc`, or None when `doc` does not fit the kind's rules."""
        name = str(doc["name"])
        expected = frozenset(self.by_name[normalise(name)])
        edited: str | None = None
        if kind in NAME_KINDS and len(name) >= 5:
            edited = typo(name, kind.removeprefix("name-"), rng)
        elif kind == "separator-dropped" and (positions := [i for i, ch in enumerate(name) if ch in SEPARATORS]):
            i = rng.choice(positions)
            edited = name[:i] + name[i + 1 :]
        elif kind == "separator-added" and len(name) >= 6 and not any(ch in SEPARATORS for ch in name):
            i = rng.randrange(1, len(name))
            edited = name[:i] + rng.choice("- ") + name[i:]
        elif kind == "name-prefix":
            cut = max(3, round(len(name) * rng.uniform(0.6, 0.8)))
            prefix = name[:cut].rstrip(SEPARATORS)  # no trailing space: the last word stays a prefix
            ok = cut < len(name) and len(prefix) >= 3 and normalise(prefix) not in self.by_name
            return Probe(kind, prefix, expected) if ok else None
        elif kind == OVERLAP_KIND:
            words = sorted({w for w in tokenize(str(doc.get("summary") or "")) if w.isalpha() and len(w) >= 6})
            word = rng.choice(words) if words else ""
            misspelled = typo(word, rng.choice(EDITS), rng) if word else None
            if misspelled is None or misspelled in self.vocabulary:
                return None  # a misspelling that is a real word of the corpus measures nothing
            return Probe(kind, f"{misspelled} ", frozenset({doc["id"]}), correct=f"{word} ")
        elif kind == "known-item":
            summary = str(doc.get("summary") or "").lower().strip()
            words = summary.split()
            editable = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
            if not 3 <= len(words) <= 12 or not editable:
                return None
            i = rng.choice(editable)
            misspelled = typo(words[i], rng.choice(EDITS), rng)
            query = " ".join([*words[:i], misspelled, *words[i + 1 :]]) + " " if misspelled else ""
            return Probe(kind, query, frozenset(self.by_summary[summary])) if query else None
        if edited is None or not normalise(edited) or normalise(edited) in self.by_name:
            return None  # no edit possible, or the "typo" is (the normalised form of) a real package name
        return Probe(kind, f"{edited} ", expected)


def api_search(backend: SearchBackend, schema: IndexSchema) -> Search:
    """Queries through our service, as GET /v1/search runs them (uncached)."""
    options = SearchOptions(cursor_secret=b"bench")

    async def search(q: str, kind: str) -> list[str] | None:
        try:
            page = await search_documents(SearchRequest(q=q, size=TOP), backend=backend, schema=schema, options=options)
        except (InvalidParameter, SearchRejected):
            return None
        return [hit["id"] for hit in page["hits"]]

    return search


def baseline_search(client: AsyncElasticsearch, index: str, schema: IndexSchema) -> Search:
    """A plain multi_match with fuzziness AUTO (bool_prefix for name-prefix) and the schema's boosts."""
    fields = [f"{spec.name}^{spec.boost:g}" for spec in schema.searchable]

    async def search(q: str, kind: str) -> list[str] | None:
        kind_type = {"type": "bool_prefix"} if kind == "name-prefix" else {}
        match: dict[str, Any] = {"query": q, "fields": fields, "fuzziness": "AUTO", **kind_type}
        try:
            response = await client.search(index=index, query={"multi_match": match}, size=TOP, source=False)
        except BadRequestError:
            return None
        return [hit["_id"] for hit in response["hits"]["hits"]]

    return search


async def run_probes(probes: list[Probe], search: Search, load_seconds: float) -> SystemRun:
    """Every probe (and every correct word of the overlap kind) through `search`, one at a time."""
    started = time.perf_counter()
    tops = {probe: await search(probe.query, probe.kind) for probe in probes}
    correct = {p.correct: await search(p.correct, p.kind) for p in probes if p.correct is not None}
    return SystemRun(tops, correct, load_seconds, time.perf_counter() - started)


def rank(probe: Probe, top: list[str] | None) -> int | None:
    """0-based rank of the first acceptable id in the top 10, or None."""
    return next((i for i, doc_id in enumerate((top or [])[:TOP]) if doc_id in probe.expected), None)


def figures(probes: list[Probe], run: SystemRun) -> Figures:
    """Per kind: s1, s10 and mrr (overlap for the overlap kind), n and errors (refused queries)."""
    result: Figures = {}
    for kind in KINDS:
        chosen = [p for p in probes if p.kind == kind]
        errors = sum(run.tops[p] is None for p in chosen)
        if kind == OVERLAP_KIND:
            truths = [(p, set((run.correct_tops[p.correct or ""] or [])[:TOP])) for p in chosen]
            overlaps = [len(truth & set((run.tops[p] or [])[:TOP])) / len(truth) for p, truth in truths if truth]
            result[kind] = {"overlap": _mean(overlaps), "n": len(overlaps), "errors": errors}
            continue
        ranks = [rank(p, run.tops[p]) for p in chosen]
        result[kind] = {
            "s1": _mean([r == 0 for r in ranks]),
            "s10": _mean([r is not None for r in ranks]),
            "mrr": _mean([0.0 if r is None else 1 / (r + 1) for r in ranks]),
            "n": len(ranks),
            "errors": errors,
        }
    return result


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


async def run_tantivy(data: Path, schema: IndexSchema, probes: list[Probe], tmp: Path) -> SystemRun:
    backend = TantivyBackend(tmp, schema=schema, alias="relevance", timeout_seconds=30, reload_interval_seconds=60)
    try:
        started = time.perf_counter()
        await load_file(data, backend=backend, batch_size=1000)
        return await run_probes(probes, api_search(backend, schema), time.perf_counter() - started)
    finally:
        await backend.close()


async def run_opensearch(url: str, data: Path, schema: IndexSchema, probes: list[Probe]) -> SystemRun:
    """Our OpenSearch backend, on an index deleted at the end."""
    backend = create_opensearch_backend(
        url=url, schema=schema, alias=f"relevance-{secrets.token_hex(4)}", timeout_seconds=10
    )
    try:
        started = time.perf_counter()
        await load_file(data, backend=backend, batch_size=CLUSTER_BATCH)
        return await run_probes(probes, api_search(backend, schema), time.perf_counter() - started)
    finally:
        try:
            for index in await backend.list_indices():
                await backend._client.indices.delete(index=index)
        finally:
            await backend.close()


async def evaluate_engine(
    kind: str, data: Path, *, probes_per_kind: int, seed: int, tmp: Path, url: str = ""
) -> dict[str, dict[str, float]]:
    """One engine's figures (for tests asserting floors), with the default schema; `url` for the clusters."""
    documents = read_documents(data)
    probes = build_probes(documents, per_kind=probes_per_kind, seed=seed)
    schema = load_schema(DEFAULT_SCHEMA)
    if kind == "opensearch":
        return figures(probes, await run_opensearch(url, data, schema, probes))
    if kind == "elasticsearch":
        return figures(probes, (await run_elasticsearch(url, data, schema, probes, documents))["elasticsearch"])
    return figures(probes, await run_tantivy(data, schema, probes, tmp))


async def run_elasticsearch(
    url: str, data: Path, schema: IndexSchema, probes: list[Probe], documents: list[Document]
) -> dict[str, SystemRun]:
    """Our Elasticsearch backend and the baseline, on indices that are all deleted at the end."""
    alias = f"relevance-{secrets.token_hex(4)}"
    baseline_index = f"{alias}-baseline"
    client = AsyncElasticsearch(url, request_timeout=60)
    backend = create_elasticsearch_backend(url=url, schema=schema, alias=alias, timeout_seconds=10)
    runs: dict[str, SystemRun] = {}
    try:
        started = time.perf_counter()
        await load_file(data, backend=backend, batch_size=CLUSTER_BATCH)
        runs["elasticsearch"] = await run_probes(probes, api_search(backend, schema), time.perf_counter() - started)
        started = time.perf_counter()
        names = [spec.name for spec in schema.searchable]
        properties = {name: {"type": "text", "analyzer": "standard"} for name in names}
        settings = {"number_of_shards": 1, "number_of_replicas": 0}
        await client.indices.create(index=baseline_index, settings=settings, mappings={"properties": properties})
        sources = (
            {"_index": baseline_index, "_id": d["id"], "_source": {k: d.get(k) for k in names}} for d in documents
        )
        await async_bulk(client, sources, chunk_size=1000)
        await client.indices.refresh(index=baseline_index)
        search = baseline_search(client, baseline_index, schema)
        runs["baseline"] = await run_probes(probes, search, time.perf_counter() - started)
    finally:
        await backend.close()
        try:  # every index this run created: the backend's versioned index and the baseline
            created = await client.indices.get(index=f"{alias}-*", allow_no_indices=True)
            for index in sorted(created.body):
                await client.indices.delete(index=index)
        finally:
            await client.close()
    return runs


def report(probes: list[Probe], results: dict[str, Figures], runs: dict[str, SystemRun]) -> str:
    systems = list(results)
    lines = [
        "| kind | n | " + " | ".join(f"{s} s@1 | {s} s@10 | {s} MRR" for s in systems) + " |",
        "|---|---:|" + "---:|---:|---:|" * len(systems),
    ]
    for kind in KINDS:
        cells = [kind, str(sum(p.kind == kind for p in probes))]
        for system in systems:
            f = results[system][kind]
            if kind == OVERLAP_KIND:
                cells += ["-", "-", f"overlap {f['overlap']:.3f} (n={f['n']:.0f})"]
            else:
                cells += [f"{f['s1']:.3f}", f"{f['s10']:.3f}", f"{f['mrr']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    success = [k for k in KINDS if k != OVERLAP_KIND]
    cells = ["mean of success kinds", ""]
    for system in systems:
        cells += [f"{sum(results[system][k][m] for k in success) / len(success):.3f}" for m in ("s1", "s10", "mrr")]
    lines += ["| " + " | ".join(cells) + " |", "", "| system | load s | queries | query s |", "|---|---:|---:|---:|"]
    for system, run in runs.items():
        queries = len(run.tops) + len(run.correct_tops)
        lines.append(f"| {system} | {run.load_seconds:.2f} | {queries} | {run.query_seconds:.2f} |")
    return "\n".join(lines)


def misses(probes: list[Probe], runs: dict[str, SystemRun], names: dict[str, str], limit: int) -> Iterator[str]:
    """Tantivy's misses per kind (not in the top 10), and how many of them the baseline found."""
    tantivy, baseline = runs["tantivy"], runs.get("baseline")
    for kind in KINDS:
        if kind == OVERLAP_KIND:
            continue
        missed = [p for p in probes if p.kind == kind and rank(p, tantivy.tops[p]) is None]
        if not missed:
            continue
        line = f"\n{kind}: tantivy misses {len(missed)}"
        if baseline is not None:
            line += f", of which the baseline finds {sum(rank(p, baseline.tops[p]) is not None for p in missed)}"
        yield line
        for p in missed[:limit]:
            top = tantivy.tops[p]
            got = "refused" if top is None else ", ".join(names.get(i, i) for i in top[:3]) or "no hits"
            found = "" if baseline is None else f" [baseline rank {rank(p, baseline.tops[p])}]"
            yield f"  q={p.query!r} expected={sorted(names.get(i, i) for i in p.expected)} got: {got}{found}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSON Lines file (gzipped or not)")
    parser.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument("--probes", type=int, default=200, help="probes per kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--examples", type=int, default=5, help="Tantivy misses listed per kind (0: none)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.perf_counter()
    documents = read_documents(args.data)
    schema = load_schema(args.schema)
    probes = build_probes(documents, per_kind=args.probes, seed=args.seed)
    runs: dict[str, SystemRun] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs["tantivy"] = await run_tantivy(args.data, schema, probes, Path(tmp))
    es_url = os.environ.get("ELASTICSEARCH_URL", "")
    if es_url:
        runs |= await run_elasticsearch(es_url, args.data, schema, probes, documents)
    else:
        print("ELASTICSEARCH_URL not set: Elasticsearch and the baseline skipped", file=sys.stderr)
    os_url = os.environ.get("OPENSEARCH_URL", "")
    if os_url:
        runs["opensearch"] = await run_opensearch(os_url, args.data, schema, probes)
    else:
        print("OPENSEARCH_URL not set: OpenSearch skipped", file=sys.stderr)
    results = {system: figures(probes, run) for system, run in runs.items()}
    print(f"{len(documents)} documents from {args.data.name}, seed {args.seed}, up to {args.probes} probes per kind\n")
    print(report(probes, results, runs))
    if args.examples:
        names = {str(d["id"]): str(d["name"]) for d in documents}
        print("\n".join(misses(probes, runs, names, args.examples)))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.json:
        keys = ("s1", "s10", "mrr", "overlap", "n", "errors")
        out = {s: {k: {key: f.get(key) for key in keys} for k, f in r.items()} for s, r in results.items()}
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
