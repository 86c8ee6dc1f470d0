"""The CDK app synthesised offline (nothing is deployed): `aws_cdk.assertions.Template` builds each
variant's CloudFormation template in a child process (jsii runs the CDK in node, a process of its own,
which ends with that child), and the tests assert the resources and their key properties."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SYNTH = """
import json, sys
from pathlib import Path
import aws_cdk as cdk
from aws_cdk.assertions import Template
from infra.stack import SearchStack, StackOptions

asset, out = Path(sys.argv[1]), Path(sys.argv[2])
variants = {
    "default": StackOptions(lambda_asset=asset),
    "container": StackOptions(lambda_asset=asset, indexer_mode="container", search_endpoint="https://es.example:9200"),
    "provisioned": StackOptions(lambda_asset=asset, api_provisioned_concurrency=5, alarm_email="ops@example.com"),
}
templates = {}
for name, options in variants.items():
    app = cdk.App()
    env = cdk.Environment(account="123456789012", region="eu-west-1")
    templates[name] = Template.from_stack(SearchStack(app, "Search", options=options, env=env)).to_json()
out.write_text(json.dumps(templates))
"""

type Template = dict[str, Any]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    """The three variants' templates, synthesised with a small stand-in for the staged function code."""
    require_server("node (jsii runs the CDK in it)", lambda: shutil.which("node") is not None, "node is not installed")
    work = tmp_path_factory.mktemp("synth")
    asset = work / "asset"
    asset.mkdir()
    (asset / "index.py").write_text("handler = None\n")
    out = work / "templates.json"
    env = os.environ | {"JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "CDK_DISABLE_VERSION_CHECK": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", SYNTH, str(asset), str(out)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert child.returncode == 0, stderr[-4000:]
    found: dict[str, Template] = json.loads(out.read_text())
    return found


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in template["Resources"].items() if r["Type"] == kind}


def one(template: Template, kind: str, **where: object) -> dict[str, Any]:
    found = [p for p in resources(template, kind).values() if all(p.get(k) == v for k, v in where.items())]
    assert len(found) == 1, (kind, where, len(found))
    return found[0]


def function(template: Template, handler: str) -> dict[str, Any]:
    return one(template, "AWS::Lambda::Function", Handler=handler)


def variables(properties: dict[str, Any]) -> dict[str, Any]:
    return dict(properties["Environment"]["Variables"])


def test_synth_default_has_every_resource_of_the_service(templates: dict[str, Template]) -> None:
    counts: dict[str, int] = {}
    for resource in templates["default"]["Resources"].values():
        counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    expected = {
        "AWS::EC2::VPC": 1,
        "AWS::EC2::NatGateway": 1,
        "AWS::Lambda::Function": 5,  # API, indexer, change streams (+ its provider), reindex requests
        "AWS::ApiGatewayV2::Api": 1,
        "AWS::CloudFront::Distribution": 1,
        "AWS::CloudFront::CachePolicy": 1,
        "AWS::ElastiCache::ReplicationGroup": 1,
        "AWS::OpenSearchService::Domain": 1,
        "AWS::DocDB::DBCluster": 1,
        "Custom::DocDbChangeStreams": 1,
        "AWS::Lambda::EventSourceMapping": 2,
        "AWS::ECS::Cluster": 1,
        "AWS::ECS::TaskDefinition": 1,
        "AWS::Scheduler::Schedule": 1,
        "AWS::AmazonMQ::Broker": 1,
        "AWS::SecretsManager::Secret": 3,
        "AWS::CloudWatch::Alarm": 7,
        "AWS::SNS::Topic": 1,
        "AWS::ECR::Repository": 1,
    }
    assert {kind: counts.get(kind, 0) for kind in expected} == expected


