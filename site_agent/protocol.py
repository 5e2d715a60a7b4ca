"""Messages between a site agent and the global router, as they cross the WAN (JSON).

A site agent owns the truth about its PBX: which agents are logged in and in which state, which
calls are queued, ringing or talking.  The router owns the decisions.  So the site streams what
happened, as **deltas** numbered by a per-connection sequence (the router acknowledges them and
notices a gap), and a **snapshot** of its whole state when it connects and whenever the router
asks (after a gap, or after the router itself restarted): a reconnect loses nothing, because
the snapshot replaces whatever the router believed.  The router answers with **deliveries**:
each carries a reservation number, so a delivery re-sent after a reconnect is recognised and
never rings an agent twice, and the site's confirmation (the agent answered) or rejection (the
agent went not ready meanwhile, or let it ring out) names the reservation it settles.

When no router is reachable the site routes locally and reports each such decision
(:class:`LocallyRouted`) when the router returns, so the router's view includes it.

Every message is a pydantic model with a literal ``kind``, so one JSON document decodes to the
right class (:data:`SiteMessage`, :data:`RouterMessage`) and a malformed one is refused with the
field that is wrong.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from routing.model import Channel, Contact


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactData(_Message):
    """A contact as the site's PBX knows it when it asks for a route."""

    id: str = Field(min_length=1)
    queue_id: str = Field(min_length=1)
    arrival: float
    channel: Channel = Channel.VOICE
    caller_region: str = ""
    priority: int | None = None
    required_skills: dict[str, int] = Field(default_factory=dict)
    customer_id: str | None = None
    attributes: dict[str, str | float | bool] = Field(default_factory=dict)
    preferred_site: str | None = None

    def to_contact(self, landed_at: str | None) -> Contact:
        return Contact(
            id=self.id,
            queue_id=self.queue_id,
            arrival=self.arrival,
            channel=self.channel,
            caller_region=self.caller_region,
            origin_site=landed_at,
            preferred_site=self.preferred_site,
            priority=self.priority,
            required_skills=dict(self.required_skills),
            patience=math.inf,
            customer_id=self.customer_id,
            attributes=dict(self.attributes),
        )


# ------------------------------------------------------------------ site -> router events


class AgentLoggedIn(_Message):
    kind: Literal["agent_logged_in"] = "agent_logged_in"
    agent_id: str
    at: float
    ready: bool = False
    shift_end: float | None = None


class AgentReady(_Message):
    kind: Literal["agent_ready"] = "agent_ready"
    agent_id: str
    at: float


class AgentNotReady(_Message):
    kind: Literal["agent_not_ready"] = "agent_not_ready"
    agent_id: str
    at: float
    reason: str = "break"


class AgentLoggedOut(_Message):
    kind: Literal["agent_logged_out"] = "agent_logged_out"
    agent_id: str
    at: float


class WrapUpEnded(_Message):
    kind: Literal["wrap_up_ended"] = "wrap_up_ended"
    agent_id: str
    at: float


class ContactArrived(_Message):
    """A route request: the contact landed at the site and waits for the router's decision."""

    kind: Literal["contact_arrived"] = "contact_arrived"
    contact: ContactData
    at: float


class DeliveryConfirmed(_Message):
    """The agent answered: the reservation is settled and the contact is the agent's."""

    kind: Literal["delivery_confirmed"] = "delivery_confirmed"
    reservation: int
    contact_id: str
    at: float


class DeliveryRejected(_Message):
    """The site could not deliver (agent not ready meanwhile, no answer): route it again."""

    kind: Literal["delivery_rejected"] = "delivery_rejected"
    reservation: int
    contact_id: str
    at: float
    reason: str = "no answer"


class ContactFinished(_Message):
    kind: Literal["contact_finished"] = "contact_finished"
    contact_id: str
    at: float
    wrap_up: float | None = None


class ContactAbandoned(_Message):
    kind: Literal["contact_abandoned"] = "contact_abandoned"
    contact_id: str
    at: float


class LocallyRouted(_Message):
    """While the router was unreachable the site gave this contact to one of its agents, who
    answered it (reported once answered: a local offer the agent let ring out never left the
    site)."""

    kind: Literal["locally_routed"] = "locally_routed"
    contact: ContactData
    agent_id: str
    at: float


SiteEvent = Annotated[
    AgentLoggedIn
    | AgentReady
    | AgentNotReady
    | AgentLoggedOut
    | WrapUpEnded
    | ContactArrived
    | DeliveryConfirmed
    | DeliveryRejected
    | ContactFinished
    | ContactAbandoned
    | LocallyRouted,
    Field(discriminator="kind"),
]


class Delta(_Message):
    """Events in the order they happened at the site; ``seq`` counts deltas from 1 on each
    connection (after its snapshot, which has ``seq`` 0)."""

    kind: Literal["delta"] = "delta"
    site_id: str
    seq: int = Field(ge=1)
    events: list[SiteEvent]


class AgentStatus(_Message):
    """An agent's presence (logged in; ready for new work when free, else not ready with a
    reason), whether it is in after-contact work, and its planned shift end.  Its contacts are
    listed under the snapshot's contacts."""

    agent_id: str
    logged_in: bool
    ready: bool = False
    reason: str | None = None
    wrap_up: bool = False
    shift_end: float | None = None


class ContactStatus(_Message):
    """``queued``: waiting at the site for a decision; ``ringing``: delivered under
    ``reservation`` to ``agent_id``, not yet answered; ``talking``: answered by ``agent_id``."""

    contact: ContactData
    state: Literal["queued", "ringing", "talking"]
    agent_id: str | None = None
    reservation: int | None = None


class Snapshot(_Message):
    """The site's whole state; it replaces whatever the router believed of the site."""

    kind: Literal["snapshot"] = "snapshot"
    site_id: str
    at: float
    agents: list[AgentStatus]
    contacts: list[ContactStatus]


SiteMessage = Annotated[Delta | Snapshot, Field(discriminator="kind")]
SITE_MESSAGE: TypeAdapter[Delta | Snapshot] = TypeAdapter(SiteMessage)


# ------------------------------------------------------------------ router -> site


class Deliver(_Message):
    """Ring ``agent_id`` (an agent of the receiving site) with the contact; ``from_site`` is
    where the call is now, when it must first be transferred here."""

    kind: Literal["deliver"] = "deliver"
    reservation: int
    contact: ContactData
    agent_id: str
    from_site: str | None = None


class TransferOut(_Message):
    """Send the call, queued at the receiving site, to ``to_site`` (its agent is reserved)."""

    kind: Literal["transfer_out"] = "transfer_out"
    reservation: int
    contact_id: str
    to_site: str


class Withdraw(_Message):
    """Stop ringing: the router took the contact back (its answer time-out ran out); the agent
    is not ready ("no answer") and the contact is routed again."""

    kind: Literal["withdraw"] = "withdraw"
    reservation: int
    contact_id: str
    agent_id: str


class Ack(_Message):
    """Deltas up to ``seq`` are applied; the site may forget them."""

    kind: Literal["ack"] = "ack"
    seq: int


class SnapshotRequest(_Message):
    kind: Literal["snapshot_request"] = "snapshot_request"
    reason: str


RouterMessage = Annotated[
    Deliver | TransferOut | Withdraw | Ack | SnapshotRequest, Field(discriminator="kind")
]
ROUTER_MESSAGE: TypeAdapter[Deliver | TransferOut | Withdraw | Ack | SnapshotRequest] = TypeAdapter(
    RouterMessage
)
