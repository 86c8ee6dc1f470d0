"""Unit tests of src.observability.tracing: what the OTEL_* variables turn on."""

from __future__ import annotations

import pytest

from src.observability.tracing import tracing_wanted


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        pytest.param({}, None, id="nothing-set-is-off"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp", id="endpoint"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp", id="traces-endpoint"),
        pytest.param({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp", id="otlp-default-endpoint"),
        pytest.param({"OTEL_TRACES_EXPORTER": "none"}, "record", id="record-without-export"),
        pytest.param({"OTEL_TRACES_EXPORTER": "zipkin"}, None, id="unsupported-exporter"),
        pytest.param(
            {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None, id="sdk-disabled"
        ),
    ],
)
def test_tracing_wanted_follows_the_standard_variables(env: dict[str, str], wanted: str | None) -> None:
    assert tracing_wanted(env) == wanted
