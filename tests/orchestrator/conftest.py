"""Fixtures shared by the runtime's tests: a migrated SQLite database per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.persistence import Database, upgrade


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session (Alembic takes a second): tests copy it."""
    path = tmp_path_factory.mktemp("template") / "vcc.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def empty_database(migrated_sqlite: Path, tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database of this test's own, with nothing in it."""
    path = tmp_path / "vcc.db"
    shutil.copy(migrated_sqlite, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.close()
