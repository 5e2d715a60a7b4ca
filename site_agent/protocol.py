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

A call that must move to another site moves in a **handshake**, so that a call can never be
rung at one site while it is still (or no longer) at another: the router first sends the site
where the call is a :class:`TransferOut` (the agent at the destination stays reserved); that
site sends the call on and confirms with :class:`ContactTransferred`, or refuses with
:class:`DeliveryRejected` (the caller hung up, the call is no longer queued there); only on the
confirmation does the router send the destination its :class:`Deliver` (``from_site`` set), on
which the destination takes the call in and rings its agent.  Until the router acknowledges the
confirmation the site keeps it, and lists the call in its snapshots as ``transferred``: a
confirmation lost with a dropped link still reaches the router, so a call in transit is never
forgotten.  Likewise the destination confirms that it took the call in (:class:`ContactTakenIn`,
listed in its snapshot's ``taken_in`` until acknowledged), so that a delivery lost with the
destination's link is sent again elsewhere, and one that arrived is not.

Reservation numbers are unique across router restarts (each router shard starts its numbering
from the wall clock, :func:`orchestrator.global_router.reservation_origin`), so a number names
one decision, and a site that sees it again knows the message is re-sent.

A supervisor's change of an agent's presence (the control API's) is a **command**: the router
sends the agent's site a :class:`SetAgentState` (ready, not ready with a reason, logged out)
under a request id; the site carries it out on its PBX, whose events reach the router as any
other (``AgentReady``, ``AgentNotReady``, ``AgentLoggedOut``, in deltas), and then answers
:class:`AgentStateApplied`, or :class:`AgentStateRefused` with the PBX's reason (the agent is
not logged in, is on a break, has a call ...), which changes nothing.  Both answers come after
the events the command caused, so a router that has applied the answer has applied its effect
too.  They are not kept across a dropped link: the site's snapshot then shows the outcome.

When no router is reachable the site routes locally and reports, when the router returns, each
call it gave an agent who answered (:class:`LocallyRouted`) and each call whose caller hung up
meanwhile (:class:`LocallyAbandoned`), so the router's view and its contact history include
them.

Every message is a pydantic model with a literal ``kind``, so one JSON document decodes to the
right class (:data:`SiteMessage`, :data:`RouterMessage`) and a malformed one is refused with the
field that is wrong.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

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


class ContactTransferred(_Message):
    """The call the router ordered out under ``reservation`` (:class:`TransferOut`) has left
    for ``to_site``: the router now sends that site its :class:`Deliver`."""

    kind: Literal["contact_transferred"] = "contact_transferred"
    reservation: int
    contact_id: str
    to_site: str
    at: float


class ContactTakenIn(_Message):
    """The call a :class:`Deliver` brought from transit (``from_site`` set) is here now, under
    ``reservation``: kept until acknowledged, like a transfer's confirmation, so a router whose
    delivery crossed a dropped link learns from the snapshot whether the call arrived."""

    kind: Literal["contact_taken_in"] = "contact_taken_in"
    reservation: int
    contact_id: str
    at: float


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


class LocallyAbandoned(_Message):
    """While the router was unreachable (or before the site's snapshot reached it) the caller
    hung up: reported when the router is back, after the snapshot.

    Why a report and not the snapshot: the snapshot is the site's state, and a call that came
    and went during the outage is in no state any more, so without this report it would never
    exist for the router.  The router's own engine needs nothing (the call is gone), but the
    contact history and the statistics kept from what the router sees (offered, abandoned,
    waits) would silently lose exactly the calls of an outage.  So the report carries the whole
    contact (queue, arrival, region ...) as a route request would, and when the caller hung
    up; a router that still has the call (it never noticed the outage) ends it, one that does
    not only records it (re-sent reports change nothing)."""

    kind: Literal["locally_abandoned"] = "locally_abandoned"
    contact: ContactData
    at: float


class AgentStateApplied(_Message):
    """The site carried out the router's :class:`SetAgentState` ``request_id`` on its PBX: the
    agent's presence events it caused precede this (and if the PBX had the agent so already,
    the site restates the agent's presence before it, so the router agrees)."""

    kind: Literal["agent_state_applied"] = "agent_state_applied"
    request_id: str
    agent_id: str
    at: float


class AgentStateRefused(_Message):
    """The site's PBX refused the router's :class:`SetAgentState` ``request_id`` (``reason``, in
    a few words, for the supervisor): nothing changed."""

    kind: Literal["agent_state_refused"] = "agent_state_refused"
    request_id: str
    agent_id: str
    at: float
    reason: str


SiteEvent = Annotated[
    AgentLoggedIn
    | AgentReady
    | AgentNotReady
    | AgentLoggedOut
    | WrapUpEnded
    | AgentStateApplied
    | AgentStateRefused
    | ContactArrived
    | DeliveryConfirmed
    | DeliveryRejected
    | ContactTransferred
    | ContactTakenIn
    | ContactFinished
    | ContactAbandoned
    | LocallyRouted
    | LocallyAbandoned,
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
    ``reservation`` to ``agent_id``, not yet answered; ``talking``: answered by ``agent_id``;
    ``transferred``: no longer at the site, sent to ``to_site`` on the router's
    :class:`TransferOut` ``reservation``, and the site's :class:`ContactTransferred` not yet
    acknowledged (the router completes the transfer if it has not)."""

    contact: ContactData
    state: Literal["queued", "ringing", "talking", "transferred"]
    agent_id: str | None = None
    reservation: int | None = None
    to_site: str | None = None


class Snapshot(_Message):
    """The site's whole state; it replaces whatever the router believed of the site.
    ``taken_in``: reservations under which the site took calls in from transit and whose
    :class:`ContactTakenIn` is not acknowledged yet (those calls may have ended since).
    ``received``: the transfer orders (:attr:`Deliver.order`) of the calls it took in from
    transit lately, acknowledged or not: a router that started after the transfer learns from it
    that a call another site still lists as ``transferred`` (not :class:`TransferSettled` yet)
    did arrive.  ``reported``: the calls whose :class:`LocallyRouted` or
    :class:`LocallyAbandoned` (not acknowledged yet) follow in delta 1: one the snapshot does
    not list did not vanish unseen, its report says how it went."""

    kind: Literal["snapshot"] = "snapshot"
    site_id: str
    at: float
    agents: list[AgentStatus]
    contacts: list[ContactStatus]
    taken_in: list[int] = Field(default_factory=list)
    received: list[int] = Field(default_factory=list)
    reported: list[str] = Field(default_factory=list)


SiteMessage = Annotated[Delta | Snapshot, Field(discriminator="kind")]
SITE_MESSAGE: TypeAdapter[Delta | Snapshot] = TypeAdapter(SiteMessage)


# ------------------------------------------------------------------ router -> site


class Deliver(_Message):
    """Ring ``agent_id`` (an agent of the receiving site) with the contact.  ``from_site``: the
    call is not at the receiving site yet; it left ``from_site`` by transfer (confirmed with
    :class:`ContactTransferred`), and the receiving site takes it in (confirming with
    :class:`ContactTakenIn`), then rings.  ``order``: the transfer order under which it left
    ``from_site``, for the site to list as ``received`` in its snapshots."""

    kind: Literal["deliver"] = "deliver"
    reservation: int
    contact: ContactData
    agent_id: str
    from_site: str | None = None
    order: int | None = None


class TransferOut(_Message):
    """Send the call, queued at the receiving site, to ``to_site``, where an agent is reserved
    for it; answer :class:`ContactTransferred` once it left, or :class:`DeliveryRejected` if it
    cannot (the call is gone, or not queued).  The destination hears of it only then."""

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


class TransferSettled(_Message):
    """The call the receiving site sent away on transfer order ``reservation`` has been taken
    in elsewhere: the site may forget it.  Until then the site lists it as ``transferred`` in
    every snapshot, even once its :class:`ContactTransferred` is acknowledged, so that a call
    in transit when the router died is not lost with the router's memory."""

    kind: Literal["transfer_settled"] = "transfer_settled"
    reservation: int
    contact_id: str


class SetAgentState(_Message):
    """Set ``agent_id`` (an agent of the receiving site) ``ready``, ``not_ready`` with
    ``reason`` or ``logged_out`` on the site's PBX, as a supervisor would from the ACD's
    console (the control API's agent state change; ``at``: when it was asked, on the router's
    clock).  The site answers :class:`AgentStateApplied` after the events the change caused, or
    :class:`AgentStateRefused`, naming ``request_id``."""

    kind: Literal["set_agent_state"] = "set_agent_state"
    request_id: str = Field(min_length=1)
    agent_id: str = Field(min_length=1)
    state: Literal["ready", "not_ready", "logged_out"]
    reason: str | None = Field(default=None, min_length=1)
    at: float

    @model_validator(mode="after")
    def _reason_for_not_ready(self) -> SetAgentState:
        if (self.state == "not_ready") is (self.reason is None):
            raise ValueError("a reason is given for, and only for, not_ready")
        return self


RouterMessage = Annotated[
    Deliver | TransferOut | Withdraw | Ack | SnapshotRequest | SetAgentState | TransferSettled,
    Field(discriminator="kind"),
]
ROUTER_MESSAGE: TypeAdapter[
    Deliver | TransferOut | Withdraw | Ack | SnapshotRequest | SetAgentState | TransferSettled
] = TypeAdapter(RouterMessage)
