"""Unit tests of src.search.cursor: signed, opaque paging cursors."""

from __future__ import annotations

import base64

import orjson
import pytest

from src.search.cursor import (
    _MAX_CURSOR_CHARS,
    CursorState,
    _b64,
    _sign,
    decode_cursor,
    encode_cursor,
)
from src.search.errors import InvalidParameter

SECRET = b"unit-test-secret"
FINGERPRINT = "fp-1234"
STATE = CursorState(fingerprint=FINGERPRINT, after=(1.5, "nginx"), offset=20)


def _signed(body: bytes, secret: bytes = SECRET) -> str:
    """A cursor whose signature is valid for `body`, whatever the body says."""
    return f"{_b64(body)}.{_b64(_sign(body, secret))}"


def _decode_error(token: str, *, secret: bytes = SECRET, fingerprint: str = FINGERPRINT) -> str:
    with pytest.raises(InvalidParameter) as caught:
        decode_cursor(token, secret=secret, fingerprint=fingerprint)
    assert caught.value.parameter == "cursor"
    return caught.value.detail


def test_encode_cursor_round_trip() -> None:
    token = encode_cursor(STATE, secret=SECRET)
    assert decode_cursor(token, secret=SECRET, fingerprint=FINGERPRINT) == STATE


def test_decode_cursor_when_signed_but_empty_is_rejected() -> None:
    state = CursorState(fingerprint="", after=(), offset=0)
    detail = _decode_error(encode_cursor(state, secret=SECRET), fingerprint="")
    assert detail == "the cursor does not hold a sort position"


def test_encode_cursor_format_is_unpadded_urlsafe_body_dot_signature() -> None:
    token = encode_cursor(STATE, secret=SECRET)
    body_part, signature_part = token.split(".")
    assert "=" not in token
    body = base64.urlsafe_b64decode(body_part + "=" * (-len(body_part) % 4))
    assert orjson.loads(body) == {"v": 1, "f": FINGERPRINT, "a": [1.5, "nginx"], "o": 20}
    signature = base64.urlsafe_b64decode(signature_part + "=" * (-len(signature_part) % 4))
    assert len(signature) == 16
    assert signature == _sign(body, SECRET)


def test_encode_cursor_is_deterministic() -> None:
    assert encode_cursor(STATE, secret=SECRET) == encode_cursor(STATE, secret=SECRET)


def test_encode_cursor_depends_on_secret() -> None:
    assert encode_cursor(STATE, secret=SECRET) != encode_cursor(STATE, secret=b"other")


def test_decode_cursor_tampered_body() -> None:
    _, signature_part = encode_cursor(STATE, secret=SECRET).split(".")
    forged = orjson.dumps({"v": 1, "f": FINGERPRINT, "a": [1.5, "nginx"], "o": 0})
    assert (
        _decode_error(f"{_b64(forged)}.{signature_part}") == "the cursor was not issued by this service or was altered"
    )


def test_decode_cursor_tampered_signature() -> None:
    body_part, signature_part = encode_cursor(STATE, secret=SECRET).split(".")
    signature = bytearray(base64.urlsafe_b64decode(signature_part + "=" * (-len(signature_part) % 4)))
    signature[0] ^= 0x01
    assert (
        _decode_error(f"{body_part}.{_b64(bytes(signature))}")
        == "the cursor was not issued by this service or was altered"
    )


def test_decode_cursor_truncated_signature() -> None:
    body_part, signature_part = encode_cursor(STATE, secret=SECRET).split(".")
    assert _decode_error(f"{body_part}.{signature_part[:-4]}") == (
        "the cursor was not issued by this service or was altered"
    )


def test_decode_cursor_wrong_secret() -> None:
    token = encode_cursor(STATE, secret=SECRET)
    assert _decode_error(token, secret=b"another-secret") == "the cursor was not issued by this service or was altered"


def test_decode_cursor_other_fingerprint() -> None:
    token = encode_cursor(STATE, secret=SECRET)
    assert _decode_error(token, fingerprint="fp-5678") == "the cursor belongs to a different query, filter or sort"


@pytest.mark.parametrize(
    "token",
    [
        "abcde.abcd",  # 5 base64 characters cannot encode whole bytes
        "abcd.abcde",
        "abc!.abcd",  # incorrect padding once the foreign character is dropped
        "é.abcd",  # not ASCII
        "abcd.",  # empty signature
        ".abcd",  # empty body
        "",
    ],
)
def test_decode_cursor_malformed_base64(token: str) -> None:
    assert _decode_error(token) == "the cursor is malformed"


def test_decode_cursor_missing_dot() -> None:
    body_part, signature_part = encode_cursor(STATE, secret=SECRET).split(".")
    assert _decode_error(body_part + signature_part) == "the cursor is malformed"


