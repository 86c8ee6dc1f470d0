"""The container stack's files, checked with the real tools this machine has (no Docker engine runs here):
`docker-compose config` (Debian's docker-compose) validates and resolves docker/compose.yaml, whose
resolved form is then checked for what the stack promises; promtool (built from the Go module proxy by
.ci/run) checks the Prometheus config and rules and runs the rules' unit tests; the Dockerfile and
.dockerignore are read for their pins, user and context."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_server
from tests.integration.test_gateway_nginx import PLACEHOLDER

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SECRETS = {"CURSOR_SECRET": "c" * 64, "GRAFANA_ADMIN_PASSWORD": "grafana-test"}
EXPECTED_SERVICES = {
    "elasticsearch", "opensearch", "redis", "mongodb", "rabbitmq", "seed", "indexer", "reindex", "api",
    "gateway", "varnish", "prometheus", "grafana",
}  # fmt: skip
# Where .ci/run builds it (PROMTOOL names it there too).
PROMTOOL_CACHE = Path.home() / ".cache" / "search-api-ci"


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    require_server(
        "docker-compose", lambda: binary is not None, "docker-compose not installed (apt-get install docker-compose)"
    )
    assert binary is not None
    return binary


def _promtool() -> str:
    cached = sorted(str(path) for path in PROMTOOL_CACHE.glob("promtool-*/promtool"))
    candidates = [os.environ.get("PROMTOOL", ""), shutil.which("promtool") or "", *cached]
    found = next((path for path in candidates if path and Path(path).is_file()), None)
    require_server("promtool", lambda: found is not None, "promtool not found (PROMTOOL=..., or let .ci/run build it)")
    assert found is not None
    return found


def published_ports(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of each published port, in compose's short or long syntax."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((str(port.get("host_ip", "")), int(port["target"])))
        else:
            parts = str(port).split("/")[0].split(":")
            found.append((parts[0] if len(parts) == 3 else "", int(parts[-1])))
    return found


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each bind mount, in compose's short or long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume["type"] == "bind":
                found.append((str(volume["source"]), str(volume["target"])))
        elif str(volume).startswith("/"):
            source, target = str(volume).split(":")[:2]
            found.append((source, target))
    return found


def compose_config(*profiles: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of the shipped file, with only the variables given (the developer's or CI's
    ELASTICSEARCH_URL must not leak into the interpolation)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(Path.home()), **(extra_env or {})}
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [_compose_binary(), "-f", str(DOCKER / "compose.yaml"), *flags, "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The stack with every profile, as compose resolves it."""
    done = compose_config("opensearch", "cdn", extra_env=SECRETS)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.mark.integration
