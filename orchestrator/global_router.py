"""The global router's core: site messages in, deliveries out, around one routing engine.

This is what a router actor hosts (:mod:`orchestrator.router_actor`), kept free of Ray and of
sockets so that it can be tested, replayed and benchmarked as plain code.  It owns:

* **site links**: per site, the sequence number of the next delta it expects; a gap or an
  event it cannot apply makes it ask that site for a snapshot (once) and ignore deltas until
  then, so its view of a site is always a prefix of the site's history or a fresh copy of it;
  meanwhile the site's agents take no new work, so no delivery crosses the snapshot;
* **reservations**: every engine assignment becomes a numbered reservation.  For a call at the
  agent's own site it is a delivery to that site; for a call landed elsewhere it is first a
  transfer order to the site where the call is (the agent stays reserved), and the delivery
  goes to the agent's site only once that site confirms the call left (``ContactTransferred``):
  a caller who hangs up before is never rung anywhere.  A delivery is settled by the site:
  confirmed (the agent answered), or rejected (the agent went not ready meanwhile, or let it
  ring out), in which case the engine puts the contact back at the head of its queue and routes
  it again.  A refused transfer frees the reserved agent (who never rang) and asks the landing
  site for a snapshot, which re-offers the call if it is still there.  A confirmation or
  rejection for a reservation that is no longer current (re-sent, or overtaken by a snapshot)
  changes nothing: no contact is delivered twice (but a confirmation of a reservation the
  router withdrew on its answer time-out means the call talks there after all: the site's
  snapshot is asked for).  A transfer confirmed after the router decided again (an answer
  time-out, a snapshot) still moved the call: the call is then *in transit*, and whatever
  agent the router chooses gets it by a delivery that takes it in, which the receiving site
  confirms (``ContactTakenIn``);
* **numbers**: reservation numbers start from the wall clock when the router starts
  (:func:`reservation_origin`), in the shard's residue class, so a restarted router never
  reuses a number its predecessor gave (unless it issued more than ``1e6 / shards`` a second
  over its lifetime, or the clock stepped back);
* **reconciliation**: a snapshot is the site's truth.  Agents are logged in or out and made
  ready or not to match it (an agent the site reports in wrap-up, whom the engine thinks free,
  is held out of new work until the site's ``WrapUpEnded``); calls the router thought alive but
  the site no longer has are ended; calls the site has that the router does not know are
  adopted (talking, ringing) or routed (queued); calls the site lists as ``transferred`` (its
  confirmation not yet acknowledged) complete their transfer if the router has not;
* **dropped links**: a site whose link dropped keeps its calls: those queued or ringing there
  are left to it (it routes them locally, and its snapshot brings back what is still there);
  a transfer order it had not answered waits for that snapshot, which says whether the call
  left, and so does a delivery that was bringing it a call from transit (its ``taken_in``
  says whether the call arrived; if not, the call is routed again from transit).  Calls that
  came and went while it was cut off are reported after the snapshot (``LocallyAbandoned``);
* **a restarted router** knows nothing and learns everything from the sites' snapshots; a
  call in transit when its predecessor died is in no site's PBX, so the site it left lists it
  as ``transferred`` until a router says it arrived (``TransferSettled``), and each site lists
  the transfer orders of the calls it took in (``received``): once every site has sent its
  snapshot, a listed call that no site has or received is routed again from transit;
* **statistics pulses**: sites send no statistics over their links, so the router pulses each
  connected site's figures into its engine's board itself (:meth:`GlobalRouter.pulse`), from its
  own live view of the site (per queue: agents of the first target staffed and free, contacts
  waiting, and the expected wait by the Erlang A estimator), every
  ``settings.site_status.pulse_interval`` seconds: when a site message, a timer or a query
  comes at least that long after the last pulse (a decision or a reading never uses figures
  older than one interval), and at once when a site's snapshot connects it.  A site whose link
  is down is not pulsed: its statistics go stale, then it is down once the watchdog runs out;
  a site never connected since the router started is initialising.  Site statuses
  (operational, congested, critical) and expected waits are the engine's, from those pulses.

Times: the engine runs on the router's clock (``now``, Unix seconds in production), which keeps
its timers monotonic whatever the sites' clocks say; a contact's arrival is the site's
timestamp, and NTP-level skew between sites only shifts waits by that skew.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from routing.engine import Router, RoutingError
from routing.estimators import ErlangAEstimator, EwtEstimator, QueueSnapshot
from routing.model import AgentProfile, AgentState, Assignment, Network, Queue, Target
from routing.settings import RouterSettings
from routing.site_stats import QueueStats, SitePulse, SiteStatus
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
    ContactTakenIn,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    Delta,
    LocallyAbandoned,
    LocallyRouted,
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    TransferSettled,
    Withdraw,
    WrapUpEnded,
)

_RESYNC = "resynchronising"
LINK_DOWN = "site link down"
IN_WRAP_UP = "wrap-up"
"""The engine's not-ready reason of an agent held out of new work while the site reports it in
wrap-up (and ready once that ends)."""
_FREE = frozenset({AgentState.READY, AgentState.NOT_READY})

REMEMBERED_SETTLEMENTS = 100_000
"""Transfer orders whose calls arrived that the router remembers, to answer a site that lists
one again (an hour of transfers at 25 a second)."""

Outbound = tuple[str, Deliver | TransferOut | Withdraw | Ack | SnapshotRequest | TransferSettled]
"""A message for a site: (site id, message)."""


class UnknownSiteError(LookupError):
    """A message from a site the configuration does not have (refused at the door)."""


def reservation_origin(shard: int = 0, shards: int = 1, now: float | None = None) -> int:
    """Where a router shard starting at ``now`` (Unix time; default: the wall clock) numbers its
    reservations from: the clock in microseconds, rounded up into the shard's residue class
    (``shard`` modulo ``shards``).  A shard issues one number in ``shards`` per reservation, so a
    restarted shard numbers above everything its predecessor gave unless the predecessor gave
    more than ``1e6 / shards`` a second on average since it started (or the clock stepped
    back): numbers survive restarts without being stored.  They stay below 2**53 (exact in
    JSON readers that use doubles) until the year 2255."""
    base = int((time.time() if now is None else now) * 1_000_000)
    return base + (shard - base) % shards


def qualifies(profile: AgentProfile, queue: Queue, target: Target) -> bool:
    """Whether the agent is one of the target's (the engine's own test: skills at the level,
    the target's sites, a capacity for the queue's channel)."""
    return (
        (target.sites is None or profile.site_id in target.sites)
        and profile.capacity_for(queue.channel) > 0
        and target.expression.matches(profile.skills, target.min_proficiency)
    )


def profile_kind(profile: AgentProfile) -> tuple[object, ...]:
    """What :func:`qualifies` reads of an agent: agents of one kind qualify for the same
    targets, so a test per kind does for all (a large centre has a few hundred kinds)."""
    channels = tuple(sorted(c for c, n in profile.capacity.items() if n > 0))
    return (profile.site_id, tuple(sorted(profile.skills.items())), channels)


@dataclass(slots=True)
class _Link:
    expected: int = 1
    synced: bool = False  # a snapshot has been applied since the last gap
    up: bool = False  # connected: a snapshot came since the link last dropped
    heard: bool = False  # a snapshot came since the router started
    received: frozenset[int] = frozenset()  # orders of calls it took in (its last snapshot)


@dataclass(slots=True)
class _Live:
    """A contact the router knows: its data, where the call is, and its current reservation.

    ``landed_at`` is the site where the call is (or is being delivered to); ``None`` while it
    is in transit: it left ``custody_from`` by a confirmed transfer and no site has taken it in
    yet, so its next delivery, wherever it goes, carries it in.  ``transfer_to``: the current
    reservation is a transfer order sent to ``landed_at``, not yet answered, for an agent of
    that site.  ``orders``: every transfer order sent to ``landed_at`` and not answered yet,
    current or overtaken (an answer time-out, a snapshot): any of them may still move the
    call, so a dropped link parks them all.  ``arriving``: the delivery (reservation, and the
    site the call left) that carries the call in from transit to ``landed_at``, until that site
    confirms it took it in (or settles it): a dropped link parks it too.  ``order``: the
    transfer order under which the call left ``custody_from`` (or the site in ``arriving``),
    which that site lists until the call is taken in and the router says so
    (:class:`TransferSettled`)."""

    data: ContactData
    landed_at: str | None
    reservation: int | None = None
    agent_id: str | None = None
    transfer_to: str | None = None
    custody_from: str | None = None
    orders: list[int] = field(default_factory=list)
    withdrawn: int | None = None  # the last reservation taken back by an answer time-out
    arriving: tuple[int, str] | None = None
    order: int | None = None


@dataclass(frozen=True, slots=True)
class _Parked:
    """Transfer orders whose answer was lost with their site's link: the site's next snapshot
    says whether the call left (``transferred``, naming the order) or not."""

    reservations: tuple[int, ...]
    from_site: str


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A delivery carrying a call in from transit, whose arrival was not confirmed when the
    destination's link dropped: its snapshot says whether the call arrived (listed, or its
    reservation in ``taken_in``); if not, the call is still in transit and routed again."""

    reservation: int
    from_site: str
    to_site: str
    data: ContactData
    order: int | None


