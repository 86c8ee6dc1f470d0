"""Bearer JWTs with OAuth2 scopes for the admin API (and, optionally, /metrics).

Tokens are verified with PyJWT against the keys of a JWKS URL (`AUTH_JWKS_URL`: fetched with httpx,
cached for `AUTH_JWKS_CACHE_SECONDS`, fetched again when a token names an unknown `kid`, at most once
per `AUTH_JWKS_MIN_REFRESH_SECONDS` so unknown kids cannot make us hammer the issuer) or against one
static key for development (`AUTH_STATIC_KEY`: a PEM public key, or an HMAC secret when an `HS*`
algorithm is allowed; refused in production). Checked: the signature with an algorithm of the
allow-list `AUTH_ALGORITHMS` (never `none`; the token's own `alg` must be on the list), `exp` (required),
`nbf`, `iat`, `iss` (`AUTH_ISSUER`) and `aud` (`AUTH_AUDIENCE`), with `AUTH_LEEWAY_SECONDS` of clock skew.
Scopes come from the `scope` claim (space-separated, RFC 8693) or `scp` (a list).

A missing token is a 401 with `WWW-Authenticate: Bearer realm="search-api"`; a bad one a 401 with
`error="invalid_token"`; a good one without the scope a 403 with `error="insufficient_scope"` and the
scope needed (RFC 6750). Every refusal is a problem document; the reason is in its detail and is safe
to show (it never echoes the token).

The token is checked before the request body is read: FastAPI reads and decodes a declared body
before it solves any dependency, so a route class of our own (`AuthorizedFirstRoute`, the admin
router's) checks the scopes its `require_scope` dependencies name first. An unauthenticated request is
a 401 whatever its body (the body is never read); the dependency then reuses the verified claims.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from loguru import logger

if TYPE_CHECKING:  # PyJWT (with its crypto) and httpx load on the first token: not at a Lambda cold start
    import httpx
    import jwt

REALM = "search-api"


class AuthError(Exception):
    """A refused request: 401 (no or bad token) or 403 (missing scope), with its WWW-Authenticate."""

    def __init__(self, status: int, detail: str, *, error: str | None = None, scope: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error
        self.scope = scope

    def www_authenticate(self) -> str:
        parts = [f'Bearer realm="{REALM}"']
        if self.error:
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{self.detail}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return ", ".join(parts)


def invalid(detail: str) -> AuthError:
    return AuthError(401, detail, error="invalid_token")


class JwksCache:
    """The keys of a JWKS URL, refreshed on expiry and (rate-limited) on an unknown kid."""

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl_seconds
        self.min_refresh = min_refresh_seconds
        self.timeout = timeout_seconds
        self._transport = transport
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def _fetch(self) -> None:
        import httpx
        import jwt

        async with httpx.AsyncClient(transport=self._transport, timeout=self.timeout) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            document = response.json()
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError) as err:  # one unusable key never spoils the others
                logger.warning("JWKS key {} skipped: {}", entry.get("kid") if isinstance(entry, dict) else "?", err)
                continue
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetches += 1

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key `kid` (AuthError 401 when the JWKS does not have it or cannot be fetched)."""
        import httpx

        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self.ttl
            unknown = kid not in self._keys and (self._fetched_at is None or now - self._fetched_at >= self.min_refresh)
            if stale or unknown:
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError) as err:
                    logger.warning("JWKS {} could not be fetched: {}", self.url, err)
                    if not self._keys:
                        raise AuthError(401, "the signing keys cannot be fetched", error="invalid_token") from err
            found = self._keys.get(kid)
        if found is None:
            raise invalid("the token's signing key (kid) is unknown")
        return found