def test_compose_config_with_every_profile_has_the_whole_stack(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == EXPECTED_SERVICES
    optional = {name: service["profiles"] for name, service in services.items() if service.get("profiles")}
    assert optional == {"opensearch": ["opensearch"], "varnish": ["cdn"]}


@pytest.mark.integration
def test_compose_config_without_the_cursor_secret_refuses() -> None:
    done = compose_config(extra_env={"GRAFANA_ADMIN_PASSWORD": "x"})
    assert done.returncode != 0
    assert "CURSOR_SECRET" in done.stderr


@pytest.mark.integration
def test_compose_api_runs_two_ready_checked_replicas_behind_the_gateway_only(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    api = services["api"]
    assert api["deploy"]["replicas"] == 2
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["APP_ENV"] == "production"
    assert api["environment"]["CURSOR_SECRET"] == SECRETS["CURSOR_SECRET"]
    assert api["environment"]["METRICS_PUBLIC"] == "true"  # scraped inside the network; never routed out
    published = {name: published_ports(service) for name, service in services.items() if service.get("ports")}
    assert set(published) == {"gateway", "varnish", "prometheus", "grafana"}  # nothing else reachable from the host
    for name, ports in published.items():
        for host, _ in ports:
            assert host == "127.0.0.1", (name, ports)
    gateway = services["gateway"]
    assert gateway["depends_on"]["api"]["condition"] == "service_healthy"
    assert gateway["environment"]["API_UPSTREAM"] == "api:8000"
    assert {port for _, port in published_ports(gateway)} == {int(gateway["environment"]["GATEWAY_PORT"])}


@pytest.mark.integration
def test_compose_gateway_template_gets_every_placeholder_it_names(resolved: dict[str, Any]) -> None:
    gateway = resolved["services"]["gateway"]
    (mount,) = [
        (source, target) for source, target in bind_mounts(gateway) if target.startswith("/etc/nginx/templates/")
    ]
    assert mount[1].endswith(".template")
    assert Path(mount[0]) == DOCKER / "nginx.conf.template"
    placeholders = set(PLACEHOLDER.findall(Path(mount[0]).read_text()))
    assert placeholders == {"GATEWAY_PORT", "API_UPSTREAM", "GATEWAY_ACCESS_LOG"}
    assert placeholders <= set(gateway["environment"])


@pytest.mark.integration
def test_compose_indexer_streams_after_its_preflight_with_a_restart_policy(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    indexer = services["indexer"]
    assert indexer["command"] == ["python", "-m", "indexer", "stream", "--check"]
    assert indexer["restart"] == "unless-stopped"
    assert indexer["depends_on"]["seed"]["condition"] == "service_completed_successfully"
    assert indexer["healthcheck"]["test"][-3:] == ["-m", "indexer", "status"]
    assert services["seed"]["command"] == ["python", "-m", "indexer", "seed", "--if-empty"]
    # MongoDB is a one-member replica set (change streams need one) and the clients name it.
    assert "--replSet" in services["mongodb"]["command"]
    replica_set = services["mongodb"]["command"][services["mongodb"]["command"].index("--replSet") + 1]
    for name in ("seed", "indexer", "reindex", "api"):
        assert f"replicaSet={replica_set}" in services[name]["environment"]["MONGODB_URL"], name
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
        assert "@rabbitmq:5672/" in services[name]["environment"]["BROKER_URL"], name


@pytest.mark.integration
def test_compose_reindex_runs_the_one_shot_command_on_a_schedule(resolved: dict[str, Any]) -> None:
    reindex = resolved["services"]["reindex"]
    script = reindex["command"][-1]
    assert "python -m indexer reindex" in script
    assert "${REINDEX_INTERVAL_SECONDS}" in script  # `$$` in the file: the container's shell expands it
    assert reindex["environment"]["REINDEX_INTERVAL_SECONDS"] == "86400"
    assert reindex["init"] is True
    assert reindex["restart"] == "unless-stopped"


@pytest.mark.integration
def test_compose_images_are_pinned_and_bind_mounts_exist(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z]+)?", tag) or image == "search-read-api:local", (name, image)
        for source, _ in bind_mounts(service):
            assert Path(source).exists(), (name, source)
    mounted = {target for service in resolved["services"].values() for _, target in bind_mounts(service)}
    assert {"/etc/prometheus/rules", "/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= mounted
    assert resolved["services"]["opensearch"]["image"].startswith("opensearchproject/opensearch:2.19.")
    assert resolved["services"]["opensearch"]["environment"]["DISABLE_SECURITY_PLUGIN"] == "true"


@pytest.mark.integration
def test_compose_prometheus_scrapes_the_ports_the_services_listen_on(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    scrape = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape}
    assert jobs["api"]["dns_sd_configs"][0]["names"] == ["api"]  # every replica, not one address
    assert jobs["api"]["dns_sd_configs"][0]["port"] == 8000
    assert jobs["indexer"]["static_configs"][0]["targets"] == [
        f"indexer:{services['indexer']['environment']['INDEXER_METRICS_PORT']}"
    ]
    assert services["indexer"]["environment"]["INDEXER_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - inside the network


@pytest.mark.integration
def test_compose_varnish_fronts_the_gateway(resolved: dict[str, Any]) -> None:
    vcl = (DOCKER / "varnish.vcl").read_text()
    gateway = resolved["services"]["gateway"]
    assert '.host = "gateway";' in vcl
    assert f'.port = "{gateway["environment"]["GATEWAY_PORT"]}";' in vcl


@pytest.mark.integration
def test_promtool_check_config_and_rules_pass(tmp_path: Path) -> None:
    promtool = _promtool()
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(DOCKER / "prometheus" / "rules" / "*.yml")]  # where the container mounts them
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 13 rules found" in checked.stdout


@pytest.mark.integration
def test_promtool_test_rules_every_alert_fires_and_stays_quiet_as_specified() -> None:
    promtool = _promtool()
    tests = DOCKER / "prometheus" / "tests" / "search_test.yml"
    done = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {
        test["alertname"] for case in yaml.safe_load(tests.read_text())["tests"] for test in case["alert_rule_test"]
    }
    groups = yaml.safe_load((DOCKER / "prometheus" / "rules" / "search.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert alerts - tested == set()  # every alert has a unit test
