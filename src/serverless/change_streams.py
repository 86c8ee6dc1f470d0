"""The CloudFormation custom resource that turns DocumentDB change streams on for the collection.

CloudFormation has no property for it: DocumentDB enables change streams per collection with the admin
command `modifyChangeStreams` (idempotent). The CDK app runs this handler (through the CDK provider
framework) in the VPC on create and update; delete leaves the stream on (the cluster's own deletion,
or retention, decides). Handler path: `src.serverless.change_streams.handler`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypedDict


class ResourceProperties(TypedDict):
    """What the CDK app passes the resource."""

    Database: str
    """The source database."""
    Collection: str
    """The source collection."""


class ProviderResult(TypedDict):
    """What the CDK provider framework expects back."""

    PhysicalResourceId: str
    """Stable per database and collection (a change of either replaces the resource)."""
    Data: dict[str, str]
    """Attributes of the resource."""


def change_streams_command(database: str, collection: str, *, enable: bool) -> dict[str, object]:
    """The admin command, its name first as MongoDB commands need (dicts keep insertion order)."""
    return {"modifyChangeStreams": 1, "database": database, "collection": collection, "enable": enable}


def on_event(event: Mapping[str, Any], run_admin_command: Callable[[dict[str, object]], object]) -> ProviderResult:
    """Create/Update: enable the collection's change stream; Delete: nothing."""
    request: Literal["Create", "Update", "Delete"] = event["RequestType"]
    properties: ResourceProperties = event["ResourceProperties"]
    physical = f"change-streams:{properties['Database']}.{properties['Collection']}"
    if request in ("Create", "Update"):
        run_admin_command(change_streams_command(properties["Database"], properties["Collection"], enable=True))
    return {
        "PhysicalResourceId": physical,
        "Data": {"Namespace": f"{properties['Database']}.{properties['Collection']}"},
    }


def handler(event: Mapping[str, Any], context: object) -> ProviderResult:  # pragma: no cover - AWS only
    """The Lambda entry point: connects with the indexer's settings (TLS, credentials, DocumentDB flavour)."""
    import os

    from pymongo import MongoClient

    from src.indexer.factory import source_connection
    from src.indexer.source import client_options
    from src.serverless.secrets import load_secrets
    from src.settings import SourceSettings

    load_secrets(os.environ)
    source = SourceSettings()  # the source's group alone: this function reads nothing else
    options = client_options(source_connection(source), timeout_seconds=source.timeout_seconds)
    client: MongoClient[dict[str, Any]] = MongoClient(source.url, **options)
    try:
        return on_event(event, lambda command: client.admin.command(command))
    finally:
        client.close()
