#!/usr/bin/env bash
# Re-resolve requirements.txt + requirements-dev.txt into requirements.lock.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
UV="${ROOT}/.venv/bin/uv"
if [[ ! -x "${UV}" ]]; then
    bash scripts/bootstrap.sh >/dev/null
fi
tmp="$(mktemp)"
trap 'rm -f "${tmp}"' EXIT
"${UV}" pip compile requirements.txt requirements-dev.txt --python-version 3.11 --no-header -q -o "${tmp}"
grep -q '^apache-airflow==' "${tmp}" || { echo "error: resolution produced no lock" >&2; exit 1; }
{
    echo "# Full lock of every package, resolved from requirements.txt + requirements-dev.txt."
    echo "# Regenerate with \`make lock\`; all installs (README commands, CI, Dockerfile) use it."
    cat "${tmp}"
} > requirements.lock
echo "requirements.lock updated; run 'make setup' to install it"
