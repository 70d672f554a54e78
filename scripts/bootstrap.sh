#!/usr/bin/env bash
# Set-up behind every README command: venv from the lock, system packages that
# mysqlclient needs, an Airflow home inside the repository, the records schema.
# A second run with nothing changed only checks stamps and returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv"
PYTHON_BIN="${PYTHON:-python3.11}"
UV_VERSION="0.13.9"
export AIRFLOW_HOME="${AIRFLOW_HOME:-${ROOT}/.airflow}"

say() { printf '[setup] %s\n' "$*"; }

need_system_packages() {
    local missing=()
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists mariadb 2>/dev/null; then
        missing+=(default-libmysqlclient-dev)
    fi
    command -v git >/dev/null 2>&1 || missing+=(git)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
    else
        echo "error: missing system packages: ${missing[*]}" >&2
        echo "run:   sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

ensure_venv() {
    if ! command -v "${PYTHON_BIN}" >/dev/null 2>&1; then
        PYTHON_BIN=python3
    fi
    local version
    version="$("${PYTHON_BIN}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "${version}" != "3.11" ]]; then
        echo "error: Python 3.11 is required, ${PYTHON_BIN} is ${version}; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    local want have=""
    # The stamp covers the lock and how it is installed (bytecode compiled ahead: with
    # PYTHONDONTWRITEBYTECODE set, nothing else would ever cache it and every import recompiles).
    want="$(cat "${ROOT}/requirements.lock" | sha256sum | cut -c1-16)-pyc"
    [[ -f "${VENV}/.lock-stamp" ]] && have="$(cat "${VENV}/.lock-stamp")"
    if [[ -x "${VENV}/bin/python" && "${want}" == "${have}" ]]; then
        return 0
    fi
    need_system_packages
    if [[ ! -x "${VENV}/bin/python" ]]; then
        say "creating ${VENV}"
        "${PYTHON_BIN}" -m venv "${VENV}"
    fi
    if [[ ! -x "${VENV}/bin/uv" ]]; then
        "${VENV}/bin/python" -m pip install --quiet "uv==${UV_VERSION}"
    fi
    say "installing requirements.lock (this takes a minute on a new machine)"
    VIRTUAL_ENV="${VENV}" "${VENV}/bin/uv" pip sync --quiet --compile-bytecode --python "${VENV}/bin/python" "${ROOT}/requirements.lock"
    # Make the repository root importable (operators/, include/) for Airflow and tests alike.
    local site
    site="$("${VENV}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "${ROOT}" > "${site}/sre_delivery_root.pth"
    echo "${want}" > "${VENV}/.lock-stamp"
}

ensure_airflow_home() {
    mkdir -p "${AIRFLOW_HOME}"
    # shellcheck source=/dev/null
    source "${ROOT}/scripts/airflow-env.sh"
    local stamp="${AIRFLOW_HOME}/.db-stamp"
    local want
    want="$(cat "${ROOT}/requirements.lock" | sha256sum | cut -c1-16)"
    if [[ -f "${AIRFLOW_HOME}/airflow.db" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
        return 0
    fi
    say "migrating the Airflow metadata DB in ${AIRFLOW_HOME}"
    "${VENV}/bin/airflow" db migrate >"${AIRFLOW_HOME}/db-migrate.log" 2>&1 \
        || { cat "${AIRFLOW_HOME}/db-migrate.log" >&2; exit 1; }
    echo "${want}" > "${stamp}"
}

ensure_records() {
    "${VENV}/bin/python" -m operators.records migrate --quiet
}

compile_project() {
    # Cache the project's own bytecode too (PYTHONDONTWRITEBYTECODE may be set); only changed
    # files are compiled again.
    (cd "${ROOT}" && "${VENV}/bin/python" -m compileall -q -j 0 dags operators include plugins sandbox tests bench >/dev/null) || true
}

ensure_venv
compile_project
ensure_airflow_home
ensure_records
