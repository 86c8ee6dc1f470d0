"""Mint a development bearer token for the admin API (HS256 with AUTH_STATIC_KEY; never in production).

    export AUTH_STATIC_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') AUTH_ALGORITHMS=HS256
    TOKEN=$(.venv/bin/python scripts/mint_dev_token.py --scope search:cache:purge --minutes 30)
    curl -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
         -d '{"all": true}' http://127.0.0.1:8000/v1/admin/cache/purge

Issuer and audience are taken from AUTH_ISSUER / AUTH_AUDIENCE when set (the API then requires them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jwt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scope", action="append", required=True, help="a scope to grant (repeatable)")
    parser.add_argument("--minutes", type=float, default=15.0, help="lifetime")
    parser.add_argument("--subject", default="developer")
    args = parser.parse_args()
    secret = os.environ.get("AUTH_STATIC_KEY", "")
    if len(secret) < 32:
        sys.exit("AUTH_STATIC_KEY must be set to a secret of at least 32 characters (and AUTH_ALGORITHMS=HS256)")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": args.subject,
        "iat": now,
        "nbf": now,
        "exp": now + int(args.minutes * 60),
        "scope": " ".join(args.scope),
    }
    if os.environ.get("AUTH_ISSUER"):
        claims["iss"] = os.environ["AUTH_ISSUER"]
    if os.environ.get("AUTH_AUDIENCE"):
        claims["aud"] = os.environ["AUTH_AUDIENCE"]
    print(jwt.encode(claims, secret, algorithm="HS256"))


if __name__ == "__main__":
    main()
