"""The tables, as typed SQLAlchemy models; the migrations in ``migrations/`` must match them.

Configuration rows keep the validated pydantic document (``routing.config``) whole in ``payload``,
so the loader stays the one definition of what a site or a queue is; the few columns beside it
are the ids other rows point at or filters search by.  Contacts, their route history, interval
counters and the audit log are plain columns: they are queried and summed, not re-validated.

Contacts and statistics keep bare site/queue/agent ids, with no foreign keys to the
configuration: history outlives the configuration it was made under (a deleted queue's contacts
still belong in last month's report).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from routing.model import Channel

ID_LENGTH = 128

# Constraint names fixed by convention, so SQLite and PostgreSQL migrations name them alike and a
# later migration can drop one by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL: compact, and indexable should payload queries ever be needed.
Json = JSON().with_variant(JSONB(), "postgresql")


def aware(at: datetime) -> datetime:
    """``at``, refused if naive: a wall-clock time without a zone is ambiguous across sites in
    several time zones."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: give a time zone")
    return at


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on both backends.

    SQLite has no time-zone type and hands back naive values; storing UTC and re-attaching it on
    the way out keeps comparisons and ordering right.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else aware(value).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum_column(enum: type[StrEnum]) -> SqlEnum:
    """A string column holding the enum's values: a new member needs no ALTER TYPE."""
    return SqlEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConfigVersionRow(Base):
    """The single row (id 1) counting configuration changes.

    Every configuration write updates it first, so it is also the lock that serialises writers.
    """

    __tablename__ = "config_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)


class ConfigRow(Base):
    __abstract__ = True

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)


class SkillRow(ConfigRow):
    __tablename__ = "skills"


class SiteRow(ConfigRow):
    __tablename__ = "sites"


class AgentRow(ConfigRow):
    __tablename__ = "agents"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)


class AgentSkillRow(Base):
    """An agent's level in one skill, beside the payload so agents can be found by skill."""

    __tablename__ = "agent_skills"

    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_agent_skills_skill_level", "skill_id", "level"),)


class QueueRow(ConfigRow):
    """A queue and its routing policy (targets, overflow, options), all in the payload."""

    __tablename__ = "queues"


class TariffRow(ConfigRow):
    """The network's tariffs: one row at most, id :data:`TARIFFS_ID`."""

    __tablename__ = "tariffs"


class ContactAttributeRow(ConfigRow):
    """A contact attribute conditions may test (``contact.tier``), with its type."""

    __tablename__ = "contact_attributes"


class NamedListRow(ConfigRow):
    """A named list conditions test membership of (``customer in vip``)."""

    __tablename__ = "named_lists"


class ContactStatus(StrEnum):
    QUEUED = "queued"
    RESERVED = "reserved"
    CONNECTED = "connected"
    ABANDONED = "abandoned"
    FINISHED = "finished"


class RouteEventKind(StrEnum):
    """What happened to a contact; see ``contacts.py`` for the status each one leads to."""

    OFFERED = "offered"
    QUEUED = "queued"
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    REDIRECTED = "redirected"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    FINISHED = "finished"


class ContactRow(Base):
    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    status: Mapped[ContactStatus] = mapped_column(_enum_column(ContactStatus))
    channel: Mapped[Channel] = mapped_column(_enum_column(Channel))
    caller_region: Mapped[str] = mapped_column(String(ID_LENGTH))
    landing_site: Mapped[str] = mapped_column(String(ID_LENGTH))
    serving_site: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    serving_agent: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reserved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    abandoned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Sequence number of the latest route event.
    events_recorded: Mapped[int] = mapped_column(Integer)

    # Optimistic lock: an UPDATE matches only the event count it read, and the store sets the
    # next count itself, so the count doubles as the next route event's sequence number.
    __mapper_args__ = MappingProxyType(
        {"version_id_col": events_recorded, "version_id_generator": False}
    )
    __table_args__ = (
        # Listing pages by status or by queue, oldest first.
        Index("ix_contacts_status_created", "status", "created_at", "id"),
        Index("ix_contacts_queue_created", "queue_id", "created_at", "id"),
        Index("ix_contacts_created", "created_at", "id"),
    )


class RouteEventRow(Base):
    __tablename__ = "route_events"

    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[RouteEventKind] = mapped_column(_enum_column(RouteEventKind))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    site_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    agent_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    detail: Mapped[dict[str, Any]] = mapped_column(Json)


class IntervalStatRow(Base):
    """Additive counters of one 15-minute interval at one site for one queue."""

    __tablename__ = "interval_stats"

    interval_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    offered: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    abandoned: Mapped[int] = mapped_column(Integer)
    answered_within_sl: Mapped[int] = mapped_column(Integer)
    wait_seconds: Mapped[float] = mapped_column(Float)
    handle_seconds: Mapped[float] = mapped_column(Float)
    staffed_seconds: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)


class AuditEntryRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    action: Mapped[str] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # The configuration version a change produced; None for operator actions outside it.
    config_version: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(Json)
    after: Mapped[dict[str, Any] | None] = mapped_column(Json)

    __table_args__ = (Index("ix_audit_log_resource", "resource_type", "resource_id", "id"),)
