"""Benchmark: what tracing, metrics and the access log cost the cached search path, in one run.

Each configuration serves the demo data from one `python -m src` pinned to core 0 (the cache on, Redis
behind it when REDIS_URL is set, the in-process tier in front), and `wrk` on core 1 asks the same cached
search over and over: the fast-hit path, where a fixed per-request cost shows most.

  before        `--against DIR`: a checkout without any of it (a git worktree of the commit before)
  removed       this checkout with the observability middleware's work taken out (its security headers
                stay): what tracing, metrics and logs cost on today's path, whatever else changed since
  all on        access log (to a file), RED metrics, spans recorded for every request (sampled, with
                OTEL_TRACES_EXPORTER=none: the export itself runs on a background thread in batches)
  1 in 10       the same with OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1
  no tracing    access log and metrics
  metrics only  ACCESS_LOG=false

    git worktree add /tmp/before-obs 04192f9
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/observability_cost.py --against /tmp/before-obs

Needs `wrk`. Prints req/s, p50/p99 per configuration and each one's ratio to the first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, wait_ready, wrk

ROOT = Path(__file__).resolve().parent.parent
QUERY = "web+server"
ABLATE = "BENCH_WITHOUT_OBSERVABILITY"
WITHOUT_MIDDLEWARE = """
import src.api.outermost as middleware
from src.__main__ import main

async def security_headers_only(self, scope, receive, send):
    if scope["type"] != "http":
        await self.app(scope, receive, send)
        return
    extra = self.security.for_path(scope["path"])

    async def send_with_headers(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    await self.app(scope, receive, send_with_headers)

middleware.ObservabilityMiddleware.__call__ = security_headers_only
main()
"""
"""This checkout with ObservabilityMiddleware's work removed but for the security headers it adds:
everything else today's path does (security headers, limits, rate limiter, fast hits) still runs."""


def measure(checkout: Path, extra: dict[str, str], args: argparse.Namespace, directory: Path) -> tuple[float, ...]:
    port = free_port()
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        | {
            "ELASTICSEARCH_URL": "",
            "OPENSEARCH_URL": "",
            "TANTIVY_DATA_DIR": str(directory / "tantivy"),
            "INDEX_ALIAS": "observability-cost",
            "CACHE_NAMESPACE": f"obs-cost-{uuid.uuid4().hex[:8]}",
            "CACHE_SOFT_TTL_SECONDS": "600",
            "CACHE_HARD_TTL_SECONDS": "1200",
            "CURSOR_SECRET": "bench",
            # The limiter runs (its cost is part of the path) but one load generator never reaches it.
            "RATE_LIMIT": "10000000/second",
            "APP_PORT": str(port),
            "LOG_LEVEL": "INFO",
        }
        | extra
    )
    subprocess.run([sys.executable, "-m", "indexer", "load", "--if-empty"], cwd=checkout, env=env, check=True)
    command = [sys.executable, "-m", "src"]
    if extra.get(ABLATE) == "true":
        command = [sys.executable, "-c", WITHOUT_MIDDLEWARE]
    command = ["taskset", "-c", "0", *command] if shutil.which("taskset") else command
    with (directory / f"server-{port}.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=checkout, env=env, stderr=log, stdout=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            url = f"{base}/v1/search?q={QUERY}"
            httpx.get(url, timeout=30).raise_for_status()  # now cached
            wrk(url, 3, args.connections)  # warm-up
            rps, p50, p99, errors = wrk(url, args.seconds, args.connections)
            if errors:
                raise RuntimeError(f"{errors} error responses from {url}")
            return rps, p50, p99
        finally:
            server.terminate()
            server.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, help="a checkout without observability (git worktree)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="configurations are measured in turn, this often")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    configurations: list[tuple[str, Path, dict[str, str]]] = []
    if args.against:
        configurations.append(("before", args.against.resolve(), {}))
    configurations += [
        ("this checkout, observability removed", ROOT, {ABLATE: "true", "ACCESS_LOG": "false"}),
        ("all on", ROOT, {"OTEL_TRACES_EXPORTER": "none", "ACCESS_LOG": "true"}),
        (
            "all on, 1 in 10 sampled",
            ROOT,
            {
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
                "ACCESS_LOG": "true",
            },
        ),
        ("no tracing", ROOT, {"ACCESS_LOG": "true"}),
        ("metrics only", ROOT, {"ACCESS_LOG": "false"}),
    ]
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name, _, _ in configurations}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, checkout, extra in configurations:
                directory = Path(tmp) / re.sub(r"\W+", "-", name)
                directory.mkdir(exist_ok=True)
                results[name].append(measure(checkout, extra, args, directory))
    print(f"\ncached GET /v1/search, wrk -t1 -c{args.connections} -d{args.seconds}s, best of {args.rounds}\n")
    print("| configuration | req/s | p50 ms | p99 ms | vs first |\n|---|---:|---:|---:|---:|")
    first = max(run[0] for run in results[configurations[0][0]])
    for name, runs in results.items():
        rps, p50, p99 = max(runs)
        print(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {rps / first:.2f} |")


if __name__ == "__main__":
    main()
