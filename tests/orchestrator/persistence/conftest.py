"""Every persistence test runs twice: on a SQLite file and on a real PostgreSQL.

PostgreSQL is expected at 127.0.0.1:5432 (user ``postgres``, trust auth; CI starts it), or at
``VCC_TEST_POSTGRESQL_URL``.  Each test session migrates one fresh database per backend (a
uniquely named PostgreSQL database, dropped at the end) and each test starts from empty tables.
An unreachable PostgreSQL fails the tests: skipping would let the production backend go untested
without anyone noticing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, select, text, update
from sqlalchemy.exc import OperationalError

from orchestrator.persistence import Database, upgrade
from orchestrator.persistence.engine import make_engine
from orchestrator.persistence.models import Base, ConfigVersionRow

POSTGRESQL_ADMIN_URL = os.environ.get(
    "VCC_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


class TickingClock:
    """Audit time stamps one second apart, from :data:`T0`."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _admin_engine() -> Engine:
    engine = create_engine(POSTGRESQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            return engine
    except OperationalError as error:
        problem = str(error.orig)
    engine.dispose()
    pytest.fail(
        f"PostgreSQL is not reachable at {POSTGRESQL_ADMIN_URL}: {problem}\n"
        "The persistence suite runs on SQLite and PostgreSQL alike; start PostgreSQL "
        "(.ci/run does) or set VCC_TEST_POSTGRESQL_URL to a server where user postgres may "
        "create databases.",
        pytrace=False,
    )


@contextmanager
def _fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """An empty database's URL, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'vcc-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = _admin_engine()
    name = f"vcc_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's database on this backend, migrated to head."""
    with _fresh_database(backend, tmp_path_factory.mktemp("db")) as url:
        upgrade(url)
        yield url


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, for the migration tests."""
    with _fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def db(database_url: str, clock: TickingClock) -> Iterator[Database]:
    _empty_tables(database_url)
    database = Database(database_url, clock=clock)
    yield database
    database.close()


def _empty_tables(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table is not ConfigVersionRow.__table__:
                connection.execute(delete(table))
        connection.execute(update(ConfigVersionRow).values(version=0))
    engine.dispose()


@pytest.fixture
def stored_state(db: Database) -> Callable[[], dict[str, list[tuple[Any, ...]]]]:
    """Every row of every table, in a stable order: compare before and after a change."""

    def read() -> dict[str, list[tuple[Any, ...]]]:
        with db.engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in Base.metadata.sorted_tables
            }

    return read
