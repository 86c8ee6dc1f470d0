"""Benchmark: the cached search path against its floor, fastapi-cache2, and no cache, in one server.

One uvicorn process (the real app plus three bench-only routes) serves, on the demo data with Redis:

  (a) cached   GET /v1/search?q=...                 our cache-aside hit (stored bytes, one Redis trip)
  (b) uncached GET /bench/uncached/search?q=...     the same search, straight to the backend every time
  (c) floor    GET /bench/redis-get                 a minimal endpoint: one Redis GET, return its bytes
  (d) fc2      GET /bench/fastapi-cache2/search?q=  the same search cached by fastapi-cache2 on Redis

Load comes from `wrk` (Debian package `wrk`) on loopback, one mode after another, each after a warm-up.
Prints requests/second, p50/p99 latency and the ratios the cache issue sets targets for:
a/c >= 0.8, a/d >= 1.5, a/b >= 10.

`--against DIR` also serves another checkout (a git worktree of an earlier commit) from its own
directory, and measures (a) on both in `--rounds` alternate runs (ABBA order: on a shared machine,
other load hits both), printing the best of each and their ratio.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/cache_bench.py --seconds 10 --connections 16
    git worktree add /tmp/before <commit>
    REDIS_URL=... .venv/bin/python bench/cache_bench.py --against /tmp/before --rounds 6 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request, Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import free_port  # noqa: E402
from common import wrk as common_wrk  # noqa: E402

QUERY = "web server"
FLOOR_KEY = "bench:floor"


def bench_app() -> Any:
    """The real app plus the bench-only routes (uvicorn factory; configured by the environment)."""
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.redis import RedisBackend
    from fastapi_cache.decorator import cache
    from redis.asyncio import Redis

    from src.main import create_app
    from src.search import service
    from src.settings import get_api_settings

    app = create_app()
    redis = Redis.from_url(get_api_settings().redis.url)
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[None]:
        async with original(application):
            FastAPICache.init(RedisBackend(redis), prefix="bench-fc2")
            yield
        await redis.aclose()

    app.router.lifespan_context = lifespan

    async def uncached_page(request: Request, q: str) -> Any:
        services = request.app.state.services
        return await service.search_documents(
            service.SearchRequest(q=q), backend=services.backend, schema=services.schema, options=services.options
        )

    @app.get("/bench/uncached/search")
    async def uncached(request: Request, q: str = "") -> Response:
        import orjson

        return Response(orjson.dumps(await uncached_page(request, q)), media_type="application/json")

    @app.get("/bench/redis-get")
    async def redis_get() -> Response:
        return Response(await redis.get(FLOOR_KEY) or b"", media_type="application/json")

    @app.get("/bench/fastapi-cache2/search")
    @cache(expire=300)
    async def fc2_search(request: Request, q: str = "") -> Any:
        return await uncached_page(request, q)

    return app


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from one wrk run; error responses make the run fail."""
    rps, p50, p99, errors = common_wrk(url, seconds, connections)
    if errors:
        raise RuntimeError(f"{url}: {errors} error responses")
    return rps, p50, p99


