"""The search service on AWS, serverless first (see docs/deploying.md, Deploying to AWS).

- **Network**: a VPC over two zones (public subnets for the NAT gateway, private subnets with egress for
  the functions and tasks, isolated subnets for the data stores), one security group per role.
- **Read API**: a Lambda function (`src.serverless.api.handler`, Mangum) behind an API Gateway HTTP API,
  behind CloudFront, whose cache policy honours our `Cache-Control` (no TTL of its own: `s-maxage`
  decides) and keys on the query string and `Accept-Encoding`; `/v1/admin/*` passes through uncached,
  with the `Authorization` header. Reserved concurrency bounds what the engine sees; provisioned
  concurrency (with target-tracking autoscaling) keeps instances warm when asked for.
- **Data**: ElastiCache Redis in cluster mode (TLS), an Amazon OpenSearch Service domain (or an existing
  Elasticsearch endpoint, `search_endpoint`), a DocumentDB cluster with change streams turned on for the
  collection by a custom resource running `modifyChangeStreams` (CloudFormation has no property for it).
- **Indexer**: a Lambda function on the DocumentDB event source (`indexer_mode=lambda`, the default),
  or `python -m indexer stream` as an ECS Fargate service (`indexer_mode=container`).
- **Reindex**: an ECS Fargate task (`python -m indexer reindex`: a full reindex can outlast Lambda's 15
  minutes) on an EventBridge Scheduler schedule, and, on request, started by a small function on the
  Amazon MQ (RabbitMQ) queue the admin API publishes to.
- **Secrets** in Secrets Manager (DocumentDB and broker credentials, the cursor key): tasks get them from
  their task definition, functions through `SECRETS_FROM` (read at their first invocation).
- **Metrics and alarms**: the functions publish EMF metrics (namespace `SearchApi`); alarms on API errors
  and latency, indexer errors, lag, dead letters and a dropped collection, notified to an SNS topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import (
    aws_amazonmq as amazonmq,
)
from aws_cdk import (
    aws_apigatewayv2 as apigw,
)
from aws_cdk import (
    aws_apigatewayv2_integrations as integrations,
)
from aws_cdk import (
    aws_cloudfront as cloudfront,
)
from aws_cdk import (
    aws_cloudfront_origins as origins,
)
from aws_cdk import (
    aws_cloudwatch as cloudwatch,
)
from aws_cdk import (
    aws_cloudwatch_actions as cloudwatch_actions,
)
from aws_cdk import (
    aws_docdb as docdb,
)
from aws_cdk import (
    aws_ec2 as ec2,
)
from aws_cdk import (
    aws_ecr as ecr,
)
from aws_cdk import (
    aws_ecs as ecs,
)
from aws_cdk import (
    aws_elasticache as elasticache,
)
from aws_cdk import (
    aws_iam as iam,
)
from aws_cdk import (
    aws_lambda as lambda_,
)
from aws_cdk import (
    aws_logs as logs,
)
from aws_cdk import (
    aws_opensearchservice as opensearch,
)
from aws_cdk import (
    aws_scheduler as scheduler,
)
from aws_cdk import (
    aws_secretsmanager as secretsmanager,
)
from aws_cdk import (
    aws_sns as sns,
)
from aws_cdk import (
    aws_sns_subscriptions as subscriptions,
)
from aws_cdk import (
    custom_resources as cr,
)
from constructs import Construct

DATABASE = "catalog"
COLLECTION = "packages"
INDEX_ALIAS = "packages"
REINDEX_QUEUE = "search.reindex"
METRICS_NAMESPACE = "SearchApi"  # src/serverless/emf.py NAMESPACE
METRICS_SCOPE = "search:metrics"
"""The scope GET /metrics needs on the Lambda API (APP_ENV=production refuses an open /metrics)."""
CA_BUNDLE = "/var/task/global-bundle.pem"  # staged by infra/stage_lambda.py --ca-bundle
EVENT_SOURCE_NETWORK_ACTIONS = ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]


@dataclass(frozen=True, slots=True)
class StackOptions:
    """The app's parameters (cdk.json context, `-c name=value`)."""

    lambda_asset: Path
    """The staged function code (infra/stage_lambda.py)."""
    search_endpoint: str = ""
    """An existing Elasticsearch endpoint; empty: an Amazon OpenSearch Service domain is created."""
    indexer_mode: str = "lambda"
    """`lambda`: the DocumentDB event source; `container`: the stream as an ECS Fargate service."""
    image_tag: str = "latest"
    """Tag of the indexer image in the stack's ECR repository (docker/Dockerfile, pushed by the operator)."""
    reindex_schedule: str = "cron(0 3 ? * SUN *)"
    """EventBridge Scheduler expression of the full reindex."""
    api_reserved_concurrency: int = 100
    """The API function's reserved concurrency: at most this many requests at once reach the engine."""
    api_provisioned_concurrency: int = 0
    """Warm API instances (0: none, no autoscaling); scaled up to the maximum on 70 % utilisation."""
    api_max_provisioned_concurrency: int = 20
    """The autoscaling ceiling of the provisioned concurrency."""
    alarm_email: str = ""
    """Subscribed to the alarm topic when set."""


