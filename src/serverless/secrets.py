"""Secrets Manager values into the environment before the settings are read.

Lambda has no native way to put a secret into an environment variable (ECS task definitions do, and
the CDK app uses that for the tasks), and a value in the function's configuration would be readable by
anyone allowed to read the configuration. So the CDK app gives each function `SECRETS_FROM`, a JSON
object naming, per setting, the secret's ARN and how to take the value from it:

    {"CURSOR_SECRET": {"arn": "..."},                                   # the whole secret string
     "MONGODB_PASSWORD": {"arn": "...", "key": "password"},              # one member of a JSON secret
     "BROKER_URL": {"arn": "...", "template": "amqps://{username}:{password}@host:5671/"}}

Templates get URL-quoted members (a password may hold `@` or `/`). Read once per execution environment,
at its first invocation; boto3 is imported only when `SECRETS_FROM` is set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, MutableMapping
from typing import NotRequired, TypedDict, cast
from urllib.parse import quote

SPEC_VARIABLE = "SECRETS_FROM"


class SecretRef(TypedDict):
    """Where one setting's value comes from."""

    arn: str
    """The secret's ARN."""
    key: NotRequired[str]
    """A member of the secret's JSON object (the whole string when absent)."""
    template: NotRequired[str]
    """A `str.format` template filled with the secret's JSON members, URL-quoted."""


def resolve_secrets(spec: Mapping[str, SecretRef], fetch: Callable[[str], str]) -> dict[str, str]:
    """The environment variables `spec` names, each secret fetched once (ValueError naming a bad entry)."""
    fetched: dict[str, str] = {}
    resolved: dict[str, str] = {}
    for name, ref in spec.items():
        if ref["arn"] not in fetched:
            fetched[ref["arn"]] = fetch(ref["arn"])
        value = fetched[ref["arn"]]
        if "key" in ref or "template" in ref:
            try:
                members = cast(dict[str, object], json.loads(value))
                if "template" in ref:
                    value = ref["template"].format(**{k: quote(str(v), safe="") for k, v in members.items()})
                else:
                    value = str(members[ref["key"]])
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise ValueError(
                    f"{SPEC_VARIABLE}: the secret for {name} does not hold what is asked: {err!r}"
                ) from err
        resolved[name] = value
    return resolved


def load_secrets(environ: MutableMapping[str, str], fetch: Callable[[str], str] | None = None) -> list[str]:
    """Put the secrets `SECRETS_FROM` names into `environ`; returns the variables set."""
    raw = environ.get(SPEC_VARIABLE, "").strip()
    if not raw:
        return []
    spec = cast(dict[str, SecretRef], json.loads(raw))
    resolved = resolve_secrets(spec, fetch or _secrets_manager())
    environ.update(resolved)
    return sorted(resolved)


def _secrets_manager() -> Callable[[str], str]:  # pragma: no cover - AWS only
    import boto3

    client = boto3.client("secretsmanager")

    def fetch(arn: str) -> str:
        return str(client.get_secret_value(SecretId=arn)["SecretString"])

    return fetch
