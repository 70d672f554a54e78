"""Records stores for the tests: a SQLite file and a MariaDB database of this session's own.

The MariaDB database is created with a unique name and dropped at the end, so tests never
touch other data on the server. Stores are reached the way production reaches them: through
an Airflow connection defined in an ``AIRFLOW_CONN_*`` environment variable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from operators.records import RecordsStore
from operators.records.migrate import migrate
from tests.records.helpers import (
    FAST_RETRY,
    mysql_admin,
    mysql_uri,
    set_conn,
    sqlite_uri,
    unset_conn,
)


class MySqlDatabases:
    """Creates uniquely named databases on the test server and drops them all at the end."""

    def __init__(self, server: dict[str, Any]) -> None:
        self.server = server
        self.created: list[str] = []
        self.session = f"sre_records_t{os.getpid()}_{uuid.uuid4().hex[:8]}"

    def create(self, label: str) -> str:
        name = f"{self.session}_{label}"[:64]
        admin = mysql_admin(self.server)
        try:
            admin.cursor().execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
        finally:
            admin.close()
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        admin = mysql_admin(self.server)
        try:
            for name in self.created:
                admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()


@pytest.fixture(scope="session")
def mysql_databases(mysql_server: dict[str, Any]) -> Iterator[MySqlDatabases]:
    databases = MySqlDatabases(mysql_server)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def mysql_conn_id(mysql_databases: MySqlDatabases) -> Iterator[str]:
    """A migrated MariaDB records database for the whole session."""
    conn_id = "sre_records_test_mysql"
    database = mysql_databases.create("main")
    set_conn(conn_id, mysql_uri(mysql_databases.server, database))
    with RecordsStore.from_conn_id(conn_id) as store:
        migrate(store)
    yield conn_id
    unset_conn(conn_id)


@pytest.fixture(scope="session")
def mysql_database(mysql_conn_id: str, mysql_databases: MySqlDatabases) -> str:
    return mysql_databases.created[0]


@pytest.fixture(scope="session")
def sqlite_conn_id(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated SQLite records file for the whole session (path with a space on purpose)."""
    conn_id = "sre_records_test_sqlite"
    path = tmp_path_factory.mktemp("records store") / "records.db"
    set_conn(conn_id, sqlite_uri(path))
    with RecordsStore.from_conn_id(conn_id) as store:
        migrate(store)
    yield conn_id
    unset_conn(conn_id)


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def conn_id(backend: str, request: pytest.FixtureRequest) -> str:
    """The session's migrated store of ``backend``."""
    return str(request.getfixturevalue(f"{backend}_conn_id"))


@pytest.fixture
def store(conn_id: str) -> Iterator[RecordsStore]:
    with RecordsStore.from_conn_id(conn_id, retry=FAST_RETRY) as opened:
        yield opened


@pytest.fixture
def empty_store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], RecordsStore]]:
    """Opens stores on new, empty databases (``sqlite`` or ``mysql``)."""
    opened: list[tuple[RecordsStore, str]] = []

    def factory(kind: str) -> RecordsStore:
        conn_id = f"sre_records_empty_{kind}_{len(opened)}"
        if kind == "sqlite":
            set_conn(conn_id, sqlite_uri(tmp_path / f"empty-{len(opened)}.db"))
        else:
            databases: MySqlDatabases = request.getfixturevalue("mysql_databases")
            name = databases.create(f"empty{uuid.uuid4().hex[:6]}")
            set_conn(conn_id, mysql_uri(databases.server, name))
        store = RecordsStore.from_conn_id(conn_id, retry=FAST_RETRY)
        opened.append((store, conn_id))
        return store

    yield factory
    for store, conn_id in opened:
        store.close()
        unset_conn(conn_id)
