"""Everything that differs between the MySQL and the SQLite records store lives here.

One Airflow connection selects the store: ``sre_records``, or the id in the environment
variable ``SRE_RECORDS_CONN_ID``. Its conn type picks the hook and the dialect:

- ``mysql``: :class:`RecordsMySqlHook`, the MySQL provider's ``MySqlHook`` with utf8mb4 and
  bounded network timeouts (extras ``connect_timeout``, ``read_timeout``, ``write_timeout`` in
  seconds override the defaults). MySQL 8 and MariaDB 10.11 are supported.
- ``sqlite``: the SQLite provider's ``SqliteHook``; the host is the absolute path of the file,
  e.g. ``AIRFLOW_CONN_SRE_RECORDS=sqlite:///srv/airflow/records.db`` (two slashes after the
  scheme, then the absolute path).

SQL elsewhere in the package is written once with ``%s`` placeholders; the dialect rewrites it
for the driver and supplies the few statements whose syntax differs (upsert, row locks, the
current time, the migration lock).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from operators.records.models import MigrationError, RecordsConfigError

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

DEFAULT_CONN_ID = "sre_records"
CONN_ID_ENV = "SRE_RECORDS_CONN_ID"
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "include" / "records" / "migrations"

# Client and server error codes after which the connection is gone or the transaction was
# rolled back by the server; the whole unit of work can be run again.
_MYSQL_DISCONNECT_CODES = frozenset(
    {
        1053,  # server shutdown in progress
        1927,  # connection was killed (MariaDB)
        2002,  # cannot connect through socket
        2003,  # cannot connect to server
        2006,  # server has gone away
        2013,  # lost connection during query
        2055,  # lost connection (system error)
        4031,  # disconnected by the server for inactivity (MySQL 8)
    }
)
_MYSQL_ROLLED_BACK_CODES = frozenset(
    {
        1205,  # lock wait timeout
        1213,  # deadlock
        1040,  # too many connections
    }
)
_MYSQL_MISSING_TABLE = 1146
_PERCENT_CODES = re.compile(r"%([s%])")


def records_conn_id() -> str:
    """Return the Airflow connection id of the records store."""
    return os.environ.get(CONN_ID_ENV) or DEFAULT_CONN_ID


class Dialect:
    """SQL and driver behaviour of one database family."""

    name: str = ""
    bootstrap_sql: str = ""
    for_update: str = ""
    now_sql: str = ""

    @property
    def migrations_dir(self) -> Path:
        return MIGRATIONS_DIR / self.name

    def sql(self, statement: str) -> str:
        """Rewrite the statement for the driver.

        Statements with parameters are written once in the driver-neutral form ``%s`` for a
        placeholder and ``%%`` for a literal percent sign (MySQLdb's own form).
        """
        return statement

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str],
    ) -> str:
        """Insert a row, or update ``update`` columns of the row with the same ``key``."""
        raise NotImplementedError

    def prepare_connection(self, conn: Any) -> None:
        """Session settings every connection needs before its first statement."""

    def begin(self, conn: Any, *, write: bool) -> None:
        """Start a transaction."""

    def prepare_database(self, conn: Any) -> None:
        """Database-wide settings applied when migrating."""

    def lock_migrations(self, cursor: Any) -> None:
        """Serialise concurrent migration runs until the transaction ends."""

    def unlock_migrations(self, cursor: Any) -> None:
        """Release what :meth:`lock_migrations` took."""

    def to_db(self, value: datetime | None) -> Any:
        raise NotImplementedError

    def from_db(self, value: Any) -> datetime | None:
        raise NotImplementedError

    def is_disconnect(self, exc: BaseException) -> bool:
        """True when the connection is unusable and must be replaced."""
        return False

    def is_retryable(self, exc: BaseException) -> bool:
        """True when the unit of work can be run again from the start."""
        return False

    def is_missing_table(self, exc: BaseException) -> bool:
        return False


def _error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


class MySqlDialect(Dialect):
    """MySQL 8 and MariaDB 10.11 through mysqlclient (or mysql-connector-python)."""

    name = "mysql"
    for_update = " FOR UPDATE"
    now_sql = "SELECT UTC_TIMESTAMP(6)"
    bootstrap_sql = (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(200) NOT NULL,"
        " checksum CHAR(64) NOT NULL,"
        " applied_at DATETIME(6) NOT NULL"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str],
    ) -> str:
        # VALUES() in ON DUPLICATE KEY UPDATE is deprecated since MySQL 8.0.20 in favour of row
        # aliases, which MariaDB does not support; switch once MariaDB is no longer a target.
        values = ", ".join(["%s"] * len(columns))
        assignments = ", ".join(f"{col} = VALUES({col})" for col in update) or (
            f"{key[0]} = {key[0]}"
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "  # noqa: S608 (constant identifiers)
            f"ON DUPLICATE KEY UPDATE {assignments}"
        )

    def to_db(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def from_db(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)

    def lock_migrations(self, cursor: Any) -> None:
        # Shorter than the client's read timeout, so a long wait ends in this clear error.
        cursor.execute("SELECT GET_LOCK('sre_records_migrate', 25)")
        row = cursor.fetchone()
        if not row or row[0] != 1:
            raise MigrationError(
                "another migration of the records database has held its lock for 25 s; "
                "run migrate again once it is done"
            )

    def unlock_migrations(self, cursor: Any) -> None:
        cursor.execute("SELECT RELEASE_LOCK('sre_records_migrate')")
        cursor.fetchall()

    def is_disconnect(self, exc: BaseException) -> bool:
        return _error_code(exc) in _MYSQL_DISCONNECT_CODES

    def is_retryable(self, exc: BaseException) -> bool:
        code = _error_code(exc)
        return code in _MYSQL_DISCONNECT_CODES or code in _MYSQL_ROLLED_BACK_CODES

    def is_missing_table(self, exc: BaseException) -> bool:
        return _error_code(exc) == _MYSQL_MISSING_TABLE


class SqliteDialect(Dialect):
    """SQLite 3.24+ through the standard library driver; one file, WAL journal."""

    name = "sqlite"
    now_sql = "SELECT strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"
    bootstrap_sql = (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(200) NOT NULL,"
        " checksum CHAR(64) NOT NULL,"
        " applied_at DATETIME(6) NOT NULL"
        ")"
    )
    busy_timeout_ms = 10_000

    def sql(self, statement: str) -> str:
        return _PERCENT_CODES.sub(lambda m: "?" if m.group(1) == "s" else "%", statement)

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str],
    ) -> str:
        values = ", ".join(["?"] * len(columns))
        action = (
            "DO UPDATE SET " + ", ".join(f"{col} = excluded.{col}" for col in update)
            if update
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "  # noqa: S608 (constant identifiers)
            f"ON CONFLICT ({', '.join(key)}) {action}"
        )

    def prepare_connection(self, conn: Any) -> None:
        # Transactions are started explicitly (BEGIN IMMEDIATE for writes) so that a writer
        # takes the file lock up front instead of failing to upgrade a read lock later.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        conn.execute("PRAGMA foreign_keys = ON")

    def begin(self, conn: Any, *, write: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def prepare_database(self, conn: Any) -> None:
        conn.execute("PRAGMA journal_mode = WAL")

    def to_db(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def from_db(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def is_retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        message = str(exc).lower()
        return "database is locked" in message or "database is busy" in message

    def is_missing_table(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


MYSQL = MySqlDialect()
SQLITE = SqliteDialect()


def _mysql_hook_class() -> type[DbApiHook]:
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    class RecordsMySqlHook(MySqlHook):
        """``MySqlHook`` with the session the records store relies on.

        The connection is opened with the ``utf8mb4`` character set whatever the extras say
        (the schema is utf8mb4 throughout), and with network timeouts so a dead server or a
        black-holed route fails in seconds. Extras ``connect_timeout`` (default 5),
        ``read_timeout`` and ``write_timeout`` (default 30) are in seconds.
        """

        def _get_conn_config_mysql_client(self, conn: Any) -> dict[str, Any]:
            config: dict[str, Any] = super()._get_conn_config_mysql_client(conn)
            extras = conn.extra_dejson
            config["charset"] = "utf8mb4"
            config["use_unicode"] = True
            config["connect_timeout"] = int(extras.get("connect_timeout", 5))
            config["read_timeout"] = int(extras.get("read_timeout", 30))
            config["write_timeout"] = int(extras.get("write_timeout", 30))
            return config

        def _get_conn_config_mysql_connector_python(self, conn: Any) -> dict[str, Any]:
            config: dict[str, Any] = super()._get_conn_config_mysql_connector_python(conn)
            config["charset"] = "utf8mb4"
            config["connection_timeout"] = int(conn.extra_dejson.get("connect_timeout", 5))
            return config

    return RecordsMySqlHook


# Row-lock waits end in seconds rather than the server default of 50 s (InnoDB) or a year
# (metadata locks), so a stuck writer surfaces as a retryable error.
_MYSQL_SESSION = "SET SESSION innodb_lock_wait_timeout = 10, lock_wait_timeout = 10"


def open_hook(conn_id: str) -> tuple[DbApiHook, Dialect]:
    """Return the hook and dialect for the Airflow connection ``conn_id``.

    :param conn_id: Airflow connection id of type ``mysql`` or ``sqlite``.
    :raises RecordsConfigError: the connection is not defined or has another type.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise RecordsConfigError(
            f"the records connection {conn_id!r} is not defined: set "
            f"AIRFLOW_CONN_{conn_id.upper()} (for example sqlite:///abs/path/records.db or "
            f"mysql://user:password@host:3306/sre_records) or create it in Airflow"
        ) from exc
    if connection.conn_type == "mysql":
        hook_class = _mysql_hook_class()
        hook = hook_class(mysql_conn_id=conn_id, connection=connection, init_command=_MYSQL_SESSION)
        return hook, MYSQL
    if connection.conn_type == "sqlite":
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        return SqliteHook(sqlite_conn_id=conn_id), SQLITE
    raise RecordsConfigError(
        f"the records connection {conn_id!r} has conn type {connection.conn_type!r}; "
        "the records store supports 'mysql' and 'sqlite'"
    )
