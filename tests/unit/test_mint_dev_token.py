"""The development token script mints what the API's verifier accepts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from src.api.auth import TokenVerifier, scopes_of

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-development-secret-of-32-chars!!"


def test_mint_dev_token_when_run_mints_a_token_the_verifier_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_STATIC_KEY", SECRET)
    monkeypatch.setenv("AUTH_AUDIENCE", "search-api")
    minted = subprocess.run(
        [sys.executable, "scripts/mint_dev_token.py", "--scope", "search:cache:purge", "--scope", "search:read-status"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    verifier = TokenVerifier(algorithms=("HS256",), static_key=SECRET, audience="search-api")
    claims = asyncio.run(verifier.verify(minted))
    assert scopes_of(claims) == {"search:cache:purge", "search:read-status"}


def test_mint_dev_token_when_the_secret_is_short_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_STATIC_KEY", "short")
    run = subprocess.run(
        [sys.executable, "scripts/mint_dev_token.py", "--scope", "x"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "AUTH_STATIC_KEY" in run.stderr
