"""The two process entrypoints wire settings into uvicorn and the indexer CLI."""

from __future__ import annotations

import gc
import runpy
import sys

import pytest
import uvicorn
from fastapi import FastAPI

from src.__main__ import main as serve
from src.serving import EdgeHttpToolsProtocol


def test_main_when_run_serves_settings_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(gc, "freeze", lambda: None)  # the test process must stay collectable
    monkeypatch.setenv("APP_PORT", "8123")
    monkeypatch.setenv("HTTP_HEADER_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("HTTP_MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("HSTS_MAX_AGE_SECONDS", "600")
    serve()
    [(args, kwargs)] = calls
    assert isinstance(args[0], FastAPI)
    protocol = kwargs.pop("http")
    assert isinstance(protocol, type)
    assert issubclass(protocol, EdgeHttpToolsProtocol)  # one write per response, deadlines, problem errors
    assert (protocol.header_timeout_seconds, protocol.max_unread_body_bytes) == (7.5, 65536)
    assert (b"strict-transport-security", b"max-age=600; includeSubDomains") in protocol.security_headers.for_path("/")
    assert kwargs == {
        "host": "127.0.0.1",
        "port": 8123,
        "log_level": "info",
        "access_log": False,  # the app's own JSON access log instead
        "log_config": None,  # uvicorn's loggers routed into the app's JSON logging
        "proxy_headers": False,  # X-Forwarded-For is read by the app, from TRUSTED_PROXIES
        "server_header": False,  # nothing names the software to a client
        "ws": "none",  # no WebSocket routes: an upgrade request is an ordinary one
    }


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "METRICS_SCOPE is empty"),
        ({"METRICS_PUBLIC": "true", "AUTH_JWKS_URL": "https://issuer.test/jwks"}, "AUTH_ISSUER is empty"),
        (
            {
                "METRICS_PUBLIC": "true",
                "AUTH_JWKS_URL": "https://issuer.test/jwks",
                "AUTH_ISSUER": "https://issuer.test/",
            },
            "AUTH_AUDIENCE is empty",
        ),
    ],
)
def test_main_when_production_settings_are_lax_exits_naming_them_before_serving(
    variables: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("served with unsafe settings"))
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("CURSOR_SECRET", "c" * 40)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        serve()
    assert str(exited.value.code).startswith("refusing to serve with APP_ENV=production: ")
    assert named in str(exited.value.code)


def test_main_when_run_freezes_the_built_app_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: events.append("freeze"))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: events.append("run"))
    serve()
    assert events == ["freeze", "run"]


def test_indexer_module_when_run_exits_with_cli_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["indexer", "load", "/nonexistent.jsonl"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("indexer", run_name="__main__")
    assert exited.value.code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SEARCH_TIMEOUT_SECONDS": "-1"}, "invalid settings: SEARCH_TIMEOUT_SECONDS: Input should be greater than 0"),
        (
            {"ELASTICSEARCH_URL": "http://127.0.0.1:9200", "OPENSEARCH_URL": "http://127.0.0.1:9201"},
            "invalid settings: ELASTICSEARCH_URL and OPENSEARCH_URL are both set: set at most one",
        ),
    ],
)
@pytest.mark.parametrize("process", ["api", "indexer"])
def test_settings_or_exit_when_settings_invalid_exits_naming_them(
    variables: dict[str, str], message: str, process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from src.settings import ApiSettings, IndexerSettings, settings_or_exit

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        settings_or_exit(ApiSettings if process == "api" else IndexerSettings)
    assert str(exited.value.code).startswith(message)
