"""The site's own routing engine, for when no router can be reached.

A site must keep answering calls when the WAN or the router is down, and route them as well as
it can alone: its own agents, its queues' policies (longest idle, most skilled, time-outs ...).
So the site agent runs the real engine (:class:`routing.engine.Router`) over the network as the
site sees it alone, and keeps it in step with the PBX **all the time**, not only while the
router is away: when the link drops, the engine already knows who is ready, who has been idle
longest and who is busy, and takes over within the same event.

While the router decides (``routing`` off), the engine holds agents and the calls they ring or
talk to, never a waiting call; waiting calls are the router's.  When the site routes on its own
(``routing`` on) the calls queued at the PBX are offered to it, and whatever it assigns the site
agent rings.  Handing back to the router takes the waiting calls out again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable
from functools import partial

from routing.engine import Router, RoutingError
from routing.model import AgentState, Assignment, Contact, Network, Redirect
from routing.settings import RouterSettings
from site_agent.pbx import (
    AgentLogin,
    AgentLogout,
    AgentReadied,
    AgentUnready,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerHungUp,
    CallNotAnswered,
    CallState,
    CallTransferred,
    PbxEvent,
    PbxState,
    WrapUpOver,
)

log = logging.getLogger(__name__)

# A logged-in agent found in after-contact work when the engine is loaded from the PBX's state:
# the engine has no call to put it in wrap-up with, so it is not ready until the wrap-up ends.
_IN_WRAP_UP = "wrap-up"


def site_network(network: Network, site_id: str) -> Network:
    """The network as one site sees it alone: that site and its agents, every queue."""
    if site_id not in network.sites:
        raise ValueError(f"unknown site {site_id!r}")
    return dataclasses.replace(
        network,
        sites={site_id: network.sites[site_id]},
        agents={a.id: a for a in network.agents.values() if a.site_id == site_id},
    )


class LocalRouter:
    """The routing engine of one site, mirroring its PBX."""

    def __init__(self, network: Network, site_id: str, settings: RouterSettings) -> None:
        self.site_id = site_id
        self.engine = Router(site_network(network, site_id), settings)
        self.routing = False
        # Calls the engine has at an agent: reserved (ringing) or active (talking).
        self._reserved: set[str] = set()
        self._active: set[str] = set()
        self._contacts: dict[str, Contact] = {}
        # Calls the engine itself took back (answer time-out): their "not answered" from the
        # PBX is already applied.
        self._redirected: set[str] = set()
        self._loaded_in_wrap_up: set[str] = set()
        # Events the engine refused (its view and the PBX's differed); 0 in a healthy run.
        self.mismatches = 0

    # ----------------------------------------------------------------- keeping in step

    def load(self, state: PbxState) -> None:
        """Start from the PBX's state (a site agent started while the site was running)."""
        at = state.at
        for agent in state.agents:
            if not agent.logged_in:
                continue
            ready = agent.ready and not agent.wrap_up
            self._decide(
                partial(
                    self.engine.login, agent.agent_id, at, ready=ready, shift_end=agent.shift_end
                )
            )
            if agent.wrap_up:
                self._loaded_in_wrap_up.add(agent.agent_id)
                self._do(partial(self.engine.set_not_ready, agent.agent_id, at, _IN_WRAP_UP))
        for call in state.calls:
            self._contacts[call.contact.id] = call.contact
            if call.agent_id is not None and call.state is not CallState.QUEUED:
                answered = call.state is CallState.TALKING
                self._adopt(call.contact, call.agent_id, at, answered=answered)

    def observe(self, event: PbxEvent) -> list[Assignment]:
        """Apply what happened at the PBX; returns assignments only while ``routing``."""
        decided: list[Assignment] = []
        match event:
            case AgentLogin(agent_id, at, ready, shift_end):
                decided = self._decide(
                    lambda: self.engine.login(agent_id, at, ready=ready, shift_end=shift_end)
                )
            case AgentReadied(agent_id, at):
                decided = self._ready(agent_id, at)
            case AgentUnready(agent_id, at, reason):
                self._loaded_in_wrap_up.discard(agent_id)
                self._do(lambda: self.engine.set_not_ready(agent_id, at, reason))
            case AgentLogout(agent_id, at):
                self._loaded_in_wrap_up.discard(agent_id)
                self._do(lambda: self.engine.logout(agent_id, at))
            case WrapUpOver(agent_id, at):
                decided = self._wrap_up_over(agent_id, at)
            case CallArrived(contact, at):
                self._contacts[contact.id] = contact
                if self.routing:
                    decided = self._decide(lambda: self.engine.offer(contact, at))
            case CallAnswered(contact_id, agent_id, at):
                self._answered(contact_id, agent_id, at)
            case CallNotAnswered(contact_id, _, at, _):
                decided = self._not_answered(contact_id, at)
            case CallEnded(contact_id, _, at, wrap_up):
                self._contacts.pop(contact_id, None)
                if contact_id in self._active:
                    self._active.discard(contact_id)
                    # The PBX says when wrap-up ends (WrapUpOver): the engine does not time it.
                    after = math.inf if wrap_up > 0 else 0.0
                    decided = self._decide(
                        lambda: self.engine.finish(contact_id, at, wrap_up=after)
                    )
            case CallerHungUp(contact_id, at) | CallTransferred(contact_id, _, at):
                self._contacts.pop(contact_id, None)
                self._redirected.discard(contact_id)
                if contact_id in self._reserved or self.engine.is_waiting(contact_id):
                    self._reserved.discard(contact_id)
                    decided = self._decide(lambda: self.engine.abandon(contact_id, at))
        return self._keep(decided, event.at)

    def contact(self, contact_id: str) -> Contact | None:
        """A call at the site, as the PBX reported it (``None`` once it ended or left)."""
        return self._contacts.get(contact_id)

    def taken_in(self, contact: Contact) -> None:
        """A call another site transferred here is queued at the PBX (no CallArrived)."""
        self._contacts[contact.id] = contact

    def ringing(self, contact: Contact, agent_id: str, at: float) -> None:
        """The router had the PBX ring one of our agents: that agent is busy."""
        self._contacts[contact.id] = contact
        self._adopt(contact, agent_id, at, answered=False)

    # ----------------------------------------------------------------- routing

    def start_routing(self, queued: Iterable[Contact], at: float) -> list[Assignment]:
        """The router is away: route the calls queued at the site (oldest first) and, from
        now on, every call that arrives."""
        self.routing = True
        decided: list[Assignment] = []
        for contact in sorted(queued, key=lambda c: (c.arrival, c.id)):
            self._contacts[contact.id] = contact
            if contact.id not in self._reserved and contact.id not in self._active:
                decided += self._decide(partial(self.engine.offer, contact, at))
        return decided

    def stop_routing(self, at: float) -> None:
        """The router is back: waiting calls are its own again (calls ringing stay rung)."""
        self.routing = False
        self._keep([], at)

    def reserved(self, contact_id: str) -> None:
        """An assignment of ours is ringing at the PBX."""
        self._reserved.add(contact_id)

    def refused(self, contact_id: str, at: float, reason: str) -> list[Assignment]:
        """The PBX would not ring the agent the engine chose: that agent is out of the local
        pool until the PBX says it is ready, and the call is routed again."""
        decided = self._decide(lambda: self.engine.reject(contact_id, at, reason=reason))
        return self._keep(decided, at)

    def next_timer(self) -> float | None:
        return self.engine.next_timer()

    def advance(self, now: float) -> tuple[list[Redirect], list[Assignment]]:
        """Fire the engine's timers (target time-outs, answer time-outs).  Redirects are rings
        the engine took back: stop them at the PBX before ringing the new assignments."""
        decided = self._decide(lambda: self.engine.advance(now))
        redirects = self.engine.take_redirects()
        for redirect in redirects:
            self._reserved.discard(redirect.contact_id)
            self._redirected.add(redirect.contact_id)
        return redirects, self._keep(decided, now)

    # ----------------------------------------------------------------- helpers

    def _adopt(self, contact: Contact, agent_id: str, at: float, *, answered: bool) -> None:
        if self._do(lambda: self.engine.adopt(contact, agent_id, at, answered=answered)):
            (self._active if answered else self._reserved).add(contact.id)

    def _answered(self, contact_id: str, agent_id: str, at: float) -> None:
        if contact_id in self._reserved:
            self._reserved.discard(contact_id)
            if self._do(lambda: self.engine.answer(contact_id, at)):
                self._active.add(contact_id)
            return
        contact = self._contacts.get(contact_id)
        if contact is not None:
            self._adopt(contact, agent_id, at, answered=True)

    def _ready(self, agent_id: str, at: float) -> list[Assignment]:
        self._loaded_in_wrap_up.discard(agent_id)
        return self._decide(lambda: self.engine.set_ready(agent_id, at))

    def _wrap_up_over(self, agent_id: str, at: float) -> list[Assignment]:
        if agent_id in self._loaded_in_wrap_up:
            return self._ready(agent_id, at)
        if self.engine.agent_state(agent_id) is AgentState.AFTER_CONTACT_WORK:
            return self._decide(lambda: self.engine.end_wrap_up(agent_id, at))
        return []

    def _not_answered(self, contact_id: str, at: float) -> list[Assignment]:
        if contact_id in self._redirected:
            self._redirected.discard(contact_id)
            return []
        if contact_id not in self._reserved:
            return []
        self._reserved.discard(contact_id)
        decided = self._decide(lambda: self.engine.abandon(contact_id, at))
        contact = self._contacts.get(contact_id)
        if self.routing and contact is not None:
            decided += self._decide(lambda: self.engine.offer(contact, at))
        return decided

    def _keep(self, decided: list[Assignment], at: float) -> list[Assignment]:
        """Assignments to ring.  While the router decides the engine holds no waiting call,
        so any assignment it made is undone and any call it queued is taken out again."""
        if self.routing:
            return decided
        for assignment in decided:
            self._do(partial(self.engine.abandon, assignment.contact_id, at))
        for contact_id in self.engine.waiting_contacts():
            self._do(partial(self.engine.abandon, contact_id, at))
        return []

    def _do(self, change: Callable[[], object]) -> bool:
        """Apply a change the engine may refuse; False (and counted, logged) if it did."""
        try:
            change()
        except RoutingError as error:
            self.mismatches += 1
            log.warning("site %s: local engine out of step with the PBX: %s", self.site_id, error)
            return False
        return True

    def _decide(
        self, change: Callable[[], list[Assignment] | Assignment | None]
    ) -> list[Assignment]:
        result: list[list[Assignment] | Assignment | None] = []
        if not self._do(lambda: result.append(change())):
            return []
        decided = result[0]
        if decided is None:
            return []
        return decided if isinstance(decided, list) else [decided]
