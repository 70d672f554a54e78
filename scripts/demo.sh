#!/usr/bin/env bash
# `make demo [SCENARIO=good|tests-fail|bad-release]`: the delivery pipeline end to end on the
# local two-site stand-in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=/dev/null
source scripts/airflow-env.sh
if [[ ! -f dags/delivery_pipeline.py || ! -d sandbox/demo ]]; then
    echo "
    echo "Nothing was run. 'make test' works today." >&2
    exit 3
fi
exec python -m sandbox.demo --scenario "${1:-good}"
