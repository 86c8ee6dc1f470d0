"""The edge: security headers, CORS, the docs page, rate limits, bearer tokens with scopes, the admin API."""

from __future__ import annotations

import base64
import http.server
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import SecretStr

from src.api.ratelimit import client_address, parse_networks
from src.api.security import API_CSP, DOCS_CSP, relative_location
from src.main import create_app
from src.settings import ApiSettings, UnsafeSettings
from tests.api.conftest import started_client
from tests.conftest import http_server

ISSUER = "https://issuer.test/"
AUDIENCE = "search-api"


# --- keys, tokens and a JWKS server ------------------------------------------------------------


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_A = _rsa()
KEY_B = _rsa()
OTHER = _rsa()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def token(
    *,
    scope: str = "search:cache:purge search:read-status",
    key: rsa.RSAPrivateKey = KEY_A,
    kid: str = "a",
    expires_in: float = 300,
    not_before_in: float = 0,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    **claims: Any,
) -> str:
    now = time.time()
    payload = {
        "sub": "operator-1",
        "iss": issuer,
        "aud": audience,
        "iat": int(now),
        "nbf": int(now + not_before_in),
        "exp": int(now + expires_in),
        "scope": scope,
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


class Jwks:
    """A JWKS document served over real HTTP; `keys` can change (rotation), `fetches` counts GETs."""

    def __init__(self) -> None:
        self.keys = [_jwk(KEY_A, "a")]
        self.fetches = 0
        jwks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.handler = Handler
        self.url = ""


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    with http_server(served.handler) as url:
        served.url = f"{url}/.well-known/jwks.json"
        yield served


async def _started(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with started_client(settings) as started:
        yield started


@pytest.fixture
async def secured(settings: ApiSettings, jwks: Jwks) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    configured = settings.replace(
        auth_jwks_url=jwks.url,
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_min_refresh_seconds=0.0,
        cors_allow_origins="https://app.example",
        hsts_max_age_seconds=31536000,
    )
    async for started in _started(configured):
        yield started


# --- headers and CORS --------------------------------------------------------------------------


async def test_security_headers_when_any_response_is_sent_are_on_it(secured: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = secured
    miss = await client.get("/v1/search", params={"q": "server"})
    hit = await client.get("/v1/search", params={"q": "server"})
    unknown = await client.get("/no/such/path")
    assert hit.headers["x-cache"] == "HIT"
    for response in (miss, hit, unknown):
        assert response.headers["content-security-policy"] == API_CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("location", "relative"),
    [
        (b"http://evil.example/v1/search?q=vim", b"/v1/search?q=vim"),
        (b"https://evil.example:8443/v1/documents/a#top", b"/v1/documents/a"),
        (b"//evil.example/x", b"/x"),
        (b"http://h//evil.example/x", b"/evil.example/x"),
        (b"/\\evil.example/x", b"/evil.example/x"),
        (b"/v1/search", b"/v1/search"),
        (b"http://h", b"/"),
    ],
)
def test_relative_location_never_names_a_host(location: bytes, relative: bytes) -> None:
    assert relative_location(location) == relative


async def test_cors_when_origin_is_allowed_answers_the_preflight_and_exposes_headers(
    secured: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = secured
    preflight = await client.options(
        "/v1/search",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "if-none-match",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers
    simple = await client.get("/v1/search", params={"q": "server"}, headers={"origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "X-Cache" in simple.headers["access-control-expose-headers"]


async def test_cors_when_origin_is_not_allowed_grants_nothing(secured: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = secured
    preflight = await client.options(
        "/v1/search", headers={"origin": "https://evil.example", "access-control-request-method": "GET"}
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = await client.get("/v1/search", params={"q": "server"}, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


# --- docs --------------------------------------------------------------------------------------


async def test_docs_when_in_development_are_self_hosted_under_a_strict_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "script-src 'self';" in DOCS_CSP
    assert "http" not in page.text.replace('charset="utf-8"', "")  # no third-party URL anywhere
    assert "<script>" not in page.text  # no inline script
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/static/docs-init.js"):
        assert (await client.get(asset)).status_code == 200, asset
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Search read API"


async def test_docs_when_in_production_are_off_unless_turned_on(settings: ApiSettings) -> None:
    production = settings.replace(app_env="production", cursor_secret="x" * 40)
    app = create_app(production)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404
    app = create_app(production.replace(docs_enabled=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/docs")).status_code == 200


def test_check_serving_when_production_has_a_static_key_refuses_it(settings: ApiSettings) -> None:
    production = settings.replace(
        app_env="production",
        cursor_secret=SecretStr("x" * 40),
        auth_static_key=SecretStr("dev-secret"),
        metrics_public=True,
    )
    with pytest.raises(UnsafeSettings, match="AUTH_STATIC_KEY"):
        production.check_serving()


def _production(settings: ApiSettings, **update: object) -> ApiSettings:
    """Production settings that pass every check but those `update` breaks."""
    base: dict[str, object] = {
        "app_env": "production",
        "cursor_secret": SecretStr("x" * 40),
        "auth_jwks_url": "https://issuer.test/.well-known/jwks.json",
        "auth_issuer": ISSUER,
        "auth_audience": AUDIENCE,
        "metrics_scope": "search:metrics",
    }
    return settings.replace(**base | update)


@pytest.mark.parametrize(
    ("update", "named"),
    [
        ({"auth_issuer": ""}, "AUTH_ISSUER"),
        ({"auth_audience": ""}, "AUTH_AUDIENCE"),
        ({"metrics_scope": ""}, "METRICS_SCOPE"),
        ({"auth_issuer": "", "auth_audience": "", "metrics_scope": ""}, "AUTH_ISSUER.*AUTH_AUDIENCE.*METRICS_SCOPE"),
    ],
)
def test_check_serving_when_production_auth_or_metrics_are_lax_refuses_naming_the_setting(
    settings: ApiSettings, update: dict[str, object], named: str
) -> None:
    with pytest.raises(UnsafeSettings, match=named):
        _production(settings, **update).check_serving()


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({}, id="strict"),
        pytest.param({"auth_issuer": "", "auth_allow_any_issuer": True}, id="any-issuer-opted-in"),
        pytest.param({"auth_audience": "", "auth_allow_any_audience": True}, id="any-audience-opted-in"),
        pytest.param({"metrics_scope": "", "metrics_public": True}, id="public-metrics-opted-in"),
        pytest.param({"auth_jwks_url": "", "auth_issuer": "", "auth_audience": ""}, id="no-issuer-configured"),
    ],
)
def test_check_serving_when_production_is_strict_or_opts_out_explicitly_passes(
    settings: ApiSettings, update: dict[str, object]
) -> None:
    _production(settings, **update).check_serving()


def test_check_serving_when_in_development_allows_open_metrics_and_any_audience(settings: ApiSettings) -> None:
    settings.replace(auth_jwks_url="https://issuer.test/jwks", metrics_scope="").check_serving()


def test_settings_when_metrics_are_both_public_and_scoped_refuses() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="METRICS_PUBLIC=true and METRICS_SCOPE are both set"):
        ApiSettings.build(metrics_public=True, metrics_scope="search:metrics")


async def test_create_app_when_production_metrics_are_open_refuses_to_start(settings: ApiSettings) -> None:
    app = create_app(_production(settings, metrics_scope=""))
    with pytest.raises(UnsafeSettings, match="METRICS_SCOPE"):
        async with app.router.lifespan_context(app):
            pass


# --- rate limits -------------------------------------------------------------------------------


@pytest.fixture
async def limited(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    configured = settings.replace(
        rate_limit_enabled=True,
        rate_limit="5/minute",
        rate_limit_engine="2/minute",
    )
    async for started in _started(configured):
        yield started


async def test_rate_limit_when_a_client_is_over_the_limit_gets_a_429_problem_with_headers(
    limited: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = limited
    answered = [(await client.get("/v1/documents/a")).status_code for _ in range(5)]
    refused = await client.get("/v1/documents/a")
    assert 429 not in answered
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"all";q=5;w=60'
    assert refused.headers["ratelimit"].startswith('"all";r=0;t=')
    assert refused.headers["x-content-type-options"] == "nosniff"  # refusals get the headers too
    assert (await client.get("/healthz")).status_code == 200  # probes are never limited
    assert (await client.get("/metrics")).status_code == 200


async def test_rate_limit_when_misses_exceed_the_engine_budget_refuses_only_misses(
    limited: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = limited
    first = await client.get("/v1/search", params={"q": "server"})
    second = await client.get("/v1/search", params={"q": "database"})
    third = await client.get("/v1/search", params={"q": "editor"})
    again = await client.get("/v1/search", params={"q": "server"})
    assert [first.status_code, second.status_code] == [200, 200]
    assert third.status_code == 429
    assert third.headers["ratelimit-policy"] == '"engine";q=2;w=60'
    assert again.status_code == 200  # a cache hit never reaches the engine: not counted
    assert again.headers["x-cache"] == "HIT"


async def test_rate_limit_when_forwarded_by_a_trusted_proxy_counts_each_client_apart(settings: ApiSettings) -> None:
    configured = settings.replace(
        rate_limit_enabled=True,
        rate_limit="2/minute",
        trusted_proxies="203.0.113.0/24",
    )
    async for _, client in _started(configured):
        alice = [(await client.get("/v1/documents/a", headers={"x-forwarded-for": "198.51.100.1"})).status_code]
        alice += [(await client.get("/v1/documents/a", headers={"x-forwarded-for": "198.51.100.1"})).status_code]
        bob = (await client.get("/v1/documents/a", headers={"x-forwarded-for": "198.51.100.2"})).status_code
        alice_again = (await client.get("/v1/documents/a", headers={"x-forwarded-for": "198.51.100.1"})).status_code
        assert 429 not in alice
        assert bob != 429
        assert alice_again == 429


@pytest.mark.parametrize(
    ("app_env", "given", "expected"),
    [
        pytest.param("development", None, False, id="development-unset-off"),
        pytest.param("production", None, True, id="production-unset-on"),
        pytest.param("development", "true", True, id="development-explicit-on"),
        pytest.param("production", "false", False, id="production-explicit-off"),
    ],
)
def test_settings_when_rate_limit_enabled_is_unset_follows_app_env(
    monkeypatch: pytest.MonkeyPatch, app_env: str, given: str | None, expected: bool
) -> None:
    monkeypatch.delenv("RATE_LIMIT_ENABLED")  # the suite's own default (tests/conftest.py)
    if given is not None:
        monkeypatch.setenv("RATE_LIMIT_ENABLED", given)
    monkeypatch.setenv("APP_ENV", app_env)
    assert ApiSettings().rate_limits_on is expected


async def _distinct_searches(settings: ApiSettings, count: int) -> list[int]:
    """The statuses of `count` distinct searches (every one a miss) from one client."""
    async with started_client(settings) as (_, client):
        return [(await client.get("/v1/search", params={"q": f"server {n}"})).status_code for n in range(count)]


async def test_rate_limit_when_unset_in_development_never_throttles_one_client(
    settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RATE_LIMIT_ENABLED")  # as on `make run`: nothing configured
    # Limits a loop would pass at once if they were on (the defaults are per second; these cannot refill).
    development = settings.replace(rate_limit_enabled=None, **_TIGHT)
    assert await _distinct_searches(development, 8) == [200] * 8


async def test_rate_limit_when_unset_in_production_throttles_the_engine_budget(
    settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RATE_LIMIT_ENABLED")
    production = _production(settings, rate_limit_enabled=None, **_TIGHT)
    assert production.app.production
    assert await _distinct_searches(production, 4) == [200, 200, 429, 429]


_TIGHT = {"rate_limit": "5/minute", "rate_limit_engine": "2/minute"}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("10.0.0.5", ["198.51.100.1"], "198.51.100.1", id="trusted-peer"),
        pytest.param("192.0.2.9", ["198.51.100.1"], "192.0.2.9", id="untrusted-peer-header-ignored"),
        pytest.param("10.0.0.5", ["6.6.6.6, 198.51.100.1"], "198.51.100.1", id="client-written-part-ignored"),
        pytest.param("10.0.0.5", ["198.51.100.1, 10.0.0.9"], "198.51.100.1", id="two-proxies"),
        pytest.param("10.0.0.5", ["1.2.3.4", "198.51.100.1"], "198.51.100.1", id="repeated-headers"),
        pytest.param("10.0.0.5", ["not-an-address"], "10.0.0.5", id="garbage"),
        pytest.param("10.0.0.5", [], "10.0.0.5", id="no-header"),
        pytest.param("10.0.0.5", ["2001:db8::1"], "2001:db8::1", id="ipv6"),
    ],
)
def test_client_address_believes_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: list[str], expected: str
) -> None:
    scope = {"client": (peer, 1), "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded]}
    assert client_address(scope, parse_networks("10.0.0.0/8")) == expected


def test_parse_networks_when_an_entry_is_bad_names_it() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks("10.0.0.0/8, nope")


# --- tokens and the admin API --------------------------------------------------------------------


def _none_token() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "scope": "search:cache:purge"}
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'a'})}.{part(claims)}."


def _hs256_with_public_key() -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": "a"}
    claims = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "scope": "search:cache:purge"}
    signing = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    )
    import hashlib
    import hmac

    signature = hmac.new(_public_pem(KEY_A).encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def _tampered() -> str:
    header, payload, signature = token(scope="search:read-status").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "search:cache:purge"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


REJECTIONS = [
    pytest.param(None, 401, None, id="no-token"),
    pytest.param("Basic dXNlcjpwYXNz", 401, "invalid_request", id="not-bearer"),
    pytest.param("Bearer not.a.jwt", 401, "invalid_token", id="malformed"),
    pytest.param(f"Bearer {token(expires_in=-120)}", 401, "invalid_token", id="expired"),
    pytest.param(f"Bearer {token(not_before_in=600)}", 401, "invalid_token", id="not-yet-valid"),
    pytest.param(f"Bearer {token(issuer='https://other.test/')}", 401, "invalid_token", id="wrong-issuer"),
    pytest.param(f"Bearer {token(audience='another-api')}", 401, "invalid_token", id="wrong-audience"),
    pytest.param(f"Bearer {token(scope='search:read-status')}", 403, "insufficient_scope", id="wrong-scope"),
    pytest.param(f"Bearer {_none_token()}", 401, "invalid_token", id="alg-none"),
    pytest.param(f"Bearer {_hs256_with_public_key()}", 401, "invalid_token", id="hs256-with-the-public-key"),
    pytest.param(f"Bearer {token(kid='nobody', key=OTHER)}", 401, "invalid_token", id="unknown-kid"),
    pytest.param(f"Bearer {_tampered()}", 401, "invalid_token", id="tampered-payload"),
    pytest.param(f"Bearer {token(key=OTHER)}", 401, "invalid_token", id="signed-by-another-key"),
]


@pytest.mark.parametrize(("authorization", "status", "error"), REJECTIONS)
async def test_purge_cache_when_the_token_is_not_good_is_refused_with_www_authenticate(
    secured: tuple[FastAPI, httpx.AsyncClient], authorization: str | None, status: int, error: str | None
) -> None:
    _, client = secured
    headers = {"authorization": authorization} if authorization else {}
    refused = await client.post("/v1/admin/cache/purge", json={"all": True}, headers=headers)
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="search-api"')
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    if status == 403:
        assert 'scope="search:cache:purge"' in challenge
    assert refused.json()["status"] == status


async def test_purge_cache_when_authorized_drops_documents_and_searches(
    secured: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = secured
    bearer = {"authorization": f"Bearer {token()}"}
    await client.get("/v1/documents/a")
    await client.get("/v1/search", params={"q": "server"})
    assert (await client.get("/v1/documents/a")).headers["x-cache"] == "HIT"
    some = await client.post("/v1/admin/cache/purge", json={"ids": ["a"]}, headers=bearer)
    assert some.status_code == 200
    assert some.json()["purged"] == "documents"
    assert (await client.get("/v1/documents/a")).headers["x-cache"] == "MISS"
    assert (await client.get("/v1/search", params={"q": "server"})).headers["x-cache"] == "MISS"
    everything = await client.post("/v1/admin/cache/purge", json={"all": True}, headers=bearer)
    assert everything.status_code == 200
    assert everything.json()["purged"] == "all"
    assert everything.json()["documents"] >= 1
    assert (await client.get("/v1/documents/a")).headers["x-cache"] == "MISS"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="neither"),
        pytest.param({"all": True, "ids": ["a"]}, id="both"),
        pytest.param({"ids": "a"}, id="ids-not-a-list"),
        pytest.param({"ids": [""]}, id="empty-id"),
        pytest.param({"everything": True}, id="unknown-field"),
    ],
)
async def test_purge_cache_when_the_body_is_bad_is_a_422_naming_it(
    secured: tuple[FastAPI, httpx.AsyncClient], body: dict[str, Any]
) -> None:
    _, client = secured
    refused = await client.post("/v1/admin/cache/purge", json=body, headers={"authorization": f"Bearer {token()}"})
    assert refused.status_code == 422
    assert refused.json()["type"] == "/problems/invalid-parameter"


async def test_indexer_status_when_authorized_reports_the_state(secured: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = secured

    async def status() -> dict[str, Any]:
        return {"consumer": "search-indexer", "state": "ok", "lag_seconds": 0.4}

    import dataclasses

    app.state.services = dataclasses.replace(app.state.services, indexer_status=status)
    answered = await client.get(
        "/v1/admin/indexer/status", headers={"authorization": f"Bearer {token(scope='search:read-status')}"}
    )
    assert answered.status_code == 200
    assert answered.json()["state"] == "ok"
    refused = await client.get(
        "/v1/admin/indexer/status", headers={"authorization": f"Bearer {token(scope='search:cache:purge')}"}
    )
    assert refused.status_code == 403


async def test_verify_when_the_issuer_rotates_keys_fetches_the_jwks_again_for_a_new_kid(
    secured: tuple[FastAPI, httpx.AsyncClient], jwks: Jwks
) -> None:
    _, client = secured
    assert (await client.post("/v1/admin/cache/purge", json={"all": True}, headers=_bearer())).status_code == 200
    fetched = jwks.fetches
    jwks.keys = [_jwk(KEY_A, "a"), _jwk(KEY_B, "b")]
    rotated = {"authorization": f"Bearer {token(key=KEY_B, kid='b')}"}
    assert (await client.post("/v1/admin/cache/purge", json={"all": True}, headers=rotated)).status_code == 200
    assert jwks.fetches == fetched + 1
    assert (await client.post("/v1/admin/cache/purge", json={"all": True}, headers=_bearer())).status_code == 200
    assert jwks.fetches == fetched + 1  # a known kid is served from the cache


def _bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {token()}"}


async def test_verify_when_unknown_kids_keep_coming_refreshes_at_most_once_per_interval(
    settings: ApiSettings, jwks: Jwks
) -> None:
    configured = settings.replace(
        auth_jwks_url=jwks.url,
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
    )  # the default 30 s between refreshes
    async for _, client in _started(configured):
        for number in range(5):
            forged = {"authorization": f"Bearer {token(key=OTHER, kid=f'unknown-{number}')}"}
            assert (await client.post("/v1/admin/cache/purge", json={"all": True}, headers=forged)).status_code == 401
        assert jwks.fetches == 1


async def test_metrics_when_a_scope_is_required_needs_a_token_granting_it(settings: ApiSettings) -> None:
    secret = "development-only-hmac-secret-of-32-bytes!"
    configured = settings.replace(
        metrics_scope="search:metrics",
        auth_static_key=SecretStr(secret),
        auth_algorithms="HS256",
    )
    async for _, client in _started(configured):
        assert (await client.get("/metrics")).status_code == 401
        minted = jwt.encode({"exp": int(time.time()) + 60, "scope": "search:metrics"}, secret, algorithm="HS256")
        scraped = await client.get("/metrics", headers={"authorization": f"Bearer {minted}"})
        assert scraped.status_code == 200
        assert "search_api_requests_total" in scraped.text


async def test_request_reindex_when_authorized_publishes_a_request_and_answers_202(
    secured: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    import dataclasses

    from src.events import ReindexRequest

    app, client = secured
    published: list[ReindexRequest] = []

    async def publish(request: ReindexRequest) -> bool:
        published.append(request)
        return True

    without = await client.post(
        "/v1/admin/reindex", headers={"authorization": f"Bearer {token(scope='search:reindex')}"}
    )
    assert without.status_code == 503  # no broker configured
    app.state.services = dataclasses.replace(app.state.services, request_reindex=publish)
    accepted = await client.post(
        "/v1/admin/reindex", headers={"authorization": f"Bearer {token(scope='search:reindex')}"}
    )
    assert accepted.status_code == 202
    assert accepted.json() == {"request_id": published[0].request_id, "state": "queued"}
    assert published[0].requested_by == "operator-1"
    refused = await client.post(
        "/v1/admin/reindex", headers={"authorization": f"Bearer {token(scope='search:cache:purge')}"}
    )
    assert refused.status_code == 403
    assert 'scope="search:reindex"' in refused.headers["www-authenticate"]


def test_parse_networks_when_parsed_hashes_once_and_equals_a_plain_tuple() -> None:
    networks = parse_networks("10.0.0.0/8, 192.168.1.1")
    assert hash(networks) == hash(networks) == hash(tuple(networks))
    assert networks == parse_networks("10.0.0.0/8,192.168.1.1")
    assert client_address({"client": ("10.1.2.3", 1), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}, networks) == (
        "203.0.113.9"
    )


async def test_rate_limit_when_cors_is_on_refusals_carry_cors_headers(settings: ApiSettings) -> None:
    configured = settings.replace(
        rate_limit_enabled=True,
        rate_limit="1/minute",
        cors_allow_origins="https://app.example",
    )
    async for _, client in _started(configured):
        origin = {"origin": "https://app.example"}
        assert (await client.get("/v1/search", params={"q": "server"}, headers=origin)).status_code == 200
        refused = await client.get("/v1/search", params={"q": "server"}, headers=origin)
        assert refused.status_code == 429
        assert refused.headers["access-control-allow-origin"] == "https://app.example"  # a browser can read it
        assert refused.headers["content-security-policy"] == API_CSP
        assert refused.headers["x-request-id"]
