"""The alert rules and the Grafana dashboard name only metrics the services export: every metric in
their PromQL is read back from the exposition of the API's real GET /metrics (the indexer serves the same
prometheus_client registry on INDEXER_METRICS_PORT), or is a series Prometheus makes itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from src.settings import ApiSettings
from tests.api.conftest import started_client

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docker" / "prometheus" / "rules" / "search.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "search.json"
# Series Prometheus itself makes for every scrape target.
SYNTHETIC = {"up"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names a PromQL expression selects: what is left once strings, label
    matchers, range selectors, grouping clauses, functions and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for found in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = found.group(0)
        if word in _KEYWORDS or text[found.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def exported_series(exposition: str) -> set[str]:
    """Every sample name the exposition's families can carry (a labelled family with no children yet
    still shows its HELP and TYPE)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def rule_expressions() -> tuple[list[str], set[str]]:
    """The expressions of every rule, and the names recorded by the recording rules."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return [str(rule["expr"]) for rule in rules], {rule["record"] for rule in rules if "record" in rule}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


async def _scrape(settings: ApiSettings) -> str:
    async with started_client(settings) as (_, client):
        await client.get("/v1/search", params={"q": "metrics"})
        await client.get("/v1/documents/no-such-id")
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


def test_metric_names_when_expression_has_functions_matchers_and_grouping_keeps_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{route=~"/v1/.*", x="y}"}[5m]))) > 0.5 '
        "and on(job) b:recorded:rate5m or absent(up{job='i'})"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b:recorded:rate5m", "up"}


async def test_alert_rules_when_scraped_reference_only_exported_metrics(settings: ApiSettings) -> None:
    exported = exported_series(await _scrape(settings))
    expressions, recorded = rule_expressions()
    referenced = set().union(*(metric_names(expr) for expr in expressions))
    assert {"search_api_requests_total", "search_indexer_lag_seconds", "search_api_breaker_open"} <= referenced
    assert referenced - exported - recorded - SYNTHETIC == set()


async def test_dashboard_when_scraped_references_only_exported_metrics(settings: ApiSettings) -> None:
    exported = exported_series(await _scrape(settings))
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    referenced = set().union(*(metric_names(expr) for expr in expressions))
    assert referenced - exported - SYNTHETIC == set()
    assert "search_api_nonexistent_total" not in exported  # the check can tell a missing metric


def test_dashboard_covers_every_alerted_signal() -> None:
    """What pages someone is on the dashboard too (error rate, p99, hit ratio, breakers, lag, dead letters)."""
    on_dashboard = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    expressions, recorded = rule_expressions()
    alerted = set().union(*(metric_names(expr) for expr in expressions)) - recorded
    assert alerted - on_dashboard == set()


def test_dashboard_when_provisioned_uses_the_provisioned_datasource_and_path() -> None:
    provisioning = ROOT / "docker" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "search.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    grafana_mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert grafana_mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(target["datasource"]["uid"] == source["uid"] for target in panel["targets"]), panel["title"]
