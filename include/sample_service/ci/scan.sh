#!/bin/sh
# Scan step: lint (ruff, SARIF) and security analysis (bandit, JSON) of the service code. The
# reports come back as `::sre-result::` lines at the end; findings do not fail the step (the
# platform's quality gate judges them), only a tool that crashes does.
set -eu

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export PYTHONDONTWRITEBYTECODE=1

failed=0

ruff_version=$(python -m ruff --version) || failed=1
echo "scan: $ruff_version"
python -m ruff check --config ci/ruff.toml --no-cache --exit-zero --output-format concise . || failed=1
python -m ruff check --config ci/ruff.toml --no-cache --exit-zero --output-format sarif \
    --output-file "$reports/ruff.sarif" . || failed=1

python -c "import bandit; print('scan: bandit', bandit.__version__)" || failed=1
python -m bandit --recursive hello_api --format json --output "$reports/bandit.json" \
    --exit-zero --quiet || failed=1
python - "$reports/bandit.json" <<'PY' || failed=1
import collections
import json
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    results = json.load(handle)["results"]
for item in results:
    print(f"{item['filename']}:{item['line_number']}: {item['test_id']} "
          f"[{item['issue_severity'].lower()}] {item['issue_text']}")
counts = collections.Counter(item["issue_severity"].lower() for item in results)
print("bandit: " + (" ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no findings"))
PY

encode() {
    base64 <"$1" | tr -d '\n'
}
if [ -s "$reports/ruff.sarif" ]; then
    printf '::sre-result:: {"kind": "findings", "tool": "ruff", "format": "sarif", "encoding": "base64", "data": "%s"}\n' \
        "$(encode "$reports/ruff.sarif")"
fi
if [ -s "$reports/bandit.json" ]; then
    printf '::sre-result:: {"kind": "findings", "tool": "bandit", "format": "bandit-json", "encoding": "base64", "data": "%s"}\n' \
        "$(encode "$reports/bandit.json")"
fi

if [ "$failed" -ne 0 ]; then
    echo "scan: an analyser failed to run" >&2
    exit 1
fi