class TokenVerifier:
    """Verifies bearer tokens (see the module docstring)."""

    def __init__(
        self,
        *,
        algorithms: tuple[str, ...],
        jwks: JwksCache | None = None,
        static_key: str | None = None,
        issuer: str = "",
        audience: str = "",
        leeway_seconds: float = 30.0,
    ) -> None:
        if "none" in (algorithm.lower() for algorithm in algorithms):
            raise ValueError("AUTH_ALGORITHMS must not allow 'none'")
        self.algorithms = algorithms
        self.jwks = jwks
        self.static_key = static_key
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds

    @property
    def configured(self) -> bool:
        return self.jwks is not None or self.static_key is not None

    async def verify(self, token: str) -> dict[str, Any]:
        import jwt
        """The token's claims, or AuthError."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise invalid("the token is not a well-formed JWT") from err
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise invalid(f"the token's algorithm is not one of {', '.join(self.algorithms)}")
        key: Any
        if self.jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise invalid("the token names no signing key (kid)")
            key = (await self.jwks.key(kid)).key  # a key of another type than `alg` fails to verify below
        elif self.static_key is not None:
            key = self.static_key
        else:
            raise AuthError(401, "no token issuer is configured (AUTH_JWKS_URL or AUTH_STATIC_KEY)")
        required = ["exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience or None,
                issuer=self.issuer or None,
                leeway=self.leeway,
                options={"require": required, "verify_aud": bool(self.audience)},
            )
        except jwt.ExpiredSignatureError as err:
            raise invalid("the token has expired") from err
        except jwt.ImmatureSignatureError as err:
            raise invalid("the token is not valid yet") from err
        except jwt.InvalidIssuerError as err:
            raise invalid("the token's issuer is not the expected one") from err
        except jwt.InvalidAudienceError as err:
            raise invalid("the token is not meant for this service (audience)") from err
        except jwt.MissingRequiredClaimError as err:
            raise invalid(f"the token lacks the {err.claim!r} claim") from err
        except jwt.InvalidSignatureError as err:
            raise invalid("the token's signature does not verify") from err
        except (jwt.PyJWTError, ValueError, TypeError) as err:  # includes keys unusable for the algorithm
            raise invalid("the token cannot be verified") from err
        return claims


def scopes_of(claims: dict[str, Any]) -> set[str]:
    """Scopes from `scope` (space-separated) or `scp` (a list or a string)."""
    found: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        found.update(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        found.update(scp.split())
    elif isinstance(scp, list):
        found.update(item for item in scp if isinstance(item, str))
    return found


def bearer_token(request: Request) -> str:
    """The token of `Authorization: Bearer <token>` (AuthError 401 without one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise AuthError(401, "this endpoint needs a bearer token")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "the Authorization header is not 'Bearer <token>'", error="invalid_request")
    return token.strip()


def require_granted(claims: dict[str, Any], scope: str) -> None:
    """AuthError 403 unless the verified `claims` grant `scope`."""
    if scope not in scopes_of(claims):
        raise AuthError(403, f"the token does not grant the {scope} scope", error="insufficient_scope", scope=scope)


async def authorize(request: Request, verifier: TokenVerifier, scope: str) -> dict[str, Any]:
    """The claims of the request's token when it grants `scope`, else AuthError."""
    claims = await verifier.verify(bearer_token(request))
    require_granted(claims, scope)
    return claims


CLAIMS_KEY = "search_api.claims"
"""Scope key: the claims `AuthorizedFirstRoute` verified before the body was read."""


@dataclass(frozen=True, slots=True)
class RequireScope:
    """A FastAPI dependency: the token's claims when it grants `scope` (the token verified once per request)."""

    scope: str

    async def __call__(self, request: Request) -> dict[str, Any]:
        claims: dict[str, Any] | None = request.scope.get(CLAIMS_KEY)
        if claims is None:  # a route of another class: verify here
            return await authorize(request, request.app.state.services.verifier, self.scope)
        require_granted(claims, self.scope)
        return claims


def require_scope(scope: str) -> RequireScope:
    """A FastAPI dependency: the token's claims when it grants `scope`."""
    return RequireScope(scope)


def _required_scopes(dependant: Dependant) -> Iterator[str]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RequireScope):
            yield dependency.call.scope
        yield from _required_scopes(dependency)


class AuthorizedFirstRoute(APIRoute):
    """An APIRoute whose bearer token is checked before its request body is read or parsed.

    The scopes are those of the route's `require_scope` dependencies (the one place that says what a
    route needs); a route without one is served as FastAPI serves it.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = tuple(dict.fromkeys(_required_scopes(self.dependant)))
        if not scopes:
            return handler

        async def authorized_first(request: Request) -> Response:
            claims = await request.app.state.services.verifier.verify(bearer_token(request))
            for scope in scopes:
                require_granted(claims, scope)
            request.scope[CLAIMS_KEY] = claims
            return await handler(request)

        return authorized_first
