"""CDN purges by surrogate key, after the indexer changed documents (`CDN_PURGER`).

Our responses carry `Surrogate-Key` (and `Cache-Tag`): `doc-<id>` for every document in them and
`gen-<n>` for a search computed under search generation n. After each acknowledged batch the indexer
purges the changed documents' keys and the generation key the bump retired:

- `none`: nothing (responses expire by `s-maxage`).
- `xkey`: a `PURGE` request to `CDN_PURGE_URL` with an `xkey-purge: <keys>` header, the varnish-modules
  convention; `docker/varnish.vcl` maps our `Surrogate-Key` to `xkey` and answers such purges.
- `fastly`: `POST <api>/service/<id>/purge` with `Surrogate-Key: <keys>` (at most 256 a request) and
  `Fastly-Key: <token>`; `FASTLY_SOFT_PURGE=true` marks content stale instead of removing it.
- `cloudfront`: CloudFront has no purge by tag, so document keys become paths
  (`/v1/documents/<id>`) in one invalidation per batch (at most 3000 paths); generation keys are
  skipped, and cached searches expire by `s-maxage`. Invalidations are rate-limited and billed.

`PurgeQueue` runs them in the background: the stream hands it keys and goes on; keys are coalesced,
sent in batches, retried with exponential backoff, and dropped (counted, logged) past a bound, so a
CDN that is down never blocks or slows the stream.

Each key is purged twice: at once, and again `repeat_seconds` later (CDN_PURGE_REPEAT_SECONDS). The
first purge can reach the CDN before every API process has stopped serving the old value (its
in-process tier keeps an entry up to CACHE_NEAR_TTL_SECONDS, Tantivy reloads every
TANTIVY_RELOAD_INTERVAL_SECONDS, Elasticsearch refreshes every second): a CDN that refetched in that
window cached the old value again, and the second purge removes it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
from loguru import logger

from src.observability.metrics import CDN_PURGE_PENDING, CDN_PURGES


class PurgeFailed(Exception):
    """A purge the CDN did not accept (retried by the queue)."""


class Purger(Protocol):
    """Purges CDN copies by surrogate key."""

    kind: str
    batch_size: int

    async def purge(self, keys: Sequence[str]) -> None:
        """Purge `keys` (at most `batch_size`); PurgeFailed when the CDN refuses or cannot be reached."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class NullPurger:
    """`CDN_PURGER=none`."""

    kind = "none"
    batch_size = 1000

    async def purge(self, keys: Sequence[str]) -> None:
        """Nothing to purge."""

    async def close(self) -> None:
        """Nothing to close."""


