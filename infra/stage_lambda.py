"""Stage the Lambda functions' code without Docker: pip installs the Lambda platform's manylinux wheels
into a folder, beside the application's own packages; the CDK app zips that folder.

    .venv/bin/python -m infra.stage_lambda            # -> build/lambda (x86_64, CPython 3.12)
    .venv/bin/python -m infra.stage_lambda --arch arm64 --ca-bundle global-bundle.pem

Only binary wheels (`--only-binary=:all:`) for `--platform manylinux2014_<arch>` and
`--python-version 3.12`: nothing is compiled on this machine, so what is staged runs on Lambda's Amazon
Linux whatever this machine is. The dependencies are the project's `install_requires` plus the `lambda`
extra, read from setup.cfg. DocumentDB needs TLS with Amazon's CA bundle (`global-bundle.pem`), copied in
with `--ca-bundle` (download it from https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem).
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSION = "3.12"
APP_PACKAGES = ("src", "indexer")
DATA_GLOBS = ("*.schema.json", "*.synonyms.json")


def requirements(setup_cfg: Path, extras: Sequence[str] = ("lambda",)) -> list[str]:
    """install_requires plus the named extras of setup.cfg, comments and blank lines dropped, no duplicates."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    lines = parser.get("options", "install_requires").splitlines()
    for extra in extras:
        lines += parser.get("options.extras_require", extra).splitlines()
    found: list[str] = []
    for line in lines:
        requirement = line.split("#", 1)[0].strip()
        if requirement and requirement not in found:
            found.append(requirement)
    return found


def pip_command(
    packages: Sequence[str], target: Path, *, arch: str = "x86_64", python: str = sys.executable
) -> list[str]:
    """The pip command that installs `packages` for Lambda's platform into `target`."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--platform",
        PLATFORMS[arch],
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--upgrade",
        "--target",
        str(target),
        *packages,
    ]


def copy_application(target: Path, root: Path = ROOT) -> None:
    """The application's packages (without caches) and the schema files beside them."""
    for package in APP_PACKAGES:
        shutil.copytree(root / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (target / "data").mkdir(exist_ok=True)
    for pattern in DATA_GLOBS:
        for path in (root / "data").glob(pattern):
            shutil.copy2(path, target / "data" / path.name)


def stage(target: Path, *, arch: str, ca_bundle: Path | None) -> None:
    """Empty `target`, install the wheels, copy the application (and the CA bundle)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(pip_command(requirements(ROOT / "setup.cfg"), target, arch=arch), check=True)  # noqa: S603 - our own argv
    copy_application(target)
    if ca_bundle is not None:
        shutil.copy2(ca_bundle, target / "global-bundle.pem")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", type=Path, default=ROOT / "build" / "lambda")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--ca-bundle", type=Path, default=None)
    args = parser.parse_args(argv)
    stage(args.target, arch=args.arch, ca_bundle=args.ca_bundle)
    size = sum(path.stat().st_size for path in args.target.rglob("*") if path.is_file())
    print(f"staged {args.target} ({size / 1e6:.0f} MB unzipped; Lambda allows 250 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
