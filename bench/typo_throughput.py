"""Benchmark: uncached throughput of distinct typo queries, this checkout against another commit, one run.

For each checkout (this one, and `--against DIR`, e.g. a `git worktree` of an older commit), it loads the
data into an embedded Tantivy index of its own (or a fresh alias on ELASTICSEARCH_URL with `--engine
elasticsearch`, on OPENSEARCH_URL with `--engine opensearch`), serves it from one uvicorn process pinned to
core 0 with the cache off (or, for a checkout that has no off switch, with entries that are never reused:
every query is distinct), and drives `wrk` from core 1 over a rotating list of distinct misspelled package
names (one random edit each, fixed seed). `/healthz` on the same process is the floor.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/typo_throughput.py --data /tmp/debian-full.jsonl.gz --against /tmp/before

Needs `wrk`. Prints req/s, p50/p99 and non-2xx per checkout (and, on Elasticsearch and OpenSearch, the
segments behind each alias: each checkout's own loader decides them), and the ratio; without `--against`
it measures this checkout alone. `--force-merge` merges every checkout's cluster index into one segment
after loading, so only the queries differ; `--rounds N` measures the checkouts in turn N times (order
reversed each round, so neither always meets a cold engine) and keeps each one's best.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import NamedTuple

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, wait_ready, wrk

ROOT = Path(__file__).resolve().parent.parent


def typo_queries(data: Path, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    with gzip.open(data, "rt", encoding="utf-8") if data.suffix == ".gz" else data.open() as lines:
        names = sorted({str(json.loads(line).get("name", "")) for line in lines})
    names = [name for name in names if len(name) >= 5 and re.fullmatch(r"[a-z0-9.+-]+", name)]
    queries: list[str] = []
    for name in rng.sample(names, min(count, len(names))):
        position = rng.randrange(len(name))
        edit = rng.choice(["substitute", "delete", "insert", "transpose"])
        letter = rng.choice(string.ascii_lowercase)
        if edit == "substitute":
            typo = name[:position] + letter + name[position + 1 :]
        elif edit == "delete":
            typo = name[:position] + name[position + 1 :]
        elif edit == "insert":
            typo = name[:position] + letter + name[position:]
        else:
            position = min(position, len(name) - 2)
            typo = name[:position] + name[position + 1] + name[position] + name[position + 2 :]
        queries.append(typo.replace("+", "%2B") + "%20")  # a finished word: no prefix matching
    return queries


def lua_script(queries: list[str], directory: Path) -> Path:
    path = directory / "typos.lua"
    listed = ",\n".join(f'"{query}"' for query in queries)
    path.write_text(
        f"local queries = {{\n{listed}\n}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", "/v1/search?q=" .. queries[(n % #queries) + 1])\nend\n'
    )
    return path


class Run(NamedTuple):
    """One checkout's measurement: wrk's (req/s, p50 ms, p99 ms, non-2xx) for the typo queries and for
    /healthz, and the segments behind its Elasticsearch alias (None on Tantivy)."""

    typos: tuple[float, float, float, int]
    healthz: tuple[float, float, float, int]
    segments: int | None


def measure(checkout: Path, args: argparse.Namespace, script: Path, directory: Path, alias: str, load: bool) -> Run:
    port = free_port()
    env = os.environ | {
        "TANTIVY_DATA_DIR": str(directory / f"tantivy-{checkout.name}"),
        "INDEX_ALIAS": alias,
        "CACHE_ENABLED": "false",
        "CACHE_SOFT_TTL_SECONDS": "1",
        "CACHE_HARD_TTL_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "CURSOR_SECRET": "bench",
        "RATE_LIMIT_ENABLED": "false",  # one load generator is one client: the limits would be measured
        "APP_PORT": str(port),
        "SEARCH_MAX_INFLIGHT": "1000",
        "REDIS_URL": "",
    }
    # One engine per run: the settings refuse both cluster URLs at once.
    if args.engine != "elasticsearch":
        env["ELASTICSEARCH_URL"] = ""
    if args.engine != "opensearch":
        env["OPENSEARCH_URL"] = ""
    python = sys.executable
    if load:
        subprocess.run([python, "-m", "indexer", "load", str(args.data)], cwd=checkout, env=env, check=True)
        if args.engine != "tantivy" and args.force_merge:
            url = f"{cluster_url(args.engine)}/{alias}/_forcemerge"
            httpx.post(url, params={"max_num_segments": 1}, timeout=600).raise_for_status()
    command = [python, "-m", "src"]
    server = subprocess.Popen(
        ["taskset", "-c", "0", *command] if shutil.which("taskset") else command, cwd=checkout, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        wrk(base, 3, args.connections, str(script))  # warm-up
        typos = wrk(base, args.seconds, args.connections, str(script))
        floor = wrk(f"{base}/healthz", args.seconds, args.connections, None)
    finally:
        server.terminate()
        server.wait(timeout=15)
    return Run(typos, floor, None if args.engine == "tantivy" else segments(args.engine, alias))


def cluster_url(engine: str) -> str:
    """The URL of the cluster engine (ELASTICSEARCH_URL or OPENSEARCH_URL)."""
    return os.environ[f"{engine.upper()}_URL"]


def segments(engine: str, alias: str) -> int:
    """The number of Lucene segments behind a bench alias (what a typo query expands over)."""
    url = f"{cluster_url(engine)}/_cat/segments/{alias}"
    return len(httpx.get(url, params={"format": "json"}, timeout=10).json())


def drop(engine: str, alias: str) -> None:
    """Delete the cluster indices behind a bench alias."""
    for index in httpx.get(f"{cluster_url(engine)}/_alias/{alias}", timeout=10).json():
        httpx.delete(f"{cluster_url(engine)}/{index}", timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "debian-packages.jsonl.gz")
    parser.add_argument("--against", type=Path, help="another checkout (e.g. a git worktree) to compare with")
    parser.add_argument("--engine", choices=["tantivy", "elasticsearch", "opensearch"], default="tantivy")
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--force-merge",
        action="store_true",
        help="merge every checkout's cluster index into one segment after loading: compares the queries alone",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="checkouts measured in turn this often, order reversed each round"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if args.engine != "tantivy" and not os.environ.get(f"{args.engine.upper()}_URL"):
        sys.exit(f"--engine {args.engine} needs {args.engine.upper()}_URL")
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        script = lua_script(typo_queries(args.data, args.queries, args.seed), directory)
        aliases = {checkout: f"typos-{uuid.uuid4().hex[:8]}" for checkout in checkouts}
        runs: dict[Path, list[Run]] = {checkout: [] for checkout in checkouts}
        try:
            for round_number in range(args.rounds):
                for checkout in checkouts if round_number % 2 == 0 else list(reversed(checkouts)):
                    runs[checkout].append(
                        measure(checkout, args, script, directory, aliases[checkout], load=round_number == 0)
                    )
        finally:
            if args.engine != "tantivy":
                for alias in aliases.values():
                    drop(args.engine, alias)
    results = {checkout: max(found, key=lambda run: run.typos[0]) for checkout, found in runs.items()}
    for checkout, found in runs.items():
        print(f"{checkout}: typo req/s per round {[round(run.typos[0]) for run in found]}")
    rounds = f", best of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"\n{args.engine}, {args.data.name}, wrk -t1 -c{args.connections} -d{args.seconds}s, cache off{rounds}\n")
    print(
        "| checkout | typo req/s | p50 ms | p99 ms | non-2xx | /healthz req/s | segments |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for checkout, result in results.items():
        rps, p50, p99, errors = result.typos
        floor = result.healthz[0]
        shown = "-" if result.segments is None else str(result.segments)
        print(f"| {checkout} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {errors} | {floor:.0f} | {shown} |")
    if args.against:
        now, before = (results[checkout].typos[0] for checkout in checkouts)
        print(f"\nthis checkout / {args.against} = {now / before:.2f}")


if __name__ == "__main__":
    main()
