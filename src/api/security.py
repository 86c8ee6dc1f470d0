"""Browser-facing headers on every response, fast hits and refusals included.

- `Content-Security-Policy`: the API answers JSON, so nothing may load (`default-src 'none'`) and no
  page may frame it (`frame-ancestors 'none'`); the docs page gets a policy allowing only its own
  self-hosted script and styles (`script-src 'self'`: no inline script, no CDN); the preview page sets
  its own, stricter one (`PREVIEW_CSP`).
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY` (for old
  browsers), `Cross-Origin-Opener-Policy: same-origin`.
- `Strict-Transport-Security` when `HSTS_MAX_AGE_SECONDS` > 0 (TLS ends at the gateway or CDN).

A route that sets one of these itself keeps its own value.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, *, hsts_max_age_seconds: int = 0) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts_max_age_seconds > 0:
            common.append((b"strict-transport-security", f"max-age={hsts_max_age_seconds}; includeSubDomains".encode()))
        self._api = [(b"content-security-policy", API_CSP.encode()), *common]
        self._docs = [(b"content-security-policy", DOCS_CSP.encode()), *common]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._docs if scope["path"].startswith(DOCS_PATHS) else self._api

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in extra if header[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
