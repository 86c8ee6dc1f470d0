"""Elasticsearch backend on `AsyncElasticsearch` (client major 8, servers 8.x and 9.x).

The requests are the shared Query DSL translation (src/search/backends/querydsl.py) and the backend
logic is `ClusterBackend`'s; this file is only the client: its call shapes and `_translate_errors`,
the one choke point for its exceptions.
"""

from __future__ import annotations

from typing import cast

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError

from src.search.backends.cluster import ADMIN_TIMEOUT_SECONDS, ClusterBackend
from src.search.backends.querydsl import ESBody
from src.search.backends.refusals import PRESSURE_STATUSES, error_reason, error_type, is_rejection_status
from src.search.errors import EnginePressure, IndexIncompatible, SearchRejected, SearchUnavailable
from src.search.schema import IndexSchema


class ElasticsearchBackend(ClusterBackend[AsyncElasticsearch]):
    """`SearchBackend` on an Elasticsearch 8.x/9.x cluster, behind an alias."""

    kind = "elasticsearch"

    _client_errors = (ApiError, TransportError)

    def _classify(self, err: Exception, what: str, *, read: bool) -> SearchUnavailable | SearchRejected:
        """On a read, a status other than 429/5xx/401/403 and a missing index (400, 404 of a request
        path, 405, ...) is the engine refusing that request; on a write, 413 and 429 are its size or the
        engine's load (EnginePressure); everything else is unavailability."""
        if isinstance(err, TransportConnectionError | ConnectionTimeout):
            return SearchUnavailable(f"elasticsearch {what}: {type(err).__name__}")
        if isinstance(err, ApiError) and read and is_rejection(err):
            return SearchRejected(f"elasticsearch refused the {what} request ({err.meta.status})")
        if isinstance(err, ApiError) and not read and err.meta.status in PRESSURE_STATUSES:
            reason = error_reason(err.body)
            return EnginePressure(
                f"elasticsearch refused the {what} request ({err.meta.status}): {reason or 'request entity too large'}",
                status=err.meta.status,
                reason=reason,
            )
        return SearchUnavailable(f"elasticsearch {what} failed: {err}")

    async def _search(self, body: ESBody) -> ESBody:
        response = await self._client.search(index=self._alias, body=body)
        return cast(ESBody, response.body)

    async def _get_source(self, doc_id: str) -> ESBody | None:
        try:
            response = await self._client.get(index=self._alias, id=doc_id, source_includes=["doc"])
        except NotFoundError as err:
            if error_type(err.body) == "index_not_found_exception":
                raise
            return None
        return cast(ESBody, response["_source"])

    async def _alias_exists(self) -> bool:
        return bool(await self._client.indices.exists_alias(name=self._alias))

    async def _create_index(self, name: str, mapping: ESBody) -> None:
        await self._client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.create(index=name, **mapping)
        await self._client.cluster.health(index=name, wait_for_status="yellow", timeout="30s")

    async def _aliased_indices(self) -> list[str]:
        try:
            response = await self._client.indices.get_alias(name=self._alias)
        except NotFoundError:
            return []
        return sorted(response.body)

    async def _update_aliases(self, actions: list[ESBody]) -> None:
        await self._client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.update_aliases(actions=actions)

    async def _indices(self, pattern: str) -> list[str]:
        response = await self._client.indices.get(index=pattern, allow_no_indices=True)
        return list(response.body)

    async def _delete_index(self, index: str) -> None:
        await self._client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.delete(index=index)

    async def _put_meta(self, index: str, meta: ESBody) -> None:
        await self._client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.put_mapping(index=index, meta=meta)

    async def _metas(self, pattern: str) -> dict[str, object]:
        response = await self._client.indices.get_mapping(index=pattern, filter_path="*.mappings._meta")
        return {name: body.get("mappings", {}).get("_meta") for name, body in response.body.items()}

    async def _bulk(self, operations: list[ESBody], *, timeout_seconds: float) -> ESBody:
        response = await self._client.options(request_timeout=timeout_seconds).bulk(operations=operations)
        return cast(ESBody, response.body)

    async def _put_mapping(self, index: str, properties: ESBody) -> None:
        try:
            await self._client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.put_mapping(
                index=index, properties=properties
            )
        except BadRequestError as err:
            raise IndexIncompatible(f"elasticsearch refused this version's fields on {index!r}: {err}") from err

    async def _refresh(self, index: str) -> None:
        await self._client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.refresh(index=index)

    async def _count(self, index: str) -> int:
        response = await self._client.count(index=index)
        return int(response["count"])

    async def _store_bytes(self, index: str) -> int:
        response = await self._client.indices.stats(index=index, metric="store")
        return int(response["_all"]["primaries"]["store"]["size_in_bytes"])

    async def _force_merge(self, index: str, *, timeout_seconds: float) -> None:
        await self._client.options(request_timeout=timeout_seconds).indices.forcemerge(index=index, max_num_segments=1)

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()


def is_rejection(err: ApiError) -> bool:
    """Whether the engine refused the request itself (a 4xx other than 429, and not a missing index)."""
    return is_rejection_status(err.meta.status, error_type(err.body))


def create_elasticsearch_backend(
    *,
    url: str,
    schema: IndexSchema,
    alias: str,
    timeout_seconds: float,
    api_key: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    replicas: int = 0,
    refresh_interval: str = "1s",
) -> ElasticsearchBackend:
    """Build the client (bounded timeouts, one retry on connection errors only) and the backend."""
    client = AsyncElasticsearch(
        url,
        api_key=api_key,
        basic_auth=basic_auth,
        request_timeout=timeout_seconds,
        max_retries=1,
        retry_on_timeout=False,
    )
    return ElasticsearchBackend(
        client,
        schema=schema,
        alias=alias,
        timeout_seconds=timeout_seconds,
        replicas=replicas,
        refresh_interval=refresh_interval,
    )
