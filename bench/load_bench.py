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

Last, (d) an abusive client beside a neighbour, on a second API process with the per-client limits on
(engine budget `RATE_LIMIT_ENGINE=20/second`, the overall limit out of the way): wrk sends distinct
uncached searches on 100 connections as one client (`X-Forwarded-For` through the trusted loopback),
while a neighbour sends 10 distinct uncached searches a second (under its budget) as another; once with
Redis up, once with Redis paused for the whole run. It reports the abuser's responses by status and the
share of the neighbour's searches that succeeded. `--abuse-only` runs (d) alone.

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
local counters = {"s200", "s304", "s429", "s4xx", "s503", "s5xx", "retry_after", "hit", "miss", "stale"}
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
  elseif status == 429 then s429 = s429 + 1
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
    "limiter errors": r"^search_api_rate_limiter_errors_total (\S+)",
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


def wrk_command(url: str, seconds: int, connections: int, script: Path, headers: tuple[str, ...] = ()) -> list[str]:
    extra = [argument for header in headers for argument in ("-H", header)]
    return pinned(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", *extra, "-s", str(script),
         url],
        1,
    )  # fmt: skip


def run_wrk(url: str, seconds: int, connections: int, script: Path) -> tuple[float, float, float, dict[str, int], str]:
    output = subprocess.run(wrk_command(url, seconds, connections, script), check=True, capture_output=True, text=True)
    return parse_wrk(output.stdout)


def parse_wrk(output: str) -> tuple[float, float, float, dict[str, int], str]:
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


ABUSER = "198.51.100.66"
NEIGHBOUR = "203.0.113.20"
NEIGHBOUR_PER_SECOND = 10


@dataclass
class AbuseResult:
    redis: str
    abuser: dict[str, int]
    neighbour: dict[int, int]
    """The neighbour's responses by status (0: no answer within 5 s)."""
    server: dict[str, float]

    def neighbour_success(self) -> float:
        return self.neighbour.get(200, 0) / max(1, sum(self.neighbour.values()))


async def neighbour_searches(base: str, seconds: float, words: list[str]) -> dict[int, int]:
    """Distinct uncached searches at NEIGHBOUR_PER_SECOND as the neighbour, for `seconds`; statuses counted."""
    statuses: dict[int, int] = {}
    headers = {"x-forwarded-for": NEIGHBOUR}

    async def one(client: httpx.AsyncClient, number: int) -> None:
        query = f"{words[number % len(words)]} {words[(number * 7) % len(words)]} n{number}"
        try:
            status = (await client.get("/v1/search", params={"q": query}, headers=headers)).status_code
        except httpx.HTTPError:
            status = 0
        statuses[status] = statuses.get(status, 0) + 1

    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = []
        for number in range(int(seconds * NEIGHBOUR_PER_SECOND)):
            await asyncio.sleep(max(0.0, started + number / NEIGHBOUR_PER_SECOND - loop.time()))
            tasks.append(asyncio.create_task(one(client, number)))
        await asyncio.gather(*tasks)
    return statuses


async def abuse_run(base: str, seconds: int, script: Path, words: list[str]) -> tuple[dict[str, int], dict[int, int]]:
    """wrk as the abuser (100 connections) and the neighbour's searches, side by side."""
    command = wrk_command(base, seconds, 100, script, headers=(f"X-Forwarded-For: {ABUSER}",))
    wrk = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    neighbour = await neighbour_searches(base, max(1.0, seconds - 1.0), words)
    output, _ = await wrk.communicate()
    return parse_wrk(output.decode())[3], neighbour