class _HttpPurger:
    def __init__(self, timeout_seconds: float, transport: httpx.AsyncBaseTransport | None) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)

    async def _send(self, method: str, url: str, *, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as err:
            raise PurgeFailed(f"{type(err).__name__}: {err}") from err
        if response.status_code >= 300:
            raise PurgeFailed(f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def close(self) -> None:
        await self._client.aclose()


class XkeyPurger(_HttpPurger):
    """`PURGE <url>` with `xkey-purge: <space-separated keys>` (Varnish with varnish-modules' xkey)."""

    kind = "xkey"
    batch_size = 100  # a header of a few kB at most

    def __init__(
        self, url: str, *, timeout_seconds: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(timeout_seconds, transport)
        self.url = url

    async def purge(self, keys: Sequence[str]) -> None:
        await self._send("PURGE", self.url, headers={"xkey-purge": " ".join(keys)})


class FastlyPurger(_HttpPurger):
    """Fastly's purge by surrogate key (`POST /service/<id>/purge`, up to 256 keys a request)."""

    kind = "fastly"
    batch_size = 256

    def __init__(
        self,
        service_id: str,
        api_token: str,
        *,
        api_url: str = "https://api.fastly.com",
        soft: bool = False,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(timeout_seconds, transport)
        self.url = f"{api_url.rstrip('/')}/service/{service_id}/purge"
        self._headers = {"fastly-key": api_token, "accept": "application/json"}
        if soft:
            self._headers["fastly-soft-purge"] = "1"

    async def purge(self, keys: Sequence[str]) -> None:
        await self._send("POST", self.url, headers={**self._headers, "surrogate-key": " ".join(keys)})


class CloudFrontPurger:
    """CloudFront invalidations by path, one per batch, for the documents' URLs (boto3)."""

    kind = "cloudfront"
    batch_size = 3000

    def __init__(self, distribution_id: str, *, client: Any | None = None, path_prefix: str = "/v1/documents/"):
        if client is None:
            import boto3  # only this purger needs the AWS SDK (the `aws` extra)

            client = boto3.client("cloudfront")
        self._client = client
        self.distribution_id = distribution_id
        self.path_prefix = path_prefix

    def paths(self, keys: Sequence[str]) -> list[str]:
        """The document URLs of `keys` (generation keys have none: searches expire by s-maxage)."""
        return sorted({f"{self.path_prefix}{key[len('doc-') :]}" for key in keys if key.startswith("doc-")})

    async def purge(self, keys: Sequence[str]) -> None:
        paths = self.paths(keys)
        if not paths:
            return
        batch = {"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": uuid.uuid4().hex}
        try:
            await asyncio.to_thread(
                self._client.create_invalidation, DistributionId=self.distribution_id, InvalidationBatch=batch
            )
        except Exception as err:  # botocore's errors: throttling, credentials, network
            raise PurgeFailed(f"{type(err).__name__}: {err}") from err

    async def close(self) -> None:
        """boto3 clients need no closing."""


class PurgeQueue:
    """Purges in the background: coalesced, batched, retried with backoff, bounded."""

    def __init__(
        self,
        purger: Purger,
        *,
        max_pending: int = 100_000,
        repeat_seconds: float = 3.0,
        retry_base_seconds: float = 0.5,
        retry_cap_seconds: float = 30.0,
        draw: Callable[[], float] | None = None,
    ) -> None:
        self.purger = purger
        self.max_pending = max_pending
        self.repeat_seconds = repeat_seconds
        self._repeats: dict[asyncio.TimerHandle, Sequence[str]] = {}
        self.retry_base = retry_base_seconds
        self.retry_cap = retry_cap_seconds
        # A generator of its own, not the `random` module's shared one: that state belongs to whatever else
        # runs in the process (Hypothesis, drawing in the test's thread while the app served in another, saw
        # it move and failed the run).
        self._draw = draw or random.Random().random  # noqa: S311 - jitter, not a secret
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # nothing pending and no repeat due: what drain() waits for
        self._settled.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def submit(self, keys: Sequence[str], *, repeat: bool = True) -> None:
        """Queue `keys` now, and again after `repeat_seconds` (never blocks; past `max_pending` the newest
        keys are dropped and counted)."""
        if self.purger.kind == "none" or self._closing:
            return
        if repeat and self.repeat_seconds > 0 and keys:
            handle: asyncio.TimerHandle | None = None

            def again() -> None:
                if handle is not None:
                    self._repeats.pop(handle, None)
                self.submit(keys, repeat=False)

            handle = asyncio.get_running_loop().call_later(self.repeat_seconds, again)
            self._repeats[handle] = keys
        dropped = 0
        for key in keys:
            if key in self._pending:
                continue
            if len(self._pending) >= self.max_pending:
                dropped += 1
                continue
            self._pending[key] = None
        if dropped:
            CDN_PURGES.labels(self.purger.kind, "dropped").inc(dropped)
            logger.warning("CDN purge queue full: {} keys dropped (they expire by s-maxage)", dropped)
        CDN_PURGE_PENDING.set(len(self._pending))
        if self._pending or self._repeats:
            self._settled.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _run(self) -> None:
        attempt = 0
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._pending)[: self.purger.batch_size]
            try:
                await self.purger.purge(batch)
            except PurgeFailed as err:
                attempt += 1
                CDN_PURGES.labels(self.purger.kind, "failed").inc(len(batch))
                delay = min(self.retry_cap, self.retry_base * 2 ** (attempt - 1)) * (0.5 + self._draw() / 2)
                logger.warning("CDN purge of {} keys failed ({}); retrying in {:.1f} s", len(batch), err, delay)
                if self._closing:
                    return  # closing: what is left is logged by close()
                await asyncio.sleep(delay)
                continue
            attempt = 0
            for key in batch:
                self._pending.pop(key, None)
            CDN_PURGES.labels(self.purger.kind, "sent").inc(len(batch))
            CDN_PURGE_PENDING.set(len(self._pending))
            if not self._pending and not self._repeats:
                self._settled.set()
            logger.bind(purger=self.purger.kind, keys=len(batch)).debug("CDN purge sent")

    async def drain(self, *, timeout_seconds: float) -> bool:
        """Wait until nothing is pending and no repeat is due any more (a Lambda invocation must not return
        before its purges went out: a frozen environment sends nothing); False when the timeout came first."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, *, flush_seconds: float = 5.0) -> None:
        """Send what is pending (for up to `flush_seconds`; repeats not yet due are sent now), then stop."""
        for handle, keys in list(self._repeats.items()):  # a repeat not yet due goes out now
            handle.cancel()
            self.submit(keys, repeat=False)
        self._repeats.clear()
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(flush_seconds):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._pending:
            logger.warning("CDN purge queue closed with {} keys unsent (they expire by s-maxage)", len(self._pending))
        await self.purger.close()


def create_purger(
    kind: str,
    *,
    url: str = "",
    fastly_service_id: str = "",
    fastly_api_token: str = "",
    fastly_api_url: str = "https://api.fastly.com",
    fastly_soft: bool = False,
    cloudfront_distribution_id: str = "",
) -> Purger:
    """The purger `CDN_PURGER` names (ValueError naming the missing setting)."""
    if kind == "none":
        return NullPurger()
    if kind == "xkey":
        if not url:
            raise ValueError("CDN_PURGER=xkey needs CDN_PURGE_URL")
        return XkeyPurger(url)
    if kind == "fastly":
        if not fastly_service_id or not fastly_api_token:
            raise ValueError("CDN_PURGER=fastly needs FASTLY_SERVICE_ID and FASTLY_API_TOKEN")
        return FastlyPurger(fastly_service_id, fastly_api_token, api_url=fastly_api_url, soft=fastly_soft)
    if kind == "cloudfront":
        if not cloudfront_distribution_id:
            raise ValueError("CDN_PURGER=cloudfront needs CLOUDFRONT_DISTRIBUTION_ID")
        return CloudFrontPurger(cloudfront_distribution_id)
    raise ValueError(f"unknown CDN_PURGER {kind!r} (none, xkey, fastly, cloudfront)")
