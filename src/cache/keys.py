"""Pure cache keys: scope (namespace and index alias), schema version, search generation and a hash of
the canonical request.

Every key, the generation counter included, starts with the scope and the schema fingerprint, so two
deployments sharing one Redis (another alias, another schema) never read or bump each other's entries.
Search keys embed the generation, so bumping it retires every cached search result without a scan;
document keys do not, and are deleted one by one when a document changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class GenerationalKey:
    """A key whose middle part is the current generation: `prefix + generation + suffix`."""

    generation_key: str
    prefix: str
    suffix: str

    def at(self, generation: int) -> str:
        """The concrete key at `generation`."""
        return f"{self.prefix}{generation}{self.suffix}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def scoped_namespace(namespace: str, alias: str) -> str:
    """The key prefix of one deployment: the configured namespace and the index alias it serves."""
    return f"{namespace}:{alias}"


def generation_key(namespace: str, schema_fingerprint: str) -> str:
    """The counter the indexer bumps after each acknowledged batch (`namespace` is already scoped)."""
    return f"{namespace}:{schema_fingerprint}:generation"


def search_key(namespace: str, schema_fingerprint: str, canonical_request: bytes) -> GenerationalKey:
    """Key of a search response; `canonical_request` must already be canonical (see the service)."""
    return GenerationalKey(
        generation_key=generation_key(namespace, schema_fingerprint),
        prefix=f"{namespace}:search:{schema_fingerprint}:g",
        suffix=f":{_digest(canonical_request)}",
    )


def document_key(namespace: str, schema_fingerprint: str, doc_id: str) -> str:
    """Key of one document response (the id is hashed: any bytes are safe)."""
    return f"{namespace}:doc:{schema_fingerprint}:{_digest(doc_id.encode())}"


def schema_key(namespace: str, schema_fingerprint: str, limits: bytes) -> str:
    """Key of the GET /v1/schema response (`limits`: the canonical request limits it reports)."""
    return f"{namespace}:schema:{schema_fingerprint}:{_digest(limits)}"


def lock_key(key: str) -> str:
    """The single-flight lock guarding the computation of `key`."""
    return f"{key}:lock"


def surrogate_keys(doc_ids: list[str], generation: int | None) -> tuple[str, ...]:
    """CDN purge keys: one per document id (percent-encoded) and one for the search generation."""
    keys = [f"doc-{quote(doc_id, safe='')}" for doc_id in doc_ids]
    if generation is not None:
        keys.append(f"gen-{generation}")
    return tuple(keys)
