"""Benchmark: several ranking-rule orders on one embedded index, the relevance probes of bench/relevance.py.

The index does not depend on the rule order (only the queries do), so a large corpus is loaded once into a
Tantivy directory that is kept for the next run (delete it to reload), and each order is evaluated on the
same probes (the Debian rules of `bench/relevance.py`: name typos, separators, misspelled summary words,
known items, prefixes; they need documents with `id`, `name` and `summary`).

    .venv/bin/python bench/rules_eval.py --data var/pypi-packages.jsonl.gz --schema bench/pypi.schema.json \\
        --index var/rules-pypi default words,typo,proximity,attribute,exactness,custom,bm25

`default` is the schema's own order. Prints one line per order: s@1/s@10 per kind (overlap for the
misspelled-word kind).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import relevance  # noqa: E402

from src.indexer.load import load_file  # noqa: E402
from src.search.backends.tantivy import TantivyBackend  # noqa: E402
from src.search.errors import InvalidParameter  # noqa: E402
from src.search.schema import load_schema, parse_rules  # noqa: E402
from src.search.service import SearchOptions, SearchRequest, search_documents  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("orders", nargs="+", help="comma-separated rule lists, or `default`")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--schema", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True, help="Tantivy directory, kept between runs")
    parser.add_argument("--probes", type=int, default=200, help="probes per kind")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    schema = load_schema(args.schema)
    probes = relevance.build_probes(relevance.read_documents(args.data), per_kind=args.probes, seed=args.seed)
    loader = TantivyBackend(args.index, schema=schema, alias="rules", timeout_seconds=60)
    if await loader.current_index() is None:
        started = time.perf_counter()
        await load_file(args.data, backend=loader, batch_size=2000)
        print(f"loaded {args.data.name} in {time.perf_counter() - started:.0f} s", flush=True)
    await loader.close()
    options = SearchOptions(cursor_secret=b"rules")
    for order in args.orders:
        ordered = schema if order == "default" else dataclasses.replace(schema, rules=parse_rules(order.split(",")))
        backend = TantivyBackend(args.index, schema=ordered, alias="rules", timeout_seconds=60)

        async def search(
            q: str, kind: str, ordered: object = ordered, backend: TantivyBackend = backend
        ) -> list[str] | None:
            try:
                page = await search_documents(
                    SearchRequest(q=q, size=10), backend=backend, schema=ordered, options=options
                )  # type: ignore[arg-type]
            except InvalidParameter:
                return None
            return [hit["id"] for hit in page["hits"]]

        started = time.perf_counter()
        found = relevance.figures(probes, await relevance.run_probes(probes, search, 0.0))
        await backend.close()
        cells = " ".join(
            f"{kind}={figure['overlap']:.3f}"
            if "overlap" in figure
            else f"{kind}={figure['s1']:.3f}/{figure['s10']:.3f}"
            for kind, figure in found.items()
        )
        print(f"[{','.join(ordered.rules)}] {time.perf_counter() - started:.0f} s {cells}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
