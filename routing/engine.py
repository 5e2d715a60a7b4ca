"""The routing engine: which agent at which site takes each contact, and which contact a freed
agent takes.

The engine is a deterministic state machine driven by events that carry their own time
(``offer``, ``answer``, ``finish``, ``set_ready``, ``advance`` ...): it never reads a clock and
never draws a random number, so a replayed event log reproduces every decision, which is what the
simulator, the tests and a hot standby router rely on.  Decisions cost O(log n) in agents through
the sorted indices of :mod:`routing.indices`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from enum import Enum

from routing.costs import expected_cost, sites_by_cost
from routing.indices import AgentGroup, AgentKey, ContactKey, GroupSpec
from routing.model import (
    AgentProfile,
    AgentState,
    AgentStrategy,
    Assignment,
    Channel,
    Contact,
    CostMode,
    Network,
    Queue,
    SiteSelection,
    Target,
)
from routing.settings import RouterSettings
from routing.site_stats import PulseVerdict, SiteBoard, SitePulse
from routing.skills import Skill, all_of


class RoutingError(ValueError):
    """An event the engine cannot apply; the engine state is left unchanged."""


class _Presence(Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"


class _Timer(Enum):
    TARGET = 0
    RELEASE_HOLD = 1
    WRAP_UP_END = 2


@dataclass(slots=True, eq=False)
class _Agent:
    profile: AgentProfile
    seq: int
    presence: _Presence = _Presence.LOGGED_OUT
    reason: str | None = None
    changed_at: float = 0.0
    idle_since: float = 0.0
    reserved: dict[str, Channel] = field(default_factory=dict)
    active: dict[str, Channel] = field(default_factory=dict)
    wrap_up_token: int | None = None
    handled: int = 0  # contacts finished since login (workload balancing)
    last_offered: int = 0  # decision number of the last contact offered (round robin)
    groups: list[AgentGroup] = field(default_factory=list)
    entries: dict[int, AgentKey] = field(default_factory=dict)
    scores: dict[int, int] = field(default_factory=dict)

    @property
    def state(self) -> AgentState:
        if self.presence is _Presence.LOGGED_OUT:
            return AgentState.LOGGED_OUT
        if self.active:
            return AgentState.ON_CONTACT
        if self.reserved:
            return AgentState.RESERVED
        if self.wrap_up_token is not None:
            return AgentState.AFTER_CONTACT_WORK
        return AgentState.READY if self.presence is _Presence.READY else AgentState.NOT_READY

    def load(self) -> dict[Channel, int]:
        load: dict[Channel, int] = {}
        for channel in (*self.reserved.values(), *self.active.values()):
            load[channel] = load.get(channel, 0) + 1
        return load

    def available_channel(self) -> tuple[Channel | None, int]:
        """The one channel this agent can take another contact on now, and its current load.

        ``None`` as channel with load 0 means every channel the agent has capacity for.
        """
        if self.presence is not _Presence.READY or self.wrap_up_token is not None:
            return None, -1
        load = self.load()
        if not load:
            return None, 0
        (channel, count), *others = load.items()
        if others or count >= self.profile.capacity_for(channel):
            return None, -1
        return channel, count


@dataclass(slots=True, eq=False)
class _Waiting:
    contact: Contact
    queue: Queue
    seq: int
    key: ContactKey
    groups: tuple[AgentGroup, ...]
    activations: tuple[float, ...]
    active: int = 0
    held_at: tuple[str, ...] = ()
    hold_until: float = math.inf
    hold_considered: bool = False
    # Where the contact is physically queued, once a site took it in (transfers count from it).
    landed_at: str | None = None


_CostKey = tuple[float, float, str | None, str | None]


@dataclass(frozen=True, slots=True)
class SiteLoad:
    """Live figures of one group at one site, for expected-wait estimates and reports."""

    staffed: int
    ready: int
    waiting: int


class Router:
    """The routing engine for one network configuration."""

    def __init__(self, network: Network, settings: RouterSettings | None = None) -> None:
        self.network = network
        self.settings = settings or RouterSettings()
        self._agents: dict[str, _Agent] = {}
        self._agent_by_seq: list[_Agent] = []
        for profile in network.agents.values():
            agent = _Agent(profile=profile, seq=len(self._agent_by_seq))
            self._agents[profile.id] = agent
            self._agent_by_seq.append(agent)
        self._groups: dict[GroupSpec, AgentGroup] = {}
        self._groups_by_number: list[AgentGroup] = []
        self._waiting: dict[str, _Waiting] = {}
        self._waiting_by_seq: dict[int, _Waiting] = {}
        self._delivered: dict[str, tuple[str, Queue]] = {}
        # Queue records of reserved (ringing) contacts, so a rejected delivery is re-queued.
        self._requeued: dict[str, _Waiting] = {}
        self._timers: list[tuple[float, int, _Timer, int, int]] = []
        self._seq = 0
        # Per queue and contact's required skills: the groups of its targets, and when each
        # target activates; both are needed on every offer.
        self._queue_groups: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[AgentGroup, ...]]
        self._queue_groups = {}
        self._activations = {q.id: q.activation_times() for q in network.queues.values()}
        # Site cost orders by (handle time, wrap-up, caller region, landing site): queues with
        # the same expected work share them, and a landed contact's order ignores its region.
        self._cost_order: dict[_CostKey, tuple[str, ...]] = {}
        self._cost_rank: dict[tuple[str, ...], dict[str, int]] = {}
        # Site selection: the sites' statistics pulses, each region's first site (the preferred
        # site of a pre-routed caller with no other preference), the last site chosen for each
        # (queue, preferred site) and how often that choice changed (load flapping).
        self.board = SiteBoard(
            network.sites,
            self.settings.site_status,
            {q.id: q.sl_threshold for q in network.queues.values()},
        )
        self._region_site: dict[str, str] = {}
        for site in sorted(network.sites.values(), key=lambda site: site.id):
            self._region_site.setdefault(site.region, site.id)
        self._last_choice: dict[tuple[str, str], str] = {}
        self._site_switches: dict[str, int] = dict.fromkeys(network.queues, 0)
        self._queued_at: dict[tuple[str, str], int] = {}
        self._open: dict[str, int] = dict.fromkeys(network.queues, 0)
        # Everything a decision needs is built with the configuration, so no offer pays for it.
        for queue in network.queues.values():
            self._groups_for(queue, ())
            self._cost_orders_for(queue)

    # ----------------------------------------------------------------- agent events

    def login(self, agent_id: str, now: float, *, ready: bool = False) -> list[Assignment]:
        agent = self._agent(agent_id)
        if agent.presence is not _Presence.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id!r} is already logged in")
        self._set_presence(agent, _Presence.READY if ready else _Presence.NOT_READY)
        agent.handled = 0
        agent.reason = None if ready else "login"
        agent.changed_at = agent.idle_since = now
        return self._changed(agent, now)

    def logout(self, agent_id: str, now: float) -> None:
        agent = self._agent(agent_id)
        if agent.presence is _Presence.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id!r} is not logged in")
        if agent.reserved or agent.active:
            raise RoutingError(
                f"agent {agent_id!r} has contacts in progress; set not ready and log out after"
            )
        self._set_presence(agent, _Presence.LOGGED_OUT)
        agent.wrap_up_token = None
        agent.changed_at = now
        self._changed(agent, now)

    def set_ready(self, agent_id: str, now: float) -> list[Assignment]:
        agent = self._logged_in(agent_id)
        if agent.presence is not _Presence.READY:
            self._set_presence(agent, _Presence.READY)
            agent.reason = None
            agent.changed_at = now
            if not agent.reserved and not agent.active and agent.wrap_up_token is None:
                agent.idle_since = now
        return self._changed(agent, now)

    def set_not_ready(self, agent_id: str, now: float, reason: str = "break") -> None:
        """Takes effect for new contacts at once; contacts in progress finish normally."""
        agent = self._logged_in(agent_id)
        self._set_presence(agent, _Presence.NOT_READY)
        agent.reason = reason
        agent.changed_at = now
        self._changed(agent, now)

    def end_wrap_up(self, agent_id: str, now: float) -> list[Assignment]:
        """The agent ends after-contact work before its configured time (or it had none)."""
        agent = self._logged_in(agent_id)
        if agent.wrap_up_token is None:
            raise RoutingError(f"agent {agent_id!r} is not in after-contact work")
        return self._end_wrap_up(agent, now)

    # ----------------------------------------------------------------- contact events

    def offer(self, contact: Contact, now: float) -> Assignment | None:
        """A new contact: an agent now (reserved), or ``None`` and the contact waits."""
        if contact.id in self._waiting or contact.id in self._delivered:
            raise RoutingError(f"contact {contact.id!r} is already being routed")
        queue = self.network.queues.get(contact.queue_id)
        if queue is None:
            raise RoutingError(f"unknown queue {contact.queue_id!r}")
        if contact.channel is not queue.channel:
            raise RoutingError(
                f"contact {contact.id!r} is {contact.channel} but queue {queue.id!r} takes "
                f"{queue.channel}"
            )
        unknown = sorted(set(contact.required_skills) - self.network.skills)
        if unknown:
            raise RoutingError(f"contact {contact.id!r} requires unknown skill(s) {unknown}")
        waiting = self._new_waiting(contact, queue)
        waiting.active = sum(1 for t in waiting.activations if t <= now - contact.arrival)
        assignment = self._route(waiting, now)
        if assignment is None:
            self._enqueue(waiting, now)
        return assignment

    def answer(self, contact_id: str, now: float) -> None:
        """The reserved agent took the contact (delivery confirmed)."""
        agent = self._agent(self._delivery(contact_id)[0])
        if contact_id not in agent.reserved:
            raise RoutingError(f"contact {contact_id!r} is already answered")
        agent.active[contact_id] = agent.reserved.pop(contact_id)
        del self._requeued[contact_id]
        agent.changed_at = now

    def finish(
        self, contact_id: str, now: float, *, wrap_up: float | None = None
    ) -> list[Assignment]:
        """The contact ended.  ``wrap_up`` overrides the queue's after-contact work time;
        ``math.inf`` means the agent ends it (``end_wrap_up``)."""
        agent_id, queue = self._delivery(contact_id)
        agent = self._agent(agent_id)
        if contact_id not in agent.active:
            raise RoutingError(f"contact {contact_id!r} was never answered")
        del agent.active[contact_id]
        del self._delivered[contact_id]
        agent.changed_at = now
        agent.handled += 1
        duration = queue.wrap_up if wrap_up is None else wrap_up
        if duration > 0 and agent.presence is not _Presence.LOGGED_OUT:
            token = self._next_seq()
            agent.wrap_up_token = token
            if math.isfinite(duration):
                self._schedule(now + duration, _Timer.WRAP_UP_END, agent.seq, token)
            return self._changed(agent, now)
        if not agent.reserved and not agent.active:
            agent.idle_since = now
        return self._changed(agent, now)

    def reject(
        self, contact_id: str, now: float, *, reason: str = "no answer"
    ) -> Assignment | None:
        """The reserved agent did not take the contact (no answer, or the site refused).

        The contact goes back to the head of its queue (it keeps its arrival time and priority)
        and the agent becomes not ready with ``reason``, as ACDs do on redirect-on-no-answer.
        """
        agent_id, _ = self._delivery(contact_id)
        agent = self._agent(agent_id)
        if contact_id not in agent.reserved:
            raise RoutingError(f"contact {contact_id!r} was already answered")
        del agent.reserved[contact_id]
        del self._delivered[contact_id]
        self._set_presence(agent, _Presence.NOT_READY)
        agent.reason, agent.changed_at = reason, now
        self._changed(agent, now)
        waiting = self._requeued.pop(contact_id)
        waiting.active = sum(1 for t in waiting.activations if t <= now - waiting.contact.arrival)
        if waiting.hold_until <= now:
            # A least-cost hold that ran out while the contact rang: any site may take it now.
            waiting.held_at, waiting.hold_until = (), math.inf
        assignment = self._route(waiting, now)
        if assignment is None:
            self._enqueue(waiting, now)
        return assignment

    def abandon(self, contact_id: str, now: float) -> list[Assignment]:
        """The caller hung up, waiting or ringing."""
        waiting = self._waiting.get(contact_id)
        if waiting is not None:
            self._dequeue(waiting)
            return []
        agent_id, _ = self._delivery(contact_id)
        agent = self._agent(agent_id)
        if contact_id in agent.active:
            raise RoutingError(f"contact {contact_id!r} is answered; finish it instead")
        del agent.reserved[contact_id]
        del self._delivered[contact_id]
        self._requeued.pop(contact_id, None)
        agent.changed_at = now
        return self._changed(agent, now)

    # ----------------------------------------------------------------- time

    def next_timer(self) -> float | None:
        """When ``advance`` next has work (a target widening, a hold expiring, wrap-up ending)."""
        while self._timers and not self._live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance(self, now: float) -> list[Assignment]:
        assignments: list[Assignment] = []
        while self._timers and self._timers[0][0] <= now:
            entry = heapq.heappop(self._timers)
            if not self._live(entry):
                continue
            when, _, kind, ref, token = entry
            if kind is _Timer.WRAP_UP_END:
                agent = self._agent_by_seq[ref]
                if agent.wrap_up_token == token:
                    assignments += self._end_wrap_up(agent, when)
                continue
            waiting = self._waiting_by_seq.get(ref)
            if waiting is None:
                continue
            self._dequeue(waiting)
            if kind is _Timer.TARGET:
                waiting.active = max(waiting.active, token + 1)
            else:
                waiting.held_at, waiting.hold_until = (), math.inf
            assignment = self._route(waiting, when)
            if assignment is None:
                self._enqueue(waiting, when)
            else:
                assignments.append(assignment)
        return assignments

    # ----------------------------------------------------------------- queries

    def agent_state(self, agent_id: str) -> AgentState:
        return self._agent(agent_id).state

    def agent_state_since(self, agent_id: str) -> float:
        """When the agent's state last changed: supervisors' time-in-state."""
        return self._agent(agent_id).changed_at

    def agent_reason(self, agent_id: str) -> str | None:
        agent = self._agent(agent_id)
        return agent.reason if agent.presence is _Presence.NOT_READY else None

    def is_waiting(self, contact_id: str) -> bool:
        return contact_id in self._waiting

    def waiting_contacts(self) -> list[str]:
        return list(self._waiting)

    def delivered_to(self, contact_id: str) -> str | None:
        delivery = self._delivered.get(contact_id)
        return delivery[0] if delivery else None

    def site_load(self, queue_id: str, site_id: str) -> SiteLoad:
        """What a site's ACD would report for a queue: agents of its first target there, and
        the queue's contacts waiting for that site (queued or held there, plus those open to
        every site)."""
        group = self._groups_for(self.network.queues[queue_id], ())[0]
        return SiteLoad(
            staffed=group.staffed_at(site_id),
            ready=group.ready_at(site_id),
            waiting=self._queued_at.get((queue_id, site_id), 0) + self._open[queue_id],
        )

    def site_switches(self, queue_id: str) -> int:
        """How often site selection changed its choice for a queue's contacts that could not
        stay at their preferred site (per preferred site, consecutive choices that differ)."""
        return self._site_switches[queue_id]

    def receive_pulse(self, pulse: SitePulse, now: float) -> PulseVerdict:
        """A site's statistics; site selection uses them while they are fresh."""
        return self.board.receive(pulse, now)

    # ----------------------------------------------------------------- decisions

    def _route(self, waiting: _Waiting, now: float) -> Assignment | None:
        groups = waiting.groups[: waiting.active]
        queue = waiting.queue
        if queue.site_selection is not None and not waiting.hold_considered:
            return self._select_site(waiting, groups, queue.site_selection, now)
        if waiting.held_at:
            return self._route_within(waiting, groups, waiting.held_at, now)
        if queue.cost_mode is CostMode.LEAST_COST:
            return self._route_least_cost(waiting, groups, now)
        for index, group in enumerate(groups):
            key = group.best_ready()
            if key is not None:
                return self._assign(waiting, self._agent_by_seq[int(key[-1])], index, now)
        return None

    def _route_within(
        self, waiting: _Waiting, groups: tuple[AgentGroup, ...], sites: tuple[str, ...], now: float
    ) -> Assignment | None:
        """A free agent at the first of ``sites`` that has one (a contact held or queued there)."""
        found = self._first_free(groups, sites)
        if found is None:
            return None
        position, index = found
        return self._assign_at(waiting, groups, sites[position], index, now)

    @staticmethod
    def _first_free(
        groups: tuple[AgentGroup, ...], sites: tuple[str, ...]
    ) -> tuple[int, int] | None:
        """(position in ``sites``, target index) of the first site with a free agent in one of
        the groups, earlier targets first at a site; a set lookup per site and group."""
        free = [(index, group.free_sites) for index, group in enumerate(groups) if group.free_sites]
        if not free:
            return None
        return next(
            (
                (position, index)
                for position, site_id in enumerate(sites)
                for index, free_sites in free
                if site_id in free_sites
            ),
            None,
        )

    def _assign_at(
        self,
        waiting: _Waiting,
        groups: tuple[AgentGroup, ...],
        site_id: str,
        index: int,
        now: float,
    ) -> Assignment:
        """The best free agent of target ``index`` at a site known to have one."""
        key = groups[index].best_ready(site_id)
        assert key is not None
        return self._assign(waiting, self._agent_by_seq[int(key[-1])], index, now)

    def _select_site(
        self,
        waiting: _Waiting,
        groups: tuple[AgentGroup, ...],
        selection: SiteSelection,
        now: float,
    ) -> Assignment | None:
        """Preferred site first; another site only when the preferred one has no free agent,
        is predicted to miss the service level, and the other is predicted better by more than
        the margin.  The contact then queues at the chosen site (see :class:`SiteSelection`).

        Remote sites are judged by their last trusted pulse only, as a network router sees
        them: that is what makes the margin matter."""
        waiting.hold_considered = True
        contact, queue = waiting.contact, waiting.queue
        preferred = self._preferred_site(contact)
        if preferred is None or not self._has_agents_for(groups, preferred):
            # Nothing to prefer, or nobody there for this contact (its language, say).
            return self._route(waiting, now)
        assignment = self._route_within(waiting, groups, (preferred,), now)
        if assignment is not None:
            return assignment
        choice = preferred
        local = self._predicted_wait(queue, preferred, now)
        if local is None or local > queue.sl_threshold:
            bar = math.inf if local is None else local - selection.margin
            better = []
            for site_id in self.network.sites:
                if site_id == preferred or not self._has_agents_for(groups, site_id):
                    continue
                wait = self._predicted_wait(queue, site_id, now)
                if wait is not None and wait < bar:
                    better.append((wait, site_id))
            if better:
                choice = self._best_of(queue, contact, better)
        previous = self._last_choice.get((queue.id, preferred))
        if previous is not None and previous != choice:
            self._site_switches[queue.id] += 1
        self._last_choice[(queue.id, preferred)] = choice
        if choice != preferred:
            assignment = self._route_within(waiting, groups, (choice,), now)
            if assignment is not None:
                return assignment
        if waiting.landed_at is None:
            waiting.landed_at = choice  # the network delivers it to the chosen site's queue
        waiting.held_at = (choice,)
        if selection.post_route_after is not None:
            waiting.hold_until = contact.arrival + selection.post_route_after
        return None

    @staticmethod
    def _has_agents_for(groups: tuple[AgentGroup, ...], site_id: str) -> bool:
        """Whether the site has any agent for one of the contact's groups (they carry its
        required skills, its language say): a site's pulsed wait is per queue, not per
        contact, so it cannot tell."""
        return any(group.members_by_site.get(site_id, 0) > 0 for group in groups)

    def _best_of(self, queue: Queue, contact: Contact, better: list[tuple[float, str]]) -> str:
        """Among sites predicted better enough: the shortest wait, or for a least-cost queue
        the cheapest of those predicted within the service level (else the shortest wait)."""
        if queue.cost_mode is CostMode.LEAST_COST:
            within = {site_id for wait, site_id in better if wait <= queue.sl_threshold}
            for site_id in self._sites_by_cost(queue, contact):
                if site_id in within:
                    return site_id
        return min(better)[1]

    def _preferred_site(self, contact: Contact) -> str | None:
        if contact.preferred_site is not None:
            return contact.preferred_site
        if contact.origin_site is not None:
            return contact.origin_site
        return self._region_site.get(contact.caller_region)

    def _predicted_wait(self, queue: Queue, site_id: str, now: float) -> float | None:
        """The site's own expected wait for the queue from its last trusted pulse; ``None``
        when its statistics are stale, missing, or it is down."""
        stats = self.board.trusted_stats(site_id, queue.id, now)
        return None if stats is None else stats.ewt

    def _route_least_cost(
        self, waiting: _Waiting, groups: tuple[AgentGroup, ...], now: float
    ) -> Assignment | None:
        """Cheapest site with a free qualifying agent, unless a cheaper site is expected to free
        one within the wait budget: then the contact is held for the cheaper sites until the
        budget is spent, and any site may take it after that.

        The expected wait at a site is the queue-position estimate: the contacts held there plus
        its share (by staffing) of the open queue, each taking one handle time shared by its
        staffed agents.  ``(held + open·staffed/total + 1)·AHT <= budget·staffed`` rearranges
        to ``held + 1 <= staffed·capacity`` with ``capacity = budget/AHT - open/total`` the same
        for every site, so a site costs a set lookup and at most two dict lookups per group,
        and a group whose capacity is not positive can hold nowhere."""
        contact, queue = waiting.contact, waiting.queue
        budget = queue.sl_threshold * self.settings.least_cost_wait_share
        budget -= now - contact.arrival
        order = self._sites_by_cost(queue, contact)
        # The cheapest site with a free agent: a walk down the cost order, or, when few sites
        # have one (a busy centre), the lowest-ranked of those few.
        found: tuple[int, int] | None = None  # (position in order, target index)
        free = [(index, group) for index, group in enumerate(groups) if group.free_sites]
        if sum(len(g.free_sites) for _, g in free) * 4 >= len(order):
            found = self._first_free(groups, order)
        elif free:
            rank = self._cost_rank[order]
            found = min((rank[site], index) for index, g in free for site in g.free_sites)
        # A hold for cheaper sites, only at the first routing and only for sites cheaper than
        # the free agent found, and only with groups that have room at some site.
        holds = []
        if not waiting.hold_considered and budget > 0:
            for group in groups:
                capacity = budget / queue.expected_handle_time
                capacity -= len(group.waiting_open) / max(group.staffed_total, 1)
                if group.staffed_max * capacity >= 1.0:
                    holds.append((group, capacity))
        if holds:
            end = len(order) if found is None else found[0]
            for position in range(end):
                site_id = order[position]
                for group, capacity in holds:
                    room = group.staffed_by_site.get(site_id, 0) * capacity
                    if room >= 1.0 and group.held_at(site_id) + 1.0 <= room:
                        waiting.hold_considered = True
                        waiting.held_at = order[: position + 1]
                        waiting.hold_until = now + budget
                        return None
        if found is None:
            return None
        position, index = found
        return self._assign_at(waiting, groups, order[position], index, now)

    def _sites_by_cost(self, queue: Queue, contact: Contact) -> tuple[str, ...]:
        if contact.origin_site is None:
            return self._order(queue, contact.caller_region, None)
        return self._order(queue, None, contact.origin_site)

    def _cost_orders_for(self, queue: Queue) -> None:
        """Every landing site's order and every tariffed region's pre-routing order."""
        for region in sorted({region for region, _ in self.network.tariffs.per_minute}):
            self._order(queue, region, None)
        for origin in self.network.sites:
            self._order(queue, None, origin)

    def _order(self, queue: Queue, region: str | None, origin: str | None) -> tuple[str, ...]:
        """A site cost order, with its site -> position map; equal orders share one map."""
        key = self._cost_key(queue, region, origin)
        order = self._cost_order.get(key)
        if order is None:
            sites, tariffs = self.network.sites.values(), self.network.tariffs
            order = sites_by_cost(queue, sites, tariffs, region or "", origin)
            self._cost_order[key] = order
            if order not in self._cost_rank:
                self._cost_rank[order] = {site: rank for rank, site in enumerate(order)}
        return order

    @staticmethod
    def _cost_key(queue: Queue, region: str | None, origin: str | None) -> _CostKey:
        return (queue.expected_handle_time, queue.wrap_up, region, origin)

    def _assign(
        self, waiting: _Waiting, agent: _Agent, target_index: int, now: float
    ) -> Assignment:
        contact, queue = waiting.contact, waiting.queue
        site = self.network.sites[agent.profile.site_id]
        agent.reserved[contact.id] = contact.channel
        agent.changed_at = now
        agent.last_offered = self._next_seq()
        self._delivered[contact.id] = (agent.profile.id, queue)
        self._requeued[contact.id] = waiting
        self._changed(agent, now, serve=False)
        tariffs = self.network.tariffs
        landed = waiting.landed_at
        cost = expected_cost(queue, site, tariffs, contact.caller_region, landed)
        return Assignment(
            contact_id=contact.id,
            agent_id=agent.profile.id,
            site_id=site.id,
            queue_id=queue.id,
            target_index=target_index,
            decided_at=now,
            expected_cost=cost.total,
            transfer=landed is not None and landed != site.id,
        )

    def _serve(self, agent: _Agent, now: float) -> list[Assignment]:
        """A freed agent takes the best waiting contact it may take, as often as it can."""
        assignments: list[Assignment] = []
        site_id = agent.profile.site_id
        while True:
            channel, load = agent.available_channel()
            if load < 0:
                return assignments
            best: tuple[ContactKey, int] | None = None
            for group in agent.groups:
                spec = group.spec
                if channel is not None and spec.channel is not channel:
                    continue
                if load >= agent.profile.capacity_for(spec.channel):
                    continue
                key = group.next_contact(site_id)
                if key is None:
                    continue
                # The same contact may head several of the agent's groups (targets widen):
                # report the earliest of its targets the agent meets.
                index = self._waiting_by_seq[int(key[-1])].groups.index(group)
                if best is None or (key, index) < best:
                    best = (key, index)
            if best is None:
                return assignments
            waiting = self._waiting_by_seq[int(best[0][-1])]
            self._dequeue(waiting)
            assignments.append(self._assign(waiting, agent, best[1], now))

    # ----------------------------------------------------------------- bookkeeping

    def _new_waiting(self, contact: Contact, queue: Queue) -> _Waiting:
        seq = self._next_seq()
        priority = queue.priority if contact.priority is None else contact.priority
        if queue.ageing is None:
            key: ContactKey = (-priority, contact.arrival, seq)
        else:
            key = (0, contact.arrival - priority * queue.ageing, seq)
        return _Waiting(
            contact=contact,
            queue=queue,
            seq=seq,
            key=key,
            groups=self._groups_for(queue, tuple(sorted(contact.required_skills.items()))),
            activations=self._activations[queue.id],
            landed_at=contact.origin_site,
        )

    def _enqueue(self, waiting: _Waiting, now: float) -> None:
        self._waiting[waiting.contact.id] = waiting
        self._waiting_by_seq[waiting.seq] = waiting
        for group in waiting.groups[: waiting.active]:
            if waiting.held_at:
                for site_id in waiting.held_at:
                    if group.spec.admits_site(site_id):
                        group.hold_list(site_id).add(waiting.key)
            else:
                group.waiting_open.add(waiting.key)
        queue_id = waiting.queue.id
        if not waiting.held_at:
            self._open[queue_id] += 1
        for site_id in waiting.held_at:
            self._queued_at[(queue_id, site_id)] = self._queued_at.get((queue_id, site_id), 0) + 1
        if waiting.held_at and math.isfinite(waiting.hold_until):
            self._schedule(waiting.hold_until, _Timer.RELEASE_HOLD, waiting.seq, 0)
        if waiting.active < len(waiting.activations):
            when = waiting.contact.arrival + waiting.activations[waiting.active]
            self._schedule(max(when, now), _Timer.TARGET, waiting.seq, waiting.active)

    def _dequeue(self, waiting: _Waiting) -> None:
        del self._waiting[waiting.contact.id]
        del self._waiting_by_seq[waiting.seq]
        for group in waiting.groups[: waiting.active]:
            if waiting.held_at:
                for site_id in waiting.held_at:
                    if group.spec.admits_site(site_id):
                        group.waiting_held[site_id].discard(waiting.key)
            else:
                group.waiting_open.discard(waiting.key)
        if not waiting.held_at:
            self._open[waiting.queue.id] -= 1
        for site_id in waiting.held_at:
            self._queued_at[(waiting.queue.id, site_id)] -= 1

    def _changed(self, agent: _Agent, now: float, *, serve: bool = True) -> list[Assignment]:
        """Re-index an agent after any change; a newly free agent then takes waiting work."""
        site_id = agent.profile.site_id
        for number, old in agent.entries.items():
            self._groups_by_number[number].remove_ready(site_id, old)
        agent.entries.clear()
        if serve:
            # Waiting work first: an agent who takes it at once is never listed as free (and
            # unlisted again), which is most of the cost of a busy centre's free-ups.
            assignments = self._serve(agent, now)
            if assignments:
                return assignments  # _assign listed the agent again if it has room left
        channel, load = agent.available_channel()
        if load >= 0:
            for group in agent.groups:
                self._index(agent, group, channel, load)
        return []

    @staticmethod
    def _index(agent: _Agent, group: AgentGroup, channel: Channel | None, load: int) -> None:
        """List a free agent in one of its groups, if it can take that group's channel now."""
        spec = group.spec
        if channel is not None and spec.channel is not channel:
            return
        if load >= agent.profile.capacity_for(spec.channel):
            return
        strategy = spec.strategy
        if strategy is AgentStrategy.MOST_SKILLED:
            key: AgentKey = (load, -agent.scores[group.number], agent.idle_since, agent.seq)
        elif strategy is AgentStrategy.FEWEST_CONTACTS:
            key = (load, agent.handled, agent.idle_since, agent.seq)
        elif strategy is AgentStrategy.ROUND_ROBIN:
            key = (load, agent.last_offered, agent.seq)
        else:
            key = (load, agent.idle_since, agent.seq)
        group.add_ready(agent.profile.site_id, key)
        agent.entries[group.number] = key

    @staticmethod
    def _set_presence(agent: _Agent, presence: _Presence) -> None:
        """Staffed counts (expected waits, site statistics) include only agents in the ready
        presence: those working or about to, not those on a break or logging off."""
        was_working = agent.presence is _Presence.READY
        agent.presence = presence
        if was_working != (presence is _Presence.READY):
            delta = 1 if presence is _Presence.READY else -1
            for group in agent.groups:
                group.add_staffed(agent.profile.site_id, delta)

    def _end_wrap_up(self, agent: _Agent, now: float) -> list[Assignment]:
        agent.wrap_up_token = None
        agent.changed_at = now
        if not agent.reserved and not agent.active:
            agent.idle_since = now
        return self._changed(agent, now)

    def _groups_for(
        self, queue: Queue, extra: tuple[tuple[str, int], ...]
    ) -> tuple[AgentGroup, ...]:
        """The groups of a queue's targets, each narrowed by a contact's required skills."""
        cache_key = (queue.id, extra)
        groups = self._queue_groups.get(cache_key)
        if groups is None:
            groups = self._queue_groups[cache_key] = tuple(
                self._group(queue, target, extra) for target in queue.targets
            )
        return groups

    def _group(
        self, queue: Queue, target: Target, extra: tuple[tuple[str, int], ...]
    ) -> AgentGroup:
        expression = target.expression
        if extra:
            expression = all_of(expression, *(Skill(s, lvl) for s, lvl in extra))
        spec = GroupSpec(
            channel=queue.channel,
            expression=expression,
            min_proficiency=target.min_proficiency,
            sites=target.sites,
            strategy=queue.strategy,
        )
        group = self._groups.get(spec)
        if group is None:
            group = self._build_group(spec)
        return group

    def _build_group(self, spec: GroupSpec) -> AgentGroup:
        """A new eligibility class: one scan of all agents, then kept up incrementally."""
        group = AgentGroup(spec=spec, number=len(self._groups))
        self._groups[spec] = group
        self._groups_by_number.append(group)
        for agent in self._agent_by_seq:
            profile = agent.profile
            if not spec.admits_site(profile.site_id):
                continue
            if profile.capacity_for(spec.channel) <= 0:
                continue
            if not spec.expression.matches(profile.skills, spec.min_proficiency):
                continue
            agent.groups.append(group)
            agent.scores[group.number] = spec.expression.score(profile.skills)
            sites = group.members_by_site
            sites[profile.site_id] = sites.get(profile.site_id, 0) + 1
            if agent.presence is _Presence.READY:
                group.add_staffed(profile.site_id, +1)
            if agent.presence is not _Presence.LOGGED_OUT:
                channel, load = agent.available_channel()
                if load >= 0:
                    self._index(agent, group, channel, load)
        return group

    def _live(self, entry: tuple[float, int, _Timer, int, int]) -> bool:
        """Whether a timer still has work: not for a wrap-up that ended, a contact that left the
        queue, a target already reached or a hold already released (re-queueing a contact
        schedules its timers again, so earlier copies go stale)."""
        _, _, kind, ref, token = entry
        if kind is _Timer.WRAP_UP_END:
            return self._agent_by_seq[ref].wrap_up_token == token
        waiting = self._waiting_by_seq.get(ref)
        if waiting is None:
            return False
        if kind is _Timer.TARGET:
            return waiting.active <= token
        return bool(waiting.held_at)

    def _schedule(self, when: float, kind: _Timer, ref: int, token: int) -> None:
        heapq.heappush(self._timers, (when, self._next_seq(), kind, ref, token))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise RoutingError(f"unknown agent {agent_id!r}")
        return agent

    def _logged_in(self, agent_id: str) -> _Agent:
        agent = self._agent(agent_id)
        if agent.presence is _Presence.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id!r} is not logged in")
        return agent

    def _delivery(self, contact_id: str) -> tuple[str, Queue]:
        delivery = self._delivered.get(contact_id)
        if delivery is None:
            raise RoutingError(f"contact {contact_id!r} is not delivered to any agent")
        return delivery
