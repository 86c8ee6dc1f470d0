"""OpenSearch backend on opensearch-py's `AsyncOpenSearch` (OpenSearch 2.x/3.x, Amazon OpenSearch Service).

The Elasticsearch client refuses OpenSearch (its product check), hence this second client. The
requests are the shared Query DSL translation of the plan (src/search/backends/querydsl.py) and the
backend logic is `ClusterBackend`'s; this file is the client's call shapes, its authentication
(basic, or AWS SigV4 with opensearch-py's own signer and the standard AWS credential chain) and
`_translate_errors`, the one choke point for its exceptions.
"""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from opensearchpy import AsyncHttpConnection, AsyncOpenSearch, AWSV4SignerAsyncAuth
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, OpenSearchException, RequestError, TransportError

from src.search.backends.cluster import ADMIN_TIMEOUT_SECONDS, ClusterBackend
from src.search.backends.querydsl import ESBody
from src.search.backends.refusals import PRESSURE_STATUSES, error_reason, error_type, is_rejection_status
from src.search.errors import EnginePressure, IndexIncompatible, SearchRejected, SearchUnavailable
from src.search.schema import IndexSchema

type AwsService = Literal["es", "aoss"]
"""SigV4 service names: `es` for OpenSearch Service domains, `aoss` for OpenSearch Serverless."""


class OpenSearchBackend(ClusterBackend[AsyncOpenSearch]):
    """`SearchBackend` on an OpenSearch cluster, behind an alias."""

    kind = "opensearch"

    _client_errors = (OpenSearchException,)

    def _classify(self, err: Exception, what: str, *, read: bool) -> SearchUnavailable | SearchRejected:
        """opensearch-py's ConnectionError covers timeouts and TLS; on a read, a status other than
        429/5xx/401/403 and a missing index is the engine refusing that request; on a write, 413 and 429
        are its size or the engine's load (EnginePressure); serialization and the like are never the
        caller's input."""
        if isinstance(err, OpenSearchConnectionError):
            return SearchUnavailable(f"opensearch {what}: {type(err).__name__}")
        if isinstance(err, TransportError):
            status = err.status_code if isinstance(err.status_code, int) else 500
            if read and is_rejection_status(status, _error_type(err)):
                return SearchRejected(f"opensearch refused the {what} request ({status})")
            if not read and status in PRESSURE_STATUSES:
                reason = error_reason(_error_body(err))
                return EnginePressure(
                    f"opensearch refused the {what} request ({status}): {reason or 'request entity too large'}",
                    status=status,
                    reason=reason,
                )
        return SearchUnavailable(f"opensearch {what} failed: {err}")

    async def _search(self, body: ESBody) -> ESBody:
        return cast(ESBody, await self._client.search(index=self._alias, body=body))

    async def _get_source(self, doc_id: str) -> ESBody | None:
        try:
            response = await self._client.get(index=self._alias, id=doc_id, params={"_source_includes": "doc"})
        except NotFoundError as err:
            if _error_type(err) == "index_not_found_exception":
                raise
            return None
        return cast(ESBody, response["_source"])

    async def _alias_exists(self) -> bool:
        return bool(await self._client.indices.exists_alias(name=self._alias))

    async def _create_index(self, name: str, mapping: ESBody) -> None:
        await self._client.indices.create(index=name, body=mapping, params=_timeout(ADMIN_TIMEOUT_SECONDS))
        # The server-side `timeout` goes beside a `request_timeout`: alone, the client would take it
        # for its own timeout (and as a string).
        await self._client.cluster.health(
            index=name, wait_for_status="yellow", params={"timeout": "30s", **_timeout(ADMIN_TIMEOUT_SECONDS)}
        )

    async def _aliased_indices(self) -> list[str]:
        try:
            response = await self._client.indices.get_alias(name=self._alias)
        except NotFoundError:
            return []
        return sorted(response)

    async def _update_aliases(self, actions: list[ESBody]) -> None:
        await self._client.indices.update_aliases(body={"actions": actions}, params=_timeout(ADMIN_TIMEOUT_SECONDS))

    async def _indices(self, pattern: str) -> list[str]:
        return list(await self._client.indices.get(index=pattern, allow_no_indices=True))

    async def _delete_index(self, index: str) -> None:
        await self._client.indices.delete(index=index, params=_timeout(ADMIN_TIMEOUT_SECONDS))

    async def _put_meta(self, index: str, meta: ESBody) -> None:
        await self._client.indices.put_mapping(
            index=index, body={"_meta": meta}, params=_timeout(ADMIN_TIMEOUT_SECONDS)
        )

    async def _metas(self, pattern: str) -> dict[str, object]:
        response = await self._client.indices.get_mapping(index=pattern, params={"filter_path": "*.mappings._meta"})
        return {name: body.get("mappings", {}).get("_meta") for name, body in (response or {}).items()}

    async def _bulk(self, operations: list[ESBody], *, timeout_seconds: float) -> ESBody:
        return cast(ESBody, await self._client.bulk(body=operations, params=_timeout(timeout_seconds)))

    async def _put_mapping(self, index: str, properties: ESBody) -> None:
        try:
            await self._client.indices.put_mapping(
                index=index, body={"properties": properties}, params=_timeout(ADMIN_TIMEOUT_SECONDS)
            )
        except RequestError as err:
            raise IndexIncompatible(f"opensearch refused this version's fields on {index!r}: {err}") from err

    async def _refresh(self, index: str) -> None:
        await self._client.indices.refresh(index=index, params=_timeout(ADMIN_TIMEOUT_SECONDS))

    async def _count(self, index: str) -> int:
        response = await self._client.count(index=index)
        return int(response["count"])

    async def _store_bytes(self, index: str) -> int:
        response = await self._client.indices.stats(index=index, metric="store")
        return int(response["_all"]["primaries"]["store"]["size_in_bytes"])

    async def _force_merge(self, index: str, *, timeout_seconds: float) -> None:
        await self._client.indices.forcemerge(index=index, params={"max_num_segments": 1, **_timeout(timeout_seconds)})

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()


