"""Reindex requests from Amazon MQ (RabbitMQ) start the reindex as an ECS Fargate task.

Handler path: `src.serverless.reindex.handler`, behind an Amazon MQ event source mapping on the
`search.reindex` queue (what `POST /v1/admin/reindex` publishes to). A full reindex can outlast
Lambda's 15 minutes, so the function only starts the task the schedule also runs. At most one runs:
requests arriving while a reindex task is running (or several in one batch) are coalesced into it,
since its replay takes in every change made until its alias swap. A request that cannot be read is
logged and dropped (the event source would otherwise redeliver it forever); a failure to start the
task raises, so the batch is redelivered.

The event (as AWS documents it): `{"eventSource": "aws:rmq", "rmqMessagesByQueue": {"<queue>::<vhost>":
[{"basicProperties": {...}, "data": "<base64 body>"}, ...]}}`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

import orjson
from loguru import logger
from pydantic import ValidationError

from src.events import ReindexRequest


class EcsClient(Protocol):
    """The two calls of boto3's ECS client used here."""

    def list_tasks(self, **kwargs: Any) -> dict[str, Any]:
        """ListTasks."""
        ...

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        """RunTask."""
        ...


@dataclass(frozen=True, slots=True)
class ReindexTask:
    """Where and how the reindex task runs (from the function's environment, set by the CDK app)."""

    cluster: str
    task_definition: str
    family: str
    container: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ReindexTask:
        """REINDEX_CLUSTER, REINDEX_TASK_DEFINITION, REINDEX_TASK_FAMILY, REINDEX_CONTAINER, REINDEX_SUBNETS and
        REINDEX_SECURITY_GROUPS (comma-separated)."""

        def listed(name: str) -> tuple[str, ...]:
            return tuple(part for part in environ.get(name, "").split(",") if part)

        return cls(
            cluster=environ["REINDEX_CLUSTER"],
            task_definition=environ["REINDEX_TASK_DEFINITION"],
            family=environ["REINDEX_TASK_FAMILY"],
            container=environ.get("REINDEX_CONTAINER", "indexer"),
            subnets=listed("REINDEX_SUBNETS"),
            security_groups=listed("REINDEX_SECURITY_GROUPS"),
        )


class RequestsOutcome(TypedDict):
    """What one invocation did."""

    requests: list[str]
    """Request ids read from the batch."""
    unreadable: int
    """Messages that were not reindex requests (logged, dropped)."""
    started: str | None
    """The ARN of the task started, or None when one was running already (coalesced)."""


def read_requests(event: Mapping[str, Any]) -> tuple[list[ReindexRequest], int]:
    """The reindex requests of an Amazon MQ batch, and the count of messages that are not."""
    requests: list[ReindexRequest] = []
    unreadable = 0
    by_queue: Mapping[str, Sequence[Mapping[str, Any]]] = event.get("rmqMessagesByQueue") or {}
    for messages in by_queue.values():
        for message in messages:
            try:
                requests.append(ReindexRequest.model_validate(orjson.loads(base64.b64decode(message["data"]))))
            except (KeyError, TypeError, ValueError, ValidationError) as err:
                unreadable += 1
                logger.warning("not a reindex request, dropped: {}", err)
    return requests, unreadable


def start_reindex(event: Mapping[str, Any], *, ecs: EcsClient, task: ReindexTask) -> RequestsOutcome:
    """Start one reindex task for the batch's requests, unless one is running already."""
    requests, unreadable = read_requests(event)
    ids = [request.request_id for request in requests]
    if not requests:
        return {"requests": ids, "unreadable": unreadable, "started": None}
    running = ecs.list_tasks(cluster=task.cluster, family=task.family, desiredStatus="RUNNING").get("taskArns", [])
    if running:
        logger.bind(requests=ids, running=running).info("reindex requests coalesced into the running task")
        return {"requests": ids, "unreadable": unreadable, "started": None}
    answer = ecs.run_task(
        cluster=task.cluster,
        taskDefinition=task.task_definition,
        launchType="FARGATE",
        count=1,
        startedBy=f"reindex-{ids[0]}"[:36],
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(task.subnets),
                "securityGroups": list(task.security_groups),
                "assignPublicIp": "DISABLED",
            }
        },
        overrides={
            "containerOverrides": [
                {"name": task.container, "environment": [{"name": "REINDEX_REQUEST_IDS", "value": ",".join(ids)}]}
            ]
        },
    )
    started = [found["taskArn"] for found in answer.get("tasks", [])]
    if not started:
        raise RuntimeError(f"ECS did not start the reindex task: {answer.get('failures')}")
    logger.bind(requests=ids, task=started[0]).info("reindex task started")
    return {"requests": ids, "unreadable": unreadable, "started": started[0]}


def handler(event: Mapping[str, Any], context: object) -> RequestsOutcome:  # pragma: no cover - AWS only
    """The Lambda entry point."""
    import boto3

    return start_reindex(event, ecs=boto3.client("ecs"), task=ReindexTask.from_environ(os.environ))
