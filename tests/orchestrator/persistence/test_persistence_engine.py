"""Engines from URLs: psycopg 3 for PostgreSQL, enforced foreign keys and WAL for SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from orchestrator.persistence import Database
from orchestrator.persistence.engine import database_url
from orchestrator.settings import Settings


def test_a_bare_postgresql_url_uses_psycopg_3() -> None:
    assert database_url("postgresql://vcc@db:5432/vcc").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://vcc@db/vcc").drivername == "postgresql+psycopg"
    assert database_url("sqlite:///vcc.db").drivername == "sqlite"


def test_the_database_url_setting_defaults_to_a_sqlite_file_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VCC_DATABASE_URL", raising=False)
    assert Settings().database_url == "sqlite:///vcc.db"

    monkeypatch.setenv("VCC_DATABASE_URL", "postgresql://vcc@db/vcc")
    assert Settings().database_url == "postgresql://vcc@db/vcc"


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO agents (id, payload, site_id) VALUES ('a', '{}', 'nowhere')")
        )


def test_the_engine_uses_the_backends_settings(db: Database, backend: str) -> None:
    with db.engine.connect() as connection:
        if backend == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        else:
            assert connection.dialect.driver == "psycopg"
