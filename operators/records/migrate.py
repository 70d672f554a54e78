"""Versioned schema migrations of the records store.

Migrations are plain SQL files in ``include/records/migrations/<dialect>/``, named
``NNNN_description.sql``, one file per version and dialect, applied in version order. Applied
versions are kept in the table ``schema_migrations`` with a checksum of the file, so editing an
applied file is caught instead of silently ignored.

Statements in a file are separated by a semicolon at the end of a line; ``--`` comment lines
are dropped. On SQLite the pending files are applied in one transaction. MySQL commits each DDL
statement on its own, so MySQL files must be safe to run again (``CREATE TABLE IF NOT EXISTS``):
a run that fails half-way is finished by the next one. Concurrent runs wait for each other
(``GET_LOCK`` on MySQL, the write lock on SQLite).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from operators.records.models import MigrationError
from operators.records.store import RecordsStore, Transaction

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    checksum: str

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def split_statements(sql: str) -> list[str]:
    """Split a migration file into statements (``;`` at the end of a line ends one)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    statements: list[str] = []
    current: list[str] = []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def discover(directory: Path) -> list[Migration]:
    """The migrations in ``directory``, in version order.

    :raises MigrationError: a file is misnamed or two files share a version.
    """
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path}: migration files are named NNNN_description.sql (lower case)"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path}: version {version} is also used by {found[version].path.name}"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, match.group(2), path, checksum)
    return [found[v] for v in sorted(found)]


def _applied(tx: Transaction) -> dict[int, str]:
    return {
        int(version): checksum
        for version, checksum in tx.all("SELECT version, checksum FROM schema_migrations")
    }


def _check_history(applied: dict[int, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            log.warning(
                "records schema has a migration this code does not know version=%s; "
                "the code is older than the database",
                version,
            )
        elif migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.path.name} changed after it was applied (recorded "
                f"sha256 {checksum[:12]}, file now {migration.checksum[:12]}); restore the file "
                "and put the change in a new migration"
            )


def pending_migrations(store: RecordsStore, directory: Path | None = None) -> list[Migration]:
    """Migrations not yet applied to the store's database."""
    migrations = discover(directory or store.dialect.migrations_dir)

    def work(tx: Transaction) -> dict[int, str]:
        tx.execute_raw(store.dialect.bootstrap_sql)
        return _applied(tx)

    applied = store.transaction("read schema version", work)
    _check_history(applied, migrations)
    return [m for m in migrations if m.version not in applied]


def migrate(store: RecordsStore, directory: Path | None = None) -> list[Migration]:
    """Bring the store's schema up to date; return the migrations applied (empty if none).

    :param store: the records store to migrate.
    :param directory: migrations of the store's dialect; defaults to the shipped ones.
    :raises MigrationError: a migration failed or an applied one was edited.
    """
    migrations = discover(directory or store.dialect.migrations_dir)
    if not pending_migrations(store, directory):
        return []
    dialect = store.dialect

    def work(tx: Transaction) -> list[Migration]:
        dialect.lock_migrations(tx.cursor)
        applied = _applied(tx)
        _check_history(applied, migrations)
        done: list[Migration] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            for number, statement in enumerate(migration.statements(), start=1):
                try:
                    tx.execute_raw(statement)
                except Exception as exc:
                    if dialect.is_retryable(exc):
                        raise
                    raise MigrationError(
                        f"{migration.path.name}, statement {number} failed: {exc}\n"
                        f"{statement[:300]}"
                    ) from exc
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, %s)",
                (
                    migration.version,
                    migration.name,
                    migration.checksum,
                    dialect.to_db(datetime.now(UTC)),
                ),
            )
            log.info(
                "records migration applied version=%s name=%s",
                migration.version,
                migration.name,
            )
            done.append(migration)
        return done

    # The lock is let go only after the versions are committed, so the next runner sees them.
    try:
        applied_now = store.transaction("migrate", work)
    finally:
        try:
            store.transaction(
                "release the migration lock",
                lambda tx: dialect.unlock_migrations(tx.cursor),
                write=False,
            )
        except Exception:
            log.debug("releasing the migration lock failed", exc_info=True)
    if applied_now:
        _prepare_database(store)
    return applied_now


def _prepare_database(store: RecordsStore) -> None:
    conn = store.hook.get_conn()
    try:
        store.dialect.prepare_database(conn)
    finally:
        conn.close()
