"""The indexer against a source that needs TLS (a CA generated here) and SCRAM credentials (SecantusDB)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from indexer.cli import main
from src.settings import get_indexer_settings
from tests.conftest import IN_CI, start_secantus, stop_process
from tests.integration.test_indexer_cli import stream_until_checkpointed

pytestmark = pytest.mark.integration


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    if shutil.which("openssl") is None:
        if IN_CI:
            pytest.fail("CI=true requires openssl to make the test CA")
        pytest.skip("openssl is not installed")
    ca_key, ca, key, csr, cert = (
        directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=search-api test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(extensions))  # fmt: skip
    return ca, cert, key


@pytest.fixture(scope="module")
def secure_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A SecantusDB with TLS and auth, user `indexer` / `right-password`: (url without credentials, CA file)."""
    directory = tmp_path_factory.mktemp("secure")
    ca, cert, key = make_ca(directory)
    storage = directory / "storage"
    tls = ("--tls-cert-file", str(cert), "--tls-key-file", str(key))
    url, process = start_secantus(storage, *tls)
    try:
        tls_url = url + "&tls=true&tlsCAFile=" + str(ca)

        async def provision() -> None:
            client: AsyncMongoClient[Any] = AsyncMongoClient(tls_url)
            await client["catalog"].command("createUser", "indexer", pwd="right-password", roles=["readWrite"])
            await client.close()

        asyncio.run(provision())
    finally:
        stop_process(process)
    url, process = start_secantus(storage, *tls, "--auth")  # the users persist in the storage
    try:
        yield url, ca
    finally:
        stop_process(process)


@pytest.fixture
def env(secure_source: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url, ca = secure_source
    values = {
        "MONGODB_URL": url + "&authSource=catalog",
        "MONGODB_DATABASE": "catalog",
        "MONGODB_TLS": "true",
        "MONGODB_TLS_CA_FILE": str(ca),
        "MONGODB_USERNAME": "indexer",
        "MONGODB_PASSWORD": "right-password",
        "MONGODB_TIMEOUT_SECONDS": "3",
        "INDEX_ALIAS": f"tls-{uuid.uuid4().hex[:8]}",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "INDEXER_METRICS_PORT": "0",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_indexer_settings.cache_clear()
    return values


def test_main_when_source_needs_tls_and_auth_checks_streams_and_reindexes(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("ok   source reachable")
    assert asyncio.run(stream_until_checkpointed(get_indexer_settings())) == 0
    assert main(["reindex"]) == 0
    assert "0 documents" in capsys.readouterr().out


def test_main_when_password_is_wrong_fails_clearly_without_the_secret(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONGODB_PASSWORD", "wrong-password")
    get_indexer_settings.cache_clear()
    assert main(["check"]) == 1
    out = capsys.readouterr()
    assert "fail source authentication" in out.out
    assert "MONGODB_PASSWORD" in out.out  # the fix names the setting...
    assert "wrong-password" not in out.out + out.err  # ...never its value
    assert main(["status"]) == 4  # the source is unreachable for this user


def test_main_when_ca_is_not_given_fails_to_reach_the_tls_source(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MONGODB_TLS_CA_FILE")
    get_indexer_settings.cache_clear()
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "fail source reachable" in out
    assert "MONGODB_TLS_CA_FILE" in out
