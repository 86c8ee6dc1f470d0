"""Benchmark: the API under load and under dependency failure, one process, Redis and a real engine cluster.

One uvicorn process (pinned to core 0) serves the demo data from Elasticsearch with Redis (a
redis-server of the benchmark's own, so it can be paused); `wrk` (pinned to core 1) drives it for
`--seconds` at each of `--connections`:

  (a) one cached URL                        GET /v1/search?q=web+server
  (b) rotating distinct queries             every request a new query (a Lua script walks a word list)
  (c) 90 % from a hot set of 10, 10 % distinct
  floor: GET /healthz at the same concurrency

then, at the highest concurrency, (a) and (c) again while Redis is paused (SIGSTOP) for 5 s, and while
Elasticsearch is paused for 5 s. Each run reports req/s, p50/p99 latency and the counts of responses
by status, by X-Cache, and of 503s carrying Retry-After (admission control), and socket errors.

    scripts/elasticsearch.sh start
    ELASTICSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python bench/load_bench.py --seconds 20
    OPENSEARCH_URL=http://127.0.0.1:9201 .venv/bin/python bench/load_bench.py --seconds 20   (the same on OpenSearch)

Needs `wrk` and `redis-server` (Debian packages). Prints a Markdown table; figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ALIAS = "bench-load"
HOT = ["web server", "editor", "python", "database", "terminal", "image", "network", "compiler", "game", "audio"]

LUA_COUNTERS = r"""
local counters = {"s200", "s304", "s4xx", "s503", "s5xx", "retry_after", "hit", "miss", "stale"}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  for _, name in ipairs(counters) do _G[name] = 0 end
  n = 0
end
function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 304 then s304 = s304 + 1
  elseif status == 503 then
    s503 = s503 + 1
    if headers["Retry-After"] or headers["retry-after"] then retry_after = retry_after + 1 end
  elseif status >= 500 then s5xx = s5xx + 1
  elseif status >= 400 then s4xx = s4xx + 1 end
  local cache = headers["X-Cache"] or headers["x-cache"]
  if cache == "HIT" then hit = hit + 1 elseif cache == "MISS" then miss = miss + 1
  elseif cache == "STALE" then stale = stale + 1 end
end
function done(summary, latency, requests)
  for _, name in ipairs(counters) do
    local total = 0
    for _, thread in ipairs(threads) do total = total + thread:get(name) end
    io.write(string.format("COUNT %s %d\n", name, total))
  end