def test_decode_cursor_too_long() -> None:
    token = encode_cursor(STATE, secret=SECRET)
    padded = token + "A" * (_MAX_CURSOR_CHARS + 1 - len(token))
    assert len(padded) == 2049
    assert _decode_error(padded) == "the cursor is too long"


def test_decode_cursor_at_max_length_is_checked_not_refused() -> None:
    assert _MAX_CURSOR_CHARS == 2048
    assert _decode_error("A" * 2048) == "the cursor is malformed"


def test_decode_cursor_unsupported_version() -> None:
    body = orjson.dumps({"v": 2, "f": FINGERPRINT, "a": [1], "o": 0})
    assert _decode_error(_signed(body)) == "the cursor is from an unsupported version"


def test_decode_cursor_missing_version() -> None:
    body = orjson.dumps({"f": FINGERPRINT, "a": [1], "o": 0})
    assert _decode_error(_signed(body)) == "the cursor is from an unsupported version"


def test_decode_cursor_signed_body_not_an_object() -> None:
    assert _decode_error(_signed(orjson.dumps([1, FINGERPRINT]))) == "the cursor is from an unsupported version"


def test_decode_cursor_signed_body_not_json() -> None:
    assert _decode_error(_signed(b"not json")) == "the cursor is malformed"


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 1, "f": 7, "a": [], "o": 0},
        {"v": 1, "f": FINGERPRINT, "a": "x", "o": 0},
        {"v": 1, "f": FINGERPRINT, "a": [], "o": "0"},
        {"v": 1, "f": FINGERPRINT, "a": []},
    ],
)
def test_decode_cursor_signed_body_with_wrong_fields(payload: dict[str, object]) -> None:
    assert _decode_error(_signed(orjson.dumps(payload))) == "the cursor is malformed"


def test_decode_cursor_validly_signed_handmade_body() -> None:
    body = orjson.dumps({"v": 1, "f": FINGERPRINT, "a": ["x", "id-9"], "o": 40})
    decoded = decode_cursor(_signed(body), secret=SECRET, fingerprint=FINGERPRINT, sort_type="keyword")
    assert decoded == CursorState(fingerprint=FINGERPRINT, after=("x", "id-9"), offset=40)


@pytest.mark.parametrize(
    ("after", "offset", "sort_type"),
    [
        (["x", "id"], 0, None),  # relevance needs a score
        ([True, "id"], 0, None),
        ([1.0], 0, None),
        ([1.0, "id", "extra"], 0, None),
        ([1.0, 7], 0, None),
        ([1.0, ""], 0, None),
        ([1.0, "i" * 513], 0, None),
        ([1.0, "id"], -1, None),
        ([1.0, "id"], 2**31, None),
        ([1.5, "id"], 0, "integer"),
        (["2024-01-01", "id"], 0, "date"),
        ([2**63, "id"], 0, "integer"),
        (["NaN", "id"], 0, "float"),
        ([3, "id"], 0, "keyword"),
        (["k" * 4097, "id"], 0, "text"),
        ([{"a": 1}, "id"], 0, "keyword"),
    ],
)
def test_decode_cursor_when_signed_but_values_do_not_fit_the_sort_is_rejected(
    after: list[object], offset: int, sort_type: str | None
) -> None:
    body = orjson.dumps({"v": 1, "f": FINGERPRINT, "a": after, "o": offset})
    with pytest.raises(InvalidParameter) as caught:
        decode_cursor(_signed(body), secret=SECRET, fingerprint=FINGERPRINT, sort_type=sort_type)
    assert caught.value.parameter == "cursor"


@pytest.mark.parametrize(
    ("key", "sort_type"),
    [(12.5, None), (3, None), (None, "integer"), (-(2**63), "date"), ("-Infinity", "float"), (0.25, "float")],
)
def test_decode_cursor_when_values_fit_the_sort_accepts_them(key: object, sort_type: str | None) -> None:
    body = orjson.dumps({"v": 1, "f": FINGERPRINT, "a": [key, "id-1"], "o": 10})
    state = decode_cursor(_signed(body), secret=SECRET, fingerprint=FINGERPRINT, sort_type=sort_type)
    assert state.after == (key, "id-1")


def test_decode_cursor_when_secret_rotated_accepts_old_and_new_keys() -> None:
    old = encode_cursor(STATE, secret=b"old-key")
    new = encode_cursor(STATE, secret=b"new-key")
    keys = (b"new-key", b"old-key")
    assert decode_cursor(old, secret=keys, fingerprint=FINGERPRINT) == STATE
    assert decode_cursor(new, secret=keys, fingerprint=FINGERPRINT) == STATE
    assert _decode_error(encode_cursor(STATE, secret=b"retired")) == (
        "the cursor was not issued by this service or was altered"
    )
