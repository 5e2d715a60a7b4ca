"""15-minute interval statistics per site and queue: counters that only ever add up.

Reports are built from sums (service level = answered within threshold / offered, ASA = wait /
answered, AHT = handle / answered, occupancy = handle / staffed), so only additive counters are
stored; several writers (one per site, a late report after a reconnect) may add to one interval
and nothing is lost or counted twice by an overwrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.persistence.models import IntervalStatRow, aware


@dataclass(frozen=True, slots=True)
class Counters:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within_sl: int = 0
    wait_seconds: float = 0.0
    handle_seconds: float = 0.0
    staffed_seconds: float = 0.0
    cost: float = 0.0

    def __post_init__(self) -> None:
        negative = [f.name for f in fields(self) if getattr(self, f.name) < 0]
        if negative:
            raise ValueError(f"negative counters {negative}: counters only add up")

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True, slots=True)
class IntervalRecord:
    start: datetime
    site: str
    queue: str
    counters: Counters


def interval_start(at: datetime) -> datetime:
    """The start of the 15-minute interval holding ``at`` (an aware datetime)."""
    utc = aware(at).astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


class IntervalStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, at: datetime, site: str, queue: str, counters: Counters) -> None:
        """Add ``counters`` to the interval holding ``at``, creating it if need be.

        One INSERT ... ON CONFLICT DO UPDATE, so two writers adding at once both count.
        """
        self.add_many([(at, site, queue, counters)])

    def add_many(self, rows: Iterable[tuple[datetime, str, str, Counters]]) -> None:
        """Several :meth:`add` in one transaction (all or none), in key order (so that two
        writers adding to the same rows lock them in the same order)."""
        keyed = sorted(
            (((interval_start(at), site, queue), counters) for at, site, queue, counters in rows),
            key=lambda row: row[0],
        )
        if not keyed:
            return
        with self._sessions() as session:
            for (start, site, queue), counters in keyed:
                session.execute(_upsert(session, start, site, queue, counters))
            session.commit()

    def query(
        self,
        start: datetime,
        end: datetime,
        *,
        site: str | None = None,
        queue: str | None = None,
    ) -> Sequence[IntervalRecord]:
        """Intervals starting in ``[start, end)``, by start, site and queue."""
        query = (
            select(IntervalStatRow)
            .where(IntervalStatRow.interval_start >= start, IntervalStatRow.interval_start < end)
            .order_by(
                IntervalStatRow.interval_start, IntervalStatRow.site_id, IntervalStatRow.queue_id
            )
        )
        if site is not None:
            query = query.where(IntervalStatRow.site_id == site)
        if queue is not None:
            query = query.where(IntervalStatRow.queue_id == queue)
        with self._sessions() as session:
            rows = session.scalars(query).all()
            return [
                IntervalRecord(
                    start=row.interval_start,
                    site=row.site_id,
                    queue=row.queue_id,
                    counters=Counters(**{f.name: getattr(row, f.name) for f in fields(Counters)}),
                )
                for row in rows
            ]


def _upsert(
    session: Session, start: datetime, site: str, queue: str, counters: Counters
) -> postgresql.Insert | sqlite.Insert:
    values = {"interval_start": start, "site_id": site, "queue_id": queue, **asdict(counters)}
    statement = _insert(session).values(values)
    excluded = statement.excluded
    table = IntervalStatRow.__table__
    return statement.on_conflict_do_update(
        index_elements=["interval_start", "site_id", "queue_id"],
        set_={name: table.c[name] + excluded[name] for name in asdict(counters)},
    )


def _insert(session: Session) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which alone knows ON CONFLICT (both spell it the same)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(IntervalStatRow)
    return sqlite.insert(IntervalStatRow)
