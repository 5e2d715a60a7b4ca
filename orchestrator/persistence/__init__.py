"""Persistence: configuration, contacts and their route history, interval statistics, audit log.

SQLAlchemy 2 models (``models.py``) and Alembic migrations (``migrations/``); SQLite is the
embedded default, PostgreSQL (psycopg 3) the production database, and the same tests run on both.
At startup: ``upgrade(url)``, then ``Database(url)`` and its stores.
"""

from orchestrator.persistence.audit import AuditEntry, AuditLog
from orchestrator.persistence.config_store import ConfigSnapshot, ConfigStore
from orchestrator.persistence.contacts import (
    ContactDetail,
    ContactRecord,
    ContactStore,
    RouteEvent,
)
from orchestrator.persistence.database import Database
from orchestrator.persistence.engine import make_engine
from orchestrator.persistence.errors import (
    DuplicateContactError,
    NotFoundError,
    TransitionError,
    VersionConflictError,
)
from orchestrator.persistence.intervals import Counters, IntervalRecord, IntervalStore
from orchestrator.persistence.migrate import upgrade
from orchestrator.persistence.models import ContactStatus, RouteEventKind
from orchestrator.persistence.paging import Page
from orchestrator.persistence.resources import (
    TARIFFS_ID,
    ContactAttributeConfig,
    NamedListConfig,
    SkillConfig,
)

__all__ = [
    "TARIFFS_ID",
    "AuditEntry",
    "AuditLog",
    "ConfigSnapshot",
    "ConfigStore",
    "ContactAttributeConfig",
    "ContactDetail",
    "ContactRecord",
    "ContactStatus",
    "ContactStore",
    "Counters",
    "Database",
    "DuplicateContactError",
    "IntervalRecord",
    "IntervalStore",
    "NamedListConfig",
    "NotFoundError",
    "Page",
    "RouteEvent",
    "RouteEventKind",
    "SkillConfig",
    "TransitionError",
    "VersionConflictError",
    "make_engine",
    "upgrade",
]
