#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter, or fail with a hint.
# Why a script: pyenv's `python3.12` shim exists on machines whose global pyenv version is another
# one, and then fails when run; so each candidate is run, not just looked up.
set -euo pipefail

is_312() { "$1" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }

candidates=()
[[ -n "${PYTHON:-}" ]] && candidates+=("$PYTHON")
candidates+=(python3.12)
if command -v pyenv >/dev/null 2>&1; then
  for dir in "$(pyenv root)"/versions/3.12*/bin; do candidates+=("$dir/python3.12"); done
fi
candidates+=("$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 python3)

for candidate in "${candidates[@]}"; do
  if is_312 "$candidate"; then
    command -v "$candidate" || echo "$candidate"
    exit 0
  fi
done
echo "error: Python 3.12 not found; install it (e.g. pyenv install 3.12) or set PYTHON=/path/to/python3.12" >&2
exit 1