class SearchStack(cdk.Stack):
    """Every resource of the service (see the module docstring)."""

    def __init__(self, scope: Construct, construct_id: str, *, options: StackOptions, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.options = options
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
        )
        self.compute_sg = ec2.SecurityGroup(self, "ComputeSg", vpc=self.vpc, description="functions and tasks")
        self.data_sg = ec2.SecurityGroup(self, "DataSg", vpc=self.vpc, description="Redis, DocumentDB, OpenSearch, MQ")
        for port, what in ((6379, "Redis"), (27017, "DocumentDB"), (443, "OpenSearch"), (5671, "RabbitMQ AMQPS")):
            self.data_sg.add_ingress_rule(self.compute_sg, ec2.Port.tcp(port), f"{what} from the compute")
        self.private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self.cursor_secret = secretsmanager.Secret(
            self,
            "CursorSecret",
            description="CURSOR_SECRET of the read API (HMAC key of the paging cursors)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        self._data_stores()
        self.settings_env = self._shared_environment()
        self.code = lambda_.Code.from_asset(str(options.lambda_asset))
        self.repository = ecr.Repository(self, "IndexerImages", repository_name="search-indexer")
        self.cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self._api()
        self._reindex()
        if options.indexer_mode == "container":
            self._stream_service()
        else:
            self._indexer_function()
            self._reindex_requests_function()
        self._alarms()

    # --- data stores ------------------------------------------------------------------------------

    def _data_stores(self) -> None:
        parameters = docdb.ClusterParameterGroup(
            self,
            "DocDbParameters",
            family="docdb5.0",
            description="TLS on; change streams kept 24 h (the indexer's INDEXER_TOKEN_RETENTION_SECONDS)",
            parameters={"tls": "enabled", "change_stream_log_retention_duration": "86400"},
        )
        self.docdb = docdb.DatabaseCluster(
            self,
            "Source",
            master_user=docdb.Login(username="indexer"),
            engine_version="5.0.0",
            instance_type=ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
            instances=1,
            vpc=self.vpc,
            # Not isolated: the event source mapping reaches Lambda, STS and Secrets Manager from the
            # cluster's subnets (through the NAT gateway).
            vpc_subnets=self.private,
            security_group=self.data_sg,
            parameter_group=parameters,
            storage_encrypted=True,
            removal_policy=cdk.RemovalPolicy.SNAPSHOT,
        )
        assert self.docdb.secret is not None
        self.docdb_secret = self.docdb.secret

        subnets = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description="search cache",
            subnet_ids=self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Cache",
            replication_group_description="search cache-aside (REDIS_CLUSTER=true)",
            engine="redis",
            engine_version="7.1",
            cache_node_type="cache.t4g.small",
            cluster_mode="enabled",
            num_node_groups=2,
            replicas_per_node_group=1,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.data_sg.security_group_id],
        )

        self.domain: opensearch.Domain | None = None
        if not self.options.search_endpoint:
            self.domain = opensearch.Domain(
                self,
                "Search",
                version=opensearch.EngineVersion.OPENSEARCH_2_19,
                vpc=self.vpc,
                vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
                security_groups=[self.data_sg],
                capacity=opensearch.CapacityConfig(
                    data_nodes=2, data_node_instance_type="t3.small.search", multi_az_with_standby_enabled=False
                ),
                zone_awareness=opensearch.ZoneAwarenessConfig(enabled=True, availability_zone_count=2),
                ebs=opensearch.EbsOptions(volume_size=20),
                enforce_https=True,
                node_to_node_encryption=True,
                encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )

        self.broker_secret = secretsmanager.Secret(
            self,
            "BrokerSecret",
            description="Amazon MQ (RabbitMQ) user of the search service",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"username": "search"}',  # noqa: S106 - the user name, not a secret
                generate_string_key="password",
                password_length=32,
                exclude_punctuation=True,
            ),
        )
        self.broker = amazonmq.CfnBroker(
            self,
            "Broker",
            broker_name="search-events",
            engine_type="RABBITMQ",
            engine_version="3.13",
            auto_minor_version_upgrade=True,
            host_instance_type="mq.t3.micro",
            deployment_mode="SINGLE_INSTANCE",
            publicly_accessible=False,
            # Not isolated either: its event source mapping needs the same way out as DocumentDB's.
            subnet_ids=[self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids[0]],
            security_groups=[self.data_sg.security_group_id],
            users=[
                amazonmq.CfnBroker.UserProperty(
                    username=self.broker_secret.secret_value_from_json("username").unsafe_unwrap(),
                    password=self.broker_secret.secret_value_from_json("password").unsafe_unwrap(),
                )
            ],
            logs=amazonmq.CfnBroker.LogListProperty(general=True),
        )
        self.broker_host = cdk.Fn.select(
            1, cdk.Fn.split("://", cdk.Fn.select(0, self.broker.attr_amqp_endpoints))
        )  # amqps://b-….mq.<region>.amazonaws.com:5671 -> host:port

    # --- configuration ----------------------------------------------------------------------------

    def _shared_environment(self) -> dict[str, str]:
        """Settings every function and task shares (secrets aside)."""
        environment = {
            "APP_ENV": "production",
            "INDEX_ALIAS": INDEX_ALIAS,
            "REDIS_URL": f"rediss://{self.redis.attr_configuration_end_point_address}:"
            f"{self.redis.attr_configuration_end_point_port}/0",
            "REDIS_CLUSTER": "true",
            "MONGODB_URL": f"mongodb://{self.docdb.cluster_endpoint.socket_address}/?replicaSet=rs0",
            "MONGODB_FLAVOR": "documentdb",
            "MONGODB_TLS": "true",
            "MONGODB_TLS_CA_FILE": CA_BUNDLE,
            "MONGODB_USERNAME": "indexer",
            "MONGODB_DATABASE": DATABASE,
            "MONGODB_COLLECTION": COLLECTION,
            "INDEXER_TOKEN_RETENTION_SECONDS": "86400",
            "OTEL_SDK_DISABLED": "true",
        }
        if self.domain is not None:
            # SigV4 signing takes the region from AWS_REGION, which Lambda sets itself (and refuses as ours).
            environment["OPENSEARCH_URL"] = f"https://{self.domain.domain_endpoint}"
        else:
            environment["ELASTICSEARCH_URL"] = self.options.search_endpoint
        return environment

    def _secrets_from(self, *, broker: bool) -> str:
        """SECRETS_FROM for a function (src/serverless/secrets.py)."""
        spec: dict[str, object] = {
            "CURSOR_SECRET": {"arn": self.cursor_secret.secret_arn},
            "MONGODB_PASSWORD": {"arn": self.docdb_secret.secret_arn, "key": "password"},
        }
        if broker:
            spec["BROKER_URL"] = {
                "arn": self.broker_secret.secret_arn,
                "template": f"amqps://{{username}}:{{password}}@{self.broker_host}/",
            }
        return self.to_json_string(spec)

    def _function(
        self,
        name: str,
        handler: str,
        *,
        memory_mb: int,
        timeout: cdk.Duration,
        environment: dict[str, str],
        description: str,
        reserved: int | None = None,
    ) -> lambda_.Function:
        function = lambda_.Function(
            self,
            name,
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=self.code,
            memory_size=memory_mb,
            timeout=timeout,
            vpc=self.vpc,
            vpc_subnets=self.private,
            security_groups=[self.compute_sg],
            environment=environment,
            reserved_concurrent_executions=reserved,
            log_group=logs.LogGroup(self, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH),
        )
        self.cursor_secret.grant_read(function)
        self.docdb_secret.grant_read(function)
        self._grant_search(function.role)
        return function

    def _grant_search(self, role: iam.IRole | None) -> None:
        if self.domain is not None and role is not None:
            self.domain.grant_read_write(role)  # es:ESHttp* on the domain (SigV4-signed requests)

    # --- the read API -----------------------------------------------------------------------------

    def _api(self) -> None:
        environment = self.settings_env | {
            # One request per instance: per-client limits in memory mean nothing; API Gateway throttles.
            "RATE_LIMIT_ENABLED": "false",
            "BROKER_SUBSCRIBE": "false",
            # CloudFront routes every path, /metrics included: a token with this scope is needed (the
            # function's metrics are EMF lines in CloudWatch; with no AUTH_JWKS_URL, /metrics is a 401).
            "METRICS_SCOPE": METRICS_SCOPE,
            "SECRETS_FROM": self._secrets_from(broker=True),
        }
        self.api_function = self._function(
            "ApiFunction",
            "src.serverless.api.handler",
            memory_mb=1024,
            timeout=cdk.Duration.seconds(10),
            environment=environment,
            description="search read API (FastAPI through Mangum)",
            reserved=self.options.api_reserved_concurrency,
        )
        self.broker_secret.grant_read(self.api_function)
        target: lambda_.IFunction = self.api_function
        if self.options.api_provisioned_concurrency > 0:
            alias = lambda_.Alias(
                self,
                "ApiLive",
                alias_name="live",
                version=self.api_function.current_version,
                provisioned_concurrent_executions=self.options.api_provisioned_concurrency,
            )
            scaling = alias.add_auto_scaling(
                min_capacity=self.options.api_provisioned_concurrency,
                max_capacity=self.options.api_max_provisioned_concurrency,
            )
            scaling.scale_on_utilization(utilization_target=0.7)
            target = alias
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="search read API",
            default_integration=integrations.HttpLambdaIntegration(
                "ApiIntegration", target, payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0
            ),
        )
        stage = self.http_api.default_stage
        assert stage is not None
        cfn_stage = stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.default_route_settings = apigw.CfnStage.RouteSettingsProperty(
            throttling_burst_limit=500, throttling_rate_limit=200
        )

        origin = origins.HttpOrigin(
            f"{self.http_api.api_id}.execute-api.{self.region}.{self.url_suffix}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
        )
        # TTLs come from our Cache-Control (s-maxage): CloudFront adds none of its own (default 0).
        self.cache_policy = cloudfront.CachePolicy(
            self,
            "ApiCachePolicy",
            comment="honours the API's Cache-Control; keyed on the query string and the encoding",
            default_ttl=cdk.Duration.seconds(0),
            min_ttl=cdk.Duration.seconds(0),
            max_ttl=cdk.Duration.days(1),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.all(),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Cdn",
            comment="search read API",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
                cache_policy=self.cache_policy,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            ),
            additional_behaviors={
                "/v1/admin/*": cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                ),
            },
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        cdk.CfnOutput(self, "ApiUrl", value=f"https://{self.distribution.distribution_domain_name}")

    # --- the indexer ------------------------------------------------------------------------------

    def _indexer_environment(self) -> dict[str, str]:
        return self.settings_env | {
            "CDN_PURGER": "cloudfront",
            "CLOUDFRONT_DISTRIBUTION_ID": self.distribution.distribution_id,
            "INDEXER_RETRY_ATTEMPTS": "3",
        }

    def _grant_purge(self, grantee: iam.IGrantable) -> None:
        self.distribution.grant_create_invalidation(grantee)

    def _indexer_function(self) -> None:
        self.indexer_function = self._function(
            "IndexerFunction",
            "src.serverless.indexer.handler",
            memory_mb=1024,
            timeout=cdk.Duration.minutes(5),
            environment=self._indexer_environment() | {"SECRETS_FROM": self._secrets_from(broker=True)},
            description="search indexer: DocumentDB change-stream batches into the index",
            reserved=1,  # one batch at a time, in stream order
        )
        self.broker_secret.grant_read(self.indexer_function)
        self._grant_purge(self.indexer_function)
        role = self.indexer_function.role
        assert role is not None
        role.add_to_principal_policy(  # what the DocumentDB event source mapping needs (AWS's list)
            iam.PolicyStatement(
                actions=[
                    "rds:DescribeDBClusters",
                    "rds:DescribeDBClusterParameters",
                    "rds:DescribeDBSubnetGroups",
                    *EVENT_SOURCE_NETWORK_ACTIONS,
                ],
                resources=["*"],
            )
        )
        self.change_streams = self._change_streams_resource()
        self.source_mapping = lambda_.CfnEventSourceMapping(
            self,
            "IndexerSource",
            function_name=self.indexer_function.function_name,
            event_source_arn=self._docdb_arn(),
            starting_position="LATEST",
            batch_size=500,
            maximum_batching_window_in_seconds=1,
            document_db_event_source_config=lambda_.CfnEventSourceMapping.DocumentDBEventSourceConfigProperty(
                database_name=DATABASE, collection_name=COLLECTION, full_document="UpdateLookup"
            ),
            source_access_configurations=[
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(
                    type="BASIC_AUTH", uri=self.docdb_secret.secret_arn
                )
            ],
        )
        self.source_mapping.node.add_dependency(self.change_streams)

    def _docdb_arn(self) -> str:
        return self.format_arn(
            service="rds",
            resource="cluster",
            resource_name=self.docdb.cluster_identifier,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )

    def _change_streams_resource(self) -> cdk.CustomResource:
        function = self._function(
            "ChangeStreamsFunction",
            "src.serverless.change_streams.handler",
            memory_mb=256,
            timeout=cdk.Duration.minutes(1),
            environment=self.settings_env | {"SECRETS_FROM": self._secrets_from(broker=False)},
            description="turns DocumentDB change streams on for the source collection (modifyChangeStreams)",
        )
        provider = cr.Provider(self, "ChangeStreamsProvider", on_event_handler=function)
        resource = cdk.CustomResource(
            self,
            "ChangeStreams",
            service_token=provider.service_token,
            resource_type="Custom::DocDbChangeStreams",
            properties={"Database": DATABASE, "Collection": COLLECTION},
        )
        resource.node.add_dependency(self.docdb)
        return resource

    def _task_definition(self, name: str, command: list[str], *, cpu: int, memory_mb: int) -> ecs.FargateTaskDefinition:
        definition = ecs.FargateTaskDefinition(self, name, cpu=cpu, memory_limit_mib=memory_mb)
        definition.add_container(
            "indexer",
            image=ecs.ContainerImage.from_ecr_repository(self.repository, tag=self.options.image_tag),
            command=command,
            environment=self._indexer_environment()
            | {"MONGODB_TLS_CA_FILE": "/app/global-bundle.pem", "AWS_REGION": self.region},
            secrets={
                "CURSOR_SECRET": ecs.Secret.from_secrets_manager(self.cursor_secret),
                "MONGODB_PASSWORD": ecs.Secret.from_secrets_manager(self.docdb_secret, "password"),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name.lower()),
        )
        self._grant_search(definition.task_role)
        self._grant_purge(definition.task_role)
        return definition

    def _reindex(self) -> None:
        self.reindex_task = self._task_definition(
            "ReindexTask", ["python", "-m", "indexer", "reindex"], cpu=1024, memory_mb=2048
        )
        role = iam.Role(self, "SchedulerRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"))
        self.reindex_task.grant_run(role)
        self.reindex_schedule = scheduler.CfnSchedule(
            self,
            "ReindexSchedule",
            description="full reindex: new index, copy, replay, verify, alias swap",
            schedule_expression=self.options.reindex_schedule,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.cluster.cluster_arn,
                role_arn=role.role_arn,
                ecs_parameters=scheduler.CfnSchedule.EcsParametersProperty(
                    task_definition_arn=self.reindex_task.task_definition_arn,
                    launch_type="FARGATE",
                    task_count=1,
                    network_configuration=scheduler.CfnSchedule.NetworkConfigurationProperty(
                        awsvpc_configuration=scheduler.CfnSchedule.AwsVpcConfigurationProperty(
                            subnets=self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids,
                            security_groups=[self.compute_sg.security_group_id],
                            assign_public_ip="DISABLED",
                        )
                    ),
                ),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2),
            ),
        )

    def _stream_service(self) -> None:
        broker_url = f"amqps://$BROKER_USERNAME:$BROKER_PASSWORD@{self.broker_host}/"
        command = ["sh", "-c", f'BROKER_URL="{broker_url}" exec python -m indexer stream --check']
        definition = self._task_definition("StreamTask", command, cpu=512, memory_mb=1024)
        container = definition.default_container
        assert container is not None
        # The stream consumes reindex requests itself. ECS puts secrets into variables but cannot template
        # them, so the URL is put together by the shell (the generated password has no punctuation).
        container.add_secret("BROKER_USERNAME", ecs.Secret.from_secrets_manager(self.broker_secret, "username"))
        container.add_secret("BROKER_PASSWORD", ecs.Secret.from_secrets_manager(self.broker_secret, "password"))
        self.stream_service = ecs.FargateService(
            self,
            "StreamService",
            cluster=self.cluster,
            task_definition=definition,
            desired_count=1,
            min_healthy_percent=0,  # one consumer: the old task stops before the new one streams
            max_healthy_percent=100,
            vpc_subnets=self.private,
            security_groups=[self.compute_sg],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )

    def _reindex_requests_function(self) -> None:
        subnets = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        function = self._function(
            "ReindexRequestsFunction",
            "src.serverless.reindex.handler",
            memory_mb=256,
            timeout=cdk.Duration.seconds(30),
            environment={
                "REINDEX_CLUSTER": self.cluster.cluster_arn,
                "REINDEX_TASK_DEFINITION": self.reindex_task.task_definition_arn,
                "REINDEX_TASK_FAMILY": self.reindex_task.family,
                "REINDEX_CONTAINER": "indexer",
                "REINDEX_SUBNETS": cdk.Fn.join(",", subnets),
                "REINDEX_SECURITY_GROUPS": self.compute_sg.security_group_id,
            },
            description="starts the reindex task on a request from the broker (POST /v1/admin/reindex)",
            reserved=1,
        )
        self.reindex_task.grant_run(function)
        self.broker_secret.grant_read(function)
        role = function.role
        assert role is not None
        role.add_to_principal_policy(  # ListTasks takes no resource ARN; the describes are the mapping's
            iam.PolicyStatement(actions=["ecs:ListTasks", *EVENT_SOURCE_NETWORK_ACTIONS], resources=["*"])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["mq:DescribeBroker"], resources=[self.broker.attr_arn])
        )
        self.reindex_requests_function = function
        self.reindex_requests_mapping = lambda_.CfnEventSourceMapping(
            self,
            "ReindexRequests",
            function_name=function.function_name,
            event_source_arn=self.broker.attr_arn,
            queues=[REINDEX_QUEUE],
            batch_size=10,
            source_access_configurations=[
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(
                    type="BASIC_AUTH", uri=self.broker_secret.secret_arn
                ),
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(type="VIRTUAL_HOST", uri="/"),
            ],
        )

    # --- alarms -----------------------------------------------------------------------------------

    def _metric(self, function: str, name: str, statistic: str, minutes: int = 5) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"Function": function},
            statistic=statistic,
            period=cdk.Duration.minutes(minutes),
        )

    def _alarms(self) -> None:
        self.alarm_topic = sns.Topic(self, "Alarms", display_name="search service alarms")
        if self.options.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(self.options.alarm_email))
        action = cloudwatch_actions.SnsAction(self.alarm_topic)
        alarms: list[tuple[str, cloudwatch.IMetric, float, int, str]] = [
            ("ApiErrors", self._metric("api", "Errors", "Sum"), 10, 1, "API 5xx answers over 5 minutes"),
            ("ApiLatencyP99", self._metric("api", "Latency", "p99"), 1000, 3, "API p99 latency over 1 s"),
            ("ApiThrottles", self.api_function.metric_throttles(period=cdk.Duration.minutes(5)), 1, 1,
             "requests refused at the reserved concurrency"),
        ]  # fmt: skip
        if self.options.indexer_mode != "container":
            alarms += [
                ("IndexerErrors", self._metric("indexer", "Errors", "Sum"), 1, 3, "indexer batches failing (retried)"),
                ("IndexerLag", self._metric("indexer", "Lag", "Maximum"), 300, 2, "index more than 5 minutes behind"),
                ("IndexerDeadLetters", self._metric("indexer", "DeadLetters", "Sum"), 1, 1, "documents dead-lettered"),
                ("IndexerCollectionGone", self._metric("indexer", "CollectionGone", "Sum"), 1, 1,
                 "the source collection was dropped or renamed: reindex"),
            ]  # fmt: skip
        for name, metric, threshold, periods, description in alarms:
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
