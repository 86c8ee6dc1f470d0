"""The container image's files, read as text: the Dockerfile and what .dockerignore sends to the build
(no Docker needed; the built stack's checks are in tests/integration/test_stack_config.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def test_dockerfile_pins_its_base_runs_as_a_numeric_non_root_user_and_has_a_health_check() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert bases
    assert all(re.fullmatch(r"python:3\.12\.\d+-slim-bookworm", base) for base in bases), bases
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users[-1].split(":")[0].isdigit()
    assert int(users[-1].split(":")[0]) != 0
    assert re.search(r"^HEALTHCHECK .*CMD", dockerfile, flags=re.MULTILINE | re.DOTALL)


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"  # everything out, then an allow-list
    allowed = {line.removeprefix("!").rstrip("/") for line in rules if line.startswith("!")}
    copied = set(re.findall(r"^COPY\s+(\S+)", (DOCKER / "Dockerfile").read_text(), flags=re.MULTILINE))
    sources = {source for line in copied for source in line.split()}
    assert {".venv", ".git", "var", "tests", "bench"}.isdisjoint(allowed)
    assert {"setup.cfg", "pyproject.toml", "README.md", "src", "indexer", "data"} == allowed
    assert sources <= allowed | {"--mount"}
