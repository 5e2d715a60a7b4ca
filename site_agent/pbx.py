"""What a site agent needs from a PBX/ACD, whichever one the site runs.

A site agent sits between one site's phone system and the global router.  It must know what
happens at the site (agents logging in and out, going ready or not ready with a reason, ending
their wrap-up; calls arriving for a queue, being answered or not, ending; callers hanging up) and
it must be able to act (ring an agent with a call, transfer a call to another site, stop a ring,
and set an agent ready, not ready or logged out as a supervisor does from the ACD's console).
:class:`PbxAdapter` is exactly that and no more, so an adapter for a real ACD (CTI link, REST
API, AMI) is one class, and the simulated PBX (:mod:`site_agent.simulated_pbx`) is another.

Two rules make the site agent's view of the PBX exact, and every adapter keeps them:

* Events reach the listener **synchronously and in order**, at the moment the adapter learns of
  them.  So :meth:`PbxAdapter.state` read between two events is exactly the state after the
  first: a snapshot and the events after it never overlap or leave a gap.
* :meth:`PbxAdapter.state` never runs ahead of the events.  What a command changes at once is
  emitted before the command returns (a call taken back from a ringing agent, a call leaving by
  transfer); what it changes later comes as events then (a ring ends in :class:`CallAnswered`
  or :class:`CallNotAnswered`).  The one exception is the ring itself, which only its caller
  needs to know of.  A refused command raises :class:`PbxRefusedError` and changes nothing.

PBX events are plain values of this module, not the wire messages of
:mod:`site_agent.protocol`: a PBX knows nothing of reservations or sequence numbers, and the
site agent decides what the router is told.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from routing.model import Contact

# ------------------------------------------------------------------ clocks


class Clock(Protocol):
    """The PBX's clock, in seconds.  Every event carries a time on it, and the site agent's own
    routing engine runs on it, so a simulated site sped up 60 times routes consistently."""

    def now(self) -> float: ...

    def delay_until(self, when: float) -> float:
        """Wall-clock seconds until the clock reads ``when`` (0 if it has)."""
        ...


class WallClock:
    """Unix time: the clock of a real PBX."""

    def now(self) -> float:
        return time.time()

    def delay_until(self, when: float) -> float:
        return max(0.0, when - time.time())


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class AgentLogin:
    agent_id: str
    at: float
    ready: bool
    shift_end: float | None = None


@dataclass(frozen=True, slots=True)
class AgentReadied:
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentUnready:
    """The agent takes no new work (a break, the end of the shift, a missed call ...)."""

    agent_id: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class AgentLogout:
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class WrapUpOver:
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallArrived:
    """A call landed at the site and waits in its queue (``contact.queue_id``)."""

    contact: Contact
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    contact_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallNotAnswered:
    """A ring ended without an answer; the call is queued at the site again."""

    contact_id: str
    agent_id: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The conversation ended; the agent is in wrap-up for ``wrap_up`` seconds (0: none)."""

    contact_id: str
    agent_id: str
    at: float
    wrap_up: float


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller hung up while queued or ringing (abandoned)."""

    contact_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallTransferred:
    """The call left the site for ``to_site``."""

    contact_id: str
    to_site: str
    at: float


PbxEvent = (
    AgentLogin
    | AgentReadied
    | AgentUnready
    | AgentLogout
    | WrapUpOver
    | CallArrived
    | CallAnswered
    | CallNotAnswered
    | CallEnded
    | CallerHungUp
    | CallTransferred
)
Listener = Callable[[PbxEvent], None]


# ------------------------------------------------------------------ state


class CallState(StrEnum):
    QUEUED = "queued"
    RINGING = "ringing"
    TALKING = "talking"


@dataclass(frozen=True, slots=True)
class PbxAgent:
    """An agent as the ACD sees it; ``ready`` is the presence (takes new work when free)."""

    agent_id: str
    logged_in: bool
    ready: bool = False
    reason: str | None = None
    wrap_up: bool = False
    shift_end: float | None = None


@dataclass(frozen=True, slots=True)
class PbxCall:
    """A call at the site: queued, ringing at ``agent_id`` or talking to it."""

    contact: Contact
    state: CallState
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class PbxState:
    """Everything at the site at ``at``: every agent (logged out ones too) and every call."""

    at: float
    agents: tuple[PbxAgent, ...]
    calls: tuple[PbxCall, ...]


class PbxRefusedError(Exception):
    """The PBX cannot carry out a command now (agent not ready, call gone ...); the message
    says why in a few words, as it goes to the router."""


# ------------------------------------------------------------------ the adapter


class PbxAdapter(ABC):
    """One site's PBX/ACD.  Subclasses implement the commands and the state read, and call
    :meth:`_emit` for every event."""

    def __init__(self, site_id: str, clock: Clock) -> None:
        self.site_id = site_id
        self.clock = clock
        self._listeners: list[Listener] = []

    def now(self) -> float:
        """The time commands take effect at, on :attr:`clock`."""
        return self.clock.now()

    def subscribe(self, listener: Listener) -> None:
        """Receive every event from now on, synchronously and in order."""
        self._listeners.append(listener)

    def _emit(self, event: PbxEvent) -> None:
        for listener in self._listeners:
            listener(event)

    @abstractmethod
    async def start(self) -> None:
        """Begin producing events (connect the CTI link, start the simulation)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop producing events and release what :meth:`start` took."""

    @abstractmethod
    def state(self) -> PbxState:
        """The whole site now, for a snapshot."""

    @abstractmethod
    def call(self, contact_id: str) -> PbxCall | None:
        """One call at the site, or ``None`` if it is not (or no longer) here."""

    @abstractmethod
    def ring(self, contact_id: str, agent_id: str) -> None:
        """Offer the queued call to the agent; answered or not is reported later.  Raises
        :class:`PbxRefusedError` if the call is not queued here or the agent cannot take it now."""

    @abstractmethod
    def stop_ringing(self, contact_id: str, *, agent_reason: str | None) -> None:
        """Take a ringing call back to the queue (reported as :class:`CallNotAnswered`).
        ``agent_reason``: make the agent not ready with this reason (redirect on no answer);
        ``None`` leaves the agent's presence alone."""

    @abstractmethod
    def transfer_out(self, contact_id: str, to_site: str) -> None:
        """Send a queued call to another site (reported as :class:`CallTransferred`)."""

    @abstractmethod
    def transfer_in(self, contact: Contact, from_site: str) -> None:
        """Take in a call another site transferred here: it is queued at once, without a
        :class:`CallArrived` (it was routed already), ready to :meth:`ring`."""

    # A supervisor's commands (the control API's agent state changes, through the router).
    # Each reports what it changes before it returns, and nothing when the agent is in that
    # state already; a PBX cannot log an agent in (that takes the agent at a phone).

    @abstractmethod
    def force_ready(self, agent_id: str) -> None:
        """Make a logged-in agent ready (:class:`AgentReadied`); ready during after-contact
        work ends it (:class:`WrapUpOver`), as the agent's own ready would.  Raises
        :class:`PbxRefusedError` for an agent not logged in here, or one the PBX keeps not
        ready (on a break, leaving at the end of its shift)."""

    @abstractmethod
    def force_not_ready(self, agent_id: str, reason: str) -> None:
        """Make a logged-in agent not ready with ``reason`` (:class:`AgentUnready`): no new
        work; a call ringing at the agent goes back to the queue (:class:`CallNotAnswered`),
        one it talks to goes on.  Raises :class:`PbxRefusedError` for an agent not logged in
        here."""

    @abstractmethod
    def force_logout(self, agent_id: str) -> None:
        """Log the agent out (:class:`AgentLogout`), ending its after-contact work.  Refused
        (:class:`PbxRefusedError`) while a call rings at the agent or talks to it: a supervisor
        sets it not ready, and logs it out once the call ended (as ACDs do: logging out does
        not hang up on a caller), and for an agent not at this site.  An agent logged out
        already stays so."""
