"""The Lambda asset staging script: its pip command (Lambda's platform, binary wheels only), the
requirements it takes from setup.cfg, and what it copies of the application."""

from __future__ import annotations

from pathlib import Path

from infra.stage_lambda import ROOT, copy_application, pip_command, requirements


def test_pip_command_when_arm64_asks_for_binary_wheels_of_that_platform(tmp_path: Path) -> None:
    command = pip_command(["mangum>=0.19", "orjson>=3.10"], tmp_path / "out", arch="arm64", python="py")
    assert command[:4] == ["py", "-m", "pip", "install"]
    assert command[command.index("--platform") + 1] == "manylinux2014_aarch64"
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--implementation") + 1] == "cp"
    assert command[command.index("--target") + 1] == str(tmp_path / "out")
    assert "--only-binary=:all:" in command
    assert command[-2:] == ["mangum>=0.19", "orjson>=3.10"]
    assert pip_command([], tmp_path)[pip_command([], tmp_path).index("--platform") + 1] == "manylinux2014_x86_64"


def test_requirements_when_read_from_setup_cfg_are_the_runtime_and_lambda_ones(tmp_path: Path) -> None:
    setup = tmp_path / "setup.cfg"
    setup.write_text(
        "[options]\ninstall_requires =\n    fastapi>=0.115\n    # a comment\n    orjson>=3.10  # why\n"
        "[options.extras_require]\nlambda =\n    mangum>=0.19\n    orjson>=3.10\ndev =\n    pytest\n"
    )
    assert requirements(setup) == ["fastapi>=0.115", "orjson>=3.10", "mangum>=0.19"]
    found = requirements(ROOT / "setup.cfg")
    assert any(r.startswith("mangum") for r in found)
    assert any(r.startswith("boto3") for r in found)
    assert not any(r.startswith(("secantusdb", "pytest", "aws-cdk-lib")) for r in found)  # dev and deploy stay out


def test_copy_application_when_staging_copies_packages_and_schema_files_only(tmp_path: Path) -> None:
    copy_application(tmp_path)
    assert (tmp_path / "src" / "serverless" / "api.py").is_file()
    assert (tmp_path / "indexer" / "__main__.py").is_file()
    assert (tmp_path / "data" / "debian-packages.schema.json").is_file()
    assert not (tmp_path / "data" / "debian-packages.jsonl.gz").exists()  # the demo data is not shipped
    assert not list(tmp_path.rglob("__pycache__"))
