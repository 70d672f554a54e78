#!/bin/sh
# Test step: the unit tests under coverage. The JUnit XML and the Cobertura XML come back as
# `::sre-result::` lines at the end, also when tests fail; the exit status is pytest's.
set -eu

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Keep the workspace clean: no bytecode, no coverage data, no pytest cache in the checkout.
export PYTHONDONTWRITEBYTECODE=1
export COVERAGE_FILE="$reports/.coverage"

tests=0
python -m coverage run --rcfile=.coveragerc -m pytest -p no:cacheprovider \
    -o junit_suite_name=hello-api --junitxml="$reports/junit.xml" tests || tests=$?

report=0
if [ -f "$COVERAGE_FILE" ]; then
    python -m coverage report --rcfile=.coveragerc || report=$?
    python -m coverage xml --rcfile=.coveragerc -q -o "$reports/coverage.xml" || report=$?
else
    echo "test: no coverage data was recorded" >&2
    report=1
fi

encode() {
    base64 <"$1" | tr -d '\n'
}
if [ -f "$reports/junit.xml" ]; then
    printf '::sre-result:: {"kind": "junit", "encoding": "base64", "data": "%s"}\n' \
        "$(encode "$reports/junit.xml")"
fi
if [ -f "$reports/coverage.xml" ]; then
    printf '::sre-result:: {"kind": "coverage", "format": "cobertura", "encoding": "base64", "data": "%s"}\n' \
        "$(encode "$reports/coverage.xml")"
fi

if [ "$tests" -ne 0 ]; then
    echo "test: pytest failed with exit status $tests" >&2
    exit "$tests"
fi
exit "$report"
