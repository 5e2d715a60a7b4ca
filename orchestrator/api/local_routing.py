""":class:`LocalRouting`: the routing service in process, for tests and the embedded demo.

It plays every site's part towards one :class:`GlobalRouter`, over the router's own input
(sequence-numbered deltas, a snapshot first and whenever the router asks), so contacts and agents
changed through the API take the same path as a site agent's, and the router's reservations come
back as they would to a site.  What a site would do with them it records in the
``ContactStore``: a delivery is ``reserved``, a transfer order ``transferred``, a withdrawal
(no answer) ``redirected``.  With no PBX behind it, calls are answered, finished or abandoned
only when told (:meth:`LocalRouting.answer`, :meth:`finish`, :meth:`abandon`: what a site agent
would report).

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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.api.routing import (
    AgentCounts,
    AgentLiveState,
    ContactRequest,
    LiveContactState,
    LogoutChange,
    NotReadyChange,
    QueueRealtime,
    QueueSiteRealtime,
    ReadyChange,
    RealtimeStats,
    RouteOutcome,
    RoutingConflictError,
    RoutingRefusedError,
    SiteRealtime,
    SkillRealtime,
)
from orchestrator.global_router import GlobalRouter, Outbound
from orchestrator.persistence import (
    ContactStore,
    Database,
    DuplicateContactError,
    NotFoundError,
    RouteEventKind,
)
from routing.model import AgentState, Network
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
    Delta,
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    Withdraw,
    WrapUpEnded,
)

Clock = Callable[[], float]

_BUSY = frozenset({AgentState.RESERVED, AgentState.ON_CONTACT})


@dataclass(slots=True)
class _Call:
    """A live contact as its site sees it: where it is, and which agent it rings or talks to."""

    data: ContactData
    site: str
    state: LiveContactState = "queued"
    agent: str | None = None
    reservation: int | None = None


class LocalRouting:
    """:class:`~orchestrator.api.routing.RoutingService` over a :class:`GlobalRouter`."""

    def __init__(
        self, router: GlobalRouter, contacts: ContactStore, *, clock: Clock = time.time
    ) -> None:
        self._router = router
        self._contacts = contacts
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = dict.fromkeys(router.network.sites, 0)
        self._calls: dict[str, _Call] = {}
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
        return cls(GlobalRouter(network, settings), database.contacts, clock=clock)

    @property
    def router(self) -> GlobalRouter:
        return self._router

    @property
    def network(self) -> Network:
        return self._router.network

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
        """Fire the router's timers due now."""
        self._locked(lambda _now: None)

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
            return operation(now, *args)

    def _route_contact(self, now: float, request: ContactRequest) -> RouteOutcome:
        self._check_contact(request)
        data = ContactData(
            id=request.id,
            queue_id=request.queue,
            arrival=now,
            channel=request.channel,
            caller_region=request.caller_region,
            priority=request.priority,
            required_skills=request.required_skills,
            customer_id=request.customer_id,
            attributes=request.attributes,
            preferred_site=request.preferred_site,
        )
        site = request.landing_site
        self._contacts.create(
            contact_id=request.id,
            queue=request.queue,
            channel=request.channel,
            caller_region=request.caller_region,
            landing_site=site,
            at=_at(now),
            detail=request.model_dump(
                mode="json",
                include={
                    "priority",
                    "required_skills",
                    "customer_id",
                    "attributes",
                    "preferred_site",
                },
                exclude_defaults=True,
            ),
        )
        call = self._calls[request.id] = _Call(data=data, site=site)
        self._send(site, now, ContactArrived(contact=data, at=now))
        if call.state == "queued":
            self._record(request.id, RouteEventKind.QUEUED, now, site=site)
        return RouteOutcome(
            contact_id=request.id,
            state=call.state,
            agent_id=call.agent,
            site_id=call.site if call.agent is not None else None,
        )

    def _check_contact(self, request: ContactRequest) -> None:
        network = self.network
        queue = network.queues.get(request.queue)
        problems = []
        if queue is None:
            problems.append(f"unknown queue {request.queue!r}")
        elif request.channel is not queue.channel:
            problems.append(
                f"queue {queue.id!r} takes {queue.channel} contacts, not {request.channel}"
            )
        for field, site in (
            ("landing", request.landing_site),
            ("preferred", request.preferred_site),
        ):
            if site is not None and site not in network.sites:
                problems.append(f"unknown {field} site {site!r}")
        unknown = sorted(set(request.required_skills) - network.skills)
        if unknown:
            problems.append(f"unknown required skill(s) {unknown}")
        if problems:
            raise RoutingRefusedError(f"contact {request.id!r}: " + "; ".join(problems))
        if request.id in self._calls:
            raise DuplicateContactError(f"contact {request.id!r} is being routed")

    def _change_agent_state(
        self, now: float, agent_id: str, change: ReadyChange | NotReadyChange | LogoutChange
    ) -> AgentLiveState:
        site = self._site_of(agent_id)
        state = self._router.engine.agent_state(agent_id)
        logged_out = state is AgentState.LOGGED_OUT
        events: list[SiteEvent] = []
        match change:
            case ReadyChange():
                if logged_out:
                    events.append(AgentLoggedIn(agent_id=agent_id, at=now, ready=True))
                else:
                    events.append(AgentReady(agent_id=agent_id, at=now))
                if state is AgentState.AFTER_CONTACT_WORK:
                    # Ready during wrap-up ends it, as on an agent's phone.
                    events.append(WrapUpEnded(agent_id=agent_id, at=now))
            case NotReadyChange(reason=reason):
                if logged_out:
                    events.append(AgentLoggedIn(agent_id=agent_id, at=now, ready=False))
                events.append(AgentNotReady(agent_id=agent_id, at=now, reason=reason))
            case LogoutChange():
                if state in _BUSY:
                    raise RoutingConflictError(
                        f"agent {agent_id!r} is {state}: set not ready, and log out once the "
                        "contact ends"
                    )
                if not logged_out:
                    events.append(AgentLoggedOut(agent_id=agent_id, at=now))
        if events:
            self._send(site, now, *events)
        return self._agent_state(now, agent_id)

    def _agent_state(self, _now: float, agent_id: str) -> AgentLiveState:
        site = self._site_of(agent_id)
        engine = self._router.engine
        state = engine.agent_state(agent_id)
        since = engine.agent_state_since(agent_id)
        never = state is AgentState.LOGGED_OUT and since == 0.0
        return AgentLiveState(
            agent_id=agent_id,
            site_id=site,
            state=state,
            reason=engine.agent_reason(agent_id),
            since=None if never else _at(since),
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
        call.state, call.reservation = "talking", None
        self._record(contact_id, RouteEventKind.CONFIRMED, now, site=call.site, agent=call.agent)

    def _finish(self, now: float, contact_id: str, wrap_up: float | None) -> None:
        call = self._call(contact_id, "talking")
        del self._calls[contact_id]
        self._record(contact_id, RouteEventKind.FINISHED, now, site=call.site, agent=call.agent)
        self._send(call.site, now, ContactFinished(contact_id=contact_id, at=now, wrap_up=wrap_up))

    def _abandon(self, now: float, contact_id: str) -> None:
        call = self._call(contact_id, "queued", "ringing")
        del self._calls[contact_id]
        self._record(contact_id, RouteEventKind.ABANDONED, now, site=call.site, agent=call.agent)
        self._send(call.site, now, ContactAbandoned(contact_id=contact_id, at=now))

    # ----------------------------------------------------------------- statistics

    def _realtime_stats(self, now: float, site: str | None, queue: str | None) -> RealtimeStats:
        network, engine = self.network, self._router.engine
        if site is not None and site not in network.sites:
            raise NotFoundError(f"no site {site!r} in the running router")
        if queue is not None and queue not in network.queues:
            raise NotFoundError(f"no queue {queue!r} in the running router")
        sites = [site] if site is not None else sorted(network.sites)
        queues = [queue] if queue is not None else sorted(network.queues)

        by_site: dict[str, Counter[AgentState]] = {s: Counter() for s in sites}
        by_skill: dict[str, Counter[AgentState]] = {s: Counter() for s in sorted(network.skills)}
        for profile in network.agents.values():
            if profile.site_id in by_site:
                state = engine.agent_state(profile.id)
                by_site[profile.site_id][state] += 1
                for skill in profile.skills:
                    by_skill[skill][state] += 1

        calls = [
            call
            for call in self._calls.values()
            if (site is None or call.site == site)
            and (queue is None or call.data.queue_id == queue)
        ]
        waiting = [call for call in calls if call.state == "queued"]
        needs = {
            q.id: q.targets[0].expression.names() if q.targets else frozenset()
            for q in network.queues.values()
        }

        def needed(call: _Call, skill: str) -> bool:
            return skill in call.data.required_skills or skill in needs[call.data.queue_id]

        def queue_row(queue_id: str) -> QueueRealtime:
            rows = []
            for site_id in sites:
                load = engine.site_load(queue_id, site_id)
                ewt = engine.predicted_wait(network.queues[queue_id], site_id, now)
                rows.append(
                    QueueSiteRealtime(
                        site=site_id,
                        staffed=load.staffed,
                        ready=load.ready,
                        waiting=load.waiting,
                        ewt_seconds=ewt,
                    )
                )
            mine = [call for call in calls if call.data.queue_id == queue_id]
            queued = [call for call in mine if call.state == "queued"]
            return QueueRealtime(
                queue=queue_id,
                channel=network.queues[queue_id].channel,
                waiting=len(queued),
                ringing=sum(call.state == "ringing" for call in mine),
                talking=sum(call.state == "talking" for call in mine),
                longest_wait_seconds=_longest(queued, now),
                staffed=sum(row.staffed for row in rows),
                ready=sum(row.ready for row in rows),
                sites=rows,
            )

        return RealtimeStats(
            at=_at(now),
            site=site,
            queue=queue,
            sites=[
                SiteRealtime(
                    site=site_id,
                    status=engine.site_status(site_id, now) or "unknown",
                    open=bool(engine.site_open(site_id)),
                    agents=_counts(by_site[site_id]),
                    waiting=sum(call.site == site_id for call in waiting),
                    longest_wait_seconds=_longest(
                        [call for call in waiting if call.site == site_id], now
                    ),
                )
                for site_id in sites
            ],
            queues=[queue_row(queue_id) for queue_id in queues],
            skills=[
                SkillRealtime(
                    skill=skill,
                    agents=_counts(counts),
                    waiting=sum(needed(call, skill) for call in waiting),
                    longest_wait_seconds=_longest(
                        [call for call in waiting if needed(call, skill)], now
                    ),
                )
                for skill, counts in by_skill.items()
            ],
        )

    # ----------------------------------------------------------------- the link

    def _send(self, site: str, now: float, *events: SiteEvent) -> None:
        if self._router.needs_snapshot(site):
            self._resync(site, now)
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
        self._handle(self._router.receive(site, snapshot, now), now)

    def _handle(self, out: Iterable[Outbound], now: float) -> None:
        """Do what a site does with the router's messages, and record it."""
        refused = []
        for site, message in out:
            match message:
                case Deliver(reservation=reservation, contact=data, agent_id=agent, from_site=src):
                    call = self._calls[data.id]
                    call.site, call.state = site, "ringing"
                    call.agent, call.reservation = agent, reservation
                    detail = {"reservation": reservation, "from_site": src}
                    self._record(
                        data.id, RouteEventKind.RESERVED, now, site=site, agent=agent, detail=detail
                    )
                case TransferOut(reservation=reservation, contact_id=contact_id, to_site=to_site):
                    detail = {"reservation": reservation, "from_site": site}
                    self._record(
                        contact_id, RouteEventKind.TRANSFERRED, now, site=to_site, detail=detail
                    )
                case Withdraw(reservation=reservation, contact_id=contact_id, agent_id=agent):
                    call = self._calls[contact_id]
                    if call.reservation == reservation:
                        call.state, call.agent, call.reservation = "queued", None, None
                    detail = {"reservation": reservation, "reason": "no answer"}
                    self._record(
                        contact_id,
                        RouteEventKind.REDIRECTED,
                        now,
                        site=site,
                        agent=agent,
                        detail=detail,
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

    def _record(
        self,
        contact_id: str,
        kind: RouteEventKind,
        now: float,
        *,
        site: str | None = None,
        agent: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self._contacts.record(contact_id, kind, at=_at(now), site=site, agent=agent, detail=detail)

    def _site_of(self, agent_id: str) -> str:
        profile = self.network.agents.get(agent_id)
        if profile is None:
            raise NotFoundError(f"no agent {agent_id!r} in the running router")
        return profile.site_id

    def _call(self, contact_id: str, *states: LiveContactState) -> _Call:
        call = self._calls.get(contact_id)
        if call is None:
            raise NotFoundError(f"no live contact {contact_id!r}")
        if call.state not in states:
            raise RoutingConflictError(f"contact {contact_id!r} is {call.state}")
        return call


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _longest(calls: list[_Call], now: float) -> float | None:
    return max((now - call.data.arrival for call in calls), default=None)


def _counts(states: Counter[AgentState]) -> AgentCounts:
    logged_in = sum(n for state, n in states.items() if state is not AgentState.LOGGED_OUT)
    return AgentCounts(
        staffed=logged_in,
        ready=states[AgentState.READY],
        not_ready=states[AgentState.NOT_READY],
        busy=states[AgentState.RESERVED] + states[AgentState.ON_CONTACT],
        reserved=states[AgentState.RESERVED],
        on_contact=states[AgentState.ON_CONTACT],
        after_contact_work=states[AgentState.AFTER_CONTACT_WORK],
        logged_out=states[AgentState.LOGGED_OUT],
    )
