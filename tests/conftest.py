"""Shared fixtures: backends for the contract suite, and the rule for tests that need a real server.

A test that needs a real server (Elasticsearch, Redis, SecantusDB) is marked `integration`, and the
helpers below refuse to run for one that is not, so `pytest -m "not integration"` stays hermetic.
Elasticsearch and Redis are skipped with one clear reason when no server answers at ELASTICSEARCH_URL
(default http://127.0.0.1:9200) / REDIS_URL outside CI; with CI=true their absence is a failure.
SecantusDB is started by the fixtures themselves, and stopped by them whatever the test does.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from socketserver import BaseRequestHandler
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.observability.tracing import configure_tracing
from src.search.backends.base import IndexAction, SearchBackend
from src.search.backends.cluster import ClusterBackend
from src.search.backends.elasticsearch import create_elasticsearch_backend
from src.search.backends.opensearch import create_opensearch_backend
from src.search.backends.tantivy import TantivyBackend
from src.search.models import Document
from src.search.schema import IndexSchema
from src.settings import get_api_settings, get_indexer_settings
from tests.fakes.search_backend import FakeSearchBackend

ES_URL = os.environ.get("ELASTICSEARCH_URL") or "http://127.0.0.1:9200"
# 9201 by default, so a developer can run both engines side by side (scripts/opensearch.sh: OS_PORT=9201).
OS_URL = os.environ.get("OPENSEARCH_URL") or "http://127.0.0.1:9201"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ENGINES = [
    "tantivy",
    pytest.param("elasticsearch", marks=pytest.mark.integration),
    pytest.param("opensearch", marks=pytest.mark.integration),
]
"""The real engines, for tests that run once per engine (the servers' ones marked integration)."""
BACKENDS = ["fake", *ENGINES]

_current: list[pytest.Item] = []
_INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
UNIT_RUN = "not integration"
"""The marker expression of the hermetic unit run (`pytest -m "not integration"`)."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The unit run does not even import tests/integration, where every test is marked integration (enforced
    below): its modules import boto3, playwright, schemathesis, the CDK... a third of the run's collection."""
    if collection_path == _INTEGRATION_DIR and str(config.getoption("markexpr", "")).strip() == UNIT_RUN:
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration is marked integration (the unit run skips the directory whole)."""
    unmarked = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(_INTEGRATION_DIR) and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"tests under tests/integration must be marked integration: {unmarked}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the running test (before its fixtures), so server helpers can check its marker."""
    _current[:] = [item]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """The test is over: server helpers called now belong to no test."""
    _current.clear()


def needs_server(what: str) -> None:
    """Fail a test that reaches for a real server without the `integration` marker."""
    if _current and _current[0].get_closest_marker("integration") is None:
        pytest.fail(f"{_current[0].nodeid} uses {what} but is not marked integration")


def elasticsearch_reachable() -> bool:
    """Whether an Elasticsearch server answers its cluster health at ES_URL."""
    try:
        return httpx.get(f"{ES_URL}/_cluster/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def require_server(what: str, reachable: Callable[[], bool], message: str) -> None:
    """Skip (outside CI) or fail (in CI) when the server `what` is not reachable."""
    needs_server(what)
    if reachable():
        return
    if IN_CI:
        pytest.fail(f"CI=true requires {what}: {message}")
    pytest.skip(message)


def require_elasticsearch() -> None:
    """Skip (outside CI) or fail (in CI) when no Elasticsearch server is reachable."""
    require_server(
        "Elasticsearch",
        elasticsearch_reachable,
        f"no Elasticsearch at {ES_URL} (start one: scripts/elasticsearch.sh start)",
    )


def opensearch_reachable() -> bool:
    """Whether an OpenSearch server (not an Elasticsearch on that port) answers at OS_URL."""
    try:
        response = httpx.get(OS_URL, timeout=2.0)
        return response.status_code == 200 and response.json().get("version", {}).get("distribution") == "opensearch"
    except (httpx.HTTPError, ValueError):
        return False


def require_opensearch() -> None:
    """Skip (outside CI) or fail (in CI) when no OpenSearch server is reachable."""
    require_server(
        "OpenSearch",
        opensearch_reachable,
        f"no OpenSearch at {OS_URL} (start one: OS_PORT=9201 scripts/opensearch.sh start)",
    )


def engine_settings(kind: str) -> dict[str, str]:
    """The variables that select engine `kind` (requiring its server), as lower-case name -> value."""
    if kind == "elasticsearch":
        require_elasticsearch()
        return {"elasticsearch_url": ES_URL, "opensearch_url": ""}
    if kind == "opensearch":
        require_opensearch()
        return {"elasticsearch_url": "", "opensearch_url": OS_URL}
    return {"elasticsearch_url": "", "opensearch_url": ""}


def engine_environment(kind: str) -> dict[str, str]:
    """The same, as environment variables for a server process a test starts."""
    return {name.upper(): value for name, value in engine_settings(kind).items()}


_SERVICE_VARIABLES = (
    "ELASTICSEARCH_",
    "OPENSEARCH_",
    "AWS_REGION",
    "TANTIVY_",
    "INDEX_",
    "SEARCH_",
    "CURSOR_",
    "REDIS_",
    "CACHE_",
    "HTTP_",
    "OTEL_",
    "RATE_LIMIT",
    "AUTH_",
    "CORS_",
    "DOCS_",
    "METRICS_",
    "TRUSTED_",
    "BROKER_",
    "CDN_",
    "PREVIEW_",
)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never read the developer's .env or a cached Settings."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    for name in list(os.environ):
        if name.startswith(_SERVICE_VARIABLES):
            monkeypatch.delenv(name, raising=False)
    # Tests send hundreds of requests a second from one client: the rate limits are off unless a test
    # (tests/api/test_security.py) sets its own; servers started by tests inherit this.
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
    get_api_settings.cache_clear()
    get_indexer_settings.cache_clear()
    yield
    get_api_settings.cache_clear()
    get_indexer_settings.cache_clear()


def redis_reachable() -> bool:
    """Whether a Redis server answers PING at REDIS_URL."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


BROKER_URL = os.environ.get("BROKER_URL", "")


def broker_reachable() -> bool:
    """A RabbitMQ listens at BROKER_URL (a TCP connect: the AMQP handshake is the tests' business)."""
    import socket
    from urllib.parse import urlsplit

    if not BROKER_URL:
        return False
    parts = urlsplit(BROKER_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1):
            return True
    except OSError:
        return False


def require_broker() -> None:
    """Skip (outside CI) or fail (in CI) when no RabbitMQ is reachable at BROKER_URL."""
    require_server(
        "RabbitMQ", broker_reachable, f"no RabbitMQ at BROKER_URL={BROKER_URL!r} (start one: scripts/rabbitmq.sh start)"
    )


def require_redis() -> None:
    """Skip (outside CI) or fail (in CI) when no Redis server is reachable."""
    require_server("Redis", redis_reachable, f"no Redis at {REDIS_URL} (start one: redis-server --port 6379 --save '')")


async def make_backend(kind: str, schema: IndexSchema, tmp_path: Path) -> SearchBackend:
    """A fresh, empty backend of `kind` with a unique alias."""
    alias = f"contract-{uuid.uuid4().hex[:10]}"
    if kind == "fake":
        return FakeSearchBackend(schema=schema, alias=alias)
    if kind == "tantivy":
        return TantivyBackend(tmp_path / "tantivy", schema=schema, alias=alias, timeout_seconds=10.0)
    if kind == "opensearch":
        require_opensearch()
        return create_opensearch_backend(url=OS_URL, schema=schema, alias=alias, timeout_seconds=10.0)
    require_elasticsearch()
    return create_elasticsearch_backend(url=ES_URL, schema=schema, alias=alias, timeout_seconds=10.0)


async def drop_all(backend: SearchBackend) -> None:
    """Remove every index the test created (the engine clusters keep them otherwise)."""
    if not isinstance(backend, ClusterBackend):
        return
    current = await backend.current_index()
    for name in await backend.list_indices():
        if name != current:
            await backend.drop_index(name)
    if current is not None:
        client = backend._client
        await client.indices.delete(index=current)


@asynccontextmanager
async def cluster_backend(kind: str, schema: IndexSchema, tmp_path: Path) -> AsyncIterator[ClusterBackend[Any]]:
    """A fresh engine-cluster backend of `kind` (elasticsearch or opensearch), every index it made dropped
    and its client closed at the end."""
    backend = await make_backend(kind, schema, tmp_path)
    assert isinstance(backend, ClusterBackend)
    try:
        yield backend
    finally:
        await drop_all(backend)
        await backend.close()


async def load(backend: SearchBackend, docs: list[Document]) -> str:
    """Create an index, write `docs`, make them searchable and point the alias at it."""
    index = await backend.create_index()
    results = await backend.bulk(
        [IndexAction(op="upsert", doc_id=str(doc["id"]), document=doc) for doc in docs], index=index
    )
    assert all(result.ok for result in results), [r for r in results if not r.ok]
    await backend.refresh(index)
    await backend.point_alias(index)
    return index


@pytest.fixture(params=BACKENDS)
async def empty_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchBackend]:
    """Each contract test runs once per implementation, on an empty backend with the catalog schema."""
    from tests.fixtures.catalog import SCHEMA

    backend = await make_backend(str(request.param), SCHEMA, tmp_path)
    try:
        yield backend
    finally:
        await drop_all(backend)
        await backend.close()


class TantivyTemplates:
    """Tantivy directories loaded once per session and copied for each test that wants them loaded: indexing
    the same documents again for every contract test was most of the contract suite's time. A copy is a
    whole index of its own (the test may write to it); what it holds is what `load` makes."""

    ALIAS = "loaded"

    def __init__(self, base: Path) -> None:
        self.base = base

    async def loaded(self, schema: IndexSchema, docs: list[Document], directory: Path) -> TantivyBackend:
        """A backend in `directory` holding `docs` (through `load`, once per schema and documents)."""
        import hashlib
        import shutil

        import orjson

        digest = hashlib.sha256(schema.fingerprint.encode() + orjson.dumps(docs, option=orjson.OPT_SORT_KEYS))
        template = self.base / digest.hexdigest()[:16]
        if not template.exists():
            building = template.with_suffix(".building")
            shutil.rmtree(building, ignore_errors=True)
            builder = TantivyBackend(building, schema=schema, alias=self.ALIAS, timeout_seconds=10.0)
            try:
                await load(builder, docs)
            finally:
                await builder.close()
            building.rename(template)
        shutil.copytree(template, directory)
        return TantivyBackend(directory, schema=schema, alias=self.ALIAS, timeout_seconds=10.0)


@pytest.fixture(scope="session")
def tantivy_templates(tmp_path_factory: pytest.TempPathFactory) -> TantivyTemplates:
    """The session's loaded Tantivy directories (see TantivyTemplates)."""
    return TantivyTemplates(tmp_path_factory.mktemp("tantivy-templates"))


async def loaded_backend(
    kind: str, schema: IndexSchema, docs: list[Document], tmp_path: Path, templates: TantivyTemplates
) -> SearchBackend:
    """A fresh backend of `kind` holding `docs` (Tantivy's a copy of a template, the others loaded now)."""
    if kind == "tantivy":
        return await templates.loaded(schema, docs, tmp_path / "tantivy")
    backend = await make_backend(kind, schema, tmp_path)
    await load(backend, docs)
    return backend


@asynccontextmanager
async def serving_backend(
    kind: str, schema: IndexSchema, docs: list[Document], tmp_path: Path, templates: TantivyTemplates
) -> AsyncIterator[SearchBackend]:
    """`loaded_backend` for the block's length: its indices dropped and its clients closed after."""
    backend = await loaded_backend(kind, schema, docs, tmp_path, templates)
    try:
        yield backend
    finally:
        await drop_all(backend)
        await backend.close()


@pytest.fixture(params=BACKENDS)
async def catalog_backend(
    request: pytest.FixtureRequest, tmp_path: Path, tantivy_templates: TantivyTemplates
) -> AsyncIterator[SearchBackend]:
    """Each implementation, loaded with the contract catalogue."""
    from tests.fixtures.catalog import DOCS, SCHEMA

    async with serving_backend(str(request.param), SCHEMA, DOCS, tmp_path, tantivy_templates) as backend:
        yield backend


def _secantus_binary() -> str | None:
    import shutil
    import sys

    beside = Path(sys.executable).parent / "secantusd-py"
    return str(beside) if beside.exists() else shutil.which("secantusd-py")


def start_secantus(storage: Path, *extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a SecantusDB server (MongoDB wire protocol) on a free loopback port; skip or fail when absent."""
    import socket
    import subprocess
    import time

    needs_server("SecantusDB")
    binary = _secantus_binary()
    if binary is None:
        message = "secantusd-py not installed (pip install -e '.[dev]')"
        if IN_CI:
            pytest.fail(f"CI=true requires SecantusDB: {message}")
        pytest.skip(message)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            binary,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"secantusd-py exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("secantusd-py did not accept connections within 30 s")
                time.sleep(0.1)
    except BaseException:
        stop_process(process)  # a server that never came up is still ours to stop
        raise
    return f"mongodb://127.0.0.1:{port}/?directConnection=true", process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server we started, by its process, and wait for it."""
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def secantus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SecantusDB server for the session (tests use their own database names)."""
    url, process = start_secantus(tmp_path_factory.mktemp("secantus"))
    try:
        yield url
    finally:
        stop_process(process)


def _free_port_pair() -> int:
    """A port whose cluster-bus port (port + 10000) is free too."""
    import socket

    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisClusterNodes:
    """Three master nodes of a real Redis Cluster (Debian's redis-server), owned by one fixture."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.ports = [_free_port_pair() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                self.binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--save", "",
                "--appendonly", "no", "--dir", str(node_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait(lambda: self._cli(port, "ping").strip() == "PONG", f"node {port} to answer")

    def stop_node(self, port: int) -> None:
        stop_process(self.processes.pop(port))

    def create(self) -> None:
        for port in self.ports:
            self.start_node(port)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        def ok() -> bool:
            return all("cluster_state:ok" in self._cli(port, "cluster", "info") for port in self.ports)

        self._wait(ok, "the cluster to be healthy")

    def stop_all(self) -> None:
        for port in list(self.processes):
            self.stop_node(port)

    def _cli(self, port: int, *args: str) -> str:
        found = subprocess.run(
            ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=5, check=False
        )
        return found.stdout

    @staticmethod
    def _wait(condition: Callable[[], bool], what: str) -> None:
        import time

        deadline = time.monotonic() + 30
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A 3-master Redis Cluster for the session; every node process is stopped at the end, whatever happened."""
    import shutil

    needs_server("Redis Cluster")
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("redis-cli") is None:
        message = "redis-server/redis-cli not installed (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(f"CI=true requires a Redis Cluster: {message}")
        pytest.skip(message)
    nodes = RedisClusterNodes(binary, tmp_path_factory.mktemp("redis-cluster"))
    try:
        nodes.create()
        yield nodes
    finally:
        nodes.stop_all()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Spans of this test process, in memory (the tracer provider is process-wide: installed once, kept for
    the rest of the session; tests clear the exporter before they look)."""
    exporter = InMemorySpanExporter()
    provider = configure_tracing("search-api-tests", processor=SimpleSpanProcessor(exporter))
    assert provider is not None
    return exporter


def wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    """Poll `base`/readyz until the API process we started answers 200 (fail when it exits or times out)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, "the API exited"
        assert time.monotonic() < deadline, f"the API did not get ready within {seconds:.0f} s"
        time.sleep(0.1)


@contextmanager
def http_server(handler: Callable[..., BaseRequestHandler], port: int = 0) -> Iterator[str]:
    """A threaded HTTP server on loopback serving `handler` (a stub JWKS, OTLP receiver, CDN API or
    static page); yields its base URL and is shut down, whatever the test does."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    # shutdown() waits for the serving loop's next poll: a short one keeps each test's teardown short.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
