"""Browser-facing headers on every response, fast hits and refusals included.

- `Content-Security-Policy`: the API answers JSON, so nothing may load (`default-src 'none'`) and no
  page may frame it (`frame-ancestors 'none'`); the docs page gets a policy allowing only its own
  self-hosted script and styles (`script-src 'self'`: no inline script, no CDN); the preview page sets
  its own, stricter one (`PREVIEW_CSP`).
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY` (for old
  browsers), `Cross-Origin-Opener-Policy: same-origin`.
- `Strict-Transport-Security` when `HSTS_MAX_AGE_SECONDS` > 0 (TLS ends at the gateway or CDN).

A route that sets one of these itself keeps its own value.

Redirects are relative (`relative_location`): a `Location` keeps its path and query only, so no redirect
ever sends a client to the host a request's `Host` header named (Starlette's trailing-slash redirect
builds its absolute URL from it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Swagger UI sets style attributes from its scripts, hence `'unsafe-inline'` for styles (not scripts)."""
PREVIEW_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "require-trusted-types-for 'script'; trusted-types 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The search preview page: its own files only, no inline script or style, and Trusted Types required, so
no string can become HTML through a DOM sink (the page builds every node itself)."""

DOCS_PATHS = ("/docs",)


class SecurityHeaders:
    """The headers above for a response to `path` (added to every response, fast hits and refusals
    included, by the outermost middleware: src/api/outermost.py, in the one pass over the
    response headers that also adds X-Request-Id)."""

    def __init__(self, *, hsts_max_age_seconds: int = 0) -> None:
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts_max_age_seconds > 0:
            common.append((b"strict-transport-security", f"max-age={hsts_max_age_seconds}; includeSubDomains".encode()))
        self._api = ((b"content-security-policy", API_CSP.encode()), *common)
        self._docs = ((b"content-security-policy", DOCS_CSP.encode()), *common)
        self.names = frozenset(name for name, _ in self._api)
        """Their (lowercase) names: a response that already has one keeps its own value."""

    def for_path(self, path: str) -> tuple[tuple[bytes, bytes], ...]:
        """The headers a response to `path` gets."""
        return self._docs if path.startswith(DOCS_PATHS) else self._api


def relative_location(location: bytes) -> bytes:
    """A redirect target as a path and query on this host (pure): the scheme, host and fragment dropped,
    and leading slashes (or backslashes, which browsers read as slashes) made one, so the result can
    never be read as another host (`//evil.example/`)."""
    parts = urlsplit(location)
    path = b"/" + parts.path.lstrip(b"/\\")
    return path + b"?" + parts.query if parts.query else path
