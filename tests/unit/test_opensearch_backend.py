"""The OpenSearch backend's client side against local HTTP servers: SigV4 signatures checked by a server
that recomputes them from the AWS specification, and the engine's statuses translated at the choke point.

No AWS is involved: the credentials are fakes from the standard environment variables, and the server
verifies the signature with the same secret, so a wrong key, region, service, header or body fails.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from opensearchpy import AWSV4SignerAsyncAuth
from pydantic import ValidationError

from src.search.backends.base import IndexAction
from src.search.backends.factory import create_backend
from src.search.backends.opensearch import OpenSearchBackend, create_opensearch_backend
from src.search.errors import SearchRejected, SearchUnavailable
from src.search.query import BackendQuery, ParsedQuery, SortSpec, Term
from src.settings import EngineSettings, ProcessSettings
from tests.conftest import http_server
from tests.fixtures.catalog import SCHEMA

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example key
SESSION_TOKEN = "session-token-example"
REGION = "eu-west-1"
QUERY = BackendQuery(
    query=ParsedQuery(terms=(Term(text="nginx", edits=1, prefix=False),)),
    filters=(),
    facets=(),
    sort=SortSpec(),
    limit=5,
)
EMPTY_SEARCH = {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_sigv4(method: str, target: str, headers: dict[str, str], body: bytes, *, secret: str) -> str | None:
    """None when the request carries a valid SigV4 signature for `secret`, else what is wrong.

    Written from AWS's "Create a signed AWS API request" (canonical request, string to sign, derived
    signing key), independently of botocore, which the client uses to sign.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    authorization = lower.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return f"not a SigV4 authorization: {authorization!r}"
    parts = dict(part.strip().split("=", 1) for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(","))
    access_key, date, region, service, terminal = parts["Credential"].split("/")
    if (access_key, region, service, terminal) != (ACCESS_KEY, REGION, "es", "aws4_request"):
        return f"wrong credential scope {parts['Credential']}"
    signed = parts["SignedHeaders"].split(";")
    for needed in ("host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"):
        if needed not in signed:
            return f"{needed} not signed"
    payload = hashlib.sha256(body).hexdigest()
    if lower["x-amz-content-sha256"] != payload:
        return "the body is not the one signed"
    if lower["x-amz-security-token"] != SESSION_TOKEN:
        return "no session token"
    url = urlsplit(target)
    query = "&".join(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
        for key, value in sorted(parse_qsl(url.query, keep_blank_values=True))
    )
    canonical_headers = "".join(f"{name}:{' '.join(lower[name].split())}\n" for name in signed)
    canonical = "\n".join(
        [method, quote(url.path or "/", safe="/-_.~"), query, canonical_headers, parts["SignedHeaders"], payload]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", lower["x-amz-date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, parts["Signature"]) else "signature mismatch"


class _Recorded:
    """What the verifying server saw: (method, path, verdict) per request."""

    requests: ClassVar[list[tuple[str, str, str | None]]] = []


def verifying_handler(secret: str) -> type[http.server.BaseHTTPRequestHandler]:
    """A stub OpenSearch that answers only requests signed with `secret` (403 otherwise)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            verdict = verify_sigv4(self.command, self.path, dict(self.headers.items()), body, secret=secret)
            _Recorded.requests.append((self.command, urlsplit(self.path).path, verdict))
            if verdict is not None:
                self._json(403, {"message": verdict})
            elif "/_search" in self.path:
                self._json(200, EMPTY_SEARCH)
            elif self.path.startswith("/_bulk"):
                items = [line for line in body.splitlines() if b'"index"' in line or b'"delete"' in line]
                self._json(200, {"errors": False, "items": [{"index": {"status": 201}} for _ in items]})
            else:
                self._json(200, {})

        def _json(self, status: int, payload: object) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials where the standard AWS chain looks first, and no profile to read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    _Recorded.requests = []


@pytest.fixture
def signed_server(aws_environment: None) -> Iterator[str]:
    with http_server(verifying_handler(SECRET_KEY)) as url:
        yield url


async def test_create_opensearch_backend_when_region_set_signs_every_request_with_sigv4(signed_server: str) -> None:
    backend = create_opensearch_backend(
        url=signed_server, schema=SCHEMA, alias="packages", timeout_seconds=5, aws_region=REGION
    )
    try:
        await backend.ping()
        page = await backend.search(QUERY)
        results = await backend.bulk(
            [IndexAction(op="upsert", doc_id="a", document={"id": "a", "name": "nginx"}, version=3)]
        )
    finally:
        await backend.close()
    assert page.total == 0
    assert [result.ok for result in results] == [True]
    assert [(method, path) for method, path, _ in _Recorded.requests] == [
        ("HEAD", "/_alias/packages"),
        ("POST", "/packages/_search"),
        ("POST", "/_bulk"),
    ]
    assert [verdict for _, _, verdict in _Recorded.requests] == [None, None, None]


async def test_create_opensearch_backend_when_secret_is_wrong_is_refused_and_unavailable(
    aws_environment: None,
) -> None:
    """The verifier is not a rubber stamp: a signature made with another secret is refused (403), and
    refused credentials are the deployment's failure (unavailable), not the request's (rejected)."""
    with http_server(verifying_handler("another-secret")) as url:
        backend = create_opensearch_backend(
            url=url, schema=SCHEMA, alias="packages", timeout_seconds=5, aws_region=REGION
        )
        try:
            with pytest.raises(SearchUnavailable):
                await backend.search(QUERY)
        finally:
            await backend.close()
    assert _Recorded.requests[0][2] == "signature mismatch"


def status_handler(status: int, payload: object) -> type[http.server.BaseHTTPRequestHandler]:
    """A stub OpenSearch answering every request with this status and JSON body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.mark.parametrize(
    ("status", "payload", "raised"),
    [
        (400, {"error": {"type": "parsing_exception", "reason": "bad"}, "status": 400}, SearchRejected),
        (404, {"error": {"type": "index_not_found_exception", "reason": "no"}, "status": 404}, SearchUnavailable),
        (429, {"error": {"type": "circuit_breaking_exception"}, "status": 429}, SearchUnavailable),
        (503, {"error": {"type": "cluster_block_exception"}, "status": 503}, SearchUnavailable),
        (401, {"error": {"type": "security_exception"}, "status": 401}, SearchUnavailable),
    ],
)
async def test_search_when_opensearch_answers_an_error_status_translates_it(
    status: int, payload: object, raised: type[Exception]
) -> None:
    with http_server(status_handler(status, payload)) as url:
        backend = create_opensearch_backend(url=url, schema=SCHEMA, alias="packages", timeout_seconds=5)
        try:
            with pytest.raises(raised):
                await backend.search(QUERY)
        finally:
            await backend.close()


