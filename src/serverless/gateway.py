"""API Gateway HTTP API events (payload format 2.0), as AWS documents them: to invoke the API handler
locally, exactly as API Gateway would (the tests and the cold-start benchmark use it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


def http_api_event(
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    source_ip: str = "198.51.100.7",
    now: float | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends for `method target` (`/v1/search?q=x&filter=a&filter=b`).

    Header names are lower-cased and repeated query parameters joined with commas in
    `queryStringParameters`, as API Gateway does; `rawQueryString` keeps them apart (Mangum reads it).
    """
    parts = urlsplit(target)
    pairs: Sequence[tuple[str, str]] = parse_qsl(parts.query, keep_blank_values=True)
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    at = time.time() if now is None else now
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": urlencode(pairs),
        "headers": {"host": "api.example.com", "user-agent": "local"}
        | {name.lower(): value for name, value in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method.upper(),
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "local",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(at)),
            "timeEpoch": int(at * 1000),
        },
        "isBase64Encoded": False,
    }
    if joined:
        event["queryStringParameters"] = joined
    return event
