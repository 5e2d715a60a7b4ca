"""The global router's core: site messages in, deliveries out, around one routing engine.

This is what a router actor hosts (:mod:`orchestrator.router_actor`), kept free of Ray and of
sockets so that it can be tested, replayed and benchmarked as plain code.  It owns:

* **site links**: per site, the sequence number of the next delta it expects; a gap or an
  event it cannot apply makes it ask that site for a snapshot and ignore deltas until then, so
  its view of a site is always a prefix of the site's history or a fresh copy of it;
* **reservations**: every engine assignment becomes a numbered reservation sent to the agent's
  site (and, for a call landed elsewhere, a transfer order to the landing site).  A reservation
  is settled by the site: confirmed (the agent answered), or rejected (the agent went not ready
  meanwhile, or let it ring out), in which case the engine puts the contact back at the head of
  its queue and routes it again.  A confirmation or rejection for a reservation that is no
  longer current (re-sent, or overtaken by a snapshot) changes nothing: no contact is delivered
  twice;
* **reconciliation**: a snapshot is the site's truth.  Agents are logged in or out and made
  ready or not to match it; calls the router thought alive but the site no longer has are
  ended; calls the site has that the router does not know are adopted (talking, ringing) or
  routed (queued).

Times: the engine runs on the router's clock (``now``, Unix seconds in production), which keeps
its timers monotonic whatever the sites' clocks say; a contact's arrival is the site's
timestamp, and NTP-level skew between sites only shifts waits by that skew.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from routing.engine import Router, RoutingError
from routing.model import AgentState, Assignment, Network
from routing.settings import RouterSettings
from site_agent.protocol import (
    Ack,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentStatus,
    ContactAbandoned,
    ContactArrived,
    ContactData,
    ContactFinished,
    ContactStatus,
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    Delta,
    LocallyRouted,
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    Withdraw,
    WrapUpEnded,
)

_RESYNC = "resynchronising"
LINK_DOWN = "site link down"

Outbound = tuple[str, Deliver | TransferOut | Withdraw | Ack | SnapshotRequest]
"""A message for a site: (site id, message)."""


class UnknownSiteError(LookupError):
    """A message from a site the configuration does not have (refused at the door)."""


@dataclass(slots=True)
class _Link:
    expected: int = 1
    synced: bool = False  # a snapshot has been applied since the last gap


@dataclass(slots=True)
class _Live:
    """A contact the router knows: its data, where the call is, and its current reservation."""

    data: ContactData
    landed_at: str
    reservation: int | None = None
    agent_id: str | None = None
    # Where the call was before the transfer its current reservation ordered.
    transferred_from: str | None = None


@dataclass(slots=True)
class RouterCounters:
    """Figures for monitoring the links and the decisions."""

    deltas: int = 0
    events: int = 0
    snapshots: int = 0
    gaps: int = 0
    refused_events: int = 0
    deliveries: int = 0
    confirmations: int = 0
    rejections: int = 0
    stale_settlements: int = 0
    withdrawals: int = 0
    adopted: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class GlobalRouter:
    """One shard of the router (the whole router when ``shards`` is 1).  Shards number their
    reservations apart (``shard`` modulo ``shards``), so a site can settle any reservation
    with whichever shard made it and numbers never collide."""

    def __init__(
        self,
        network: Network,
        settings: RouterSettings | None = None,
        *,
        shard: int = 0,
        shards: int = 1,
    ) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not one of {shards} shards")
        self.network = network
        self.engine = Router(network, settings)
        self.counters = RouterCounters()
        self._links = {site: _Link() for site in network.sites}
        self._live: dict[str, _Live] = {}
        self._shard, self._shards = shard, shards
        self._reservation = shard
        self._site_of_agent = {a.id: a.site_id for a in network.agents.values()}

    # ----------------------------------------------------------------- inputs

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> list[Outbound]:
        """Apply one message from a site; returns the messages to send to sites."""
        link = self._links.get(site_id)
        if link is None or message.site_id != site_id:
            raise UnknownSiteError(f"site {message.site_id!r} on the link of {site_id!r}")
        out: list[Outbound] = []
        if isinstance(message, Snapshot):
            self.counters.snapshots += 1
            self._reconcile(site_id, message, now, out)
            link.expected, link.synced = 1, True
            return out
        self.counters.deltas += 1
        if not link.synced:
            return out  # waiting for the snapshot asked for
        if message.seq != link.expected:
            self.counters.gaps += 1
            return self._resync(site_id, f"expected delta {link.expected}, got {message.seq}")
        for event in message.events:
            self.counters.events += 1
            self.counters.by_kind[event.kind] = self.counters.by_kind.get(event.kind, 0) + 1
            try:
                self._apply(site_id, event, now, out)
            except RoutingError as error:
                # The site and the router disagree: the site is the truth, ask for it.
                self.counters.refused_events += 1
                return [*out, *self._resync(site_id, f"{event.kind}: {error}")]
        link.expected += 1
        out.append((site_id, Ack(seq=message.seq)))
        return out

    def tick(self, now: float) -> list[Outbound]:
        """Fire the engine's timers due by ``now`` (time-outs, holds, wrap-up ends)."""
        out: list[Outbound] = []
        assignments = self.engine.advance(now)
        for redirect in self.engine.take_redirects():
            live = self._live.get(redirect.contact_id)
            if live is not None and live.reservation is not None:
                self.counters.withdrawals += 1
                site = self._site_of_agent[redirect.agent_id]
                out.append(
                    (site, Withdraw(reservation=live.reservation, contact_id=redirect.contact_id,
                                    agent_id=redirect.agent_id))
                )  # fmt: skip
                live.reservation = live.agent_id = None
        self._deliver(assignments, out)
        return out

    def next_timer(self) -> float | None:
        return self.engine.next_timer()

    def disconnected(self, site_id: str, now: float) -> list[Outbound]:
        """The site's link dropped: nothing more can be delivered there until its snapshot.

        Its agents are made not ready (the snapshot restores their presence), calls ringing
        there are taken back and routed again, and calls queued there are left to the site,
        which routes them locally meanwhile: the router forgets them (another site's agent
        could not pull them over a dead link), and the snapshot brings back those still
        waiting."""
        self._links[site_id].synced = False
        engine = self.engine
        out: list[Outbound] = []
        for agent_id, site in self._site_of_agent.items():
            if site == site_id and engine.agent_state(agent_id) is not AgentState.LOGGED_OUT:
                engine.set_not_ready(agent_id, now, LINK_DOWN)
        for contact_id, live in list(self._live.items()):
            ringing_here = (
                live.reservation is not None
                and live.agent_id is not None
                and (self._site_of_agent[live.agent_id] == site_id)
            )
            if ringing_here:
                live.reservation = live.agent_id = None
                if live.transferred_from is not None:
                    live.landed_at, live.transferred_from = live.transferred_from, None
                decision = engine.reject(contact_id, now, reason=LINK_DOWN)
                self._deliver([decision] if decision else [], out)
            elif live.landed_at == site_id and engine.is_waiting(contact_id):
                del self._live[contact_id]
                engine.abandon(contact_id, now)
        return out

    def needs_snapshot(self, site_id: str) -> bool:
        return not self._links[site_id].synced

    # ----------------------------------------------------------------- queries

    def contact_state(self, contact_id: str) -> str | None:
        """``queued``, ``ringing`` or ``talking`` (``None``: unknown or ended)."""
        live = self._live.get(contact_id)
        if live is None:
            return None
        if self.engine.is_waiting(contact_id):
            return "queued"
        return "ringing" if live.reservation is not None else "talking"

    def live_contacts(self) -> list[str]:
        return list(self._live)

    # ----------------------------------------------------------------- events

    def _apply(self, site_id: str, event: SiteEvent, now: float, out: list[Outbound]) -> None:
        engine = self.engine
        match event:
            case AgentLoggedIn(agent_id=agent_id, ready=ready, shift_end=shift_end):
                self._own(site_id, agent_id)
                self._deliver(engine.login(agent_id, now, ready=ready, shift_end=shift_end), out)
            case AgentReady(agent_id=agent_id):
                self._own(site_id, agent_id)
                self._deliver(engine.set_ready(agent_id, now), out)
            case AgentNotReady(agent_id=agent_id, reason=reason):
                self._own(site_id, agent_id)
                engine.set_not_ready(agent_id, now, reason)
            case AgentLoggedOut(agent_id=agent_id):
                self._own(site_id, agent_id)
                engine.logout(agent_id, now)
            case WrapUpEnded(agent_id=agent_id):
                self._own(site_id, agent_id)
                # The router's own wrap-up timer may have ended it first: nothing to do then.
                if engine.agent_state(agent_id) is AgentState.AFTER_CONTACT_WORK:
                    self._deliver(engine.end_wrap_up(agent_id, now), out)
            case ContactArrived(contact=data):
                self._offer(site_id, data, now, out)
            case DeliveryConfirmed(reservation=reservation, contact_id=contact_id):
                live = self._current(contact_id, reservation)
                if live is not None:
                    engine.answer(contact_id, now)
                    live.reservation = live.transferred_from = None
                    self.counters.confirmations += 1
            case DeliveryRejected(reservation=reservation, contact_id=contact_id, reason=reason):
                live = self._current(contact_id, reservation)
                if live is not None:
                    live.reservation = live.agent_id = None
                    self.counters.rejections += 1
                    decision = engine.reject(contact_id, now, reason=reason)
                    self._deliver([decision] if decision else [], out)
            case ContactFinished(contact_id=contact_id, wrap_up=wrap_up):
                self._live.pop(contact_id, None)
                self._deliver(engine.finish(contact_id, now, wrap_up=wrap_up), out)
            case ContactAbandoned(contact_id=contact_id):
                self._end(contact_id, now, out)
            case LocallyRouted(contact=data, agent_id=agent_id):
                self._own(site_id, agent_id)
                if self.contact_state(data.id) == "talking" and (
                    self.engine.delivered_to(data.id) == agent_id
                ):
                    return  # a report re-sent after a reconnect (or already in a snapshot)
                self._forget(data.id, now, out)
                self._adopt(site_id, data, agent_id, now, reservation=None)

    def _offer(self, site_id: str, data: ContactData, now: float, out: list[Outbound]) -> None:
        if data.id in self._live:
            raise RoutingError(f"contact {data.id!r} is already being routed")
        decision = self.engine.offer(data.to_contact(landed_at=site_id), now)
        self._live[data.id] = _Live(data=data, landed_at=site_id)
        self._deliver([decision] if decision else [], out)

    def _adopt(
        self, site_id: str, data: ContactData, agent_id: str, now: float, *, reservation: int | None
    ) -> None:
        """Record a call the site gave an agent: talking (``reservation`` None) or ringing
        under the site's reservation number, which its confirmation will name."""
        contact = data.to_contact(landed_at=site_id)
        self.engine.adopt(contact, agent_id, now, answered=reservation is None)
        self.counters.adopted += 1
        self._live[data.id] = _Live(
            data=data, landed_at=site_id, reservation=reservation, agent_id=agent_id
        )
        if reservation is not None and reservation > self._reservation:
            # Number the next ones above the site's, in this shard's residue class.
            steps = -(-(reservation - self._reservation) // self._shards)
            self._reservation += steps * self._shards

    def _end(self, contact_id: str, now: float, out: list[Outbound]) -> None:
        """The call is gone (hung up, or missing from a snapshot), wherever it was."""
        live = self._live.pop(contact_id, None)
        engine = self.engine
        if engine.is_waiting(contact_id):
            engine.abandon(contact_id, now)
        elif engine.delivered_to(contact_id) is not None:
            talking = live is not None and live.reservation is None
            ended = engine.finish if talking else engine.abandon
            self._deliver(ended(contact_id, now), out)

    def _forget(self, contact_id: str, now: float, out: list[Outbound]) -> None:
        """Drop the router's own idea of a call before taking the site's (adoption)."""
        if contact_id in self._live:
            self._end(contact_id, now, out)

    def _current(self, contact_id: str, reservation: int) -> _Live | None:
        live = self._live.get(contact_id)
        if live is None or live.reservation != reservation:
            self.counters.stale_settlements += 1
            return None
        return live

    def _own(self, site_id: str, agent_id: str) -> None:
        if self._site_of_agent.get(agent_id) != site_id:
            raise RoutingError(f"agent {agent_id!r} is not an agent of site {site_id!r}")

    def _deliver(self, assignments: Iterable[Assignment], out: list[Outbound]) -> None:
        for assignment in assignments:
            live = self._live[assignment.contact_id]
            self._reservation += self._shards
            live.reservation, live.agent_id = self._reservation, assignment.agent_id
            self.counters.deliveries += 1
            from_site = live.landed_at if live.landed_at != assignment.site_id else None
            out.append(
                (
                    assignment.site_id,
                    Deliver(
                        reservation=self._reservation,
                        contact=live.data,
                        agent_id=assignment.agent_id,
                        from_site=from_site,
                    ),
                )
            )
            if from_site is not None:
                out.append(
                    (
                        from_site,
                        TransferOut(
                            reservation=self._reservation,
                            contact_id=assignment.contact_id,
                            to_site=assignment.site_id,
                        ),
                    )
                )
                live.landed_at, live.transferred_from = assignment.site_id, from_site

    def _resync(self, site_id: str, reason: str) -> list[Outbound]:
        self._links[site_id].synced = False
        return [(site_id, SnapshotRequest(reason=reason))]

    # ----------------------------------------------------------------- snapshots

    def _reconcile(self, site_id: str, snapshot: Snapshot, now: float, out: list[Outbound]) -> None:
        """Make the router's view of the site equal to the snapshot: logins first (so the
        site's calls can be adopted by its agents), then calls, then presence (so agents made
        ready take waiting work only once every call is where the site says)."""
        engine = self.engine
        statuses = {
            s.agent_id: s for s in snapshot.agents if self._site_of_agent.get(s.agent_id) == site_id
        }
        self.counters.refused_events += len(snapshot.agents) - len(statuses)
        agents = [a for a, site in self._site_of_agent.items() if site == site_id]
        for agent_id, status in statuses.items():
            if status.logged_in and engine.agent_state(agent_id) is AgentState.LOGGED_OUT:
                engine.login(agent_id, now, ready=False, shift_end=status.shift_end)
        # No agent of the site takes work while its calls are being put right: one freed by a
        # call the site no longer has must not be handed a call the site gave someone else.
        for agent_id in agents:
            if engine.agent_state(agent_id) is not AgentState.LOGGED_OUT:
                engine.set_not_ready(agent_id, now, _RESYNC)
        on_site = {status.contact.id: status for status in snapshot.contacts}
        for contact_id, live in list(self._live.items()):
            if live.landed_at == site_id and contact_id not in on_site:
                self._end(contact_id, now, out)
        for contact_status in snapshot.contacts:
            try:
                self._take_status(site_id, contact_status, now, out)
            except RoutingError:
                self.counters.refused_events += 1
        for agent_id in agents:
            try:
                self._take_presence(agent_id, statuses.get(agent_id), now, out)
            except RoutingError:
                self.counters.refused_events += 1

    def _take_status(
        self, site_id: str, status: ContactStatus, now: float, out: list[Outbound]
    ) -> None:
        contact_id, live = status.contact.id, self._live.get(status.contact.id)
        if status.state == "queued":
            if live is not None and self.engine.is_waiting(contact_id):
                return
            self._forget(contact_id, now, out)
            self._offer(site_id, status.contact, now, out)
            return
        if status.agent_id is None:
            raise RoutingError(f"contact {contact_id!r} is {status.state} with no agent")
        self._own(site_id, status.agent_id)
        reservation = status.reservation if status.state == "ringing" else None
        if (
            live is not None
            and live.agent_id == status.agent_id
            and live.reservation == reservation
            and self.engine.delivered_to(contact_id) == status.agent_id
        ):
            return
        self._forget(contact_id, now, out)
        if status.state == "ringing" and reservation is None:
            raise RoutingError(f"contact {contact_id!r} rings with no reservation")
        self._adopt(site_id, status.contact, status.agent_id, now, reservation=reservation)

    def _take_presence(
        self, agent_id: str, status: AgentStatus | None, now: float, out: list[Outbound]
    ) -> None:
        engine = self.engine
        logged_in = engine.agent_state(agent_id) is not AgentState.LOGGED_OUT
        if status is None or not status.logged_in:
            if logged_in:
                engine.set_not_ready(agent_id, now, "logged out at the site")
                engine.logout(agent_id, now)
            return
        if not status.wrap_up and engine.agent_state(agent_id) is AgentState.AFTER_CONTACT_WORK:
            self._deliver(engine.end_wrap_up(agent_id, now), out)
        if status.ready and not engine.agent_ready(agent_id):
            self._deliver(engine.set_ready(agent_id, now), out)
        elif not status.ready:
            reason = status.reason or "not ready"
            if engine.agent_ready(agent_id) or engine.agent_reason(agent_id) != reason:
                engine.set_not_ready(agent_id, now, reason)