def test_synth_api_function_runs_the_handler_in_the_vpc_with_the_engine_and_secrets(
    templates: dict[str, Template],
) -> None:
    api = function(templates["default"], "src.serverless.api.handler")
    assert (api["Runtime"], api["MemorySize"], api["Timeout"], api["ReservedConcurrentExecutions"]) == (
        "python3.12",
        1024,
        10,
        100,
    )
    assert api["VpcConfig"]["SubnetIds"]
    env = variables(api)
    assert env["REDIS_CLUSTER"] == "true"
    assert env["RATE_LIMIT_ENABLED"] == "false"
    assert env["BROKER_SUBSCRIBE"] == "false"
    assert env["APP_ENV"] == "production"
    assert env["METRICS_SCOPE"] == "search:metrics"  # CloudFront routes /metrics: never open in production
    assert "OPENSEARCH_URL" in env
    assert "ELASTICSEARCH_URL" not in env
    assert "AWS_REGION" not in env  # Lambda's own (SigV4 reads it)
    secrets = json.dumps(env["SECRETS_FROM"])
    assert all(name in secrets for name in ("CURSOR_SECRET", "MONGODB_PASSWORD", "BROKER_URL"))
    assert "password" not in {key.lower() for key in env}  # no secret value in the configuration


def test_synth_api_role_may_call_the_opensearch_domain(templates: dict[str, Template]) -> None:
    policies = json.dumps(
        [p for name, p in resources(templates["default"], "AWS::IAM::Policy").items() if name.startswith("ApiFunction")]
    )
    assert "es:ESHttpGet" in policies
    assert "es:ESHttpPost" in policies
    domain = one(templates["default"], "AWS::OpenSearchService::Domain")
    assert domain["EngineVersion"] == "OpenSearch_2.19"
    assert domain["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert domain["VPCOptions"]["SubnetIds"]


def test_synth_http_api_and_cloudfront_honour_the_api_cache_control(templates: dict[str, Template]) -> None:
    template = templates["default"]
    assert one(template, "AWS::ApiGatewayV2::Api")["ProtocolType"] == "HTTP"
    assert one(template, "AWS::ApiGatewayV2::Integration")["PayloadFormatVersion"] == "2.0"
    stage = one(template, "AWS::ApiGatewayV2::Stage")
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 500, "ThrottlingRateLimit": 200}
    policy = one(template, "AWS::CloudFront::CachePolicy")["CachePolicyConfig"]
    assert (policy["MinTTL"], policy["DefaultTTL"]) == (0, 0)  # s-maxage decides, nothing cached without it
    keyed = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert keyed["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert keyed["EnableAcceptEncodingGzip"] is True
    config = one(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD", "OPTIONS"]
    [admin] = config["CacheBehaviors"]
    assert admin["PathPattern"] == "/v1/admin/*"
    assert admin["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # AWS's managed CachingDisabled


def test_synth_indexer_function_reads_the_docdb_stream_and_purges_cloudfront(templates: dict[str, Template]) -> None:
    template = templates["default"]
    indexer = function(template, "src.serverless.indexer.handler")
    assert indexer["ReservedConcurrentExecutions"] == 1
    assert variables(indexer)["CDN_PURGER"] == "cloudfront"
    mapping = one(template, "AWS::Lambda::EventSourceMapping", StartingPosition="LATEST")
    assert mapping["DocumentDBEventSourceConfig"] == {
        "CollectionName": "packages",
        "DatabaseName": "catalog",
        "FullDocument": "UpdateLookup",
    }
    assert mapping["SourceAccessConfigurations"][0]["Type"] == "BASIC_AUTH"
    policies = json.dumps(resources(template, "AWS::IAM::Policy"))
    assert "cloudfront:CreateInvalidation" in policies
    assert "rds:DescribeDBClusters" in policies
    assert "ec2:DescribeSubnets" in policies
    subnets = json.dumps(one(template, "AWS::DocDB::DBSubnetGroup")["SubnetIds"])
    assert "privateSubnet" in subnets  # with a way out: the mapping's pollers call Lambda from there


def test_synth_documentdb_has_tls_and_change_streams_turned_on_by_the_custom_resource(
    templates: dict[str, Template],
) -> None:
    template = templates["default"]
    parameters = one(template, "AWS::DocDB::DBClusterParameterGroup")["Parameters"]
    assert parameters == {"tls": "enabled", "change_stream_log_retention_duration": "86400"}
    change_streams = one(template, "Custom::DocDbChangeStreams")
    assert (change_streams["Database"], change_streams["Collection"]) == ("catalog", "packages")
    function(template, "src.serverless.change_streams.handler")
    [mapping_name] = [
        name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "DocumentDBEventSourceConfig" in r["Properties"]
    ]
    [custom_name] = [name for name, r in template["Resources"].items() if r["Type"] == "Custom::DocDbChangeStreams"]
    assert custom_name in template["Resources"][mapping_name]["DependsOn"]  # the stream is on before it is read


def test_synth_redis_is_a_tls_cluster_mode_replication_group(templates: dict[str, Template]) -> None:
    redis = one(templates["default"], "AWS::ElastiCache::ReplicationGroup")
    assert (redis["ClusterMode"], redis["NumNodeGroups"], redis["ReplicasPerNodeGroup"]) == ("enabled", 2, 1)
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["AutomaticFailoverEnabled"] is True


def test_synth_reindex_runs_as_a_scheduled_fargate_task_and_on_request_from_the_broker(
    templates: dict[str, Template],
) -> None:
    template = templates["default"]
    [task] = resources(template, "AWS::ECS::TaskDefinition").values()
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["ContainerDefinitions"][0]["Command"] == ["python", "-m", "indexer", "reindex"]
    assert {s["Name"] for s in task["ContainerDefinitions"][0]["Secrets"]} == {"CURSOR_SECRET", "MONGODB_PASSWORD"}
    schedule = one(template, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * SUN *)"
    assert schedule["Target"]["EcsParameters"]["LaunchType"] == "FARGATE"
    broker = one(template, "AWS::AmazonMQ::Broker")
    assert (broker["EngineType"], broker["PubliclyAccessible"]) == ("RABBITMQ", False)
    requests = one(template, "AWS::Lambda::EventSourceMapping", Queues=["search.reindex"])
    assert {c["Type"] for c in requests["SourceAccessConfigurations"]} == {"BASIC_AUTH", "VIRTUAL_HOST"}
    starter = function(template, "src.serverless.reindex.handler")
    assert set(variables(starter)) >= {"REINDEX_CLUSTER", "REINDEX_TASK_DEFINITION", "REINDEX_SUBNETS"}
    assert "ecs:RunTask" in json.dumps(resources(template, "AWS::IAM::Policy"))


def test_synth_alarms_watch_the_emf_metrics(templates: dict[str, Template]) -> None:
    alarms = resources(templates["default"], "AWS::CloudWatch::Alarm").values()
    ours = {(a["Dimensions"][0]["Value"], a["MetricName"]) for a in alarms if a.get("Namespace") == "SearchApi"}
    assert ours == {
        ("api", "Errors"),
        ("api", "Latency"),
        ("indexer", "Errors"),
        ("indexer", "Lag"),
        ("indexer", "DeadLetters"),
        ("indexer", "CollectionGone"),
    }
    assert all(a["AlarmActions"] for a in alarms)


def test_synth_container_mode_streams_on_fargate_against_the_given_endpoint(templates: dict[str, Template]) -> None:
    template = templates["container"]
    assert not resources(template, "AWS::OpenSearchService::Domain")
    assert not resources(template, "AWS::Lambda::EventSourceMapping")
    assert variables(function(template, "src.serverless.api.handler"))["ELASTICSEARCH_URL"] == "https://es.example:9200"
    service = one(template, "AWS::ECS::Service")
    assert (service["DesiredCount"], service["LaunchType"]) == (1, "FARGATE")
    commands = sorted(
        (t["ContainerDefinitions"][0]["Command"], {s["Name"] for s in t["ContainerDefinitions"][0]["Secrets"]})
        for t in resources(template, "AWS::ECS::TaskDefinition").values()
    )
    assert commands[0] == (["python", "-m", "indexer", "reindex"], {"CURSOR_SECRET", "MONGODB_PASSWORD"})
    stream, secrets = commands[1]
    assert stream[:2] == ["sh", "-c"]
    assert "exec python -m indexer stream --check" in json.dumps(stream[2])
    assert "BROKER_URL" in json.dumps(stream[2])
    assert secrets == {"CURSOR_SECRET", "MONGODB_PASSWORD", "BROKER_USERNAME", "BROKER_PASSWORD"}


def test_synth_provisioned_concurrency_autoscales_the_live_alias(templates: dict[str, Template]) -> None:
    template = templates["provisioned"]
    alias = one(template, "AWS::Lambda::Alias")
    assert alias["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 5}
    target = one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (5, 20)
    policy = one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 0.7
    assert one(template, "AWS::SNS::Subscription")["Endpoint"] == "ops@example.com"
