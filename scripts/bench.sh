#!/usr/bin/env bash
# `make bench`: run every bench/*.py one after the other and print their figures.
# `bash scripts/bench.sh rollout_detect parse_time` runs only the named ones.
# Each script gets settings that keep the whole run within about ten minutes on two cores; a
# header says what it measures and where its figures come from. Scripts that need MariaDB run
# only when it answers on 127.0.0.1:3306 (or SRE_TEST_MYSQL_HOST/PORT). A script still running
# after BENCH_TIMEOUT seconds (default 300) gets SIGINT, so its stand-ins unwind and stop their
# processes. Exit status: 1 when a script failed or ran out of time, 0 otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export AIRFLOW_HOME="${ROOT}/.airflow-test"
bash scripts/bootstrap.sh
# shellcheck source=/dev/null
source scripts/airflow-env.sh

MYSQL_HOST="${SRE_TEST_MYSQL_HOST:-127.0.0.1}"
MYSQL_PORT="${SRE_TEST_MYSQL_PORT:-3306}"
PER_SCRIPT_TIMEOUT="${BENCH_TIMEOUT:-300}"

# Settings per script (the scripts' own defaults unless a shorter run says as much).
settings() {
    case "$1" in
        kube_standin.py) echo "--pods 50 --starts 5" ;;
        parse_time.py) echo "--repeat 3" ;;
        records_write.py) echo "--writes 10000 --sqlite" ;;
        rollout_detect.py) echo "--rounds 4" ;;
        *) echo "" ;;
    esac
}

needs_mariadb() {
    case "$1" in
        records_write.py) return 0 ;;
        *) return 1 ;;
    esac
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# The first line of a script's docstring: what its figures are.
summary_of() {
    python - "$1" <<'PY'
import ast, sys
doc = ast.get_docstring(ast.parse(open(sys.argv[1], encoding="utf-8").read())) or ""
print(doc.strip().splitlines()[0] if doc.strip() else "(no description)")
PY
}

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- bench operators include sandbox 2>/dev/null)" ]]; then
    commit="${commit} with local changes"
fi
echo "[bench] figures measured on this machine: $(nproc) cores, $(python -c 'import platform; print("Python", platform.python_version())'), commit ${commit}, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "[bench] other processes on the machine share the cores; compare runs from the same machine only"

failed=()
skipped=()
wanted=("$@")
is_wanted() {
    local name
    ((${#wanted[@]} == 0)) && return 0
    for name in "${wanted[@]}"; do
        [[ "$(basename "${name%.py}")" == "${1%.py}" ]] && return 0
    done
    return 1
}

for path in bench/*.py; do
    script="$(basename "${path}")"
    is_wanted "${script}" || continue
    read -r -a args <<<"$(settings "${script}")"
    echo
    echo "=== ${path} ${args[*]}"
    echo "    what: $(summary_of "${path}")"
    if needs_mariadb "${script}"; then
        if ! port_open "${MYSQL_HOST}" "${MYSQL_PORT}"; then
            echo "    skipped: MariaDB does not answer on ${MYSQL_HOST}:${MYSQL_PORT}"
            skipped+=("${script}")
            continue
        fi
        echo "    source: MariaDB on ${MYSQL_HOST}:${MYSQL_PORT} (a throw-away database)"
    else
        echo "    source: local stand-ins and files only (loopback servers started by the script)"
    fi
    started=${SECONDS}
    status=0
    timeout --signal=INT --kill-after=20 "${PER_SCRIPT_TIMEOUT}" python "${path}" "${args[@]}" || status=$?
    if ((status == 124)); then
        echo "    FAILED: no result within ${PER_SCRIPT_TIMEOUT}s"
        failed+=("${script}")
    elif ((status != 0)); then
        echo "    FAILED: exit status ${status}"
        failed+=("${script}")
    fi
    echo "    took $((SECONDS - started))s"
done

echo
echo "[bench] done in ${SECONDS}s; failed: ${failed[*]:-none}; skipped: ${skipped[*]:-none}"
((${#failed[@]} == 0))