async def prepare(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(300):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        cached = await client.get("/v1/search", params={"q": QUERY})
        cached.raise_for_status()
        from redis.asyncio import Redis

        redis = Redis.from_url(os.environ["REDIS_URL"])
        await redis.set(FLOOR_KEY, cached.content)  # the floor returns a body of the same size
        await redis.aclose()


def start_server(checkout: Path, directory: str) -> tuple[subprocess.Popen[bytes], str]:
    """Load the demo data for `checkout` into `directory` and serve its bench app (pinned to core 0)."""
    port = free_port()
    env = os.environ | {
        "TANTIVY_DATA_DIR": directory,
        "INDEX_ALIAS": "bench-cache",
        "CACHE_NAMESPACE": f"bench-{int(time.time())}-{port}",
        "CACHE_SOFT_TTL_SECONDS": "600",
        "CACHE_HARD_TTL_SECONDS": "1200",
        "LOG_LEVEL": "WARNING",
        "CURSOR_SECRET": "bench",
        "RATE_LIMIT_ENABLED": "false",  # one load generator is one client: the limits would be measured
    }
    subprocess.run([sys.executable, "-m", "indexer", "load", "--if-empty"], cwd=checkout, env=env, check=True)
    server_command = [
        sys.executable, "-m", "uvicorn", "bench.cache_bench:bench_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    if shutil.which("taskset"):
        server_command = ["taskset", "-c", "0", *server_command]
    server = subprocess.Popen(server_command, cwd=checkout, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(prepare(base))
    except BaseException:
        stop(server)
        raise
    return server, base


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=10)


def compare(bases: dict[str, str], seconds: int, connections: int, rounds: int) -> dict[str, tuple[float, ...]]:
    """Mode (a) of each server, alternately (ABBA order, so drift and other load hit both): best of `rounds`."""
    q = QUERY.replace(" ", "+")
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in bases}
    for base in bases.values():
        wrk(f"{base}/v1/search?q={q}", 2, connections)  # warm-up
    for number in range(rounds):
        order = list(bases) if number % 2 == 0 else list(reversed(bases))
        for name in order:
            runs[name].append(wrk(f"{bases[name]}/v1/search?q={q}", seconds, connections))
            print(f"round {number + 1} {name}: {runs[name][-1][0]:.0f} req/s", file=sys.stderr)
    return {name: max(results) for name, results in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--against", type=Path, help="another checkout (a git worktree): its cached path (a) is measured too"
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --against: alternate runs of (a) per checkout")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if not os.environ.get("REDIS_URL"):
        sys.exit("REDIS_URL is needed (e.g. redis-server --port 6379 --save '' and REDIS_URL=redis://127.0.0.1:6379/0)")
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as other_tmp:
        server, base = start_server(ROOT, tmp)
        against = None
        try:
            if args.against:
                # First, while both servers have served nothing else: the other modes leave this one with
                # more live objects (the uncached searches' caches, fastapi-cache2), which slows its GC.
                against = start_server(args.against.resolve(), other_tmp)
                best = compare({"this": base, "against": against[1]}, args.seconds, args.connections, args.rounds)
                stop(against[0])
                against = None
            q = QUERY.replace(" ", "+")
            modes = {
                "(a) cached /v1/search": f"{base}/v1/search?q={q}",
                "(b) uncached search": f"{base}/bench/uncached/search?q={q}",
                "(c) floor: one Redis GET": f"{base}/bench/redis-get",
                "(d) fastapi-cache2 search": f"{base}/bench/fastapi-cache2/search?q={q}",
            }
            results: dict[str, tuple[float, ...]] = {}
            for name, url in modes.items():
                wrk(url, 2, args.connections)  # warm-up (and fills fastapi-cache2)
                results[name] = wrk(url, args.seconds, args.connections)
        finally:
            stop(server)
            if against is not None:
                stop(against[0])
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, server and wrk pinned to one core each\n")
    print("| mode | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, (rps, p50, p99) in results.items():
        print(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
    a, b, c, d = (results[name][0] for name in modes)
    print(f"\ncached / floor = {a / c:.2f} (target >= 0.8)")
    print(f"cached / fastapi-cache2 = {a / d:.2f} (target >= 1.5)")
    print(f"cached / uncached = {a / b:.2f} (target >= 10)")
    if args.against:
        print(f"\n(a) cached /v1/search, best of {args.rounds} alternate runs each:\n")
        print("| checkout | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|")
        for name, checkout in (("this", ROOT), ("against", args.against)):
            rps, p50, p99 = best[name]
            print(f"| {name} ({checkout}) | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
        print(f"\nthis / against = {best['this'][0] / best['against'][0]:.3f}")


if __name__ == "__main__":
    main()
