"""What the control API needs from the live router: :class:`RoutingService`.

The API keeps configuration, history and reports in the database itself; everything live (a
route for a new contact, an agent's presence, who waits where) belongs to the router.  This
protocol is that boundary.  :class:`~orchestrator.api.local_routing.LocalRouting` implements it
in process over one :class:`~orchestrator.global_router.GlobalRouter`; a Ray-backed one talks
to the router's shards.  Either records each contact's route history in the ``ContactStore``
as it happens, so the API reads history from the database and only live state from here.

Errors: :class:`RoutingRefusedError` (the request cannot be routed as given: unknown queue or
site, wrong channel; the API answers 422), :class:`RoutingConflictError` (not in the current
state: logging out an agent on a call, an agent state change its site's PBX refused; 409),
:class:`RoutingTimeoutError` (a site did not carry out a change in time; 504),
``persistence.NotFoundError`` for an agent the router does not know (404),
``persistence.DuplicateContactError`` for a contact id used before (409).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from routing.model import AgentState, Channel

LiveContactState = Literal["queued", "ringing", "talking"]


class RoutingRefusedError(ValueError):
    """The router cannot take the request as given (nothing was changed or stored)."""


class RoutingConflictError(Exception):
    """The request does not fit the current live state (nothing was changed)."""


class RoutingTimeoutError(Exception):
    """A site did not answer in time: the change was sent and may still take effect (read the
    state again before retrying)."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactRequest(_Value):
    """A contact landed at ``landing_site`` asking for an agent."""

    id: str
    queue: str
    landing_site: str
    channel: Channel = Channel.VOICE
    caller_region: str = ""
    priority: int | None = None
    required_skills: dict[str, int] = Field(default_factory=dict)
    customer_id: str | None = None
    attributes: dict[str, str | float | bool] = Field(default_factory=dict)
    preferred_site: str | None = None


class RouteOutcome(_Value):
    """The decision: ``ringing`` at an agent (reserved), or ``queued`` until one frees up."""

    contact_id: str
    state: LiveContactState
    agent_id: str | None = None
    site_id: str | None = Field(
        default=None, description="The reserved agent's site (where the contact is sent)."
    )


class ReadyChange(_Value):
    state: Literal["ready"] = Field(
        description="Ready for new contacts; ends after-contact work.  A logged-out agent is "
        "logged in by the in-process router, while a site's PBX refuses it (409): logging in "
        "takes the agent at a phone."
    )


class NotReadyChange(_Value):
    state: Literal["not_ready"] = Field(
        description="No new contacts; contacts in progress finish normally.  A logged-out "
        "agent: as for ready."
    )
    reason: str = Field(
        min_length=1, max_length=64, description="Reason code: break, lunch, training ..."
    )


class LogoutChange(_Value):
    state: Literal["logged_out"] = Field(
        description="Leaves the pool; refused while the agent has a contact ringing or live."
    )


AgentStateChange = Annotated[
    ReadyChange | NotReadyChange | LogoutChange, Field(discriminator="state")
]


class AgentLiveState(_Value):
    agent_id: str
    site_id: str
    state: AgentState
    reason: str | None = Field(default=None, description="Why not ready, when not ready.")
    since: datetime | None = Field(
        default=None, description="When the state last changed (time in state); None: never."
    )


class AgentCounts(_Value):
    """Agents by state.  ``staffed`` counts every logged-in agent; ``busy`` those with a
    contact ringing or live (after-contact work is counted apart)."""

    staffed: int = 0
    ready: int = 0
    not_ready: int = 0
    busy: int = 0
    reserved: int = 0
    on_contact: int = 0
    after_contact_work: int = 0
    logged_out: int = 0


class SiteRealtime(_Value):
    site: str
    status: str = Field(
        description="From the statistics the router pulses from its view of the site: "
        "initialising, operational, congested, critical or down."
    )
    open: bool = Field(description="Whether its business hours have it open now.")
    agents: AgentCounts
    waiting: int = Field(description="Contacts waiting at the site.")
    longest_wait_seconds: float | None = None


class QueueSiteRealtime(_Value):
    """A queue at one site, for the agents of its first target."""

    site: str
    staffed: int
    ready: int
    waiting: int = Field(description="Contacts this site's agents could take now.")
    ewt_seconds: float | None = Field(
        default=None,
        description="The site's expected wait (Erlang A) from the router's last fresh pulse.",
    )


class QueueRealtime(_Value):
    queue: str
    channel: Channel
    waiting: int
    ringing: int
    talking: int
    longest_wait_seconds: float | None = None
    staffed: int = Field(description="Agents of the first target logged in, all sites.")
    ready: int = Field(description="Agents of the first target free now, all sites.")
    sites: list[QueueSiteRealtime]


class SkillRealtime(_Value):
    skill: str
    agents: AgentCounts = Field(description="Agents with the skill at any level.")
    waiting: int = Field(description="Waiting contacts whose queue or request needs it.")
    longest_wait_seconds: float | None = None


class RealtimeStats(_Value):
    """Live figures; ``site``/``queue`` narrow every count to that site's agents and contacts,
    or that queue's contacts."""

    at: datetime
    site: str | None = None
    queue: str | None = None
    sites: list[SiteRealtime]
    queues: list[QueueRealtime]
    skills: list[SkillRealtime]


class RoutingService(Protocol):
    """The live router, as the control API uses it."""

    async def route_contact(self, request: ContactRequest) -> RouteOutcome:
        """Record the contact (history starts with ``offered``) and ask for its route."""
        ...

    async def change_agent_state(
        self, agent_id: str, change: ReadyChange | NotReadyChange | LogoutChange
    ) -> AgentLiveState:
        """The agent's state once changed (unchanged if it was there already)."""
        ...

    async def agent_state(self, agent_id: str) -> AgentLiveState: ...

    async def contact_state(self, contact_id: str) -> LiveContactState | None:
        """``None``: the router has no live contact of that id (ended, or never routed)."""
        ...

    async def realtime_stats(
        self, *, site: str | None = None, queue: str | None = None
    ) -> RealtimeStats:
        """Raises ``NotFoundError`` for a site or queue the router does not know."""
        ...