async def test_get_when_document_missing_returns_none_but_missing_index_is_unavailable() -> None:
    missing_doc = {"_index": "packages-1", "_id": "x", "found": False}
    with http_server(status_handler(404, missing_doc)) as url:
        backend = create_opensearch_backend(url=url, schema=SCHEMA, alias="packages", timeout_seconds=5)
        try:
            assert await backend.get("x") is None
        finally:
            await backend.close()
    missing_index = {"error": {"type": "index_not_found_exception"}, "status": 404}
    with http_server(status_handler(404, missing_index)) as url:
        backend = create_opensearch_backend(url=url, schema=SCHEMA, alias="packages", timeout_seconds=5)
        try:
            with pytest.raises(SearchUnavailable):
                await backend.get("x")
        finally:
            await backend.close()


def test_settings_when_both_engine_urls_set_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="ELASTICSEARCH_URL and OPENSEARCH_URL are both set"):
        EngineSettings(elasticsearch_url="http://127.0.0.1:9200", opensearch_url="http://127.0.0.1:9201")


@pytest.mark.parametrize(
    ("fields", "region"),
    [
        ({"aws_region": REGION}, REGION),  # the managed service: signed
        ({"aws_region": REGION, "opensearch_username": "admin"}, None),  # basic auth wins
        ({"aws_region": REGION, "opensearch_sigv4": False}, None),
        ({"aws_region": REGION, "opensearch_username": "admin", "opensearch_sigv4": True}, REGION),
        ({}, None),  # no region: a plain cluster
    ],
)
def test_opensearch_signing_region_when_configured_follows_the_documented_rule(
    fields: dict[str, Any], region: str | None
) -> None:
    engine = EngineSettings(opensearch_url="https://search.example", **fields)
    assert engine.kind == "opensearch"
    assert engine.opensearch_signing_region == region


def test_opensearch_signing_region_when_sigv4_forced_without_region_raises() -> None:
    with pytest.raises(ValueError, match="AWS_REGION"):
        _ = EngineSettings(opensearch_url="https://search.example", opensearch_sigv4=True).opensearch_signing_region


async def test_create_backend_when_opensearch_url_set_builds_the_signed_backend(aws_environment: None) -> None:
    settings = ProcessSettings.build(
        opensearch_url="https://search.example", aws_region=REGION, opensearch_aws_service="aoss"
    )
    backend = create_backend(settings, SCHEMA)
    try:
        assert isinstance(backend, OpenSearchBackend)
        auth = backend._client.transport.kwargs["http_auth"]
        assert isinstance(auth, AWSV4SignerAsyncAuth)
        assert (auth.signer.region, auth.signer.service) == (REGION, "aoss")
    finally:
        await backend.close()


async def test_create_backend_when_opensearch_has_a_user_sends_basic_auth() -> None:
    settings = ProcessSettings.build(
        opensearch_url="http://127.0.0.1:9", opensearch_username="admin", opensearch_password="pw"
    )
    backend = create_backend(settings, SCHEMA)
    try:
        assert isinstance(backend, OpenSearchBackend)
        assert backend._client.transport.kwargs["http_auth"] == ("admin", "pw")
    finally:
        await backend.close()
