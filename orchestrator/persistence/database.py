"""One process's handle on its database: the engine, and the stores that share its sessions."""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.orm import sessionmaker

from orchestrator.persistence.audit import AuditLog, Clock, utc_now
from orchestrator.persistence.config_store import ConfigStore
from orchestrator.persistence.contacts import ContactStore
from orchestrator.persistence.engine import make_engine
from orchestrator.persistence.intervals import IntervalStore


class Database:
    """Stores over one engine; the schema must be at head (``upgrade(url)`` at startup).

    ``clock`` stamps audit entries; tests pass a fixed one.  Sessions keep loaded values after
    commit: the stores hand out plain records, never live ORM objects.
    """

    def __init__(self, url: str | URL, *, clock: Clock = utc_now) -> None:
        self.engine = make_engine(url)
        sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.config = ConfigStore(sessions, clock=clock)
        self.contacts = ContactStore(sessions)
        self.intervals = IntervalStore(sessions)
        self.audit = AuditLog(sessions, clock=clock)

    def close(self) -> None:
        self.engine.dispose()
