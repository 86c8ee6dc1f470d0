"""Lambda cold start of the API handler against a bare FastAPI + Mangum app doing the same, in one run.

Each sample is a fresh interpreter (a new execution environment): import the handler, then `GET /healthz`
and one `GET /v1/search` through it, with API Gateway HTTP API (payload 2.0) events, against the real
Elasticsearch at ELASTICSEARCH_URL. The time is taken by this process from the child's start to the
moment it reports both responses (interpreter start-up included, its exit not). The bare app is FastAPI,
Mangum and `AsyncElasticsearch` with one route per request (a `multi_match` with `fuzziness: AUTO`);
ours is `src.serverless.api.handler` with the Lambda configuration of the CDK app (production mode,
rate limits off, no Redis unless --redis, tracing off). Samples alternate between the two; medians and
the ratio are printed.

    ELASTICSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python bench/cold_start.py --samples 15
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from src.serverless.gateway import http_api_event  # noqa: E402

QUERY = "strategy game"

BARE = """
import json, sys, asyncio
events = json.loads(sys.argv[1])
from fastapi import FastAPI
from mangum import Mangum
from elasticsearch import AsyncElasticsearch

app = FastAPI()
client = []

@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

@app.get("/v1/search")
async def search(q: str = "", size: int = 10) -> dict[str, object]:
    if not client:
        client.append(AsyncElasticsearch(sys.argv[2], request_timeout=2))
    found = await client[0].search(
        index=sys.argv[3], size=size,
        query={"multi_match": {"query": q, "fields": ["name^6", "summary^2", "description"], "fuzziness": "AUTO"}},
    )
    return {"hits": [{"id": hit["_id"], "document": hit["_source"]} for hit in found["hits"]["hits"]]}

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
handler = Mangum(app, lifespan="off")
statuses = [handler(event, None)["statusCode"] for event in events]
print("RESULT", json.dumps(statuses), flush=True)
"""

OURS = """
import json, sys
events = json.loads(sys.argv[1])
from src.serverless.api import handler
statuses = [handler(event, None)["statusCode"] for event in events]
print("RESULT", json.dumps(statuses), flush=True)
"""


def sample(script: str, args: list[str], env: dict[str, str]) -> float:
    """Milliseconds from the child's start to its report of both responses (both must be 200)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = ""
        for line in child.stdout:  # our handler writes its EMF lines there too
            if line.startswith("RESULT "):
                break
        elapsed = (time.perf_counter() - started) * 1000
        if not line.startswith("RESULT ") or json.loads(line.removeprefix("RESULT ")) != [200, 200]:
            raise RuntimeError(f"the child answered {line!r}")
    finally:
        if child.stdout is not None:
            child.stdout.read()
        child.wait(timeout=60)
    return elapsed


def load_demo(url: str, alias: str, count: int) -> None:
    """Index `count` demo packages into a fresh index behind `alias` (the same the bare app searches)."""
    import asyncio

    from src.search.backends.base import IndexAction
    from src.search.backends.elasticsearch import create_elasticsearch_backend
    from src.search.schema import load_schema

    async def run() -> None:
        schema = load_schema(ROOT / "data" / "debian-packages.schema.json")
        backend = create_elasticsearch_backend(url=url, schema=schema, alias=alias, timeout_seconds=30)
        try:
            with gzip.open(ROOT / "data" / "debian-packages.jsonl.gz", "rt") as lines:
                docs = [json.loads(line) for line in itertools.islice(lines, count)]
            index = await backend.create_index()
            await backend.bulk([IndexAction(op="upsert", doc_id=d["id"], document=d) for d in docs], index=index)
            await backend.refresh(index)
            await backend.point_alias(index)
        finally:
            await backend.close()

    asyncio.run(run())


def drop(url: str, alias: str) -> None:
    import httpx

    indices = httpx.get(f"{url}/_alias/{alias}", timeout=10).json()
    for index in indices:
        httpx.delete(f"{url}/{index}", timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description="API handler cold start vs a bare FastAPI + Mangum app")
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--redis", default="", help="REDIS_URL for our handler (the deployed configuration)")
    args = parser.parse_args()
    url = os.environ.get("ELASTICSEARCH_URL", "")
    if not url:
        print("set ELASTICSEARCH_URL (scripts/elasticsearch.sh start)", file=sys.stderr)
        return 2
    alias = f"cold-{uuid.uuid4().hex[:8]}"
    load_demo(url, alias, args.documents)
    events = json.dumps([http_api_event("GET", "/healthz"), http_api_event("GET", f"/v1/search?q={QUERY}")])
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "REDIS_", "INDEX_"))}
    ours_env = base | {
        "ELASTICSEARCH_URL": url,
        "INDEX_ALIAS": alias,
        "APP_ENV": "production",
        "CURSOR_SECRET": "cold-start-benchmark-secret-of-40-bytes!",
        "RATE_LIMIT_ENABLED": "false",
        "BROKER_SUBSCRIBE": "false",
        "METRICS_SCOPE": "search:metrics",  # as the CDK app sets it (production refuses an open /metrics)
        "OTEL_SDK_DISABLED": "true",
        "REDIS_URL": args.redis,
        "REDIS_CLUSTER": "false",
    }
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    try:
        sample(OURS, [events], ours_env)  # warm the OS file cache and .pyc files once, for both sides
        sample(BARE, [events, url, alias], base)
        for _ in range(args.samples):
            times["bare"].append(sample(BARE, [events, url, alias], base))
            times["ours"].append(sample(OURS, [events], ours_env))
    finally:
        drop(url, alias)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        ordered = sorted(values)
        print(
            f"{name:5s} median {medians[name]:7.1f} ms   min {ordered[0]:7.1f}   max {ordered[-1]:7.1f}"
            f"   ({len(values)} fresh interpreters)"
        )
    ratio = medians["ours"] / medians["bare"]
    print(f"ratio ours/bare (medians): {ratio:.2f}x  (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
