"""Bringing a database to the newest schema, at startup, for SQLite files and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL

from orchestrator.persistence.engine import make_engine

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")

# Any fixed number: the PostgreSQL advisory lock vcc processes take while migrating.
_MIGRATION_LOCK = 0x0FCC_0001


def upgrade(url: str | URL) -> None:
    """Apply every migration the database lacks; a database at head is left as it is.

    Several vcc processes (router, API, site agents) may start at once against one database, so
    the whole upgrade runs in one transaction under a lock: the first process migrates, the
    others wait and then find nothing to do.  On PostgreSQL the lock is an advisory lock (its DDL
    is transactional); on SQLite, ``BEGIN IMMEDIATE`` takes the file's write lock.  SQLite's
    foreign keys are switched off first, as SQLite asks for schema changes: a batch migration
    copies and drops tables, and enforced keys would cascade or refuse those drops.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            config = Config(str(ALEMBIC_INI))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
