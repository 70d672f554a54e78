#!/usr/bin/env bash
# `make ui`: airflow standalone with this repository's DAGs on the local two-site stand-in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=/dev/null
source scripts/airflow-env.sh
exec python -m sandbox.demo.ui "$@"
