"""Opaque, stateless, tamper-proof paging cursors.

A cursor is `base64url(json) "." base64url(hmac)`: the JSON holds the request fingerprint (so a cursor
cannot be replayed against another query), the sort values of the last hit returned and how many hits
earlier pages returned. The HMAC key is a setting shared by every instance, so any instance can
continue any page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from src.search.errors import InvalidParameter
from src.search.models import JSONScalar

_VERSION = 1
_MAX_CURSOR_CHARS = 2048


@dataclass(frozen=True, slots=True)
class CursorState:
    """What a cursor carries between pages."""

    fingerprint: str
    after: tuple[JSONScalar, ...]
    offset: int


def encode_cursor(state: CursorState, *, secret: bytes) -> str:
    """Serialise and sign `state`."""
    body = orjson.dumps({"v": _VERSION, "f": state.fingerprint, "a": list(state.after), "o": state.offset})
    return f"{_b64(body)}.{_b64(_sign(body, secret))}"


def decode_cursor(token: str, *, secret: bytes, fingerprint: str) -> CursorState:
    """Verify and decode a cursor for the request with `fingerprint`; InvalidParameter("cursor") if not."""
    if len(token) > _MAX_CURSOR_CHARS:
        raise InvalidParameter("cursor", "the cursor is too long")
    body_part, _, signature_part = token.partition(".")
    try:
        body = _unb64(body_part)
        signature = _unb64(signature_part)
    except (binascii.Error, ValueError) as err:
        raise InvalidParameter("cursor", "the cursor is malformed") from err
    if not hmac.compare_digest(signature, _sign(body, secret)):
        raise InvalidParameter("cursor", "the cursor was not issued by this service or was altered")
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as err:  # pragma: no cover - only a signed body gets here
        raise InvalidParameter("cursor", "the cursor is malformed") from err
    state = _state_from(decoded)
    if state.fingerprint != fingerprint:
        raise InvalidParameter("cursor", "the cursor belongs to a different query, filter or sort")
    return state


def _state_from(decoded: object) -> CursorState:
    if not isinstance(decoded, dict) or decoded.get("v") != _VERSION:
        raise InvalidParameter("cursor", "the cursor is from an unsupported version")
    fingerprint, after, offset = decoded.get("f"), decoded.get("a"), decoded.get("o")
    if not isinstance(fingerprint, str) or not isinstance(after, list) or not isinstance(offset, int):
        raise InvalidParameter("cursor", "the cursor is malformed")
    return CursorState(fingerprint=fingerprint, after=tuple(after), offset=offset)


def _sign(body: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
