"""The audit log: who changed what, when, with the document before and after.

Configuration changes are logged by ``ConfigStore`` in their own transaction; other operator
actions (forcing an agent's state, say) go through :meth:`AuditLog.record`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.persistence.models import AuditEntryRow
from orchestrator.persistence.paging import Page, check_limit

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    resource_type: str
    resource_id: str
    config_version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session], *, clock: Clock = utc_now) -> None:
        self._sessions = sessions
        self._clock = clock

    def record(
        self,
        *,
        actor: str,
        action: str,
        resource_type: str,
        resource_id: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """``actor``: the API key's id or name the change was made with."""
        row = AuditEntryRow(
            at=self._clock(),
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            config_version=None,
            before=before,
            after=after,
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()
            return _entry(row)

    def entries(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """Newest first."""
        check_limit(limit)
        query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit + 1)
        if resource_type is not None:
            query = query.where(AuditEntryRow.resource_type == resource_type)
        if resource_id is not None:
            query = query.where(AuditEntryRow.resource_id == resource_id)
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        if cursor is not None:
            query = query.where(AuditEntryRow.id < _decode_cursor(cursor))
        with self._sessions() as session:
            rows = session.scalars(query).all()
        items = [_entry(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, str(items[-1].id) if more else None)


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        config_version=row.config_version,
        before=row.before,
        after=row.after,
    )


def _decode_cursor(cursor: str) -> int:
    try:
        return int(cursor)
    except ValueError:
        raise ValueError(f"malformed cursor {cursor!r}") from None
