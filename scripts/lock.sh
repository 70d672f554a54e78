#!/usr/bin/env bash
# Re-resolve requirements.txt + requirements-dev.txt into requirements.lock.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
bash scripts/bootstrap.sh >/dev/null
{
    echo "# Full lock of every package, resolved from requirements.txt + requirements-dev.txt."
    echo "# Regenerate with \`make lock\`; all installs (README commands, CI, Dockerfile) use it."
    .venv/bin/uv pip compile requirements.txt requirements-dev.txt --python-version 3.11 --no-header -q -o -
} > requirements.lock.new
mv requirements.lock.new requirements.lock
echo "requirements.lock updated; run 'make setup' to install it"
