"""The shipped gateway config (docker/nginx.conf.template) in a real nginx (Debian's package) in front of the
real API process, and in front of a stub upstream for what the API cannot be made to answer on demand.

The template's `${NAME}` placeholders are filled as the official nginx image fills them (defined variables
only); the test wraps the result in a minimal main config of its own (pid, logs and temp dirs under
tmp_path), as the image's /etc/nginx/nginx.conf includes conf.d in its `http` block.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import http_server, require_server, stop_process, wait_ready

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docker" / "nginx.conf.template"
PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_template(text: str, values: dict[str, str]) -> str:
    """Fill `${NAME}` placeholders as envsubst does with a list of defined variables: every placeholder must
    have a value (a missing one would reach nginx as literal text), nginx's own `$name` variables stay."""
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    assert not missing, f"no value for {missing}"
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _nginx_binary() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    require_server("nginx", lambda: binary is not None, "nginx not installed (apt-get install nginx)")
    assert binary is not None
    return binary


@dataclass(frozen=True, slots=True)
class Gateway:
    """A running nginx with the repository's config."""

    url: str
    access_log: Path


SHIPPED_RATE = "rate=50r/s"
"""The per-client zone's refill rate in the shipped template."""


@contextmanager
def run_gateway(tmp_path: Path, upstream: str, *, zone_rate: str | None = None) -> Iterator[Gateway]:
    """Start nginx (foreground, its own prefix) with the shipped config in front of `upstream` (host:port);
    stopped by its pid whatever happens. `zone_rate` replaces the per-client zone's refill rate only."""
    binary = _nginx_binary()
    prefix = tmp_path / f"nginx-{uuid.uuid4().hex[:6]}"
    (prefix / "temp").mkdir(parents=True)
    port = _free_port()
    access_log = prefix / "access.log"
    template = TEMPLATE.read_text()
    if zone_rate is not None:
        assert template.count(SHIPPED_RATE) == 1, "the shipped zone's rate moved: update SHIPPED_RATE"
        template = template.replace(SHIPPED_RATE, f"rate={zone_rate}")
    server = render_template(
        template,
        {"GATEWAY_PORT": f"127.0.0.1:{port}", "API_UPSTREAM": upstream, "GATEWAY_ACCESS_LOG": str(access_log)},
    )
    (prefix / "gateway.conf").write_text(server)
    temp = prefix / "temp"
    # A root master would run its workers as `nobody`, who cannot enter pytest's private tmp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;\n"
        f"  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;\n"
        f"  include {prefix}/gateway.conf;\n"
        "}\n"
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(prefix / "stderr.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, f"nginx exited: {(prefix / 'stderr.log').read_text()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen within 15 s"
                time.sleep(0.05)
        yield Gateway(url=url, access_log=access_log)
    finally:
        stop_process(process)


def _logged(log: Path, needle: str, seconds: float = 5.0) -> list[str]:
    """The JSON lines of `log` that contain `needle`, once there are any (the access log is written after
    the response, at the end of the event loop's turn)."""
    deadline = time.monotonic() + seconds
    while True:
        lines = [line for line in log.read_text().splitlines() if line.startswith("{") and needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Api:
    """The real API process, serving a small slice of the demo data from a Tantivy index."""

    url: str
    upstream: str
    log: Path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One API process for the module (stopped by its pid at the end), on loopback."""
    directory = tmp_path_factory.mktemp("gateway-api")
    with gzip.open(ROOT / "data" / "debian-packages.jsonl.gz", "rt") as demo:
        lines = demo.readlines()[:300]
    (directory / "docs.jsonl").write_text("".join(lines))
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ELASTICSEARCH_", "OPENSEARCH_", "OTEL_"))},
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "REDIS_URL": "",
        "BROKER_URL": "",
        "TANTIVY_DATA_DIR": str(directory / "tantivy"),
        "CURSOR_SECRET": "gateway-test",
        "APP_PORT": str(port),
        "RATE_LIMIT_ENABLED": "false",  # every 429 below is the gateway's
    }
    subprocess.run(
        [sys.executable, "-m", "indexer", "load", str(directory / "docs.jsonl")],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = directory / "api.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env, stderr=stderr)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        yield Api(url=url, upstream=f"127.0.0.1:{port}", log=log)
    finally:
        stop_process(process)


@pytest.fixture
def gateway(tmp_path: Path, api: Api) -> Iterator[Gateway]:
    """A fresh nginx per test (its rate-limit zone starts empty) in front of the module's API."""
    with run_gateway(tmp_path, api.upstream) as running:
        yield running


class _Echo(http.server.BaseHTTPRequestHandler):
    """A stub upstream: 503 with Retry-After on /unavailable, a large uncompressed JSON on /large, and
    otherwise the request headers it was sent, as JSON."""

    def do_GET(self) -> None:
        if self.path == "/unavailable":
            body = b'{"type":"/problems/unavailable","status":503,"dependency":"search"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Retry-After", "7")
        else:
            if self.path == "/large":
                payload: object = {"items": [{"n": n, "text": "compressible " * 4} for n in range(200)]}
            else:
                payload = {name.lower(): value for name, value in self.headers.items()}
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def stub_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """nginx with the shipped config in front of the stub upstream."""
    with http_server(_Echo) as stub, run_gateway(tmp_path, stub.removeprefix("http://")) as running:
        yield running


def test_gateway_routes_search_documents_and_probes_to_the_api(gateway: Gateway, api: Api) -> None:
    found = httpx.get(f"{gateway.url}/v1/search", params={"q": "strategy game", "size": 3})
    direct = httpx.get(f"{api.url}/v1/search", params={"q": "strategy game", "size": 3})
    assert found.status_code == 200
    assert found.json()["hits"] == direct.json()["hits"]
    assert found.json()["hits"], "the slice of the demo data has a strategy game"
    assert httpx.get(f"{gateway.url}/v1/documents/0ad").json()["id"] == "0ad"
    missing = httpx.get(f"{gateway.url}/v1/documents/no-such-package")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    invalid = httpx.get(f"{gateway.url}/v1/search", params={"size": "0"})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["parameter"] == "size"


def test_gateway_never_routes_metrics_or_docs_from_outside(gateway: Gateway, api: Api) -> None:
    assert "search_api_requests_total" in httpx.get(f"{api.url}/metrics").text  # the API does serve it
    for path in ("/metrics", "//metrics", "/%6Detrics", "/metrics?x=1", "/./metrics", "/v1/../metrics", "/metrics/"):
        refused = httpx.get(f"{gateway.url}{path}")
        assert refused.status_code == 404, path
        assert refused.headers["content-type"] == "application/problem+json", path
        assert "search_api" not in refused.text, path
    for path in ("/docs", "/docs/assets/swagger-ui.css", "/openapi.json"):
        assert httpx.get(f"{gateway.url}{path}").status_code == 404, path
    assert httpx.get(f"{api.url}/openapi.json").status_code == 200


def test_gateway_routes_admin_paths_and_leaves_tokens_to_the_api(gateway: Gateway) -> None:
    purge = httpx.post(f"{gateway.url}/v1/admin/cache/purge", json={"all": True})
    assert purge.status_code == 401
    assert purge.headers["www-authenticate"].startswith("Bearer")
    assert purge.headers["content-type"] == "application/problem+json"
    bad = httpx.get(f"{gateway.url}/v1/admin/indexer/status", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


def test_gateway_request_id_when_sent_is_kept_and_when_absent_is_made(gateway: Gateway, api: Api) -> None:
    kept = httpx.get(f"{gateway.url}/v1/documents/0ad", headers={"X-Request-Id": "client-id-42"})
    assert kept.headers["x-request-id"] == "client-id-42"
    made = httpx.get(f"{gateway.url}/v1/documents/0ad")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    for request_id in ("client-id-42", made.headers["x-request-id"]):  # nginx logs after it answered
        (line,) = _logged(gateway.access_log, request_id)
        assert json.loads(line)["request_id"] == request_id
    # The API logged the gateway's id on its own access line: one id from edge to engine.
    assert _logged(api.log, made.headers["x-request-id"])


def test_gateway_traceparent_reaches_the_api_untouched(gateway: Gateway, api: Api) -> None:
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    request_id = uuid.uuid4().hex
    response = httpx.get(
        f"{gateway.url}/v1/documents/0ad", headers={"traceparent": traceparent, "X-Request-Id": request_id}
    )
    assert response.status_code == 200
    access = [json.loads(line) for line in _logged(api.log, request_id) if '"access"' in line]
    assert access
    assert access[0]["trace_id"] == trace_id


def test_gateway_passes_headers_to_the_upstream(stub_gateway: Gateway) -> None:
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    seen = httpx.get(
        f"{stub_gateway.url}/echo",
        headers={"traceparent": traceparent, "tracestate": "vendor=1", "X-Request-Id": "abc.def"},
    ).json()
    assert seen["traceparent"] == traceparent
    assert seen["tracestate"] == "vendor=1"
    assert seen["x-request-id"] == "abc.def"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    made = httpx.get(f"{stub_gateway.url}/echo").json()
    assert re.fullmatch(r"[0-9a-f]{32}", made["x-request-id"])


def test_gateway_upstream_503_passes_through_with_retry_after(stub_gateway: Gateway) -> None:
    response = httpx.get(f"{stub_gateway.url}/unavailable")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["dependency"] == "search"


def test_gateway_when_the_upstream_is_down_answers_a_problem(tmp_path: Path) -> None:
    with run_gateway(tmp_path, f"127.0.0.1:{_free_port()}") as down:
        response = httpx.get(f"{down.url}/v1/search")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["dependency"] == "api"


def test_gateway_gzip_compresses_what_the_upstream_did_not(stub_gateway: Gateway) -> None:
    plain = httpx.get(f"{stub_gateway.url}/large", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with httpx.stream("GET", f"{stub_gateway.url}/large", headers={"Accept-Encoding": "gzip"}) as compressed:
        compressed.read()
    assert compressed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in compressed.headers["vary"]
    assert compressed.json() == plain.json()  # httpx decodes it: one layer of gzip, the same JSON
    assert compressed.num_bytes_downloaded < len(plain.content) / 4


def test_gateway_gzip_of_the_api_body_is_not_compressed_twice(gateway: Gateway, api: Api) -> None:
    params = {"q": "game", "size": "20"}
    httpx.get(f"{gateway.url}/v1/search", params=params)  # cached now, with its gzip copy
    through = httpx.get(f"{gateway.url}/v1/search", params=params, headers={"Accept-Encoding": "gzip"})
    assert through.headers["content-encoding"] == "gzip"
    assert through.json()["hits"] == httpx.get(f"{api.url}/v1/search", params=params).json()["hits"]


async def test_gateway_limit_req_over_the_burst_answers_429_problems(tmp_path: Path, api: Api) -> None:
    # The shipped zone (burst 100, nodelay) with its refill slowed from 50 r/s to 1 r/s: what refills while
    # the requests are sent is then bounded by the time they take, however slow this machine sends them,
    # instead of the test racing a 50 r/s refill.
    sent = 200
    limits, timeout = httpx.Limits(max_connections=32), httpx.Timeout(30.0, pool=None)  # queued requests wait
    with run_gateway(tmp_path, api.upstream, zone_rate="1r/s") as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=timeout) as client:
            started = time.monotonic()
            responses = await asyncio.gather(*(client.get("/healthz") for _ in range(sent)))
            elapsed = time.monotonic() - started
            await asyncio.sleep(1.1)  # the zone refills a request: the client is served again
            after = await client.get("/healthz")
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 429}
    # The burst passes at once (the first request and 100 more), and at most one request per second since
    # (plus one for nginx's millisecond rounding); the rest is refused.
    assert 101 <= statuses.count(200) <= 102 + math.ceil(elapsed)
    assert statuses.count(429) >= sent - 102 - math.ceil(elapsed) > 0, elapsed
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/rate-limited"
    assert refused.headers["x-request-id"]
    assert after.status_code == 200


def test_gateway_request_body_over_the_limit_is_a_413_problem(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.url}/v1/admin/cache/purge", content=b"x" * 20_000)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_render_template_when_a_value_is_missing_refuses() -> None:
    with pytest.raises(AssertionError, match="API_UPSTREAM"):
        render_template("upstream a { server ${API_UPSTREAM}; } $host", {})
    assert render_template("listen ${GATEWAY_PORT}; $host", {"GATEWAY_PORT": "80"}) == "listen 80; $host"


def test_template_nginx_variables_are_lowercase_so_the_image_envsubst_leaves_them() -> None:
    """The nginx image substitutes every defined environment variable (upper case by convention: PATH,
    HOSTNAME, NGINX_VERSION); nginx's own variables in the template must not collide with any."""
    text = re.sub(r"#.*", "", TEMPLATE.read_text())
    nginx_variables = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", PLACEHOLDER.sub("", text)))
    assert {"request_id", "binary_remote_addr", "host"} <= nginx_variables
    assert all(name == name.lower() for name in nginx_variables)
    assert set(PLACEHOLDER.findall(text)) == {"GATEWAY_PORT", "API_UPSTREAM", "GATEWAY_ACCESS_LOG"}
