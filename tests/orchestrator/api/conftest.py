"""The control API under test: the real app over a real database and an in-process router.

Every API test runs twice, on a SQLite file and on a real PostgreSQL (127.0.0.1:5432, user
``postgres``, or ``VCC_TEST_POSTGRESQL_URL``), with the persistence tests' databases: one fresh
database per backend and session, emptied before each test.  An unreachable PostgreSQL fails
the tests rather than skipping them.

Importable as ``tests.orchestrator.api.conftest`` for its helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from orchestrator.api import LocalRouting, create_app
from orchestrator.persistence import Database, upgrade
from orchestrator.persistence.models import Base
from orchestrator.settings import ApiKey, ApiRole, Settings
from routing.config import NetworkConfig
from tests.orchestrator.persistence.conftest import (
    TickingClock,
    _empty_tables,
    _fresh_database,
)

# 2025-03-14 09:00 UTC, the router's clock at the start of every test.
T0 = 1_741_942_800.0

NETWORK: dict[str, Any] = {
    "skills": ["billing", "spanish", "tech"],
    "sites": [
        {"id": "madrid", "region": "es", "timezone": "Europe/Madrid", "agent_cost_per_hour": 20},
        {"id": "paris", "region": "fr", "timezone": "Europe/Paris", "agent_cost_per_hour": 30},
    ],
    "agents": [
        {"id": "ana", "site": "madrid", "skills": {"billing": 6, "spanish": 9}},
        {"id": "bob", "site": "paris", "skills": {"billing": 8}},
        {"id": "eve", "site": "paris", "skills": {"tech": 7}},
    ],
    "queues": [
        {"id": "billing", "targets": [{"skills": "billing"}], "wrap_up": 10},
        {"id": "tech", "targets": [{"skills": "tech"}], "answer_timeout": 15},
        {"id": "chat", "channel": "chat", "targets": [{"skills": "billing"}]},
    ],
    "tariffs": {"per_minute": {"es": {"madrid": 0.01, "paris": 0.03}}},
}

KEYS = {
    "root": ApiKey(key=SecretStr("admin-key-0123456789"), role=ApiRole.ADMIN),
    "sue": ApiKey(key=SecretStr("supervisor-key-012345"), role=ApiRole.SUPERVISOR),
    "ana": ApiKey(key=SecretStr("agent-ana-key-0123456"), role=ApiRole.AGENT, agent_id="ana"),
    "bob": ApiKey(key=SecretStr("agent-bob-key-0123456"), role=ApiRole.AGENT, agent_id="bob"),
    "madrid": ApiKey(key=SecretStr("site-madrid-key-01234"), role=ApiRole.SITE, site_id="madrid"),
}


def auth(name: str) -> dict[str, str]:
    """The ``Authorization`` header of the key named ``name`` in :data:`KEYS`."""
    return {"Authorization": f"Bearer {KEYS[name].key.get_secret_value()}"}


ADMIN, SUPERVISOR = auth("root"), auth("sue")


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """The app and what it runs on: tests drive the HTTP side through ``client`` and the
    sites' side (answers, hang-ups) through ``routing``."""

    client: TestClient
    db: Database
    routing: LocalRouting
    clock: Clock
    _state: Callable[[], dict[str, list[tuple[Any, ...]]]] = field(repr=False)

    def stored(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: compare before and after a refused change."""
        return self._state()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _fresh_database(backend, tmp_path_factory.mktemp("api-db")) as url:
        upgrade(url)
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    _empty_tables(database_url)
    database = Database(database_url, clock=TickingClock())
    yield database
    database.close()


def seed(db: Database, network: dict[str, Any] | None = None) -> int:
    return db.config.replace(NetworkConfig.model_validate(network or NETWORK), actor="seed")


def make_api(db: Database, clock: Clock | None = None) -> Api:
    """The app over ``db``'s configuration as it is now (the router is built from it)."""
    clock = clock or Clock()
    routing = LocalRouting.from_database(db, clock=clock)
    app = create_app(Settings(api_keys=KEYS), database=db, routing=routing)

    def state() -> dict[str, list[tuple[Any, ...]]]:
        with db.engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(select(table).order_by(*table.primary_key))
                ]
                for table in Base.metadata.sorted_tables
            }

    return Api(TestClient(app), db, routing, clock, state)


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    seed(db)
    made = make_api(db)
    with made.client:
        yield made
