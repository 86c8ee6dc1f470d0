"""`cdk synth` entry point (infra/cdk.json): the stack from the context parameters."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk

from infra.stack import SearchStack, StackOptions

ROOT = Path(__file__).resolve().parent.parent


def options_from(app: cdk.App) -> StackOptions:
    """The parameters from cdk.json and `-c name=value`."""

    def context(name: str, default: object) -> object:
        value = app.node.try_get_context(name)
        return default if value is None or value == "" else value

    asset = ROOT / str(context("lambda_asset", "build/lambda"))
    if not asset.is_dir():
        raise SystemExit(f"{asset} is missing: stage the functions first (.venv/bin/python -m infra.stage_lambda)")
    return StackOptions(
        lambda_asset=asset,
        search_endpoint=str(context("search_endpoint", "")),
        indexer_mode=str(context("indexer_mode", "lambda")),
        image_tag=str(context("image_tag", "latest")),
        reindex_schedule=str(context("reindex_schedule", "cron(0 3 ? * SUN *)")),
        api_reserved_concurrency=int(str(context("api_reserved_concurrency", 100))),
        api_provisioned_concurrency=int(str(context("api_provisioned_concurrency", 0))),
        api_max_provisioned_concurrency=int(str(context("api_max_provisioned_concurrency", 20))),
        alarm_email=str(context("alarm_email", "")),
    )


def main() -> None:
    app = cdk.App()
    SearchStack(app, "SearchService", options=options_from(app), description="typo-tolerant search read API")
    app.synth()


if __name__ == "__main__":
    main()