end
"""

LUA_PATHS = r"""
local hot = {%(hot)s}
local words = {%(words)s}
local mode = "%(mode)s"
local counter = 0
request = function()
  counter = counter + 1
  local q
  if mode == "distinct" or (mode == "mixed" and counter %% 10 == 0) then
    local a = words[(counter %% #words) + 1]
    local b = words[(math.floor(counter / #words) %% #words) + 1]
    q = a .. "+" .. b .. "+" .. tostring(counter)
  else
    q = hot[(counter %% #hot) + 1]
  end
  return wrk.format("GET", "/v1/search?q=" .. q)
end
"""


@dataclass
class Result:
    name: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    counts: dict[str, int]
    socket_errors: str
    server: dict[str, float]
    """Deltas of the server's own counters over the run (admission refusals, 503s by cause, breakers)."""


SERVER_COUNTERS = {
    "admission": r"^search_api_admission_rejected_total (\S+)",
    "503 capacity": r'^search_api_unavailable_responses_total\{dependency="capacity"\} (\S+)',
    "503 search": r'^search_api_unavailable_responses_total\{dependency="search"\} (\S+)',
    "search breaker opened": r'^search_api_breaker_transitions_total\{breaker="search",state="open"\} (\S+)',
    "redis breaker opened": r'^search_api_breaker_transitions_total\{breaker="redis",state="open"\} (\S+)',
}


def server_counters(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    found: dict[str, float] = {}
    for name, pattern in SERVER_COUNTERS.items():
        match = re.search(pattern, text, re.MULTILINE)
        found[name] = float(match.group(1)) if match else 0.0
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def run_wrk(url: str, seconds: int, connections: int, script: Path) -> tuple[float, float, float, dict[str, int], str]:
    command = pinned(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(script), url], 1
    )
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    counts = {name: int(value) for name, value in re.findall(r"COUNT (\w+) (\d+)", output)}
    errors = re.search(r"Socket errors: (.*)", output)
    return rps, percentile("50"), percentile("99"), counts, errors.group(1) if errors else "none"


def pause(pid: int, after: float, seconds: float) -> threading.Thread:
    """SIGSTOP `pid` after `after` seconds, SIGCONT it `seconds` later (in a thread, during a wrk run)."""

    def run() -> None:
        time.sleep(after)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(300):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API did not become ready")


async def warm(base: str) -> None:
    """Cache the hot set (and the one URL of (a)) before the pauses, as a running service would have."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for query in HOT:
            (await client.get("/v1/search", params={"q": query})).raise_for_status()


def engine_pid(url: str) -> int:
    """The engine's server process (Elasticsearch and OpenSearch answer the same nodes API)."""
    nodes = httpx.get(f"{url}/_nodes/_local/process", timeout=10).json()["nodes"]
    return int(next(iter(nodes.values()))["process"]["id"])


def start_redis(directory: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--pause-seconds", type=float, default=5.0)
    args = parser.parse_args()
    engine, variable = (
        ("OpenSearch", "OPENSEARCH_URL") if os.environ.get("OPENSEARCH_URL") else ("Elasticsearch", "ELASTICSEARCH_URL")
    )
    es_url = os.environ.get(variable)
    if not (shutil.which("wrk") and shutil.which("redis-server") and es_url):
        sys.exit("needs wrk, redis-server (apt-get install wrk redis-server) and ELASTICSEARCH_URL or OPENSEARCH_URL")
    words = [line.split()[0] for line in (ROOT / "bench" / "words.txt").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        redis_url, redis = start_redis(directory)
        port = free_port()
        env = os.environ | {
            "ELASTICSEARCH_URL": "",
            "OPENSEARCH_URL": "",
            variable: es_url,
            "REDIS_URL": redis_url,
            "INDEX_ALIAS": ALIAS,
            "CACHE_NAMESPACE": f"bench-{int(time.time())}",
            "LOG_LEVEL": "WARNING",
            "CURSOR_SECRET": "bench",
            # The limiters run (the engine budget in the Redis that gets paused) with limits one load
            # generator, one client, never reaches: their cost and their Redis dependency are measured.
            "RATE_LIMIT": "10000000/second",
            "RATE_LIMIT_ENGINE": "10000000/second",
            "ACCESS_LOG": "true",
            "APP_PORT": str(port),
        }
        subprocess.run([sys.executable, "-m", "indexer", "load", "--if-empty"], cwd=ROOT, env=env, check=True)
        log = (directory / "api.log").open("wb")  # the access log: one line per request
        server = subprocess.Popen(pinned([sys.executable, "-m", "src"], 0), cwd=ROOT, env=env, stderr=log)
        base = f"http://127.0.0.1:{port}"
        results: list[Result] = []
        try:
            asyncio.run(wait_ready(base))
            asyncio.run(warm(base))
            scripts = {}
            for mode in ("one", "distinct", "mixed"):
                path = directory / f"{mode}.lua"
                paths = LUA_PATHS % {
                    "hot": ", ".join(f'"{q.replace(" ", "+")}"' for q in (HOT[:1] if mode == "one" else HOT)),
                    "words": ", ".join(f'"{w}"' for w in words),
                    "mode": "hot" if mode == "one" else mode,
                }
                path.write_text(paths + LUA_COUNTERS)
                scripts[mode] = path
            healthz = directory / "healthz.lua"
            healthz.write_text(LUA_COUNTERS)

            def measure(name: str, url: str, script: Path, connections: int) -> None:
                before = server_counters(base)
                rps, p50, p99, counts, errors = run_wrk(url, args.seconds, connections, script)
                after = server_counters(base)
                delta = {key: after[key] - before[key] for key in after}
                results.append(Result(name, connections, rps, p50, p99, counts, errors, delta))
                print(f"{name} c={connections}: {rps:.0f} req/s, p99 {p99:.1f} ms, {counts}, errors {errors}, {delta}")

            for connections in args.connections:
                measure("floor /healthz", f"{base}/healthz", healthz, connections)
                measure("(a) one cached URL", base, scripts["one"], connections)
                measure("(b) distinct queries", base, scripts["distinct"], connections)
                measure("(c) 90 % hot, 10 % distinct", base, scripts["mixed"], connections)
            top = max(args.connections)
            for dependency, pid in (("Redis", redis.pid), (engine, engine_pid(es_url))):
                for name, mode in (("(a) one cached URL", "one"), ("(c) 90 % hot, 10 % distinct", "mixed")):
                    asyncio.run(warm(base))
                    paused = pause(pid, after=min(5.0, args.seconds / 4), seconds=args.pause_seconds)
                    measure(f"{name}, {dependency} paused {args.pause_seconds:g} s", base, scripts[mode], top)
                    paused.join()
        finally:
            server.terminate()
            server.wait(timeout=15)
            log.close()
            print(f"API log: {sum(1 for _ in (directory / 'api.log').open('rb'))} lines")
            redis.terminate()
            redis.wait(timeout=15)
    print(f"\nwrk -t2 --timeout 5s, {args.seconds} s per run; server on core 0, wrk on core 1\n")
    print(
        "| run | conns | req/s | p50 ms | p99 ms | 200 | 503 (Retry-After) | other | HIT / MISS / STALE "
        "| socket errors | server: admission refusals / 503 capacity / 503 search / breakers opened (search, redis) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for r in results:
        c, s = r.counts, r.server
        other = c.get("s304", 0) + c.get("s4xx", 0) + c.get("s5xx", 0)
        print(
            f"| {r.name} | {r.connections} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {c.get('s200', 0)} | "
            f"{c.get('s503', 0)} ({c.get('retry_after', 0)}) | {other} | "
            f"{c.get('hit', 0)} / {c.get('miss', 0)} / {c.get('stale', 0)} | {r.socket_errors} | "
            f"{s['admission']:.0f} / {s['503 capacity']:.0f} / {s['503 search']:.0f} / "
            f"{s['search breaker opened']:.0f}, {s['redis breaker opened']:.0f} |"
        )
    floors = {r.connections: r.p99_ms for r in results if r.name.startswith("floor")}
    for r in results:
        if r.name == "(a) one cached URL":
            print(f"\n(a) p99 / /healthz p99 at {r.connections} connections = {r.p99_ms / floors[r.connections]:.2f}")


if __name__ == "__main__":
    main()
