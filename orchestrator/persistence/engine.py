"""Engines from a database URL: SQLite (the embedded default) or PostgreSQL via psycopg 3."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url


def database_url(url: str | URL) -> URL:
    """The URL with PostgreSQL pinned to psycopg 3.

    A bare ``postgresql://`` would make SQLAlchemy look for psycopg2, which vcc does not install;
    operators should not have to know the driver name.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        # pre_ping: a long-lived router outlives server restarts and idle-connection reaping.
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings.

    Foreign keys are off by default in SQLite and would silently not be enforced.  WAL lets the
    API read while the router writes.  (A writer waits for another up to the driver's default
    time-out, 5 s, instead of failing at once.)

    WAL is a property of the file, kept once set; switching needs the file to itself, and SQLite
    refuses at once, without waiting, while another connection uses it (processes starting
    together on a new file).  The switch is then left to the next connection.
    """
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
    cursor.close()
