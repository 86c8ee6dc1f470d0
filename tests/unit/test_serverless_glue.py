"""The Lambda glue: secrets into the environment, the change-streams custom resource, and the reindex
requests that start an ECS task (boto3's real ECS client against a local stub of the ECS API)."""

from __future__ import annotations

import base64
import http.server
import json
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest

from src.events import ReindexRequest
from src.serverless.change_streams import change_streams_command, on_event
from src.serverless.reindex import ReindexTask, start_reindex
from src.serverless.secrets import load_secrets, resolve_secrets
from tests.conftest import http_server

SECRETS = {
    "arn:cursor": "a-cursor-secret",
    "arn:mq": json.dumps({"username": "indexer", "password": "p@ss/word"}),
}


def test_resolve_secrets_when_keys_and_templates_are_named_fills_them_in() -> None:
    fetched: list[str] = []

    def fetch(arn: str) -> str:
        fetched.append(arn)
        return SECRETS[arn]

    resolved = resolve_secrets(
        {
            "CURSOR_SECRET": {"arn": "arn:cursor"},
            "MONGODB_USERNAME": {"arn": "arn:mq", "key": "username"},
            "BROKER_URL": {"arn": "arn:mq", "template": "amqps://{username}:{password}@mq:5671/"},
        },
        fetch,
    )
    assert resolved == {
        "CURSOR_SECRET": "a-cursor-secret",
        "MONGODB_USERNAME": "indexer",
        "BROKER_URL": "amqps://indexer:p%40ss%2Fword@mq:5671/",
    }
    assert fetched == ["arn:cursor", "arn:mq"]  # each secret once


def test_resolve_secrets_when_the_member_is_missing_names_the_variable() -> None:
    with pytest.raises(ValueError, match="MONGODB_PASSWORD"):
        resolve_secrets({"MONGODB_PASSWORD": {"arn": "arn:cursor", "key": "password"}}, SECRETS.__getitem__)


def test_load_secrets_when_spec_is_set_updates_the_environment_only_then() -> None:
    environ = {"SECRETS_FROM": json.dumps({"CURSOR_SECRET": {"arn": "arn:cursor"}})}
    assert load_secrets(environ, SECRETS.__getitem__) == ["CURSOR_SECRET"]
    assert environ["CURSOR_SECRET"] == "a-cursor-secret"
    assert load_secrets({}, SECRETS.__getitem__) == []


def test_on_event_when_created_or_updated_enables_change_streams_and_not_on_delete() -> None:
    commands: list[dict[str, object]] = []
    properties = {"Database": "catalog", "Collection": "packages"}
    for request in ("Create", "Update", "Delete"):
        result = on_event({"RequestType": request, "ResourceProperties": properties}, commands.append)
        assert result["PhysicalResourceId"] == "change-streams:catalog.packages"
    assert commands == [change_streams_command("catalog", "packages", enable=True)] * 2
    assert next(iter(commands[0])) == "modifyChangeStreams"  # the command's name comes first
    assert commands[0] == {"modifyChangeStreams": 1, "database": "catalog", "collection": "packages", "enable": True}


class EcsStub:
    """What the stub ECS API received, and whether a reindex task is running."""

    def __init__(self, running: list[str]) -> None:
        self.running = running
        self.calls: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture
def ecs_stub() -> Iterator[tuple[EcsStub, Any]]:
    stub = EcsStub(running=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            action = self.headers["X-Amz-Target"].rsplit(".", 1)[-1]
            body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
            stub.calls.append((action, body))
            answer = {"taskArns": stub.running} if action == "ListTasks" else {"tasks": [{"taskArn": "arn:task/1"}]}
            payload = orjson.dumps(answer)
            self.send_response(200)
            self.send_header("content-type", "application/x-amz-json-1.1")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    with http_server(Handler) as url:
        client = boto3.client(
            "ecs", endpoint_url=url, region_name="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s"
        )
        yield stub, client


TASK = ReindexTask(
    cluster="arn:cluster",
    task_definition="arn:taskdef:3",
    family="search-reindex",
    container="indexer",
    subnets=("subnet-a", "subnet-b"),
    security_groups=("sg-1",),
)


def mq_event(*bodies: bytes) -> dict[str, Any]:
    messages = [
        {"basicProperties": {}, "redelivered": False, "data": base64.b64encode(body).decode()} for body in bodies
    ]
    return {"eventSource": "aws:rmq", "eventSourceArn": "arn:mq", "rmqMessagesByQueue": {"search.reindex::/": messages}}


def test_start_reindex_when_none_runs_starts_one_fargate_task_for_the_batch(ecs_stub: tuple[EcsStub, Any]) -> None:
    stub, client = ecs_stub
    event = mq_event(
        ReindexRequest(request_id="r1").model_dump_json().encode(),
        ReindexRequest(request_id="r2").model_dump_json().encode(),
        b"not json",
    )
    outcome = start_reindex(event, ecs=client, task=TASK)
    assert outcome == {"requests": ["r1", "r2"], "unreadable": 1, "started": "arn:task/1"}
    [(listed, query), (ran, run)] = stub.calls
    assert (listed, query["family"], query["desiredStatus"]) == ("ListTasks", "search-reindex", "RUNNING")
    assert ran == "RunTask"
    assert (run["launchType"], run["taskDefinition"], run["count"]) == ("FARGATE", "arn:taskdef:3", 1)
    assert run["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ["subnet-a", "subnet-b"]
    override = run["overrides"]["containerOverrides"][0]
    assert override == {"name": "indexer", "environment": [{"name": "REINDEX_REQUEST_IDS", "value": "r1,r2"}]}


def test_start_reindex_when_one_runs_coalesces_the_requests(ecs_stub: tuple[EcsStub, Any]) -> None:
    stub, client = ecs_stub
    stub.running.append("arn:task/0")
    outcome = start_reindex(mq_event(ReindexRequest(request_id="r3").model_dump_json().encode()), ecs=client, task=TASK)
    assert outcome["started"] is None
    assert [action for action, _ in stub.calls] == ["ListTasks"]


def test_reindex_task_from_environ_reads_the_cdk_variables() -> None:
    environ = {
        "REINDEX_CLUSTER": "arn:cluster",
        "REINDEX_TASK_DEFINITION": "arn:taskdef:3",
        "REINDEX_TASK_FAMILY": "search-reindex",
        "REINDEX_SUBNETS": "subnet-a,subnet-b",
        "REINDEX_SECURITY_GROUPS": "sg-1",
    }
    assert ReindexTask.from_environ(environ) == TASK
