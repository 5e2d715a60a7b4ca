""":class:`LocalRouting`: the routing service in process, for tests and a one-process router.

It plays every site's part towards one :class:`GlobalRouter`, over the router's own input
(sequence-numbered deltas, a snapshot first and whenever the router asks), so contacts and agents
changed through the API take the same path as a site agent's, and the router's reservations come
back as they would to a site.  What a site would do with them it records
(:class:`~orchestrator.api.live.ContactHistory`, shared with the Ray-backed service): in the
``ContactStore`` a delivery is ``reserved``, a transfer order ``transferred``, a withdrawal (no
answer) ``redirected``; with an ``IntervalStore`` (:meth:`LocalRouting.from_database` passes
the database's), the 15-minute counters add up as contacts arrive, are answered and end.
With no PBX behind it, calls are answered, finished or abandoned only when told
(:meth:`LocalRouting.answer`, :meth:`finish`, :meth:`abandon`: what a site agent would report).
Agents' staffed time counts from the presence events and snapshots it sends, as the history
counts it for a site's (:class:`~orchestrator.api.live.StaffedTime`): intervals are written as
the clock passes their end (on the next call), the running one every minute and on
:meth:`LocalRouting.close`.  Site statuses and expected waits in real-time statistics come from
the statistics pulses the router makes of its own view
(:meth:`~orchestrator.global_router.GlobalRouter.pulse`).

Requests are checked against the router's view before they are sent: the router treats an event
it cannot apply as the site and router having drifted apart and asks for a snapshot, which is
right for a site's report and wrong for a caller's mistake, which is refused here instead.

The router runs on ``clock()`` (Unix seconds); its timers (target time-outs, wrap-up ends,
answer time-outs) fire on the next call, or on :meth:`LocalRouting.tick`.  Calls are serialised
by a lock and run in a worker thread, so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.api.live import (
    Clock,
    ContactHistory,
    LiveCall,
    agent_change_events,
    check_contact,
    contact_data,
    live_agent,
    offer_detail,
    realtime_stats,
    site_of_agent,
)
from orchestrator.api.routing import (
    AgentLiveState,
    ContactRequest,
    LiveContactState,
    LogoutChange,
    NotReadyChange,
    ReadyChange,
    RealtimeStats,
    RouteOutcome,
    RoutingConflictError,
)
from orchestrator.global_router import GlobalRouter, Outbound
from orchestrator.persistence import (
    ContactStore,
    Database,
    IntervalStore,
    NotFoundError,
)
from routing.model import AgentState, Network
from routing.settings import RouterSettings
from site_agent.protocol import (
    Ack,
    AgentStatus,
    ContactAbandoned,
    ContactArrived,
    ContactFinished,
    ContactStatus,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    Delta,
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    Withdraw,
)


class LocalRouting:
    """:class:`~orchestrator.api.routing.RoutingService` over a :class:`GlobalRouter`."""

    def __init__(
        self,
        router: GlobalRouter,
        contacts: ContactStore,
        *,
        intervals: IntervalStore | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._router = router
        self._history = ContactHistory(router.network, contacts, intervals)
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = dict.fromkeys(router.network.sites, 0)
        now = clock()
        with self._lock:
            for site in sorted(router.network.sites):
                self._resync(site, now)

    @classmethod
    def from_database(
        cls,
        database: Database,
        settings: RouterSettings | None = None,
        *,
        clock: Clock = time.time,
    ) -> LocalRouting:
        """A router on the stored configuration (which needs at least one queue)."""
        network = database.config.snapshot().network
        return cls(
            GlobalRouter(network, settings),
            database.contacts,
            intervals=database.intervals,
            clock=clock,
        )

    @property
    def router(self) -> GlobalRouter:
        return self._router

    @property
    def network(self) -> Network:
        return self._router.network

    @property
    def _calls(self) -> dict[str, LiveCall]:
        return self._history.calls

    # ----------------------------------------------------------------- RoutingService

    async def route_contact(self, request: ContactRequest) -> RouteOutcome:
        return await asyncio.to_thread(self._locked, self._route_contact, request)

    async def change_agent_state(
        self, agent_id: str, change: ReadyChange | NotReadyChange | LogoutChange
    ) -> AgentLiveState:
        return await asyncio.to_thread(self._locked, self._change_agent_state, agent_id, change)

    async def agent_state(self, agent_id: str) -> AgentLiveState:
        return await asyncio.to_thread(self._locked, self._agent_state, agent_id)

    async def contact_state(self, contact_id: str) -> LiveContactState | None:
        return await asyncio.to_thread(self._locked, self._contact_state, contact_id)

    async def realtime_stats(
        self, *, site: str | None = None, queue: str | None = None
    ) -> RealtimeStats:
        return await asyncio.to_thread(self._locked, self._realtime_stats, site, queue)

    # ----------------------------------------------------------------- the sites' reports

    def tick(self) -> None:
        """Fire the router's timers due now (and write the staffed time due)."""
        self._locked(lambda _now: None)

    def close(self) -> None:
        """Write the agents' staffed time up to now, the running interval's included (at
        shutdown: it stops counting)."""
        self._locked(self._history.close)

    def answer(self, contact_id: str) -> None:
        """The ringing agent answered."""
        self._locked(self._answer, contact_id)

    def finish(self, contact_id: str, *, wrap_up: float | None = None) -> None:
        """The call ended; ``wrap_up`` overrides the queue's after-contact work time."""
        self._locked(self._finish, contact_id, wrap_up)

    def abandon(self, contact_id: str) -> None:
        """The caller hung up while waiting or ringing."""
        self._locked(self._abandon, contact_id)

    # ----------------------------------------------------------------- under the lock

    def _locked(self, operation: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            now = self._clock()
            self._handle(self._router.tick(now), now)
            self._history.advance(now)
            return operation(now, *args)

    def _route_contact(self, now: float, request: ContactRequest) -> RouteOutcome:
        check_contact(self.network, request, self._calls)
        data = contact_data(request, now)
        site = request.landing_site
        call = self._history.offered(data, site, now, detail=offer_detail(request))
        self._send(site, now, ContactArrived(contact=data, at=now))
        if call.state == "queued":
            self._history.queued(request.id, now)
        return RouteOutcome(
            contact_id=request.id,
            state=call.state,
            agent_id=call.agent,
            site_id=call.site if call.agent is not None else None,
        )

    def _change_agent_state(
        self, now: float, agent_id: str, change: ReadyChange | NotReadyChange | LogoutChange
    ) -> AgentLiveState:
        site = site_of_agent(self.network, agent_id)
        state = self._router.engine.agent_state(agent_id)
        events = agent_change_events(agent_id, state, change, now)
        if events:
            self._send(site, now, *events)
        return self._agent_state(now, agent_id)

    def _agent_state(self, _now: float, agent_id: str) -> AgentLiveState:
        site = site_of_agent(self.network, agent_id)
        engine = self._router.engine
        return live_agent(
            agent_id,
            site,
            engine.agent_state(agent_id),
            engine.agent_reason(agent_id),
            engine.agent_state_since(agent_id),
        )

    def _contact_state(self, _now: float, contact_id: str) -> LiveContactState | None:
        if self._router.contact_state(contact_id) is None:
            return None
        return self._calls[contact_id].state

    def _answer(self, now: float, contact_id: str) -> None:
        call = self._call(contact_id, "ringing")
        assert call.reservation is not None and call.agent is not None
        self._send(
            call.site,
            now,
            DeliveryConfirmed(reservation=call.reservation, contact_id=contact_id, at=now),
        )
        self._history.answered(contact_id, now)

    def _finish(self, now: float, contact_id: str, wrap_up: float | None) -> None:
        call = self._call(contact_id, "talking")
        self._history.finished(contact_id, now, wrap_up=wrap_up)
        self._send(call.site, now, ContactFinished(contact_id=contact_id, at=now, wrap_up=wrap_up))

    def _abandon(self, now: float, contact_id: str) -> None:
        call = self._call(contact_id, "queued", "ringing")
        self._history.abandoned(contact_id, now)
        self._send(call.site, now, ContactAbandoned(contact_id=contact_id, at=now))

    def _realtime_stats(self, now: float, site: str | None, queue: str | None) -> RealtimeStats:
        return realtime_stats(
            self.network, self._router.engine, self._calls.values(), now, site=site, queue=queue
        )

    # ----------------------------------------------------------------- the link

    def _send(self, site: str, now: float, *events: SiteEvent) -> None:
        if self._router.needs_snapshot(site):
            self._resync(site, now)
        for event in events:
            self._history.presence(site, event)
        self._seq[site] += 1
        delta = Delta(site_id=site, seq=self._seq[site], events=list(events))
        self._handle(self._router.receive(site, delta, now), now)

    def _resync(self, site: str, now: float) -> None:
        """Send the site's whole state: its agents as the router last had them, its calls as
        this side knows them."""
        engine = self._router.engine
        agents = []
        for agent_id in sorted(a.id for a in self.network.agents.values() if a.site_id == site):
            state = engine.agent_state(agent_id)
            agents.append(
                AgentStatus(
                    agent_id=agent_id,
                    logged_in=state is not AgentState.LOGGED_OUT,
                    ready=engine.agent_ready(agent_id),
                    reason=engine.agent_reason(agent_id),
                    wrap_up=state is AgentState.AFTER_CONTACT_WORK,
                )
            )
        contacts = [
            ContactStatus(
                contact=call.data,
                state=call.state,
                agent_id=call.agent,
                reservation=call.reservation,
            )
            for call in self._calls.values()
            if call.site == site
        ]
        self._seq[site] = 0
        snapshot = Snapshot(site_id=site, at=now, agents=agents, contacts=contacts)
        self._history.staffed.snapshot(site, snapshot)
        self._handle(self._router.receive(site, snapshot, now), now)

    def _handle(self, out: Iterable[Outbound], now: float) -> None:
        """Do what a site does with the router's messages, and record it."""
        history = self._history
        refused = []
        for site, message in out:
            match message:
                case Deliver(reservation=reservation, contact=data, agent_id=agent, from_site=src):
                    detail = {"reservation": reservation, "from_site": src}
                    history.reserved(data.id, site, agent, reservation, now, detail=detail)
                case TransferOut(reservation=reservation, contact_id=contact_id, to_site=to_site):
                    # The landing site sends the call on and confirms at once; the router's
                    # Deliver at the destination follows (recorded inside this call, first).
                    confirm = ContactTransferred(
                        reservation=reservation, contact_id=contact_id, to_site=to_site, at=now
                    )
                    self._send(site, now, confirm)
                    detail = {"reservation": reservation, "from_site": site}
                    history.transferred(contact_id, to_site, now, detail=detail)
                case Withdraw(reservation=reservation, contact_id=contact_id):
                    history.taken_back(
                        contact_id, reservation, now, redirected=True, reason="no answer"
                    )
                case SnapshotRequest(reason=reason):
                    refused.append((site, reason))
                case Ack():
                    pass
        for site, _reason in refused:
            self._resync(site, now)
        if refused:
            # The checks above let through something the router could not apply: a bug here.
            raise RuntimeError(f"the router refused an event and resynchronised: {refused}")

    # ----------------------------------------------------------------- helpers

    def _call(self, contact_id: str, *states: LiveContactState) -> LiveCall:
        call = self._calls.get(contact_id)
        if call is None:
            raise NotFoundError(f"no live contact {contact_id!r}")
        if call.state not in states:
            raise RoutingConflictError(f"contact {contact_id!r} is {call.state}")
        return call
