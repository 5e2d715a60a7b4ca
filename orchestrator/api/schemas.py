"""Request and response bodies of the control API.

Configuration resources are the routing loader's own documents (``routing.config``), so the API,
the database and the router agree on what a site or a queue is.  Bodies sent to the API narrow
their ids to what fits in a URL, a database key and (for skills) a skill expression.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from orchestrator.persistence import AuditEntry, ContactDetail, ContactRecord, ContactStatus
from orchestrator.persistence.models import RouteEventKind
from orchestrator.persistence.resources import SkillConfig
from routing.config import AgentConfig, QueueConfig, SiteConfig
from routing.model import Channel

T = TypeVar("T")

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$"
# Skill ids are words of skill expressions (``billing>=5 & spanish``).
SKILL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
_OPERATOR_WORDS = frozenset({"and", "or", "not"})

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------ configuration bodies


class SiteBody(SiteConfig):
    """A site: region (callers' tariffs), time zone, trunks, labour cost, business hours."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "lisbon",
                    "region": "pt",
                    "timezone": "Europe/Lisbon",
                    "agent_cost_per_hour": 22.0,
                    "hours": {"weekly": {"mon": ["08:00-20:00"], "tue": ["08:00-20:00"]}},
                }
            ]
        }
    )

    id: Id


class SkillBody(SkillConfig):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "spanish"}]})

    id: Annotated[str, StringConstraints(pattern=SKILL_PATTERN)]

    @field_validator("id")
    @classmethod
    def _not_an_operator(cls, value: str) -> str:
        if value.lower() in _OPERATOR_WORDS:
            raise ValueError(f"{value!r} is an operator of skill expressions")
        return value


class AgentBody(AgentConfig):
    """An agent: its site, skill levels (1-10) and contacts at once per channel."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "lisbon-007",
                    "site": "lisbon",
                    "skills": {"billing": 7, "spanish": 4},
                    "capacity": {"voice": 1, "chat": 3},
                }
            ]
        }
    )

    id: Id


class QueueBody(QueueConfig):
    """A queue and its routing policy: targets tried in order with time-outs, then options."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "billing",
                    "targets": [
                        {"skills": "billing", "min_proficiency": 5, "timeout": 15},
                        {"skills": "billing"},
                    ],
                    "sl_threshold": 20,
                    "strategy": "most_skilled",
                }
            ]
        }
    )

    id: Id


class Items(BaseModel, Generic[T]):
    """A whole collection; the ETag header is the configuration version it was read at."""

    items: list[T]


class Page(BaseModel, Generic[T]):
    """One page; pass ``next_cursor`` back as ``cursor`` for the next (``null``: the end)."""

    items: list[T]
    next_cursor: str | None


# ------------------------------------------------------------------ contacts


class ContactCreate(_Body):
    """A contact asking for a route: it lands at ``site`` and waits in ``queue``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "queue": "billing",
                    "site": "lisbon",
                    "caller_region": "pt",
                    "required_skills": {"spanish": 3},
                    "attributes": {"tier": "gold"},
                }
            ]
        },
    )

    id: Id | None = Field(
        default=None, description="The caller's id for the contact (a retry cannot make two)."
    )
    queue: Ref
    site: Ref | None = Field(
        default=None, description="Landing site; a site key's own site when omitted."
    )
    channel: Channel = Channel.VOICE
    caller_region: Text = ""
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    required_skills: dict[Ref, Annotated[int, Field(ge=1, le=10)]] = Field(
        default_factory=dict, description="Skills the contact needs beyond its queue's, by level."
    )
    customer_id: Text | None = None
    attributes: dict[Ref, str | float | bool] = Field(
        default_factory=dict, description="Contact data target conditions test (contact.NAME)."
    )
    preferred_site: Ref | None = None


class RouteEventOut(BaseModel):
    seq: int
    kind: RouteEventKind
    at: datetime
    site: str | None
    agent: str | None
    detail: dict[str, Any]


class ContactOut(BaseModel):
    id: str
    queue: str
    status: ContactStatus
    channel: Channel
    caller_region: str
    landing_site: str
    serving_site: str | None
    serving_agent: str | None
    created_at: datetime
    reserved_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    abandoned_at: datetime | None

    @classmethod
    def of(cls, record: ContactRecord) -> ContactOut:
        return cls(
            id=record.id,
            queue=record.queue,
            status=record.status,
            channel=record.channel,
            caller_region=record.caller_region,
            landing_site=record.landing_site,
            serving_site=record.serving_site,
            serving_agent=record.serving_agent,
            created_at=record.created_at,
            reserved_at=record.reserved_at,
            answered_at=record.answered_at,
            ended_at=record.ended_at,
            abandoned_at=record.abandoned_at,
        )


class ContactDetailOut(ContactOut):
    live_state: str | None = Field(
        description="queued, ringing or talking in the router now; null once it ended."
    )
    history: list[RouteEventOut]

    @classmethod
    def of_detail(cls, detail: ContactDetail, live_state: str | None) -> ContactDetailOut:
        return cls(
            **ContactOut.of(detail).model_dump(),
            live_state=live_state,
            history=[
                RouteEventOut(
                    seq=event.seq,
                    kind=event.kind,
                    at=event.at,
                    site=event.site,
                    agent=event.agent,
                    detail=dict(event.detail),
                )
                for event in detail.history
            ],
        )


# ------------------------------------------------------------------ reports and audit


class Measures(BaseModel):
    """Sums of the intervals, and the measures computed from them.

    Service level = answered within the queue's threshold / offered (abandoned contacts count
    against it); ASA = wait of answered contacts / answered; AHT = handle time (talk, hold and
    after-contact work) / answered; occupancy = handle time / staffed time; cost per contact =
    cost / answered.  A ratio with nothing to divide by is null.
    """

    offered: int
    answered: int
    abandoned: int
    answered_within_sl: int
    service_level: float | None
    abandon_rate: float | None
    asa_seconds: float | None
    aht_seconds: float | None
    occupancy: float | None
    wait_seconds: float
    handle_seconds: float
    staffed_seconds: float
    cost: float
    cost_per_contact: float | None


class IntervalOut(Measures):
    start: datetime
    end: datetime
    site: str
    queue: str


class IntervalReport(BaseModel):
    start: datetime
    end: datetime
    site: str | None
    queue: str | None
    intervals: list[IntervalOut]
    total: Measures


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    resource_type: str
    resource_id: str
    config_version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            resource_type=entry.resource_type,
            resource_id=entry.resource_id,
            config_version=entry.config_version,
            before=entry.before,
            after=entry.after,
        )