def abuse_case(
    env: dict[str, str], redis: subprocess.Popen[bytes], seconds: int, script: Path, words: list[str]
) -> list[AbuseResult]:
    """(d): a second API process with the per-client limits on; Redis up, then paused for the whole run."""
    port = free_port()
    limited = env | {
        "APP_PORT": str(port),
        "CACHE_NAMESPACE": f"bench-abuse-{int(time.time())}",
        "RATE_LIMIT": "10000000/second",  # the overall limit out of the way: the engine budget is measured
        "RATE_LIMIT_ENGINE": "20/second",
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "ACCESS_LOG": "false",
    }
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(pinned([sys.executable, "-m", "src"], 0), cwd=ROOT, env=limited)
    results = []
    try:
        asyncio.run(wait_ready(base))
        asyncio.run(warm(base))  # a just-loaded index answers its first searches slowly: not what is measured
        for state in ("up", "paused"):
            before = server_counters(base)
            if state == "paused":
                os.kill(redis.pid, signal.SIGSTOP)
            try:
                abuser, neighbour = asyncio.run(abuse_run(base, seconds, script, words))
            finally:
                os.kill(redis.pid, signal.SIGCONT)
            after = server_counters(base)
            delta = {key: after[key] - before[key] for key in after}
            results.append(AbuseResult(state, abuser, neighbour, delta))
            print(f"(d) Redis {state}: abuser {abuser}, neighbour {neighbour}, {delta}")
            time.sleep(3)  # the budget's window and the breakers settle before the next run
    finally:
        server.terminate()
        server.wait(timeout=15)
    return results


def print_abuse(results: list[AbuseResult], seconds: int) -> None:
    print(
        f"\n(d) abuser: wrk -t2 -c100 distinct queries for {seconds} s; neighbour: {NEIGHBOUR_PER_SECOND} distinct/s\n"
    )
    print(
        "| Redis | abuser 200 | abuser 429 | abuser 503 | neighbour sent | neighbour 200 | neighbour success "
        "| neighbour 429 / 503 / no answer | limiter errors | admission refusals |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        a, n = r.abuser, r.neighbour
        print(
            f"| {r.redis} | {a.get('s200', 0)} | {a.get('s429', 0)} | {a.get('s503', 0)} | {sum(n.values())} | "
            f"{n.get(200, 0)} | {r.neighbour_success():.1%} | {n.get(429, 0)} / {n.get(503, 0)} / {n.get(0, 0)} | "
            f"{r.server['limiter errors']:.0f} | {r.server['admission']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--pause-seconds", type=float, default=5.0)
    parser.add_argument("--abuse-only", action="store_true", help="run (d), the abusive client, alone")
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
        results: list[Result] = []
        try:
            if not args.abuse_only:
                results = load_cases(args, env, redis, scripts, directory, engine, es_url)
            abuse = abuse_case(env, redis, args.seconds, scripts["distinct"], words)
        finally:
            redis.terminate()
            redis.wait(timeout=15)
    if results:
        print_results(results, args.seconds)
    print_abuse(abuse, args.seconds)


def load_cases(
    args: argparse.Namespace,
    env: dict[str, str],
    redis: subprocess.Popen[bytes],
    scripts: dict[str, Path],
    directory: Path,
    engine: str,
    es_url: str,
) -> list[Result]:
    """(a), (b), (c) and the floor at each concurrency, then the pauses, on one API process."""
    log = (directory / "api.log").open("wb")  # the access log: one line per request
    server = subprocess.Popen(pinned([sys.executable, "-m", "src"], 0), cwd=ROOT, env=env, stderr=log)
    base = f"http://127.0.0.1:{env['APP_PORT']}"
    results: list[Result] = []
    try:
        asyncio.run(wait_ready(base))
        asyncio.run(warm(base))
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
    return results


def print_results(results: list[Result], seconds: int) -> None:
    print(f"\nwrk -t2 --timeout 5s, {seconds} s per run; server on core 0, wrk on core 1\n")
    print(
        "| run | conns | req/s | p50 ms | p99 ms | 200 | 503 (Retry-After) | other | HIT / MISS / STALE "
        "| socket errors | server: admission refusals / 503 capacity / 503 search / breakers opened (search, redis) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for r in results:
        c, s = r.counts, r.server
        other = c.get("s304", 0) + c.get("s429", 0) + c.get("s4xx", 0) + c.get("s5xx", 0)
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