def _error_type(err: TransportError) -> str | None:
    """The engine's `error.type`. The async connection does not decode error bodies (it drops their
    content type), so `info` is None there and the raw JSON is in `error`."""
    body = _error_body(err)
    if body is not None:
        return error_type(body)
    return err.error if isinstance(err.error, str) and err.error.endswith("_exception") else None


def _error_body(err: TransportError) -> object:
    """The decoded error body (see `_error_type`), or None."""
    if isinstance(err.info, dict):
        return err.info
    try:
        return json.loads(err.error) if isinstance(err.error, str) else None
    except ValueError:
        return None


def _timeout(seconds: float) -> dict[str, Any]:
    """A per-call client timeout. Through `params`, not the `request_timeout` keyword: that one is turned
    into a string on the way, which the aiohttp connection then compares with a number (TypeError)."""
    return {"request_timeout": seconds}


def aws_credentials() -> Any:
    """Credentials from the standard AWS chain (environment, profile, container or instance role).

    botocore is imported here, only when signing is asked for (it comes with the `aws` extra, and is in
    every Lambda runtime): an unsigned deployment never loads it.
    """
    try:
        import botocore.session
    except ImportError as err:  # pragma: no cover - the dev and aws extras both install it
        raise RuntimeError("AWS SigV4 signing needs botocore: pip install 'search-read-api[aws]'") from err
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise RuntimeError("AWS_REGION is set for SigV4 signing but no AWS credentials were found")
    return credentials


def create_opensearch_backend(
    *,
    url: str,
    schema: IndexSchema,
    alias: str,
    timeout_seconds: float,
    basic_auth: tuple[str, str] | None = None,
    aws_region: str | None = None,
    aws_service: AwsService = "es",
    replicas: int = 0,
    refresh_interval: str = "1s",
) -> OpenSearchBackend:
    """Build the client (bounded timeouts, one retry on connection errors only) and the backend.

    With `aws_region`, every request is signed with SigV4 (opensearch-py's `AWSV4SignerAsyncAuth`);
    otherwise `basic_auth`, if any, is sent.
    """
    http_auth: Any = basic_auth
    if aws_region:
        http_auth = AWSV4SignerAsyncAuth(aws_credentials(), aws_region, aws_service)
    client = AsyncOpenSearch(
        hosts=[url],
        http_auth=http_auth,
        connection_class=AsyncHttpConnection,
        timeout=timeout_seconds,
        max_retries=1,
        retry_on_timeout=False,
    )
    return OpenSearchBackend(
        client,
        schema=schema,
        alias=alias,
        timeout_seconds=timeout_seconds,
        replicas=replicas,
        refresh_interval=refresh_interval,
    )
