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
import math
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from src.search.errors import InvalidParameter
from src.search.models import JSONScalar

_VERSION = 1
_MAX_CURSOR_CHARS = 2048
_MAX_ID_CHARS = 512
_MAX_KEY_CHARS = 4096
_MAX_OFFSET = 2**31 - 1
_INT64 = (-(2**63), 2**63 - 1)
_FLOAT_MISSING = ("Infinity", "-Infinity")
"""How Elasticsearch reports a missing float sort value (sorted last)."""


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


def decode_cursor(
    token: str,
    *,
    secret: bytes | Sequence[bytes],
    fingerprint: str,
    sort_type: str | None = None,
    tie_types: tuple[str, ...] = (),
) -> CursorState:
    """Verify and decode a cursor for the request with `fingerprint`; InvalidParameter("cursor") if not.

    `secret` may be several keys (rotation): any of them verifies. Even a correctly signed cursor is
    checked for what a page of this sort can carry (`sort_type`: the sorted field's type, None for
    relevance; `tie_types`: the custom ranking fields' types after a relevance score), so a cursor forged with
    a leaked key cannot send the engine values it would choke on.
    """
    if len(token) > _MAX_CURSOR_CHARS:
        raise InvalidParameter("cursor", "the cursor is too long")
    body_part, _, signature_part = token.partition(".")
    try:
        body = _unb64(body_part)
        signature = _unb64(signature_part)
    except (binascii.Error, ValueError) as err:
        raise InvalidParameter("cursor", "the cursor is malformed") from err
    secrets = [secret] if isinstance(secret, bytes) else list(secret)
    if not any(hmac.compare_digest(signature, _sign(body, key)) for key in secrets):
        raise InvalidParameter("cursor", "the cursor was not issued by this service or was altered")
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as err:  # pragma: no cover - only a signed body gets here
        raise InvalidParameter("cursor", "the cursor is malformed") from err
    state = _state_from(decoded)
    if state.fingerprint != fingerprint:
        raise InvalidParameter("cursor", "the cursor belongs to a different query, filter or sort")
    check_position(state, sort_type, tie_types)
    return state


def check_position(state: CursorState, sort_type: str | None, tie_types: tuple[str, ...] = ()) -> None:
    """InvalidParameter("cursor") unless `state` holds what a page sorted by `sort_type` can end on:
    `[sort key, *custom ranking values, id]` with a key of the sort's type, values of the custom fields'
    types (`tie_types`, relevance only), an id string and a bounded offset."""
    if not 0 <= state.offset <= _MAX_OFFSET:
        raise InvalidParameter("cursor", "the cursor's position is out of range")
    if len(state.after) != 2 + len(tie_types):
        raise InvalidParameter("cursor", "the cursor does not hold a sort position")
    key, *ties, doc_id = state.after
    if not isinstance(doc_id, str) or not 1 <= len(doc_id) <= _MAX_ID_CHARS:
        raise InvalidParameter("cursor", "the cursor's document id is malformed")
    if not _key_fits(key, sort_type):
        raise InvalidParameter("cursor", "the cursor's sort value does not fit the sort")
    if not all(_key_fits(value, tie_type) for value, tie_type in zip(ties, tie_types, strict=True)):
        raise InvalidParameter("cursor", "the cursor's ranking values do not fit the custom ranking")


def _key_fits(key: object, sort_type: str | None) -> bool:
    if isinstance(key, bool):
        return False
    if sort_type is None:  # relevance: a score
        return isinstance(key, int | float) and math.isfinite(key)
    if key is None:  # documents missing the field
        return True
    if sort_type in ("integer", "date"):
        return isinstance(key, int) and _INT64[0] <= key <= _INT64[1]
    if sort_type == "float":
        return (isinstance(key, int | float) and math.isfinite(key)) or key in _FLOAT_MISSING
    return isinstance(key, str) and len(key) <= _MAX_KEY_CHARS


def _state_from(decoded: object) -> CursorState:
    if not isinstance(decoded, dict) or decoded.get("v") != _VERSION:
        raise InvalidParameter("cursor", "the cursor is from an unsupported version")
    fingerprint, after, offset = decoded.get("f"), decoded.get("a"), decoded.get("o")
    if (
        not isinstance(fingerprint, str)
        or not isinstance(after, list)
        or not isinstance(offset, int)
        or isinstance(offset, bool)
    ):
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
