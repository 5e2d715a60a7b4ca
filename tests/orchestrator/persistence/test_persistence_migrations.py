"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import threading

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect

from orchestrator.persistence import Database, upgrade
from orchestrator.persistence.engine import make_engine
from orchestrator.persistence.migrate import ALEMBIC_INI
from orchestrator.persistence.models import Base


def differences(url: str, metadata: MetaData) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()


def test_the_migrated_schema_is_the_schema_the_models_describe(database_url: str) -> None:
    assert differences(database_url, Base.metadata) == []


def test_the_comparison_notices_a_model_change_the_migrations_lack(database_url: str) -> None:
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["contacts"].append_column(Column("priority", Integer, nullable=True))

    (difference,) = differences(database_url, changed)

    assert difference[0] == "add_column"  # type: ignore[index]


def test_upgrade_takes_an_empty_database_to_head_and_then_does_nothing(
    fresh_database_url: str,
) -> None:
    upgrade(fresh_database_url)
    upgrade(fresh_database_url)

    assert revision(fresh_database_url) == head()
    database = Database(fresh_database_url)
    assert database.config.version() == 0
    database.close()


def test_processes_starting_together_migrate_the_database_once(fresh_database_url: str) -> None:
    starters = 4
    start = threading.Barrier(starters)
    failures: list[BaseException] = []

    def start_up() -> None:
        start.wait()
        try:
            upgrade(fresh_database_url)
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=start_up) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert revision(fresh_database_url) == head()
    assert differences(fresh_database_url, Base.metadata) == []


def test_downgrading_to_base_removes_every_table(fresh_database_url: str) -> None:
    upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    try:
        with engine.begin() as connection:
            config = Config(str(ALEMBIC_INI))
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()

    upgrade(fresh_database_url)
    assert revision(fresh_database_url) == head()
