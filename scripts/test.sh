#!/usr/bin/env bash
# `make test`: lint, type check, then the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export AIRFLOW_HOME="${ROOT}/.airflow-test"
bash scripts/bootstrap.sh
# shellcheck source=/dev/null
source scripts/airflow-env.sh
bash scripts/ensure-services.sh
echo "[test] ruff format --check"; ruff format --check --quiet .
echo "[test] ruff check"; ruff check --quiet .
echo "[test] mypy"; mypy
echo "[test] pytest"
exec pytest "$@"
