"""What the routing services share (:class:`~orchestrator.api.local_routing.LocalRouting` in
process, :class:`~orchestrator.ray_routing.RayRouting` over the router's shards).

* requests checked against the configuration before anything is sent (:func:`check_contact`),
  and a contact request as the router's input (:func:`contact_data`);
* an agent's state change as the site events that make it (:func:`agent_change_events`);
* :class:`ContactHistory`: every live contact as its sites see it (:class:`LiveCall`), and what
  happens to it recorded as it happens: route events in the ``ContactStore``, and 15-minute
  interval counters in the ``IntervalStore``;
* real-time statistics from an engine's figures and the live contacts (:func:`realtime_stats`).

**Interval counters.**  Everything about a contact counts in the interval, site and queue it
was offered in (its arrival, its landing site), so that each row's service level is "of the
contacts offered then and there": ``offered`` when it arrives; ``answered``, the wait (for
ASA) and ``answered_within_sl`` (the queue's ``sl_threshold``) when its agent answers;
``handle_seconds`` (talk plus after-contact work) and ``cost`` when it ends, or ``abandoned``
and its trunk cost when the caller hangs up before an answer.  Cost is the simulator's model:
trunk minutes at the landing site's tariff from arrival to the end, the transfer fee and
per-minute price from the transfer on, and the serving site's labour for talk and wrap-up.

**Staffed time** (for occupancy = handle time / staffed time) belongs to agents, not contacts:
:class:`StaffedTime` counts each logged-in agent's seconds from the agents' presence as the
sites report it (logged in, out; any other presence event of an agent not counted means it is
logged in; a snapshot starts every agent it lists logged in and stops every other agent of its
site, at its time), split at the 15-minute boundaries, in the agent's own site, and per queue
as follows: while the agent works on contacts (from the answer to the end of the after-contact
work, the span its ``handle_seconds`` counts) its time goes to those contacts' queues; the rest
(ready, ringing, not ready) is split equally over the queues the agent can serve (any target;
every queue for an agent no queue can use).  So a site's rows, and the whole network's, sum to
its agents' staffed time exactly, and a queue's row gets the time its agents spent on it plus
their share of the idle time.  Completed intervals are written when the clock passes their end
(on the next event or call after it), the running one every ``checkpoint`` seconds and on
:meth:`ContactHistory.close`: counters are additive, so a partial write is never counted twice.
Known limits: handle time counts at the contact's landing site, staffed time at the agent's,
so a site's occupancy reads the work landed there over its own agents' time (exact for the
network, and for a site whose contacts are served at home); and a router (re)started counts
each site's agents from that site's first snapshot.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

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
    RoutingConflictError,
    RoutingRefusedError,
    SiteRealtime,
    SkillRealtime,
)
from orchestrator.global_router import profile_kind, qualifies
from orchestrator.persistence import (
    ContactDetail,
    ContactStore,
    Counters,
    DuplicateContactError,
    IntervalStore,
    NotFoundError,
    RouteEventKind,
)
from orchestrator.persistence import ContactStatus as StoredStatus
from routing.engine import SiteLoad
from routing.model import AgentState, Network, Queue
from site_agent.protocol import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    ContactData,
    SiteEvent,
    Snapshot,
    WrapUpEnded,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Writer = Callable[[Callable[[], object]], None]
"""Runs a store operation: at once (raising what it raises), or queued in order."""

BUSY = frozenset({AgentState.RESERVED, AgentState.ON_CONTACT})
SECONDS_PER_MINUTE = 60.0
SECONDS_PER_HOUR = 3600.0
INTERVAL_SECONDS = 900.0
CHECKPOINT_SECONDS = 60.0
"""How often the running interval's staffed time is written (clock seconds)."""


def at_time(seconds: float, epoch: float = 0.0) -> datetime:
    """A clock reading as a UTC time; ``epoch`` is the Unix time of the clock's zero."""
    return datetime.fromtimestamp(epoch + seconds, UTC)


# ------------------------------------------------------------------ requests


def check_contact(network: Network, request: ContactRequest, live: Container[str]) -> None:
    """Refuse a request the router could not take as given (:class:`RoutingRefusedError`), or
    a contact id being routed now (:class:`DuplicateContactError`)."""
    queue = network.queues.get(request.queue)
    problems = []
    if queue is None:
        problems.append(f"unknown queue {request.queue!r}")
    elif request.channel is not queue.channel:
        problems.append(f"queue {queue.id!r} takes {queue.channel} contacts, not {request.channel}")
    for role, site in (("landing", request.landing_site), ("preferred", request.preferred_site)):
        if site is not None and site not in network.sites:
            problems.append(f"unknown {role} site {site!r}")
    unknown = sorted(set(request.required_skills) - network.skills)
    if unknown:
        problems.append(f"unknown required skill(s) {unknown}")
    if problems:
        raise RoutingRefusedError(f"contact {request.id!r}: " + "; ".join(problems))
    if request.id in live:
        raise DuplicateContactError(f"contact {request.id!r} is being routed")


