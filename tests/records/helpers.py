"""Small helpers shared by the records tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from operators.records import RecordsStore, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2)


def set_conn(conn_id: str, uri: str) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri


def unset_conn(conn_id: str) -> None:
    os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


def sqlite_uri(path: Path) -> str:
    """The connection URI form the SQLite hook accepts: ``sqlite://`` + absolute path."""
    return "sqlite://" + str(path.resolve()).replace(" ", "%20")


def mysql_uri(server: dict[str, Any], database: str) -> str:
    return f"mysql://{server['user']}:{server['password']}@{server['host']}:{server['port']}/{database}"


def mysql_admin(server: dict[str, Any], database: str | None = None) -> Any:
    """A plain client connection (autocommit) for set-up, inspection and KILL."""
    import MySQLdb

    conn = MySQLdb.connect(
        host=str(server["host"]),
        port=int(server["port"]),
        user=str(server["user"]),
        passwd=str(server["password"]),
        db=database or "",
        charset="utf8mb4",
    )
    conn.autocommit(True)
    return conn


def unique(prefix: str) -> str:
    """A name no other test uses (the session databases are shared between tests)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def count(
    store: RecordsStore, table: str, where: str = "1 = 1", params: tuple[Any, ...] = ()
) -> int:
    def work(tx: Any) -> int:
        row = tx.one(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
        return int(row[0])

    return store.transaction("count", work, write=False)
