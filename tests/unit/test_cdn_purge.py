"""Unit tests of src.cache.purge: each purger's requests, recorded by a local HTTP server, and the queue."""

from __future__ import annotations

import asyncio
import http.server
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree

import pytest

from src.cache.invalidation import make_invalidator
from src.cache.memory import MemoryCache
from src.cache.purge import (
    CloudFrontPurger,
    FastlyPurger,
    NullPurger,
    PurgeFailed,
    PurgeQueue,
    XkeyPurger,
    create_purger,
)
from tests.conftest import http_server


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """A local HTTP server recording every request; answers `status` (and `body`)."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorded = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorded.requests.append(Recorded(self.command, self.path, headers, body))
            self.send_response(recorded.status)
            self.send_header("content-type", recorded.content_type)
            self.send_header("content-length", str(len(recorded.body)))
            self.end_headers()
            self.wfile.write(recorded.body)

        do_PURGE = do_POST = do_GET = _any

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    with http_server(Handler) as url:
        recorded.url = url
        yield recorded


async def test_xkey_purger_sends_purge_with_the_keys_header(recorder: Recorder) -> None:
    purger = XkeyPurger(f"{recorder.url}/")
    try:
        await purger.purge(["doc-a", "doc-b%2Fc", "gen-4"])
    finally:
        await purger.close()
    (request,) = recorder.requests
    assert request.method == "PURGE"
    assert request.headers["xkey-purge"] == "doc-a doc-b%2Fc gen-4"


async def test_fastly_purger_posts_surrogate_keys_with_the_token(recorder: Recorder) -> None:
    purger = FastlyPurger("SERVICE1", "token-123", api_url=recorder.url, soft=True)
    try:
        await purger.purge(["doc-a", "gen-2"])
    finally:
        await purger.close()
    (request,) = recorder.requests
    assert (request.method, request.path) == ("POST", "/service/SERVICE1/purge")
    assert request.headers["surrogate-key"] == "doc-a gen-2"
    assert request.headers["fastly-key"] == "token-123"
    assert request.headers["fastly-soft-purge"] == "1"
    assert purger.batch_size == 256  # Fastly's limit of keys per request


async def test_http_purger_when_the_cdn_refuses_raises_purge_failed(recorder: Recorder) -> None:
    recorder.status = 503
    purger = XkeyPurger(f"{recorder.url}/")
    try:
        with pytest.raises(PurgeFailed, match="HTTP 503"):
            await purger.purge(["doc-a"])
    finally:
        await purger.close()


async def test_http_purger_when_the_cdn_is_unreachable_raises_purge_failed() -> None:
    purger = XkeyPurger("http://127.0.0.1:1/", timeout_seconds=0.5)
    try:
        with pytest.raises(PurgeFailed):
            await purger.purge(["doc-a"])
    finally:
        await purger.close()


async def test_cloudfront_purger_creates_one_invalidation_of_document_paths(recorder: Recorder) -> None:
    import boto3

    recorder.status = 201
    recorder.content_type = "text/xml"
    recorder.body = (
        b'<?xml version="1.0"?><Invalidation xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">'
        b"<Id>I1</Id><Status>InProgress</Status><CreateTime>2026-12-01T00:00:00Z</CreateTime>"
        b"<InvalidationBatch><Paths><Quantity>1</Quantity><Items><Path>/x</Path></Items></Paths>"
        b"<CallerReference>r</CallerReference></InvalidationBatch></Invalidation>"
    )
    client = boto3.client(
        "cloudfront",
        endpoint_url=recorder.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    purger = CloudFrontPurger("E2EXAMPLE", client=client)
    await purger.purge(["doc-a", "doc-b%2Fc", "gen-7", "doc-a"])
    (request,) = recorder.requests
    assert (request.method, request.path) == ("POST", "/2020-05-31/distribution/E2EXAMPLE/invalidation")
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    namespace = {"cf": "http://cloudfront.amazonaws.com/doc/2020-05-31/"}
    document = ElementTree.fromstring(request.body)  # noqa: S314 - the request boto3 just built
    paths = [element.text for element in document.iterfind(".//cf:Path", namespace)]
    assert paths == ["/v1/documents/a", "/v1/documents/b%2Fc"]  # generation keys have no path
    assert document.find(".//cf:Quantity", namespace).text == "2"  # type: ignore[union-attr]
    await purger.purge(["gen-8"])  # nothing to invalidate: no request
    assert len(recorder.requests) == 1


@dataclass
class FakePurger:
    kind: str = "fake"
    batch_size: int = 2
    fail_first: int = 0
    sent: list[list[str]] = field(default_factory=list)
    closed: bool = False

    async def purge(self, keys: Sequence[str]) -> None:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise PurgeFailed("down")
        self.sent.append(list(keys))

    async def close(self) -> None:
        self.closed = True


async def _drained(queue: PurgeQueue, seconds: float = 60.0) -> None:
    """Wait until nothing is pending (`seconds` only bounds a hang)."""
    async with asyncio.timeout(seconds):
        while queue.pending:
            await asyncio.sleep(0.005)


async def test_purge_queue_when_keys_arrive_coalesces_and_sends_in_batches() -> None:
    purger = FakePurger()
    queue = PurgeQueue(purger, repeat_seconds=0)
    queue.submit(["doc-a", "doc-b", "doc-a"])
    queue.submit(["doc-b", "doc-c"])
    await _drained(queue)
    await queue.close()
    assert [key for batch in purger.sent for key in batch] == ["doc-a", "doc-b", "doc-c"]
    assert all(len(batch) <= 2 for batch in purger.sent)
    assert purger.closed


async def test_purge_queue_when_the_cdn_fails_retries_with_backoff_without_blocking() -> None:
    purger = FakePurger(fail_first=2)
    queue = PurgeQueue(purger, repeat_seconds=0, retry_base_seconds=0.01, draw=lambda: 1.0)
    queue.submit(["doc-a"])  # returns at once: the stream goes on
    assert (purger.sent, queue.pending) == ([], 1)  # the sending (and its retries) is the queue's own task
    await _drained(queue)
    await queue.close()
    assert purger.sent == [["doc-a"]]


async def test_purge_queue_when_full_drops_the_newest_keys() -> None:
    purger = FakePurger(fail_first=1000)
    queue = PurgeQueue(purger, max_pending=2, repeat_seconds=0, retry_base_seconds=10)
    queue.submit(["doc-a", "doc-b", "doc-c"])
    assert queue.pending == 2
    await queue.close(flush_seconds=0.05)


async def test_purge_queue_when_repeating_purges_each_key_again_later() -> None:
    purger = FakePurger(batch_size=10)
    queue = PurgeQueue(purger, repeat_seconds=0.05)
    queue.submit(["doc-a"])
    await _drained(queue)
    assert purger.sent == [["doc-a"]]
    await asyncio.sleep(0.1)
    await _drained(queue)
    assert purger.sent == [["doc-a"], ["doc-a"]]
    await queue.close()


async def test_purge_queue_when_closed_sends_the_repeats_not_yet_due() -> None:
    purger = FakePurger(batch_size=10)
    queue = PurgeQueue(purger, repeat_seconds=60)
    queue.submit(["doc-a"])
    await _drained(queue)
    await queue.close()
    assert purger.sent == [["doc-a"], ["doc-a"]]


async def test_make_invalidator_when_purging_hands_over_documents_and_the_retired_generation() -> None:
    purger = FakePurger(batch_size=10)
    queue = PurgeQueue(purger, repeat_seconds=0)
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    invalidate = make_invalidator(cache, namespace="ns", schema_fingerprint="fp", purges=queue)
    await invalidate(["a", "b/c"])
    await _drained(queue)
    await queue.close()
    assert purger.sent == [["doc-a", "doc-b%2Fc", "gen-0"]]  # the bump went 0 -> 1: gen-0 is retired


def test_create_purger_when_settings_are_missing_names_them() -> None:
    assert isinstance(create_purger("none"), NullPurger)
    with pytest.raises(ValueError, match="CDN_PURGE_URL"):
        create_purger("xkey")
    with pytest.raises(ValueError, match="FASTLY_SERVICE_ID"):
        create_purger("fastly")
    with pytest.raises(ValueError, match="CLOUDFRONT_DISTRIBUTION_ID"):
        create_purger("cloudfront")
    with pytest.raises(ValueError, match="unknown"):
        create_purger("akamai")


async def test_make_invalidator_when_announcing_publishes_the_batch_without_a_shared_cache() -> None:
    announced: list[tuple[list[str], int | None]] = []

    async def announce(ids: Sequence[str], generation: int | None) -> None:
        announced.append((list(ids), generation))

    invalidate = make_invalidator(None, namespace="ns", schema_fingerprint="fp", announce=announce)
    await invalidate(["a", "b"])
    assert announced == [(["a", "b"], None)]  # no Redis: no generation to announce, the ids still go out


async def test_purge_queue_drain_when_a_repeat_is_due_waits_for_it() -> None:
    purger = FakePurger(batch_size=10)
    queue = PurgeQueue(purger, repeat_seconds=0.05)
    queue.submit(["doc-a"])
    assert await queue.drain(timeout_seconds=60)  # a bound on a hang: it returns once both are sent
    assert purger.sent == [["doc-a"], ["doc-a"]]  # the first purge and its repeat, both before drain returned
    assert await queue.drain(timeout_seconds=0.01)  # nothing left: at once
    await queue.close()


async def test_purge_queue_drain_when_the_cdn_stays_down_gives_up_at_the_timeout() -> None:
    purger = FakePurger(fail_first=1000)
    queue = PurgeQueue(purger, repeat_seconds=0, retry_base_seconds=0.01)
    queue.submit(["doc-a"])
    assert not await queue.drain(timeout_seconds=0.1)
    assert queue.pending == 1
    await queue.close(flush_seconds=0.05)