def contact_data(request: ContactRequest, now: float) -> ContactData:
    """The request as the router's input: a contact arriving ``now``."""
    return ContactData(
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


def offer_detail(request: ContactRequest) -> dict[str, Any]:
    """What the ``offered`` route event keeps of a request beyond the contact's columns."""
    return request.model_dump(
        mode="json",
        include={"priority", "required_skills", "customer_id", "attributes", "preferred_site"},
        exclude_defaults=True,
    )


def site_of_agent(network: Network, agent_id: str) -> str:
    profile = network.agents.get(agent_id)
    if profile is None:
        raise NotFoundError(f"no agent {agent_id!r} in the running router")
    return profile.site_id


def agent_change_events(
    agent_id: str,
    state: AgentState,
    change: ReadyChange | NotReadyChange | LogoutChange,
    now: float,
) -> list[SiteEvent]:
    """The site events that take an agent in ``state`` where ``change`` asks (none when it is
    there); :class:`RoutingConflictError` for logging out an agent with a contact."""
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
            if state in BUSY:
                raise RoutingConflictError(
                    f"agent {agent_id!r} is {state}: set not ready, and log out once the "
                    "contact ends"
                )
            if not logged_out:
                events.append(AgentLoggedOut(agent_id=agent_id, at=now))
    return events


def live_agent(
    agent_id: str,
    site: str,
    state: AgentState,
    reason: str | None,
    since: float,
    *,
    epoch: float = 0.0,
) -> AgentLiveState:
    never = state is AgentState.LOGGED_OUT and since == 0.0
    return AgentLiveState(
        agent_id=agent_id,
        site_id=site,
        state=state,
        reason=reason,
        since=None if never else at_time(since, epoch),
    )


# ------------------------------------------------------------------ live contacts, recorded


@dataclass(slots=True)
class LiveCall:
    """A live contact as its sites see it: where it is, and which agent it rings or talks to."""

    data: ContactData
    landing: str  # where it was offered: its statistics count there
    site: str  # where it is now
    state: LiveContactState = "queued"
    agent: str | None = None
    reservation: int | None = None
    reserved: bool = False  # ever offered to an agent
    answered_at: float | None = None
    transferred_at: float | None = None  # first move off the landing site
    local: bool = False  # its site gave it to an agent while no router was reachable
    in_transit: bool = False  # left ``site`` by transfer, not yet taken in where it goes
    held: bool = False  # created through the API and not yet at any site (RayRouting)
    # Resumed in transit (sent to ``site`` before this router started, from a site or the
    # API) on this transfer order: ``site`` lists it as received once it took the call in.
    transit_order: int | None = None
    # Sites whose next snapshot, not having the call in transit (nor the site it left still
    # listing it sent away), says it is nowhere: both PBXs lost it (restarted meanwhile).
    awaiting: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return self.data.id


@dataclass(slots=True)
class SiteTally:
    """Contacts by landing site since start, as the history saw them."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    transfers: int = 0
    local_fallbacks: int = 0


def _immediately(operation: Callable[[], object]) -> None:
    operation()


# ------------------------------------------------------------------ staffed time


@dataclass(slots=True)
class _Staffed:
    """A logged-in agent: from when its time is not counted yet, and the contacts it works on
    (their queue, and when their after-contact work ends: ``None`` while talking)."""

    since: float
    work: dict[str, tuple[str, float | None]] = field(default_factory=dict)


class StaffedTime:
    """Each logged-in agent's staffed seconds, per 15-minute interval, site and queue, added
    to the ``IntervalStore``'s ``staffed_seconds`` (attribution: the module docstring).

    Times are clock readings (``epoch``: the Unix time of the clock's zero).  An event dated
    before the time already counted for its agent, or before the last write (a site's clock
    behind the router's, a snapshot of another day), counts from there: time already written
    is never counted again, nor any from before the count's first write.  Writes go through
    ``write``, one transaction per flush."""

    def __init__(
        self,
        network: Network,
        intervals: IntervalStore | None,
        *,
        epoch: float = 0.0,
        write: Writer = _immediately,
        checkpoint: float | None = CHECKPOINT_SECONDS,
    ) -> None:
        self._network = network
        self._intervals = intervals
        self._epoch = epoch
        self._write = write
        self._checkpoint = checkpoint
        everything = tuple(network.queues)
        self._queues_of: dict[str, tuple[str, ...]] = {}
        self._agents_of_site: dict[str, list[str]] = {site: [] for site in network.sites}
        by_kind: dict[tuple[object, ...], tuple[str, ...]] = {}
        for profile in network.agents.values():
            kind = profile_kind(profile)
            served = by_kind.get(kind)
            if served is None:
                served = by_kind[kind] = tuple(
                    queue.id
                    for queue in network.queues.values()
                    if any(qualifies(profile, queue, target) for target in queue.targets)
                )
            self._queues_of[profile.id] = served or everything
            self._agents_of_site.setdefault(profile.site_id, []).append(profile.id)
        self._agents: dict[str, _Staffed] = {}
        self._in_step: dict[str, bool] = {}
        # Seconds not written yet, by (interval start in Unix seconds, site, queue).
        self._pending: dict[tuple[float, str, str], float] = {}
        self._next_flush = -math.inf
        self._written_to = -math.inf  # the clock of the last flush: counted up to there

    def counting(self, agent_id: str) -> bool:
        """Whether the agent is logged in as far as this count knows."""
        return agent_id in self._agents

    # ----------------------------------------------------------------- presence

    def presence(self, site: str, event: SiteEvent) -> None:
        """A site's event about one of its agents (any other is ignored)."""
        match event:
            case AgentLoggedIn(agent_id=agent_id, at=at):
                if self._of(site, agent_id):
                    self.start(agent_id, at)
            case AgentLoggedOut(agent_id=agent_id, at=at):
                if self._of(site, agent_id):
                    self.stop(agent_id, at)
            case (
                AgentReady(agent_id=agent_id, at=at)
                | AgentNotReady(agent_id=agent_id, at=at)
                | WrapUpEnded(agent_id=agent_id, at=at)
            ):
                if self._of(site, agent_id):
                    self.start(agent_id, at)  # present at the site: logged in
            case _:
                pass

    def snapshot(self, site: str, snapshot: Snapshot) -> None:
        """The site's agents as it lists them: those logged in counted from the snapshot's time
        (if not already), every other agent of the site stopped then."""
        logged_in = {status.agent_id for status in snapshot.agents if status.logged_in}
        for agent_id in self._agents_of_site.get(site, ()):
            if agent_id in logged_in:
                self.start(agent_id, snapshot.at)
            else:
                self.stop(agent_id, snapshot.at)

    def site_down(self, site: str, at: float) -> None:
        """The site's link dropped: its agents are not counted from ``at`` until its snapshot
        (what they do meanwhile is not known)."""
        for agent_id in self._agents_of_site.get(site, ()):
            self.stop(agent_id, at)

    def links(self, links: Iterable[tuple[str, bool]], at: float) -> None:
        """The sites' links as the router has them (in step or not): a site seen out of step
        since the last look is down from ``at`` (:meth:`site_down`)."""
        for site, in_step in links:
            if self._in_step.get(site) and not in_step:
                self.site_down(site, at)
            self._in_step[site] = in_step

    def start(self, agent_id: str, at: float) -> None:
        """The agent is logged in from ``at`` (nothing changes if it is counted already)."""
        if agent_id in self._network.agents and agent_id not in self._agents:
            self._agents[agent_id] = _Staffed(since=max(at, self._written_to))

    def stop(self, agent_id: str, at: float) -> None:
        record = self._agents.pop(agent_id, None)
        if record is not None:
            self._accrue(agent_id, record, at)

    # ----------------------------------------------------------------- work

    def working(self, agent_id: str, contact_id: str, queue_id: str, at: float) -> None:
        """The agent answered the contact (an agent that answers is logged in)."""
        if agent_id not in self._network.agents:
            return
        self.start(agent_id, at)
        record = self._agents[agent_id]
        self._accrue(agent_id, record, at)
        record.work[contact_id] = (queue_id, None)

    def done(self, agent_id: str, contact_id: str, at: float, wrap_up: float) -> None:
        """The contact ended at ``at``; the agent's after-contact work on it lasts ``wrap_up``."""
        record = self._agents.get(agent_id)
        if record is None or contact_id not in record.work:
            return
        self._accrue(agent_id, record, at)
        queue_id, _ = record.work[contact_id]
        if wrap_up > 0:
            record.work[contact_id] = (queue_id, max(at, record.since) + wrap_up)
        else:
            del record.work[contact_id]

    def released(self, agent_id: str, contact_id: str, at: float) -> None:
        """The contact left the agent without ending (back to the queue): no work, no wrap-up."""
        record = self._agents.get(agent_id)
        if record is not None and contact_id in record.work:
            self._accrue(agent_id, record, at)
            del record.work[contact_id]

    # ----------------------------------------------------------------- writing

    def advance(self, now: float) -> None:
        """Write what is due by ``now``: the intervals that ended, and the running one's time
        so far every ``checkpoint`` seconds."""
        if now >= self._next_flush:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Count every logged-in agent's time up to ``now`` and write all of it."""
        for agent_id, record in self._agents.items():
            self._accrue(agent_id, record, now)
        self._written_to = max(self._written_to, now)
        boundary = self._interval_of(now) + INTERVAL_SECONDS - self._epoch
        if self._checkpoint is not None:
            boundary = min(boundary, now + self._checkpoint)
        self._next_flush = boundary
        pending, self._pending = self._pending, {}
        if self._intervals is None:
            return
        rows = [
            (at_time(start), site, queue, Counters(staffed_seconds=seconds))
            for (start, site, queue), seconds in sorted(pending.items())
            if seconds > 0
        ]
        if rows:
            add_many = self._intervals.add_many
            self._write(lambda: add_many(rows))

    def close(self, now: float) -> None:
        """Write everything up to ``now`` (the running interval included) and stop counting."""
        self.flush(now)
        self._agents.clear()

    # ----------------------------------------------------------------- helpers

    def _of(self, site: str, agent_id: str) -> bool:
        """An agent of ``site`` (a site's report about another's agent is not the truth)."""
        profile = self._network.agents.get(agent_id)
        return profile is not None and profile.site_id == site

    def _interval_of(self, at: float) -> float:
        """The start (Unix seconds) of the interval holding clock time ``at``."""
        return math.floor((self._epoch + at) / INTERVAL_SECONDS) * INTERVAL_SECONDS

    def _accrue(self, agent_id: str, record: _Staffed, to: float) -> None:
        """Count the agent's time from ``record.since`` to ``to``: segment by segment (a wrap-up
        ending changes where it goes), each to its queues."""
        site = self._network.agents[agent_id].site_id
        at = record.since
        while at < to:
            record.work = {c: w for c, w in record.work.items() if w[1] is None or w[1] > at}
            end = min((w[1] for w in record.work.values() if w[1] is not None), default=to)
            end = min(end, to)
            queues = [queue for queue, _ in record.work.values()] or self._queues_of[agent_id]
            self._split(at, end, site, queues)
            at = end
        record.since = max(record.since, to)

    def _split(self, begin: float, end: float, site: str, queues: Iterable[str]) -> None:
        """``begin`` to ``end`` shared equally by ``queues``, interval by interval."""
        shares = list(queues)
        start = self._interval_of(begin)
        while begin < end:
            until = min(end, start + INTERVAL_SECONDS - self._epoch)
            share = max(0.0, until - begin) / len(shares)
            for queue in shares:
                key = (start, site, queue)
                self._pending[key] = self._pending.get(key, 0.0) + share
            begin, start = until, start + INTERVAL_SECONDS


class ContactHistory:
    """The live contacts, and each thing that happens to one recorded as it happens.

    Methods take the clock reading ``at`` (seconds; ``epoch`` is the Unix time of the clock's
    zero) and never refuse: an event that does not fit the contact's state (a settlement of a
    reservation that is no longer current, a contact already gone) changes nothing and is
    counted in ``ignored``.  Writes go through ``write``, in call order.

    Agents' staffed time is counted beside (``staffed``, a :class:`StaffedTime`): from the
    sites' presence events (:meth:`presence`) and snapshots (:meth:`reconcile`), and the
    contacts agents answer and end; :meth:`advance` writes what is due, :meth:`close` all.
    ``counted`` sees each contact's counters as they are added (the router's metrics)."""

    def __init__(
        self,
        network: Network,
        contacts: ContactStore,
        intervals: IntervalStore | None = None,
        *,
        epoch: float = 0.0,
        write: Writer = _immediately,
        checkpoint: float | None = CHECKPOINT_SECONDS,
        counted: Callable[[str, str, Counters], None] | None = None,
    ) -> None:
        self.network = network
        self.calls: dict[str, LiveCall] = {}
        self.tally: dict[str, SiteTally] = {site: SiteTally() for site in network.sites}
        self.ignored = 0
        self.staffed = StaffedTime(
            network, intervals, epoch=epoch, write=write, checkpoint=checkpoint
        )
        self._contacts = contacts
        self._intervals = intervals
        self._epoch = epoch
        self._write = write
        self._counted = counted

    # ----------------------------------------------------------------- agents

    def presence(self, site: str, event: SiteEvent) -> None:
        """A site's event; its agents' presence counts their staffed time."""
        self.staffed.presence(site, event)

    def advance(self, now: float) -> None:
        """Write the staffed time due by ``now`` (the clock: see :class:`StaffedTime`)."""
        self.staffed.advance(now)

    def close(self, now: float) -> None:
        """Write all staffed time up to ``now``, the running interval's included."""
        self.staffed.close(now)

    # ----------------------------------------------------------------- the life of a contact

    def offered(
        self,
        data: ContactData,
        site: str,
        at: float,
        *,
        detail: Mapping[str, Any] | None = None,
        stored: bool = False,
        held: bool = False,
    ) -> LiveCall:
        """A contact arrived at ``site``; ``stored``: its row is created already."""
        if not stored:
            create = self._contacts.create
            self._write(
                lambda: create(
                    contact_id=data.id,
                    queue=data.queue_id,
                    channel=data.channel,
                    caller_region=data.caller_region,
                    landing_site=site,
                    at=self._time(at),
                    detail=detail,
                )
            )
        call = self.calls[data.id] = LiveCall(data=data, landing=site, site=site, held=held)
        self._tally(call).offered += 1
        self._count(call, Counters(offered=1))
        return call

    def resume_held(self, data: ContactData, site: str) -> LiveCall:
        """A contact held at the API by an earlier router (stored and counted offered then):
        held again, with nothing written or counted."""
        call = self.calls[data.id] = LiveCall(data=data, landing=site, site=site, held=True)
        return call

    def resume(self, stored: ContactDetail, data: ContactData) -> LiveCall:
        """A contact an earlier router left open (stored, and counted offered then): live
        again as its history left it, with nothing written or counted, until a snapshot of
        its site says where it is now (:meth:`reconcile`: still there, or ended while no
        router listened).  One that had left a site by transfer and was not known taken in
        (its delivery sent, not answered) is in transit: the site it left lists it until the
        router says it arrived, so the router finds it (the site that has it, or that lists
        its order as received) or routes it again; if neither site has it any more (both
        restarted meanwhile), their snapshots end it.  Its agent's staffed time goes to its
        queue again from the site's snapshot on (the earlier router counted it up to its last
        checkpoint; what lies between is not known)."""
        history = stored.history
        last = history[-1]
        site = next((e.site for e in reversed(history) if e.site is not None), None)
        call = LiveCall(data=data, landing=stored.landing_site, site=site or stored.landing_site)
        call.reserved = any(e.kind is RouteEventKind.RESERVED for e in history)
        moves = [e for e in history if e.kind is RouteEventKind.TRANSFERRED]
        if moves:
            call.transferred_at = moves[0].at.timestamp() - self._epoch
        carried = last.kind is RouteEventKind.RESERVED and last.detail.get("from_site") is not None
        if last.kind is RouteEventKind.TRANSFERRED or carried:
            # The order it left under: the one its delivery carried, else its transfer's (or,
            # recorded before orders were, its delivery's reservation).
            order = last.detail.get("order", (moves[-1] if moves else last).detail["reservation"])
            call.in_transit, call.transit_order = True, int(order)
            origin = last.detail.get("from_site")
            if isinstance(origin, str) and origin in self.network.sites:  # (API: routed again)
                call.awaiting = frozenset({origin, call.site})
        if stored.status is StoredStatus.RESERVED:
            ring = next(e for e in reversed(history) if e.kind is RouteEventKind.RESERVED)
            reservation = ring.detail.get("reservation")
            call.state, call.agent = "ringing", ring.agent
            call.reservation = None if reservation is None else int(reservation)
        elif stored.status is StoredStatus.CONNECTED:
            answered = next(e for e in reversed(history) if e.kind is RouteEventKind.CONFIRMED)
            call.state, call.agent = "talking", stored.serving_agent
            call.answered_at = answered.at.timestamp() - self._epoch
        self.calls[data.id] = call
        return call

    def queued(self, contact_id: str, at: float) -> None:
        call = self.calls[contact_id]
        self._record(call, RouteEventKind.QUEUED, at, site=call.site)

    def reserved(
        self,
        contact_id: str,
        site: str,
        agent: str,
        reservation: int | None,
        at: float,
        *,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """An agent of ``site`` rings with the contact (under ``reservation``)."""
        call = self._live(contact_id)
        if call is None:
            return
        if call.state == "ringing":  # the previous offer ended unseen (a lost settlement)
            self._back_to_queue(call, RouteEventKind.REJECTED, at, "superseded")
        elif call.state == "talking":  # sent back to the queue without anyone saying so
            if call.agent is not None:
                self.staffed.released(call.agent, call.id, at)
            call.state, call.agent = "queued", None
            self._record(call, RouteEventKind.QUEUED, at, site=call.site)
        call.site, call.state, call.agent, call.reservation = site, "ringing", agent, reservation
        call.reserved, call.in_transit, call.transit_order = True, False, None
        call.awaiting = frozenset()
        self._record(call, RouteEventKind.RESERVED, at, site=site, agent=agent, detail=detail)

    def transferred(
        self,
        contact_id: str,
        to_site: str,
        at: float,
        *,
        detail: Mapping[str, Any] | None = None,
        in_transit: bool = False,
    ) -> None:
        """The contact's media moves to ``to_site`` (whose agent is reserved); ``in_transit``:
        it left its site and is not at ``to_site`` yet (the delivery there takes it in)."""
        call = self._live(contact_id)
        if call is None:
            return
        if call.transferred_at is None:
            call.transferred_at = at
        if in_transit:
            call.site, call.in_transit = to_site, True
        self._tally(call).transfers += 1
        self._record(call, RouteEventKind.TRANSFERRED, at, site=to_site, detail=detail)

    def taken_back(
        self, contact_id: str, reservation: int, at: float, *, redirected: bool, reason: str
    ) -> None:
        """The ring under ``reservation`` ended unanswered and the contact waits again:
        ``redirected`` by the router (no answer in time), else rejected by the site."""
        call = self._live(contact_id)
        if call is None or call.state != "ringing" or call.reservation != reservation:
            self.ignored += 1
            return
        kind = RouteEventKind.REDIRECTED if redirected else RouteEventKind.REJECTED
        self._back_to_queue(call, kind, at, reason, reservation=reservation)

    def answered(
        self,
        contact_id: str,
        at: float,
        *,
        agent: str | None = None,
        site: str | None = None,
        local: bool = False,
    ) -> None:
        """The agent answered (``agent``/``site``: the one that did, when the contact was not
        known to ring there: a local decision, a snapshot)."""
        call = self._live(contact_id)
        if call is None:
            return
        if local:
            self._mark_local(call)
        if call.state == "talking":
            self.ignored += 1
            return
        agent = agent or call.agent
        site = site or call.site
        if agent is None:
            self.ignored += 1
            return
        if call.state == "queued" or call.agent != agent:
            # Given to an agent without the router (while it was away), or found talking in a
            # site's snapshot: reserved, then answered.
            detail = {"local": True} if local else {"resynchronised": True}
            self.reserved(contact_id, site, agent, None, at, detail=detail)
        call.state, call.reservation, call.answered_at = "talking", None, at
        self._record(call, RouteEventKind.CONFIRMED, at, site=call.site, agent=call.agent)
        if call.agent is not None:
            self.staffed.working(call.agent, call.id, call.data.queue_id, at)
        wait = max(0.0, at - call.data.arrival)
        queue = self.network.queues[call.data.queue_id]
        self._tally(call).answered += 1
        within = int(wait <= queue.sl_threshold)
        self._count(call, Counters(answered=1, answered_within_sl=within, wait_seconds=wait))

    def finished(self, contact_id: str, at: float, *, wrap_up: float | None = None) -> None:
        """The conversation ended; ``wrap_up``: its after-contact work (the queue's if None)."""
        call = self._live(contact_id)
        if call is None:
            return
        if call.state != "talking" or call.answered_at is None:
            self.ignored += 1  # not answered as far as anyone said: ends as abandoned
            self.abandoned(contact_id, at)
            return
        del self.calls[contact_id]
        self._record(call, RouteEventKind.FINISHED, at, site=call.site, agent=call.agent)
        queue = self.network.queues[call.data.queue_id]
        wrap_up = queue.wrap_up if wrap_up is None else wrap_up
        handle = max(0.0, at - call.answered_at) + wrap_up
        if call.agent is not None:
            self.staffed.done(call.agent, call.id, at, wrap_up)
        labour = self.network.sites[call.site].agent_cost_per_hour * handle / SECONDS_PER_HOUR
        cost = self._line_cost(call, at) + labour
        self._count(call, Counters(handle_seconds=handle, cost=cost))

    def abandoned(self, contact_id: str, at: float) -> None:
        """The caller hung up before an answer."""
        call = self._live(contact_id)
        if call is None:
            return
        if call.state == "talking":  # hung up during the conversation: it ended
            self.finished(contact_id, at)
            return
        del self.calls[contact_id]
        self._record(call, RouteEventKind.ABANDONED, at, site=call.site, agent=call.agent)
        self._tally(call).abandoned += 1
        self._count(call, Counters(abandoned=1, cost=self._line_cost(call, at)))

    def locally_routed(self, data: ContactData, site: str, agent: str, at: float) -> None:
        """A site reports a contact it gave one of its agents (answered) while no router was
        reachable; known already or not."""
        if data.id not in self.calls:
            self.offered(data, site, data.arrival)
        call = self.calls[data.id]
        if call.state == "talking" and call.agent == agent:
            self._mark_local(call)
            return
        self.answered(data.id, at, agent=agent, site=site, local=True)

    def locally_abandoned(self, data: ContactData, site: str, at: float) -> None:
        """A site reports a caller who hung up while no router was reachable (or before its
        snapshot reached one); known already or not."""
        if data.id not in self.calls:
            self.offered(data, site, data.arrival)
        self.abandoned(data.id, at)

    def reconcile(self, site: str, snapshot: Snapshot) -> None:
        """A site's whole state: calls it no longer has ended while no one said (talking:
        finished, else abandoned, at the snapshot's time; not those in transit to it, nor
        those held at the API); calls it has that were not known offered; each call's state
        taken from it (``transferred``: it left the site for another).  A contact resumed in
        transit whose order the site lists as received, and no longer has, reached it and
        ended there while no router listened: ended the same way; one that neither the site
        it left (no longer listing it sent away) nor the site it went to has is nowhere (both
        PBXs restarted): ended too.  A call the site's report that follows says it routed or
        lost alone is left to that report."""
        at = snapshot.at
        self.staffed.snapshot(site, snapshot)
        statuses = {status.contact.id: status for status in snapshot.contacts}
        received = set(snapshot.received)
        reported = set(snapshot.reported)
        for call in list(self.calls.values()):
            if call.id in statuses or call.id in reported:
                continue
            lost = site in call.awaiting and call.transit_order not in received
            if lost:
                call.awaiting -= {site}
            if (
                (call.site == site and not (call.held or call.in_transit))
                or (call.transit_order is not None and call.transit_order in received)
                or (lost and not call.awaiting)
            ):
                if call.state == "talking":
                    self.finished(call.id, at)
                else:
                    self.abandoned(call.id, at)
        for status in snapshot.contacts:
            known = self.calls.get(status.contact.id)
            call = known or self.offered(status.contact, site, status.contact.arrival)
            call.held, call.transit_order, call.awaiting = False, None, frozenset()
            if status.state == "transferred":
                if call.site == site and not call.in_transit and status.to_site is not None:
                    detail = {"reservation": status.reservation, "from_site": site}
                    self.transferred(call.id, status.to_site, at, detail=detail, in_transit=True)
            elif status.state == "queued":
                if call.state != "queued":
                    reason = "resynchronised"
                    if call.state == "talking":
                        if call.agent is not None:
                            self.staffed.released(call.agent, call.id, at)
                        call.state = "queued"
                        self._record(call, RouteEventKind.QUEUED, at, site=site)
                    else:
                        self._back_to_queue(call, RouteEventKind.REJECTED, at, reason)
                call.site, call.in_transit = site, False
            elif status.agent_id is not None:
                if status.state == "ringing" and (
                    call.state != "ringing" or call.reservation != status.reservation
                ):
                    detail = {"reservation": status.reservation, "from": "snapshot"}
                    self.reserved(call.id, site, status.agent_id, status.reservation, at,
                                  detail=detail)  # fmt: skip
                elif status.state == "talking" and call.state != "talking":
                    self.answered(call.id, at, agent=status.agent_id, site=site)
                elif status.state == "talking" and call.agent == status.agent_id:
                    # Taken up talking from an earlier router: its agent's time goes to the
                    # call's queue from here, as it would have without the restart.
                    self.staffed.working(status.agent_id, call.id, call.data.queue_id, at)
                call.site, call.in_transit = site, False

    # ----------------------------------------------------------------- helpers

    def _live(self, contact_id: str) -> LiveCall | None:
        call = self.calls.get(contact_id)
        if call is None:
            self.ignored += 1
        return call

    def _back_to_queue(
        self,
        call: LiveCall,
        kind: RouteEventKind,
        at: float,
        reason: str,
        *,
        reservation: int | None = None,
    ) -> None:
        detail: dict[str, Any] = {"reason": reason}
        if reservation is not None:
            detail = {"reservation": reservation, **detail}
        agent = call.agent
        call.state, call.agent, call.reservation = "queued", None, None
        self._record(call, kind, at, site=call.site, agent=agent, detail=detail)

    def _mark_local(self, call: LiveCall) -> None:
        if not call.local:
            call.local = True
            self._tally(call).local_fallbacks += 1

    def _tally(self, call: LiveCall) -> SiteTally:
        return self.tally.setdefault(call.landing, SiteTally())

    def _line_cost(self, call: LiveCall, end: float) -> float:
        """Trunk minutes at the landing site, and the transfer leg from its transfer on."""
        tariffs = self.network.tariffs
        data = call.data
        cost = tariffs.trunk(data.caller_region, call.landing) * max(0.0, end - data.arrival)
        cost /= SECONDS_PER_MINUTE
        if call.transferred_at is not None:
            leg = max(0.0, end - call.transferred_at) / SECONDS_PER_MINUTE
            cost += tariffs.transfer_fee + tariffs.transfer_per_minute * leg
        return cost

    def _time(self, seconds: float) -> datetime:
        return at_time(seconds, self._epoch)

    def _record(
        self,
        call: LiveCall,
        kind: RouteEventKind,
        at: float,
        *,
        site: str | None = None,
        agent: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        record, contact_id, when = self._contacts.record, call.id, self._time(at)
        self._write(
            lambda: record(contact_id, kind, at=when, site=site, agent=agent, detail=detail)
        )

    def _count(self, call: LiveCall, counters: Counters) -> None:
        if self._counted is not None:
            self._counted(call.landing, call.data.queue_id, counters)
        if self._intervals is None:
            return
        add, when = self._intervals.add, self._time(call.data.arrival)
        landing, queue = call.landing, call.data.queue_id
        self._write(lambda: add(when, landing, queue, counters))


# ------------------------------------------------------------------ real-time statistics


class EngineFigures(Protocol):
    """The engine's live figures that real-time statistics read (a routing engine has them;
    a sharded router merges its shards')."""

    def agent_state(self, agent_id: str) -> AgentState: ...
    def site_load(self, queue_id: str, site_id: str) -> SiteLoad: ...
    def predicted_wait(self, queue: Queue, site_id: str, now: float) -> float | None: ...
    def site_status(self, site_id: str, now: float) -> str | None: ...
    def site_open(self, site_id: str) -> bool | None: ...


def realtime_stats(
    network: Network,
    figures: EngineFigures,
    live: Iterable[LiveCall],
    now: float,
    *,
    site: str | None = None,
    queue: str | None = None,
    epoch: float = 0.0,
) -> RealtimeStats:
    """Live figures per site, queue and skill; ``site``/``queue`` narrow them (NotFoundError
    for one the router does not know)."""
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
            state = figures.agent_state(profile.id)
            by_site[profile.site_id][state] += 1
            for skill in profile.skills:
                by_skill[skill][state] += 1

    calls = [
        call
        for call in live
        if (site is None or call.site == site) and (queue is None or call.data.queue_id == queue)
    ]
    waiting = [call for call in calls if call.state == "queued"]
    needs = {
        q.id: q.targets[0].expression.names() if q.targets else frozenset()
        for q in network.queues.values()
    }

    def needed(call: LiveCall, skill: str) -> bool:
        return skill in call.data.required_skills or skill in needs[call.data.queue_id]

    def longest(of: list[LiveCall]) -> float | None:
        return max((now - call.data.arrival for call in of), default=None)

    def queue_row(queue_id: str) -> QueueRealtime:
        rows = []
        for site_id in sites:
            load = figures.site_load(queue_id, site_id)
            rows.append(
                QueueSiteRealtime(
                    site=site_id,
                    staffed=load.staffed,
                    ready=load.ready,
                    waiting=load.waiting,
                    ewt_seconds=_finite(
                        figures.predicted_wait(network.queues[queue_id], site_id, now)
                    ),
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
            longest_wait_seconds=longest(queued),
            staffed=sum(row.staffed for row in rows),
            ready=sum(row.ready for row in rows),
            sites=rows,
        )

    return RealtimeStats(
        at=at_time(now, epoch),
        site=site,
        queue=queue,
        sites=[
            SiteRealtime(
                site=site_id,
                status=figures.site_status(site_id, now) or "unknown",
                open=bool(figures.site_open(site_id)),
                agents=agent_counts(by_site[site_id]),
                waiting=sum(call.site == site_id for call in waiting),
                longest_wait_seconds=longest([call for call in waiting if call.site == site_id]),
            )
            for site_id in sites
        ],
        queues=[queue_row(queue_id) for queue_id in queues],
        skills=[
            SkillRealtime(
                skill=skill,
                agents=agent_counts(counts),
                waiting=sum(needed(call, skill) for call in waiting),
                longest_wait_seconds=longest([call for call in waiting if needed(call, skill)]),
            )
            for skill, counts in by_skill.items()
        ],
    )


def _finite(seconds: float | None) -> float | None:
    """An expected wait as JSON can carry it: none (``null``) when nobody could answer."""
    return seconds if seconds is not None and math.isfinite(seconds) else None


_SEVERITY = {"operational": 0, "congested": 1, "critical": 2}


def merged_site_status(
    statuses: Iterable[str | None], queue_statuses: Iterable[str | None]
) -> str | None:
    """A site's status over router shards that each pulse their own queues: ``statuses``
    each shard's status of the site, ``queue_statuses`` its queues' there
    (``GlobalRouter.queue_status``, ``None`` for a queue the site does not work on).  As one
    router would see it: down if the shards say so, initialising until they have pulsed it,
    else the worst of the queues worked there (critical when none is)."""
    shard_statuses = list(statuses)
    if "down" in shard_statuses:
        return "down"
    if not any(status in _SEVERITY for status in shard_statuses):
        return next((status for status in shard_statuses if status is not None), None)
    worked = [status for status in queue_statuses if status in _SEVERITY]
    if not worked:
        return "critical"
    return max(worked, key=_SEVERITY.__getitem__)


def agent_counts(states: Counter[AgentState]) -> AgentCounts:
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
