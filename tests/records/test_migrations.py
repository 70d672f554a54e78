"""Schema migrations from an empty database, re-runs, edits and concurrent runs."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from operators.records import MigrationError, RecordsStore
from operators.records.migrate import discover, migrate, pending_migrations, split_statements

pytestmark = pytest.mark.timeout(60)

TABLES = {
    "approvals",
    "audit_events",
    "builds",
    "pipeline_runs",
    "quality_reports",
    "release_locks",
    "release_steps",
    "releases",
    "schema_migrations",
    "site_images",
    "test_reports",
}


def columns_by_table(store: RecordsStore) -> dict[str, list[str]]:
    """Table -> column names in order, read from the database's own catalog."""

    def work(tx: Any) -> dict[str, list[str]]:
        if store.dialect.name == "sqlite":
            names = [
                r[0]
                for r in tx.all(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%%'"
                )
            ]
            return {n: [c[1] for c in tx.all(f"PRAGMA table_info({n})")] for n in names}
        result: dict[str, list[str]] = {}
        for table, column in tx.all(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position"
        ):
            result.setdefault(table, []).append(column)
        return result

    return store.transaction("read catalog", work, write=False)


def applied_rows(store: RecordsStore) -> list[tuple[Any, ...]]:
    return store.transaction(
        "read versions",
        lambda tx: tx.all("SELECT version, name, checksum, applied_at FROM schema_migrations"),
        write=False,
    )


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_migrate_from_empty_then_again_is_a_no_op(
    empty_store_factory: Callable[[str], RecordsStore], kind: str
) -> None:
    store = empty_store_factory(kind)
    shipped = discover(store.dialect.migrations_dir)
    assert len(pending_migrations(store)) == len(shipped)

    applied = migrate(store)
    assert [m.version for m in applied] == [m.version for m in shipped]
    assert set(columns_by_table(store)) == TABLES
    before = applied_rows(store)
    assert [r[0] for r in before] == [m.version for m in shipped]

    assert migrate(store) == []
    assert pending_migrations(store) == []
    assert applied_rows(store) == before


def test_both_dialects_end_with_the_same_tables_and_columns(
    empty_store_factory: Callable[[str], RecordsStore],
) -> None:
    sqlite, mysql = empty_store_factory("sqlite"), empty_store_factory("mysql")
    migrate(sqlite)
    migrate(mysql)
    assert columns_by_table(sqlite) == columns_by_table(mysql)


def test_mysql_tables_are_innodb_utf8mb4(
    empty_store_factory: Callable[[str], RecordsStore],
) -> None:
    store = empty_store_factory("mysql")
    migrate(store)
    rows = store.transaction(
        "read table options",
        lambda tx: tx.all(
            "SELECT table_name, engine, table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        ),
        write=False,
    )
    assert {r[0] for r in rows} == TABLES
    assert {(r[1], r[2]) for r in rows} == {("InnoDB", "utf8mb4_bin")}


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_an_edited_migration_is_refused(
    empty_store_factory: Callable[[str], RecordsStore], kind: str, tmp_path: Path
) -> None:
    store = empty_store_factory(kind)
    directory = tmp_path / "migrations"
    shutil.copytree(store.dialect.migrations_dir, directory)
    migrate(store, directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(store, directory)


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_a_new_migration_is_applied_on_top(
    empty_store_factory: Callable[[str], RecordsStore], kind: str, tmp_path: Path
) -> None:
    store = empty_store_factory(kind)
    directory = tmp_path / "migrations"
    shutil.copytree(store.dialect.migrations_dir, directory)
    migrate(store, directory)
    (directory / "0099_notes.sql").write_text(
        "-- a later migration\nCREATE TABLE notes (\n    id INT NOT NULL PRIMARY KEY\n);\n"
        "CREATE INDEX ix_notes_id ON notes (id);\n"
    )
    assert [m.version for m in migrate(store, directory)] == [99]
    assert "notes" in columns_by_table(store)
    assert migrate(store, directory) == []


def test_a_failing_migration_names_the_file_and_statement(
    empty_store_factory: Callable[[str], RecordsStore], tmp_path: Path
) -> None:
    store = empty_store_factory("sqlite")
    directory = tmp_path / "migrations"
    shutil.copytree(store.dialect.migrations_dir, directory)
    (directory / "0002_broken.sql").write_text(
        "CREATE TABLE fine (id INT);\nCREATE TABLE broken (id INT,);\n"
    )
    with pytest.raises(MigrationError, match=r"0002_broken.sql, statement 2"):
        migrate(store, directory)
    # SQLite applies pending files in one transaction: nothing of this run stayed.
    assert "fine" not in columns_by_table(store)
    assert pending_migrations(store, directory)[0].version == 1


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_concurrent_migrations_apply_each_version_once(
    empty_store_factory: Callable[[str], RecordsStore], kind: str
) -> None:
    first = empty_store_factory(kind)
    others = [RecordsStore(first.hook, first.dialect, conn_id=first.conn_id) for _ in range(3)]
    stores = [first, *others]
    results: list[Any] = []
    barrier = threading.Barrier(len(stores))

    def run(store: RecordsStore) -> None:
        barrier.wait()
        try:
            results.append(migrate(store))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in others:
        store.close()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert [r[0] for r in applied_rows(first)] == [1]


def test_statement_splitting() -> None:
    sql = "-- header\nCREATE TABLE a (\n  x INT\n);\n\n-- next\nCREATE INDEX i ON a (x);\nSELECT 1"
    assert split_statements(sql) == [
        "CREATE TABLE a (\n  x INT\n)",
        "CREATE INDEX i ON a (x)",
        "SELECT 1",
    ]


def test_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_description.sql"):
        discover(tmp_path)
