#!/usr/bin/env bash
# `make demo [SCENARIO=good|tests-fail|bad-release]`: the delivery pipeline end to end on the
# local two-site stand-in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=/dev/null
source scripts/airflow-env.sh
exec python -m sandbox.demo --scenario "${1:-good}"
