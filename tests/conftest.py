"""Test-wide set-up: an Airflow home of its own, and the servers tests need.

Airflow reads its configuration at import time, so the environment is set here, before any
test module imports Airflow.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    f"sqlite:///{os.environ['AIRFLOW_HOME']}/airflow.db",
)
os.environ.setdefault("AIRFLOW__LOGGING__BASE_LOG_FOLDER", f"{os.environ['AIRFLOW_HOME']}/logs")
os.environ.setdefault(
    "AIRFLOW_CONN_SRE_RECORDS", f"sqlite://{os.environ['AIRFLOW_HOME']}/records.db"
)
os.environ.setdefault("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

MYSQL_HOST = os.environ.get("SRE_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SRE_TEST_MYSQL_PORT", "3306"))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def airflow_metadata_db() -> None:
    """Make sure the test Airflow home has a migrated metadata DB (``dag.test()`` needs one)."""
    import subprocess
    import sys

    db = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    if not (db.exists() and db.stat().st_size > 0):
        db.parent.mkdir(parents=True, exist_ok=True)
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run(
            [str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=300
        )
    subprocess.run(
        [sys.executable, "-m", "operators.records", "migrate", "--quiet"],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def mysql_server() -> dict[str, object]:
    """Connection facts of the MariaDB/MySQL test server; never skipped in CI."""
    if not _port_open(MYSQL_HOST, MYSQL_PORT):
        message = f"MySQL/MariaDB is not reachable on {MYSQL_HOST}:{MYSQL_PORT}"
        if IN_CI:
            pytest.fail(message + " (CI=true: MySQL tests must run)")
        pytest.skip(message)
    return {
        "host": MYSQL_HOST,
        "port": MYSQL_PORT,
        "user": "root",
        "password": "",
        "database": "test",
    }
