"""Ordered SQL migrations, each applied once in its own transaction, tracked by checksum.

A file that was applied and has since changed is an error naming the file: the
database would otherwise silently differ from what the repository says it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from infra.database import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FILENAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
LOCK_KEY = 0x5E10C17  # pg_advisory_xact_lock key: one migrator at a time


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a badly named .sql file is an error."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: name must look like 0001_what_it_does.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    filename   text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def apply_migrations(
    connection: Connection, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply what is missing, in order; return the filenames applied (empty: a no-op)."""
    migrations = discover() if migrations is None else migrations
    applied_now: list[str] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await connection.execute(CREATE_TRACKING)
        applied = await _applied(connection)
        for migration in migrations:
            if _already_applied(migration, applied):
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, filename, checksum) VALUES ($1,$2,$3)",
                    migration.version,
                    migration.filename,
                    migration.checksum,
                )
            applied_now.append(migration.filename)
            logger.debug("migration applied: {}", migration.filename)
    return applied_now


async def pending_migrations(connection: Connection) -> list[str]:
    """Filenames not yet applied (raises on a changed file): empty means at head."""
    exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = await _applied(connection) if exists else {}
    return [m.filename for m in discover() if not _already_applied(m, applied)]


async def _applied(connection: Connection) -> dict[int, tuple[str, str]]:
    rows = await connection.fetch("SELECT version, filename, checksum FROM schema_migrations")
    return {row["version"]: (row["filename"], row["checksum"]) for row in rows}


def _already_applied(migration: Migration, applied: dict[int, tuple[str, str]]) -> bool:
    if migration.version not in applied:
        return False
    filename, checksum = applied[migration.version]
    if checksum != migration.checksum:
        raise MigrationError(
            f"{migration.filename}: changed after it was applied (as {filename});"
            " add a new migration instead of editing an applied one"
        )
    return True