@dataclass(frozen=True, slots=True)
class _Unsettled:
    """A call a site lists as sent away on a transfer order this router never saw (it started
    after the transfer): it arrived if a site has it or lists the order as ``received``; once
    every site has sent a snapshot and none does, it is still in transit and routed again."""

    order: int
    from_site: str
    to_site: str
    data: ContactData


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
    transfers: int = 0  # calls confirmed gone from their site to another
    transfer_refusals: int = 0
    overtaken_transfers: int = 0  # answer time-outs that ran out before a transfer's answer
    rerouted_in_transit: int = 0
    locally_abandoned: int = 0
    wrap_up_holds: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class GlobalRouter:
    """One shard of the router (the whole router when ``shards`` is 1).  Shards number their
    reservations apart (``shard`` modulo ``shards``), so a site can settle any reservation
    with whichever shard made it and numbers never collide; ``first_reservation`` (in that
    residue class; default :func:`reservation_origin` now) is the first number given.
    ``estimator`` computes the expected waits of the router's own statistics pulses (Erlang A
    by default, which without a measured patience is the Erlang C conditional wait)."""

    def __init__(
        self,
        network: Network,
        settings: RouterSettings | None = None,
        *,
        shard: int = 0,
        shards: int = 1,
        first_reservation: int | None = None,
        estimator: EwtEstimator | None = None,
        transit_timeout: float | None = None,
    ) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not one of {shards} shards")
        if first_reservation is None:
            first_reservation = reservation_origin(shard, shards)
        if first_reservation % shards != shard:
            raise ValueError(
                f"first reservation {first_reservation} is not shard {shard}'s (modulo {shards})"
            )
        self.network = network
        self.engine = Router(network, settings)
        self.counters = RouterCounters()
        self._links = {site: _Link() for site in network.sites}
        self._live: dict[str, _Live] = {}
        self._parked: dict[str, _Parked] = {}
        self._incoming: dict[str, _Incoming] = {}
        self._unsettled: dict[str, _Unsettled] = {}
        self._started: float | None = None  # the clock of the router's first input
        self._transit_timeout = transit_timeout
        # Transfer orders whose calls arrived, for a site that lists one again (its
        # TransferSettled lost with its link): oldest forgotten first.
        self._settled: OrderedDict[int, None] = OrderedDict()
        # Agents held out of new work while their site reports them in wrap-up: whether the
        # site has them ready (for when the wrap-up ends).
        self._wrap_up_hold: dict[str, bool] = {}
        self._shard, self._shards = shard, shards
        self._reservation = first_reservation - shards  # the last number given
        self._site_of_agent = {a.id: a.site_id for a in network.agents.values()}
        self._agents_of_site: dict[str, list[str]] = {site: [] for site in network.sites}
        for agent_id, site_id in self._site_of_agent.items():
            self._agents_of_site[site_id].append(agent_id)
        # Statistics pulses, made here from the router's own view (module docstring).
        self._estimator = estimator or ErlangAEstimator()
        self._pulse_every = self.engine.settings.site_status.pulse_interval
        self._next_pulse = -math.inf
        self._pulse_seq = dict.fromkeys(network.sites, 0)
        # (queue, site): the site has agents of the queue's first target; a site pulses only
        # those queues (an unserved queue's contacts, open to every site, are not its own).
        kinds: dict[tuple[object, ...], AgentProfile] = {}
        for profile in network.agents.values():
            kinds.setdefault(profile_kind(profile), profile)
        self._served = {
            (queue.id, profile.site_id)
            for queue in network.queues.values()
            if queue.targets
            for profile in kinds.values()
            if qualifies(profile, queue, queue.targets[0])
        }

    # ----------------------------------------------------------------- inputs

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> list[Outbound]:
        """Apply one message from a site; returns the messages to send to sites."""
        link = self._links.get(site_id)
        if link is None or message.site_id != site_id:
            raise UnknownSiteError(f"site {message.site_id!r} on the link of {site_id!r}")
        if self._started is None:
            self._started = now
        self.pulse(now)
        out: list[Outbound] = []
        if isinstance(message, Snapshot):
            self.counters.snapshots += 1
            link.up = link.heard = True
            link.received = frozenset(message.received)
            self._reconcile(site_id, message, now, out)
            link.expected, link.synced = 1, True
            self._pulse_site(site_id, now)  # its figures count from now on
            return out
        self.counters.deltas += 1
        if not link.synced:
            return out  # waiting for the snapshot asked for
        if message.seq != link.expected:
            self.counters.gaps += 1
            return self._resync(site_id, f"expected delta {link.expected}, got {message.seq}", now)
        for event in message.events:
            self.counters.events += 1
            self.counters.by_kind[event.kind] = self.counters.by_kind.get(event.kind, 0) + 1
            try:
                self._apply(site_id, event, now, out)
            except RoutingError as error:
                # The site and the router disagree: the site is the truth, ask for it.
                self.counters.refused_events += 1
                return [*out, *self._resync(site_id, f"{event.kind}: {error}", now)]
        link.expected += 1
        out.append((site_id, Ack(seq=message.seq)))
        return out

    def tick(self, now: float) -> list[Outbound]:
        """Fire the engine's timers due by ``now`` (time-outs, holds, wrap-up ends)."""
        self.pulse(now)
        out: list[Outbound] = []
        if self._unsettled:
            self._resolve_unsettled(now, out)
        assignments = self.engine.advance(now)
        for redirect in self.engine.take_redirects():
            live = self._live.get(redirect.contact_id)
            if live is None or live.reservation is None:
                continue
            reservation, transfer_to = live.reservation, live.transfer_to
            live.reservation = live.agent_id = live.transfer_to = None
            if transfer_to is not None:
                # The answer time-out ran out before the transfer order was answered: the agent
                # never rang, yet the engine made it not ready.  Its site's snapshot puts its
                # presence right; the order's answer, when it comes, is no longer current (a
                # confirmation finds the call in transit and delivers it where it goes now).
                self.counters.overtaken_transfers += 1
                reason = "an agent reserved for a transfer was released"
                out += self._resync(transfer_to, reason, now)
                continue
            self.counters.withdrawals += 1
            live.withdrawn = reservation
            site = self._site_of_agent[redirect.agent_id]
            out.append(
                (site, Withdraw(reservation=reservation, contact_id=redirect.contact_id,
                                agent_id=redirect.agent_id))
            )  # fmt: skip
        self._deliver(assignments, out)
        return out

    def next_timer(self) -> float | None:
        engine = self.engine.next_timer()
        if not self._unsettled or self._started is None or self._transit_timeout is None:
            return engine
        deadline = self._started + self._transit_timeout
        return deadline if engine is None else min(engine, deadline)

    def disconnected(self, site_id: str, now: float) -> list[Outbound]:
        """The site's link dropped: nothing more can be sent there until its snapshot.

        Its agents are made not ready (the snapshot restores their presence).  Its calls stay
        its own: calls queued or ringing there are left to the site, which routes them locally
        meanwhile, and the router forgets them (no other site could pull them over a dead
        link; the snapshot brings back those still there, ringing or answered ones included).
        A transfer order it had not answered is parked until its snapshot says whether the call
        left (the agent reserved for it is free meanwhile), and so is a delivery that was
        bringing it a call from transit (did the call arrive?).  Calls talking there stay with
        their agents until the snapshot confirms or ends them."""
        self.pulse(now)
        link = self._links[site_id]
        link.synced = link.up = False
        engine = self.engine
        out: list[Outbound] = []
        for agent_id in self._agents_of_site[site_id]:
            if engine.agent_state(agent_id) is not AgentState.LOGGED_OUT:
                self._wrap_up_hold.pop(agent_id, None)
                engine.set_not_ready(agent_id, now, LINK_DOWN)
        for contact_id, live in list(self._live.items()):
            if live.landed_at != site_id:
                continue
            waiting = engine.is_waiting(contact_id)
            if not waiting and live.reservation is None:
                continue  # talking
            if live.orders:
                self._parked[contact_id] = _Parked(tuple(live.orders), site_id)
            if live.arriving is not None:
                reservation, source = live.arriving
                self._incoming[contact_id] = _Incoming(
                    reservation, source, site_id, live.data, live.order
                )
            del self._live[contact_id]
            if waiting or engine.delivered_to(contact_id) is not None:
                self._deliver(engine.abandon(contact_id, now), out)
        return out

    def needs_snapshot(self, site_id: str) -> bool:
        return not self._links[site_id].synced

    def expect_in_transit(
        self, from_site: str, order: int, to_site: str, data: ContactData, now: float
    ) -> list[Outbound]:
        """A call sent to ``to_site`` on transfer order ``order`` before this router started,
        from a place that has no snapshot to list it in: the control API, which holds
        contacts created through it until an agent is reserved (``from_site``: the site it
        landed at, which answered the order for it).  It is found like a call a site lists as
        sent away (:class:`_Unsettled`): it arrived if a site has it or lists the order as
        received; once every site has sent its snapshot (or the transit time-out passed) and
        none does, it is routed again from transit."""
        if self._started is None:
            self._started = now
        out: list[Outbound] = []
        if data.id in self._live or data.id in self._unsettled:
            return out  # a site has it already, or it is expected already
        self._unsettled[data.id] = _Unsettled(order, from_site, to_site, data)
        self._resolve_unsettled(now, out)
        return out

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

    # ----------------------------------------------------------------- statistics pulses

    def pulse(self, now: float) -> None:
        """Pulse every connected site's statistics into the engine's board, if the last pulse
        is ``pulse_interval`` old (module docstring); called on every input, and by readers of
        site statuses and expected waits before they read."""
        if now < self._next_pulse:
            return
        self._next_pulse = now + self._pulse_every
        for site_id, link in self._links.items():
            if link.up:
                self._pulse_site(site_id, now)

    def queue_status(self, queue_id: str, site_id: str, now: float) -> str | None:
        """The queue's status at the site by its last pulse: operational, congested or
        critical; the site's own initialising or down; ``None`` when the site does not work on
        the queue (it has no agent for it, or nobody staffed for it and nobody waiting), or for
        a queue or site not here.  A site's status is the worst of its worked queues' (critical
        when none is worked)."""
        board = self.engine.board
        if site_id not in self.network.sites or queue_id not in self.network.queues:
            return None
        status = board.queue_status(site_id, queue_id, now)
        if status is None or status in (SiteStatus.INITIALISING, SiteStatus.DOWN):
            return None if status is None else str(status)
        pulse = board.last_pulse(site_id)
        stats = None if pulse is None else pulse.queues.get(queue_id)
        if stats is None or (stats.staffed == 0 and stats.waiting == 0):
            return None
        return str(status)

    def _pulse_site(self, site_id: str, now: float) -> None:
        queues = {
            q.id: self._queue_stats(q, site_id)
            for q in self.network.queues.values()
            if (q.id, site_id) in self._served
        }
        self._pulse_seq[site_id] += 1
        self.engine.receive_pulse(SitePulse(site_id, self._pulse_seq[site_id], now, queues), now)

    def _queue_stats(self, queue: Queue, site_id: str) -> QueueStats:
        """What a site's ACD would pulse for the queue (as the simulator's sites do): agents of
        its first target there, staffed and free (the others count as busy), and contacts
        waiting for the site."""
        load = self.engine.site_load(queue.id, site_id)
        busy = max(load.staffed - load.ready, 0)
        snapshot = QueueSnapshot(
            ahead=load.waiting,
            staffed=load.staffed,
            busy=busy,
            ready=load.ready,
            mean_handle_time=queue.expected_handle_time,
        )
        return QueueStats(
            waiting=load.waiting,
            ready=load.ready,
            staffed=load.staffed,
            busy=busy,
            sl_in_interval=None,
            occupancy=min(1.0, busy / load.staffed) if load.staffed else 0.0,
            ewt=self._estimator.estimate(snapshot),
        )

    # ----------------------------------------------------------------- events

    def _apply(self, site_id: str, event: SiteEvent, now: float, out: list[Outbound]) -> None:
        engine = self.engine
        match event:
            case AgentLoggedIn(agent_id=agent_id, ready=ready, shift_end=shift_end):
                self._own(site_id, agent_id)
                self._wrap_up_hold.pop(agent_id, None)
                self._deliver(engine.login(agent_id, now, ready=ready, shift_end=shift_end), out)
            case AgentReady(agent_id=agent_id):
                self._own(site_id, agent_id)
                if agent_id in self._wrap_up_hold:
                    self._wrap_up_hold[agent_id] = True  # ready once the wrap-up ends
                else:
                    self._deliver(engine.set_ready(agent_id, now), out)
            case AgentNotReady(agent_id=agent_id, reason=reason):
                self._own(site_id, agent_id)
                if agent_id in self._wrap_up_hold:
                    self._wrap_up_hold[agent_id] = False
                engine.set_not_ready(agent_id, now, reason)
            case AgentLoggedOut(agent_id=agent_id):
                self._own(site_id, agent_id)
                self._wrap_up_hold.pop(agent_id, None)
                engine.logout(agent_id, now)
            case WrapUpEnded(agent_id=agent_id):
                self._own(site_id, agent_id)
                if agent_id in self._wrap_up_hold:
                    if self._wrap_up_hold.pop(agent_id):
                        self._deliver(engine.set_ready(agent_id, now), out)
                # The router's own wrap-up timer may have ended it first: nothing to do then.
                elif engine.agent_state(agent_id) is AgentState.AFTER_CONTACT_WORK:
                    self._deliver(engine.end_wrap_up(agent_id, now), out)
            case ContactArrived(contact=data):
                self._offer(site_id, data, now, out)
            case DeliveryConfirmed(reservation=reservation, contact_id=contact_id):
                known = self._live.get(contact_id)
                self._arrived(known, reservation, out)
                if known is not None and known.withdrawn == reservation:
                    # Answered before the Withdraw got there: the call talks at the site while
                    # the router routed it again (whose delivery the site refuses); the site's
                    # snapshot puts the call, and the agent made not ready, right.
                    raise RoutingError(f"reservation {reservation} was answered once withdrawn")
                live = self._current(contact_id, reservation)
                if live is not None:
                    if live.transfer_to is not None or live.landed_at != site_id:
                        raise RoutingError(
                            f"reservation {reservation} was not a delivery to {site_id!r}"
                        )
                    engine.answer(contact_id, now)
                    live.reservation = None
                    self.counters.confirmations += 1
            case DeliveryRejected(reservation=reservation, contact_id=contact_id, reason=reason):
                known = self._live.get(contact_id)
                self._arrived(known, reservation, out)
                if known is not None and reservation in known.orders:
                    known.orders.remove(reservation)  # refused: it will not move the call
                live = self._current(contact_id, reservation)
                if live is not None:
                    self._rejected(site_id, contact_id, live, reason=reason, now=now, out=out)
            case ContactTransferred():
                self._transferred(site_id, event, now, out)
            case ContactTakenIn(reservation=reservation, contact_id=contact_id):
                known = self._live.get(contact_id)
                if not self._arrived(known, reservation, out):
                    self.counters.stale_settlements += 1
            case ContactFinished(contact_id=contact_id, wrap_up=wrap_up):
                # Finished in the engine first: one it refuses (the router had the call
                # elsewhere) stays known, for the snapshot asked for to put right.
                freed = engine.finish(contact_id, now, wrap_up=wrap_up)
                self._live.pop(contact_id, None)
                self._deliver(freed, out)
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
            case LocallyAbandoned(contact=data):
                # Recorded (counted) in any case; a router that still has the call at this site
                # (it never saw the link drop) ends it.  Nothing else: the call is gone.
                self.counters.locally_abandoned += 1
                live = self._live.get(data.id)
                if live is not None and live.landed_at == site_id:
                    self._end(data.id, now, out)

    def _arrived(self, live: _Live | None, reservation: int, out: list[Outbound]) -> bool:
        """The site settled (or confirmed taking in) ``reservation``: if that delivery was
        bringing the call in from transit, the call is there."""
        if live is None or live.arriving is None or live.arriving[0] != reservation:
            return False
        self._landed(live, out)
        return True

    def _landed(self, live: _Live, out: list[Outbound]) -> None:
        """The call in transit was taken in: the site it left may forget it."""
        origin = live.arriving[1] if live.arriving is not None else live.custody_from
        if origin is not None and live.order is not None:
            self._settle(origin, live.order, live.data.id, out)
        live.arriving = live.order = None

    def _settle(self, site_id: str, order: int, contact_id: str, out: list[Outbound]) -> None:
        self._settled[order] = None
        while len(self._settled) > REMEMBERED_SETTLEMENTS:
            self._settled.popitem(last=False)
        if self._links[site_id].up:  # else its snapshot lists it again, and is answered then
            out.append((site_id, TransferSettled(reservation=order, contact_id=contact_id)))

    def _rejected(
        self,
        site_id: str,
        contact_id: str,
        live: _Live,
        *,
        reason: str,
        now: float,
        out: list[Outbound],
    ) -> None:
        """The site settled the current reservation with a rejection."""
        engine = self.engine
        if live.landed_at != site_id:
            raise RoutingError(f"{site_id!r} rejected a reservation it was not sent")
        if live.transfer_to is not None:
            # The landing site would not send the call on (it is not queued there, or no
            # longer there): the reserved agent never rang, so it is free again, no fault of
            # its own; the call is forgotten and the site's snapshot, asked for now, offers it
            # again if it is still there (a hang-up is reported before, as ContactAbandoned).
            self.counters.transfer_refusals += 1
            del self._live[contact_id]
            self._deliver(engine.abandon(contact_id, now), out)
            raise RoutingError(f"transfer of {contact_id!r} refused: {reason}")
        live.reservation = live.agent_id = None
        self.counters.rejections += 1
        decision = engine.reject(contact_id, now, reason=reason)
        self._deliver([decision] if decision else [], out)

    def _transferred(
        self,
        site_id: str,
        event: ContactTransferred,
        now: float,
        out: list[Outbound],
        *,
        parked: ContactData | None = None,
        listed: ContactData | None = None,
    ) -> None:
        """The call left ``site_id`` for ``event.to_site`` on the transfer order
        ``event.reservation`` (confirmed in a delta, or listed ``transferred`` in a snapshot).
        ``parked``: the call's data when this order was parked by a dropped link; ``listed``:
        its data when the site's snapshot lists it (sent away, not settled yet)."""
        reservation, contact_id, to_site = event.reservation, event.contact_id, event.to_site
        if to_site not in self._links:
            raise RoutingError(f"contact {contact_id!r} transferred to unknown site {to_site!r}")
        live = self._live.get(contact_id)
        if live is None or live.landed_at != site_id or reservation not in live.orders:
            if parked is None:
                # Completed already (a confirmation listed again in a snapshot), or ended, or
                # sent away before this router started.
                self.counters.stale_settlements += 1
                if listed is not None:
                    self._listed_transfer(site_id, event, listed, out)
                return
            # Its order was set aside when the link dropped: the call is in transit.
            self.counters.transfers += 1
            self._forget(contact_id, now, out)
            self._live[contact_id] = _Live(
                data=parked, landed_at=None, custody_from=site_id, order=reservation
            )
            self._reroute(contact_id, parked, to_site, now, out)
            return
        if live.reservation is None and live.agent_id is not None:
            raise RoutingError(f"contact {contact_id!r} is talking at {site_id!r}, not transferred")
        self.counters.transfers += 1
        live.orders.clear()  # the call left: any other order to that site is refused
        current = live.transfer_to == to_site and live.reservation == reservation
        live.transfer_to, live.landed_at, live.custody_from = None, None, site_id
        live.order = reservation
        if current and self._links[to_site].up:
            assert live.agent_id is not None
            live.landed_at, live.custody_from = to_site, None
            live.arriving = (reservation, site_id)
            delivery = Deliver(
                reservation=reservation,
                contact=live.data,
                agent_id=live.agent_id,
                from_site=site_id,
                order=reservation,
            )
            out.append((to_site, delivery))
            return
        # Overtaken (the router decided again meanwhile), or the destination's link dropped:
        # the call is in transit all the same, and goes wherever the router sends it now.
        agent_id = live.agent_id
        if agent_id is None:
            return  # waiting in the engine (re-queued): its next assignment carries it in
        if not current and self._links[self._site_of_agent[agent_id]].up:
            self._dispatch(contact_id, live, agent_id, self._site_of_agent[agent_id], out)
            return
        live.reservation = live.agent_id = None
        self._deliver(self.engine.abandon(contact_id, now), out)  # the agent did nothing wrong
        self._reroute(contact_id, live.data, to_site, now, out)

    def _listed_transfer(
        self, site_id: str, event: ContactTransferred, data: ContactData, out: list[Outbound]
    ) -> None:
        """The site's snapshot lists a call it sent away on ``event.reservation`` as not
        settled: say so again if it arrived, wait if it is on its way; else this router started
        after the transfer, and learns where the call is from the other sites' snapshots."""
        order, contact_id = event.reservation, event.contact_id
        live = self._live.get(contact_id)
        if live is not None and live.order == order:
            return  # in transit: settled when taken in
        if contact_id in self._incoming:
            return  # delivered to a site whose link dropped: its snapshot will tell
        if live is not None or order in self._settled:
            self._settle(site_id, order, contact_id, out)
            return
        self._unsettled[contact_id] = _Unsettled(order, site_id, event.to_site, data)

    def _resolve_unsettled(self, now: float, out: list[Outbound]) -> None:
        """Calls listed as sent away before this router started (:class:`_Unsettled`): those a
        site has, or says it received, arrived; once every site has sent its snapshot, or
        ``transit_timeout`` has passed since the router started (a site silent that long is
        taken for dead, and what its PBX took in went with it; one that comes back later may
        then have a call delivered a second time), the others are in transit still, and routed
        again from there."""
        timeout, started = self._transit_timeout, self._started
        waited = timeout is not None and started is not None and now >= started + timeout
        everyone = waited or all(link.heard for link in self._links.values())
        for contact_id, entry in list(self._unsettled.items()):
            live = self._live.get(contact_id)
            if live is not None and live.order == entry.order:
                del self._unsettled[contact_id]  # in transit in this router's hands after all
                continue
            received = any(entry.order in link.received for link in self._links.values())
            if live is not None or entry.order in self._settled or received:
                del self._unsettled[contact_id]
                self._settle(entry.from_site, entry.order, contact_id, out)
            elif everyone:
                del self._unsettled[contact_id]
                self.counters.transfers += 1
                self._live[contact_id] = _Live(
                    data=entry.data, landed_at=None, custody_from=entry.from_site, order=entry.order
                )
                self._reroute(contact_id, entry.data, entry.to_site, now, out)

    def _reroute(
        self, contact_id: str, data: ContactData, sent_to: str, now: float, out: list[Outbound]
    ) -> None:
        """Route a call in transit (not in the engine) afresh, as if it had landed at the site
        it was sent to."""
        self.counters.rerouted_in_transit += 1
        decision = self.engine.offer(data.to_contact(landed_at=sent_to), now)
        self._deliver([decision] if decision else [], out)

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
        self._wrap_up_hold.pop(agent_id, None)  # on a call now: the engine's state says so
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
            self._dispatch(
                assignment.contact_id, live, assignment.agent_id, assignment.site_id, out
            )

    def _dispatch(
        self, contact_id: str, live: _Live, agent_id: str, site_id: str, out: list[Outbound]
    ) -> None:
        """Send a new reservation of the call for ``agent_id`` (at ``site_id``): a delivery if
        the call is at that site (or in transit: the delivery takes it in), else a transfer
        order to the site where it is (the delivery follows its confirmation)."""
        self._reservation += self._shards
        number = self._reservation
        live.reservation, live.agent_id, live.transfer_to = number, agent_id, None
        self.counters.deliveries += 1
        if live.landed_at is None or live.landed_at == site_id:
            from_site = live.custody_from
            live.landed_at, live.custody_from = site_id, None
            if from_site is not None:
                live.arriving = (number, from_site)
            delivery = Deliver(
                reservation=number,
                contact=live.data,
                agent_id=agent_id,
                from_site=from_site,
                order=live.order if from_site is not None else None,
            )
            out.append((site_id, delivery))
        else:
            live.transfer_to = site_id
            live.orders.append(number)
            order = TransferOut(reservation=number, contact_id=contact_id, to_site=site_id)
            out.append((live.landed_at, order))

    def _resync(self, site_id: str, reason: str, now: float) -> list[Outbound]:
        """Ask the site for its snapshot.  Until it comes, its agents take no new work: a
        delivery sent now would reach the site after it took the snapshot, and cross it (the
        snapshot would show the call queued, and the router route it a second time).  Asked
        once: a second request would bring a second snapshot, crossing what the first one
        caused."""
        link = self._links[site_id]
        asked, link.synced = not link.synced, False
        engine = self.engine
        for agent_id in self._agents_of_site[site_id]:
            if engine.agent_ready(agent_id):
                engine.set_not_ready(agent_id, now, _RESYNC)
        return [] if asked else [(site_id, SnapshotRequest(reason=reason))]

    # ----------------------------------------------------------------- snapshots

    def _reconcile(self, site_id: str, snapshot: Snapshot, now: float, out: list[Outbound]) -> None:
        """Make the router's view of the site equal to the snapshot: logins first (so the
        site's calls can be adopted by its agents), then calls, then presence (so agents made
        ready take waiting work only once every call is where the site says)."""
        engine = self.engine
        parked = {c: p for c, p in self._parked.items() if p.from_site == site_id}
        for contact_id in parked:
            del self._parked[contact_id]  # resolved by this snapshot, whatever it says
        incoming = {c: i for c, i in self._incoming.items() if i.to_site == site_id}
        for contact_id in incoming:
            del self._incoming[contact_id]
        taken_in = set(snapshot.taken_in)
        statuses = {
            s.agent_id: s for s in snapshot.agents if self._site_of_agent.get(s.agent_id) == site_id
        }
        self.counters.refused_events += len(snapshot.agents) - len(statuses)
        agents = self._agents_of_site[site_id]
        for agent_id, status in statuses.items():
            if status.logged_in and engine.agent_state(agent_id) is AgentState.LOGGED_OUT:
                engine.login(agent_id, now, ready=False, shift_end=status.shift_end)
        # No agent of the site takes work while its calls are being put right: one freed by a
        # call the site no longer has must not be handed a call the site gave someone else.
        for agent_id in agents:
            if engine.agent_state(agent_id) is not AgentState.LOGGED_OUT:
                engine.set_not_ready(agent_id, now, _RESYNC)
        on_site = {status.contact.id: status for status in snapshot.contacts}
        present = {c for c, status in on_site.items() if status.state != "transferred"}
        for contact_id, live in list(self._live.items()):
            if live.landed_at != site_id:
                continue
            if live.arriving is not None:
                if contact_id not in present and live.arriving[0] not in taken_in:
                    continue  # the delivery bringing it left after the site took this snapshot
                self._landed(live, out)
            if contact_id not in on_site:
                self._end(contact_id, now, out)
        for contact_status in snapshot.contacts:
            try:
                self._take_status(site_id, contact_status, now, out, parked=parked)
            except RoutingError:
                self.counters.refused_events += 1
        received = self._links[site_id].received  # the snapshot's, set on receipt
        for contact_id, lost in incoming.items():
            arrived = lost.order is not None and lost.order in received
            if contact_id in present or lost.reservation in taken_in or arrived:
                if lost.order is not None:  # it arrived (and may have ended since)
                    self._settle(lost.from_site, lost.order, contact_id, out)
                continue
            if contact_id in self._live or lost.order in self._settled:
                continue  # back in the router's hands another way, or arrived elsewhere
            # The delivery never got there: the call is still in transit.
            self._live[contact_id] = _Live(
                data=lost.data, landed_at=None, custody_from=lost.from_site, order=lost.order
            )
            self._reroute(contact_id, lost.data, site_id, now, out)
        self._resolve_unsettled(now, out)
        for agent_id in agents:
            try:
                self._take_presence(agent_id, statuses.get(agent_id), now, out)
            except RoutingError:
                self.counters.refused_events += 1

    def _take_status(
        self,
        site_id: str,
        status: ContactStatus,
        now: float,
        out: list[Outbound],
        *,
        parked: dict[str, _Parked],
    ) -> None:
        contact_id, live = status.contact.id, self._live.get(status.contact.id)
        if status.state == "transferred":
            if status.reservation is None or status.to_site is None:
                raise RoutingError(f"contact {contact_id!r} transferred with no order or site")
            orders = parked.get(contact_id)
            event = ContactTransferred(
                reservation=status.reservation,
                contact_id=contact_id,
                to_site=status.to_site,
                at=now,
            )
            ours = orders is not None and status.reservation in orders.reservations
            parked_data = status.contact if ours else None
            self._transferred(site_id, event, now, out, parked=parked_data, listed=status.contact)
            return
        if live is not None and live.order is not None:
            self._landed(live, out)  # the call is at this site: it left transit
        # Transfer orders sent here after the site took its snapshot may still move the call,
        # whatever the router now makes of it.
        pending = live.orders if live is not None and live.landed_at == site_id else []
        if status.state == "queued":
            here = live is not None and live.landed_at == site_id
            if here and self.engine.is_waiting(contact_id):
                return
            self._forget(contact_id, now, out)
            self._offer(site_id, status.contact, now, out)
            self._live[contact_id].orders = [*pending, *self._live[contact_id].orders]
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
        self._live[contact_id].orders = pending

    def _take_back_reservations(self, agent_id: str, now: float, out: list[Outbound]) -> None:
        """The agent left (its site says it is logged out) while still reserved: for a call
        ringing there, or for a transfer on its way to it.  The calls are routed again; a
        transfer order still out is overtaken, which its confirmation, if it comes, handles."""
        for contact_id, live in list(self._live.items()):
            if live.agent_id == agent_id and live.reservation is not None:
                live.reservation = live.agent_id = live.transfer_to = None
                decision = self.engine.reject(contact_id, now, reason="logged out at the site")
                self._deliver([decision] if decision else [], out)

    def _take_presence(
        self, agent_id: str, status: AgentStatus | None, now: float, out: list[Outbound]
    ) -> None:
        engine = self.engine
        logged_in = engine.agent_state(agent_id) is not AgentState.LOGGED_OUT
        if status is None or not status.logged_in:
            self._wrap_up_hold.pop(agent_id, None)
            if logged_in:
                self._take_back_reservations(agent_id, now, out)
                engine.set_not_ready(agent_id, now, "logged out at the site")
                engine.logout(agent_id, now)
            return
        state = engine.agent_state(agent_id)
        reason = status.reason or "not ready"
        if status.wrap_up and state in _FREE:
            # In wrap-up at the site, free in the engine (the call it wrapped up ended before
            # this router knew of it): no new work until the site's WrapUpEnded, then the
            # presence the site gives it.
            if agent_id not in self._wrap_up_hold:
                self.counters.wrap_up_holds += 1
            self._wrap_up_hold[agent_id] = status.ready
            held = IN_WRAP_UP if status.ready else reason
            if engine.agent_ready(agent_id) or engine.agent_reason(agent_id) != held:
                engine.set_not_ready(agent_id, now, held)
            return
        self._wrap_up_hold.pop(agent_id, None)
        if not status.wrap_up and state is AgentState.AFTER_CONTACT_WORK:
            self._deliver(engine.end_wrap_up(agent_id, now), out)
        if status.ready and not engine.agent_ready(agent_id):
            self._deliver(engine.set_ready(agent_id, now), out)
        elif not status.ready and (
            engine.agent_ready(agent_id) or engine.agent_reason(agent_id) != reason
        ):
            engine.set_not_ready(agent_id, now, reason)
