"""Contacts and their route history: what happened to each contact, in the order it happened.

A contact's row is a summary (status, where and by whom it is served, when it was answered) kept
in step with its history: each route event moves the contact along the ACD's life cycle, and an
event the contact's status does not allow is refused, so a contact is never answered twice or
routed after it ended.

Two processes write about the same contact (the router reserving an agent, the site agent
confirming or reporting an abandon), so every event is an optimistic-locked update of the contact
row: the loser of a race gets :class:`VersionConflictError` and decides again on fresh state, rather
than appending an event that no longer makes sense.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from orchestrator.persistence.errors import (
    DuplicateContactError,
    NotFoundError,
    TransitionError,
    VersionConflictError,
)
from orchestrator.persistence.models import (
    ContactRow,
    ContactStatus,
    RouteEventKind,
    RouteEventRow,
    aware,
)
from orchestrator.persistence.paging import Page, check_limit
from routing.model import Channel

_OPEN = frozenset({ContactStatus.QUEUED, ContactStatus.RESERVED, ContactStatus.CONNECTED})

# Event -> the statuses it may follow, and the status after it (None: unchanged).
_TRANSITIONS: dict[RouteEventKind, tuple[frozenset[ContactStatus], ContactStatus | None]] = {
    # Waiting (again) in a queue: on arrival at a site, or sent back by its agent.
    RouteEventKind.QUEUED: (
        frozenset({ContactStatus.QUEUED, ContactStatus.CONNECTED}),
        ContactStatus.QUEUED,
    ),
    RouteEventKind.RESERVED: (frozenset({ContactStatus.QUEUED}), ContactStatus.RESERVED),
    # The site agent delivered the contact to the reserved agent.
    RouteEventKind.CONFIRMED: (frozenset({ContactStatus.RESERVED}), ContactStatus.CONNECTED),
    # The site agent refused the reservation (the agent went not ready meanwhile).
    RouteEventKind.REJECTED: (frozenset({ContactStatus.RESERVED}), ContactStatus.QUEUED),
    # The reserved agent did not answer in time (redirect on no answer).
    RouteEventKind.REDIRECTED: (frozenset({ContactStatus.RESERVED}), ContactStatus.QUEUED),
    # The media moved between sites: to a remote reserved agent, or by an agent's transfer.
    RouteEventKind.TRANSFERRED: (_OPEN, None),
    RouteEventKind.ABANDONED: (
        frozenset({ContactStatus.QUEUED, ContactStatus.RESERVED}),
        ContactStatus.ABANDONED,
    ),
    RouteEventKind.FINISHED: (frozenset({ContactStatus.CONNECTED}), ContactStatus.FINISHED),
}


@dataclass(frozen=True, slots=True)
class RouteEvent:
    seq: int
    kind: RouteEventKind
    at: datetime
    site: str | None
    agent: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRecord:
    id: str
    queue: str
    status: ContactStatus
    channel: Channel
    caller_region: str
    landing_site: str
    # The site and agent reserved for or handling the contact; None while it waits.
    serving_site: str | None
    serving_agent: str | None
    created_at: datetime
    reserved_at: datetime | None
    # The first answer: a contact sent back to a queue and answered again keeps it.
    answered_at: datetime | None
    ended_at: datetime | None
    abandoned_at: datetime | None
    # Sequence number of the latest route event; pass it as ``expected_seq``.
    last_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactDetail(ContactRecord):
    history: Sequence[RouteEvent]


class ContactStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self,
        *,
        queue: str,
        channel: Channel,
        caller_region: str,
        landing_site: str,
        at: datetime,
        contact_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> ContactRecord:
        """A contact offered to the network at its landing site; its history starts with
        ``offered``.  A create retried with the same ``contact_id`` raises
        :class:`DuplicateContactError` instead of making a second contact."""
        row = ContactRow(
            id=contact_id or uuid.uuid4().hex,
            queue_id=queue,
            status=ContactStatus.QUEUED,
            channel=channel,
            caller_region=caller_region,
            landing_site=landing_site,
            created_at=aware(at),
            events_recorded=1,
        )
        event = RouteEventRow(
            contact_id=row.id,
            seq=1,
            kind=RouteEventKind.OFFERED,
            at=at,
            site_id=landing_site,
            detail=dict(detail or {}),
        )
        with self._sessions() as session:
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise DuplicateContactError(f"contact {row.id!r} exists") from None
            session.add(event)
            session.commit()
            return _record(row)

    def record(
        self,
        contact_id: str,
        kind: RouteEventKind,
        *,
        at: datetime,
        site: str | None = None,
        agent: str | None = None,
        detail: Mapping[str, Any] | None = None,
        expected_seq: int | None = None,
    ) -> ContactRecord:
        """Append a route event and move the contact's status with it.

        ``expected_seq``: the ``last_seq`` the caller decided on; any event recorded since makes
        this one a :class:`VersionConflictError`.  History is ordered by when events were recorded,
        not by ``at``: sites' clocks differ a little.
        """
        if kind not in _TRANSITIONS:
            raise TransitionError(f"{kind} is recorded by create, not afterwards")
        if kind is RouteEventKind.RESERVED and (site is None or agent is None):
            raise ValueError("a reservation names its site and agent")
        allowed, after = _TRANSITIONS[kind]
        aware(at)
        with self._sessions() as session:
            row = session.get(ContactRow, contact_id)
            if row is None:
                raise NotFoundError(f"no contact {contact_id!r}")
            if expected_seq is not None and row.events_recorded != expected_seq:
                raise VersionConflictError(
                    f"contact {contact_id!r} has events up to {row.events_recorded}, "
                    f"the caller saw up to {expected_seq}",
                    expected=expected_seq,
                    actual=row.events_recorded,
                )
            if row.status not in allowed:
                raise TransitionError(f"contact {contact_id!r} is {row.status}: cannot be {kind}")
            seen = row.events_recorded
            _apply(row, kind, after, at=at, site=site, agent=agent)
            row.events_recorded = seen + 1
            try:
                # The contact's update goes first: it is the optimistic lock.
                session.flush()
            except StaleDataError:
                raise VersionConflictError(
                    f"contact {contact_id!r} changed while this event was recorded",
                    expected=seen,
                    actual=seen + 1,
                ) from None
            session.add(
                RouteEventRow(
                    contact_id=contact_id,
                    seq=seen + 1,
                    kind=kind,
                    at=at,
                    site_id=site,
                    agent_id=agent,
                    detail=dict(detail or {}),
                )
            )
            session.commit()
            return _record(row)

    def get(self, contact_id: str) -> ContactDetail:
        with self._sessions() as session:
            row = session.get(ContactRow, contact_id)
            if row is None:
                raise NotFoundError(f"no contact {contact_id!r}")
            # Only the events the row read above counts: one committed in between would make
            # the history disagree with the status.
            events = session.scalars(
                select(RouteEventRow)
                .where(
                    RouteEventRow.contact_id == contact_id, RouteEventRow.seq <= row.events_recorded
                )
                .order_by(RouteEventRow.seq)
            ).all()
            return ContactDetail(**_fields(row), history=tuple(map(_event, events)))

    def details(
        self, statuses: Collection[ContactStatus], *, page: int = 500
    ) -> Iterator[ContactDetail]:
        """Every contact in one of ``statuses`` with its history, oldest first: two queries a
        page of ``page`` contacts, not one per contact (a router starting up reads what its
        predecessor left open).  Each page is read in one transaction, as :meth:`get` is."""
        check_limit(page)
        after: tuple[datetime, str] | None = None
        while True:
            query = (
                select(ContactRow)
                .where(ContactRow.status.in_(list(statuses)))
                .order_by(ContactRow.created_at, ContactRow.id)
                .limit(page)
            )
            if after is not None:
                query = query.where(_after(*after))
            with self._sessions() as session:
                rows = session.scalars(query).all()
                recorded = {row.id: row.events_recorded for row in rows}
                events = session.scalars(
                    select(RouteEventRow)
                    .where(RouteEventRow.contact_id.in_(list(recorded)))
                    .order_by(RouteEventRow.contact_id, RouteEventRow.seq)
                ).all()
                histories: dict[str, list[RouteEvent]] = {row.id: [] for row in rows}
                for event in events:
                    if event.seq <= recorded[event.contact_id]:
                        histories[event.contact_id].append(_event(event))
                found = [
                    ContactDetail(**_fields(row), history=tuple(histories[row.id])) for row in rows
                ]
            yield from found
            if len(rows) < page:
                return
            after = (rows[-1].created_at, rows[-1].id)

    def list(
        self,
        *,
        status: ContactStatus | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ContactRecord]:
        """Contacts oldest first, ``limit`` at a time."""
        check_limit(limit)
        query = select(ContactRow).order_by(ContactRow.created_at, ContactRow.id).limit(limit + 1)
        if status is not None:
            query = query.where(ContactRow.status == status)
        if queue is not None:
            query = query.where(ContactRow.queue_id == queue)
        if cursor is not None:
            query = query.where(_after(*_decode_cursor(cursor)))
        with self._sessions() as session:
            rows = session.scalars(query).all()
            items = [_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, _encode_cursor(items[-1]) if more else None)


def _apply(
    row: ContactRow,
    kind: RouteEventKind,
    after: ContactStatus | None,
    *,
    at: datetime,
    site: str | None,
    agent: str | None,
) -> None:
    if after is not None:
        row.status = after
    if kind is RouteEventKind.RESERVED:
        row.serving_site, row.serving_agent, row.reserved_at = site, agent, at
    elif kind is RouteEventKind.CONFIRMED:
        row.serving_site = site or row.serving_site
        row.serving_agent = agent or row.serving_agent
        row.answered_at = row.answered_at or at
    elif after is ContactStatus.QUEUED:
        row.serving_site = row.serving_agent = row.reserved_at = None
    elif kind is RouteEventKind.ABANDONED:
        row.abandoned_at = row.ended_at = at
    elif kind is RouteEventKind.FINISHED:
        row.ended_at = at


def _fields(row: ContactRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "queue": row.queue_id,
        "status": row.status,
        "channel": row.channel,
        "caller_region": row.caller_region,
        "landing_site": row.landing_site,
        "serving_site": row.serving_site,
        "serving_agent": row.serving_agent,
        "created_at": row.created_at,
        "reserved_at": row.reserved_at,
        "answered_at": row.answered_at,
        "ended_at": row.ended_at,
        "abandoned_at": row.abandoned_at,
        "last_seq": row.events_recorded,
    }


def _record(row: ContactRow) -> ContactRecord:
    return ContactRecord(**_fields(row))


def _event(row: RouteEventRow) -> RouteEvent:
    return RouteEvent(
        seq=row.seq,
        kind=row.kind,
        at=row.at,
        site=row.site_id,
        agent=row.agent_id,
        detail=row.detail,
    )


def _after(created_at: datetime, contact_id: str) -> ColumnElement[bool]:
    """Contacts after this one, oldest first (ties by id): keyset paging."""
    return or_(
        ContactRow.created_at > created_at,
        and_(ContactRow.created_at == created_at, ContactRow.id > contact_id),
    )


def _encode_cursor(contact: ContactRecord) -> str:
    raw = json.dumps([contact.created_at.isoformat(), contact.id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, contact_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), str(contact_id)
    except (binascii.Error, ValueError, TypeError) as error:
        raise ValueError(f"malformed cursor {cursor!r}") from error
