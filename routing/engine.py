"""The routing engine: which agent at which site takes each contact, and which contact a freed
agent takes.

The engine is a deterministic state machine driven by events that carry their own time
(``offer``, ``answer``, ``finish``, ``set_ready``, ``advance`` ...): it never reads a clock and
never draws a random number, so a replayed event log reproduces every decision, which is what the
simulator, the tests and a hot standby router rely on.  Decisions cost O(log n) in agents through
the sorted indices of :mod:`routing.indices`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from routing.calendar import ShiftGuardRule
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
    Redirect,
    SiteSelection,
    Target,
)
from routing.rules import RuleContext, skill_calls
from routing.settings import RouterSettings
from routing.site_stats import PulseVerdict, SiteBoard, SitePulse
from routing.skills import Skill, all_of, parse_skill_expr
from routing.timers import TimerQueue

NO_ANSWER_REASON = "no answer"
# Key heads that put a contact before (a callback due at a time the customer chose) or after
# (deferrable work) every other contact, whatever the queues' priorities.
_DUE_FIRST = -math.inf
_DEFERRED = math.inf


class RoutingError(ValueError):
    """An event the engine cannot apply; the engine state is left unchanged."""


class _Presence(Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"


class _Timer(Enum):
    TARGET = 0
    RELEASE_HOLD = 1  # a least-cost hold, a site-selection queue or a wait for the last agent
    WRAP_UP_END = 2
    NO_ANSWER = 3
    SHIFT_GUARD = 4
    CALLBACK_DUE = 5
    CALENDAR = 6


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
    # End-of-shift protection: from this time on the agent gets no new contact.
    protected_from: float = math.inf
    shift_token: int = 0
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
    # Its targets' groups; ``groups`` may swap some for closed twins (unmet conditions).
    targets: tuple[AgentGroup, ...]
    groups: tuple[AgentGroup, ...]
    activations: tuple[float, ...]
    active: int = 0
    held_at: tuple[str, ...] = ()
    hold_until: float = math.inf
    hold_considered: bool = False
    # Where the contact is physically queued, once a site took it in (transfers count from it).
    landed_at: str | None = None
    # Waiting for the last agent who served the customer (sequence number of that agent).
    for_agent: int | None = None
    sticky_considered: bool = False
    # Targets whose condition has been met (bit per target index), and whether ``groups``
    # were built for that.
    passed: int = 0
    gated: bool = False
    callback: bool = False
    offer_token: int = 0


_CostKey = tuple[float, float, str | None, str | None]
_Entry = tuple[float, int, _Timer, int, int]  # a timer: when, order, kind, what, token


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
        self._timers: TimerQueue[_Entry] = TimerQueue(self._live)
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
        self._queue_length: dict[str, int] = dict.fromkeys(network.queues, 0)
        # Redirect on no answer: reserved contacts with an answer time-out, and the redirects
        # made since the host last took them.
        self._ringing_by_seq: dict[int, _Waiting] = {}
        self._redirects: list[Redirect] = []
        # Last-agent routing: each customer's last agent and when that contact ended (oldest
        # first in ``_remembered``, to forget them), contacts waiting for a given agent.
        self._last_agent: dict[str, tuple[int, float]] = {}
        self._remembered: deque[tuple[float, str]] = deque()
        self._remember_for = max(
            (q.sticky.remember for q in network.queues.values() if q.sticky), default=0.0
        )
        self._customer_of: dict[str, str] = {}
        self._for_agent: dict[int, list[_Waiting]] = {}
        # Callbacks the customer asked for at a later time, by waiting sequence number.
        self._scheduled: dict[int, _Waiting] = {}
        # Business hours: which sites are closed now; computed at the first event, then kept
        # up by a timer at each opening or closing.
        self._agents_by_site: dict[str, list[_Agent]] = {site: [] for site in network.sites}
        for agent in self._agent_by_seq:
            self._agents_by_site[agent.profile.site_id].append(agent)
        self._hours = {s.id: s.hours for s in network.sites.values() if s.hours is not None}
        self._closed: set[str] = set()
        self._calendar_pending = bool(self._hours)
        self._calendar_token = 0
        self._longest_handle = max(q.expected_handle_time for q in network.queues.values())
        # Target conditions: the queues that have some, and the agent counts they ask for.
        self._conditioned = {
            q.id: sum(1 << i for i, t in enumerate(q.targets) if t.condition)
            for q in network.queues.values()
            if any(t.condition for t in q.targets)
        }
        self._skill_groups: dict[tuple[str, str], AgentGroup] = {}
        self._closed_twin: dict[int, AgentGroup] = {}
        # Everything a decision needs is built with the configuration, so no offer pays for it.
        for queue in network.queues.values():
            self._groups_for(queue, ())
            self._cost_orders_for(queue)
            self._condition_groups_for(queue)

    # ----------------------------------------------------------------- agent events

    def login(
        self, agent_id: str, now: float, *, ready: bool = False, shift_end: float | None = None
    ) -> list[Assignment]:
        """``shift_end``: when the agent's shift ends, for end-of-shift protection."""
        self._tick(now)
        agent = self._agent(agent_id)
        if agent.presence is not _Presence.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id!r} is already logged in")
        self._set_presence(agent, _Presence.READY if ready else _Presence.NOT_READY)
        agent.handled = 0
        agent.reason = None if ready else "login"
        agent.changed_at = agent.idle_since = now
        self._protect(agent, shift_end, now)
        return self._changed(agent, now)

    def set_shift_end(self, agent_id: str, shift_end: float | None, now: float) -> list[Assignment]:
        """The agent's shift end moved (overtime, leaving early); ``None``: no planned end."""
        self._tick(now)
        agent = self._logged_in(agent_id)
        self._protect(agent, shift_end, now)
        return self._changed(agent, now)

    def logout(self, agent_id: str, now: float) -> None:
        agent = self._agent(agent_id)
        if agent.presence is _Presence.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id!r} is not logged in")
        if agent.reserved or agent.active:
            raise RoutingError(
                f"agent {agent_id!r} has contacts in progress; set not ready and log out after"
            )
        self._tick(now)
        self._set_presence(agent, _Presence.LOGGED_OUT)
        agent.wrap_up_token = None
        agent.changed_at = now
        self._changed(agent, now)
        self._release_waiters(agent, now)

    def set_ready(self, agent_id: str, now: float) -> list[Assignment]:
        self._tick(now)
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
        self._tick(now)
        agent = self._logged_in(agent_id)
        self._set_presence(agent, _Presence.NOT_READY)
        agent.reason = reason
        agent.changed_at = now
        self._changed(agent, now)
        self._release_waiters(agent, now)

    def end_wrap_up(self, agent_id: str, now: float) -> list[Assignment]:
        """The agent ends after-contact work before its configured time (or it had none)."""
        self._tick(now)
        agent = self._logged_in(agent_id)
        if agent.wrap_up_token is None:
            raise RoutingError(f"agent {agent_id!r} is not in after-contact work")
        return self._end_wrap_up(agent, now)

    # ----------------------------------------------------------------- contact events

    def offer(self, contact: Contact, now: float) -> Assignment | None:
        """A new contact: an agent now (reserved), or ``None`` and the contact waits."""
        self._tick(now)
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
        waiting.active = self._targets_reached(waiting, now)
        assignment = self._route(waiting, now)
        if assignment is None:
            self._enqueue(waiting, now)
        return assignment

    def adopt(self, contact: Contact, agent_id: str, now: float, *, answered: bool) -> None:
        """A contact an agent already has, decided outside this router: by a site routing on
        its own while the router was unreachable, or found in a site's snapshot by a router
        rebuilding its view.  The site is the truth about its calls, so the agent takes it
        whatever its load; a contact this router still had queued leaves the queue."""
        self._tick(now)
        queue = self.network.queues.get(contact.queue_id)
        if queue is None:
            raise RoutingError(f"unknown queue {contact.queue_id!r}")
        if contact.id in self._delivered:
            raise RoutingError(f"contact {contact.id!r} is already delivered")
        agent = self._logged_in(agent_id)
        waiting = self._waiting.get(contact.id)
        if waiting is not None:
            if self._scheduled.pop(waiting.seq, None) is not None:
                del self._waiting[contact.id]
            else:
                self._dequeue(waiting)
        else:
            waiting = self._new_waiting(contact, queue)
        (agent.active if answered else agent.reserved)[contact.id] = queue.channel
        agent.changed_at = now
        self._delivered[contact.id] = (agent_id, queue)
        if not answered:
            self._requeued[contact.id] = waiting
        self._changed(agent, now, serve=False)

    def answer(self, contact_id: str, now: float) -> None:
        """The reserved agent took the contact (delivery confirmed)."""
        agent = self._agent(self._delivery(contact_id)[0])
        if contact_id not in agent.reserved:
            raise RoutingError(f"contact {contact_id!r} is already answered")
        agent.active[contact_id] = agent.reserved.pop(contact_id)
        self._ringing_by_seq.pop(self._requeued.pop(contact_id).seq, None)
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
        self._tick(now)
        del agent.active[contact_id]
        del self._delivered[contact_id]
        agent.changed_at = now
        agent.handled += 1
        customer = self._customer_of.pop(contact_id, None)
        if customer is not None:
            self._remember(customer, agent, now)
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
        self._tick(now)
        agent_id, _ = self._delivery(contact_id)
        agent = self._agent(agent_id)
        if contact_id not in agent.reserved:
            raise RoutingError(f"contact {contact_id!r} was already answered")
        del agent.reserved[contact_id]
        del self._delivered[contact_id]
        self._customer_of.pop(contact_id, None)
        self._set_presence(agent, _Presence.NOT_READY)
        agent.reason, agent.changed_at = reason, now
        self._changed(agent, now)
        self._release_waiters(agent, now)
        waiting = self._requeued.pop(contact_id)
        self._ringing_by_seq.pop(waiting.seq, None)
        waiting.active = self._targets_reached(waiting, now)
        if waiting.hold_until <= now:
            # A least-cost hold that ran out while the contact rang: any site may take it now.
            waiting.held_at, waiting.hold_until = (), math.inf
        assignment = self._route(waiting, now)
        if assignment is None:
            self._enqueue(waiting, now)
        return assignment

    def abandon(self, contact_id: str, now: float) -> list[Assignment]:
        """The caller hung up, waiting or ringing (or cancelled a callback)."""
        self._tick(now)
        waiting = self._waiting.get(contact_id)
        if waiting is not None:
            if self._scheduled.pop(waiting.seq, None) is not None:
                del self._waiting[contact_id]
            else:
                self._dequeue(waiting)
            return []
        agent_id, _ = self._delivery(contact_id)
        agent = self._agent(agent_id)
        if contact_id in agent.active:
            raise RoutingError(f"contact {contact_id!r} is answered; finish it instead")
        del agent.reserved[contact_id]
        del self._delivered[contact_id]
        self._customer_of.pop(contact_id, None)
        ringing = self._requeued.pop(contact_id, None)
        if ringing is not None:
            self._ringing_by_seq.pop(ringing.seq, None)
        agent.changed_at = now
        return self._changed(agent, now)

    def request_callback(self, contact_id: str, now: float, *, at: float | None = None) -> None:
        """The waiting caller leaves the queue and is called back: when it would have reached
        the head of the queue (``at`` omitted: it keeps its place, and no longer abandons), or
        at the time the customer chose, when it goes to the head of its queue."""
        self._tick(now)
        waiting = self._waiting.get(contact_id)
        if waiting is None or waiting.seq in self._scheduled:
            raise RoutingError(f"contact {contact_id!r} is not waiting in a queue")
        if waiting.queue.channel is not Channel.VOICE:
            raise RoutingError(f"contact {contact_id!r} is {waiting.queue.channel}, not a call")
        if at is not None and not (math.isfinite(at) and at >= now):
            raise RoutingError(f"callback time {at!r} is not a time from now on")
        waiting.callback = True
        if at is None:
            return
        self._dequeue(waiting)
        waiting.key = (_DUE_FIRST, at, waiting.seq)
        self._waiting[contact_id] = waiting
        self._scheduled[waiting.seq] = waiting
        self._schedule(at, _Timer.CALLBACK_DUE, waiting.seq, 0)

    def take_redirects(self) -> list[Redirect]:
        """Contacts taken back from agents who did not answer in time, since the last call:
        the host stops ringing them (their new assignments came with ``advance``)."""
        redirects, self._redirects = self._redirects, []
        return redirects

    # ----------------------------------------------------------------- time

    def next_timer(self) -> float | None:
        """When ``advance`` next has work (a target widening, a hold expiring, wrap-up ending)."""
        head = self._timers.peek()
        return None if head is None else float(head[0])

    def advance(self, now: float) -> list[Assignment]:
        assignments: list[Assignment] = []
        while (entry := self._timers.pop_due(now)) is not None:
            when, _, kind, ref, token = entry
            if kind is _Timer.WRAP_UP_END:
                assignments += self._end_wrap_up(self._agent_by_seq[ref], when)
                continue
            if kind is _Timer.SHIFT_GUARD:
                agent = self._agent_by_seq[ref]
                self._changed(agent, when)
                self._release_waiters(agent, when)
                continue
            if kind is _Timer.CALENDAR:
                assignments += self._refresh_calendar(when)
                continue
            if kind is _Timer.NO_ANSWER:
                waiting = self._ringing_by_seq[ref]
                contact_id = waiting.contact.id
                self._redirects.append(Redirect(contact_id, self._delivered[contact_id][0], when))
                redirected = self.reject(contact_id, when, reason=NO_ANSWER_REASON)
                assignments += [redirected] if redirected else []
                continue
            if kind is _Timer.CALLBACK_DUE:
                waiting = self._scheduled.pop(ref)
                del self._waiting[waiting.contact.id]
            else:
                waiting = self._waiting_by_seq[ref]
                self._dequeue(waiting)
            if kind is _Timer.TARGET:
                waiting.active = max(waiting.active, token + 1)
            else:
                waiting.held_at, waiting.hold_until, waiting.for_agent = (), math.inf, None
                waiting.active = max(waiting.active, self._targets_reached(waiting, when))
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

    def agent_ready(self, agent_id: str) -> bool:
        """Whether the agent is in the ready presence (takes new work when free)."""
        return self._agent(agent_id).presence is _Presence.READY

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

    def site_open(self, site_id: str) -> bool | None:
        """Whether the site's business hours have it open (``None``: unknown site)."""
        if site_id not in self.network.sites:
            return None
        return site_id not in self._closed

    def site_status(self, site_id: str, now: float) -> str | None:
        if site_id not in self.network.sites:
            return None
        return str(self.board.status(site_id, now))

    def queue_length(self, queue_id: str) -> int | None:
        """Contacts waiting for the queue, at every site (ringing ones are not waiting)."""
        return self._queue_length.get(queue_id)

    def agents(self, queue: Queue, skills: str, *, free: bool) -> int | None:
        """Agents matching ``skills`` on the queue's channel, free now or in ready presence;
        only for the skill expressions the queue's target conditions count."""
        group = self._skill_groups.get((queue.id, skills))
        if group is None:
            return None
        return len(group.live) if free else group.staffed_total

    def predicted_wait(self, queue: Queue, site_id: str, now: float) -> float | None:
        """The site's own expected wait for the queue from its last trusted pulse; ``None``
        when its statistics are stale, missing, or it is down."""
        stats = self.board.trusted_stats(site_id, queue.id, now)
        return None if stats is None else stats.ewt

    def in_list(self, list_name: str, value: object) -> bool:
        return value in self.network.lists.get(list_name, frozenset())

    # ----------------------------------------------------------------- decisions

    def _route(self, waiting: _Waiting, now: float) -> Assignment | None:
        queue = waiting.queue
        if queue.id in self._conditioned:
            self._gate(waiting, now)
        groups = waiting.groups[: waiting.active]
        if queue.sticky is not None and not waiting.sticky_considered:
            waiting.sticky_considered = True
            assignment = self._route_sticky(waiting, groups, now)
            if assignment is not None or waiting.for_agent is not None:
                return assignment
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
        local = self.predicted_wait(queue, preferred, now)
        if local is None or local > queue.sl_threshold:
            bar = math.inf if local is None else local - selection.margin
            better = []
            for site_id in self.network.sites:
                if site_id == preferred or not self._has_agents_for(groups, site_id):
                    continue
                wait = self.predicted_wait(queue, site_id, now)
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

    def _has_agents_for(self, groups: tuple[AgentGroup, ...], site_id: str) -> bool:
        """Whether the site is open and has any agent for one of the contact's groups (they
        carry its required skills, its language say): a site's pulsed wait is per queue, not
        per contact, so it cannot tell."""
        if site_id in self._closed:
            return False
        return any(group.members_by_site.get(site_id, 0) > 0 for group in groups)

    def _route_sticky(
        self, waiting: _Waiting, groups: tuple[AgentGroup, ...], now: float
    ) -> Assignment | None:
        """The customer's last agent, if remembered, qualified and working: now if free, else
        the contact waits for them (``for_agent``) up to the queue's sticky wait."""
        sticky, customer = waiting.queue.sticky, waiting.contact.customer_id
        last = None if customer is None else self._last_agent.get(customer)
        if sticky is None or last is None or now - last[1] > sticky.remember:
            return None
        agent = self._agent_by_seq[last[0]]
        index = self._target_of(groups, agent)
        if index is None or not self._may_take_new(agent, now):
            return None
        if groups[index].number in agent.entries:  # listed free in that target's group
            return self._assign(waiting, agent, index, now)
        if sticky.wait > 0 and agent.presence is _Presence.READY:
            waiting.for_agent = agent.seq
            waiting.hold_until = now + sticky.wait
        return None

    @staticmethod
    def _target_of(groups: tuple[AgentGroup, ...], agent: _Agent) -> int | None:
        """The first of the contact's targets the agent qualifies for."""
        return next((i for i, group in enumerate(groups) if group.number in agent.scores), None)

    def _may_take_new(self, agent: _Agent, now: float) -> bool:
        """Not protected by the end of its shift, and at a site that is open."""
        return now < agent.protected_from and agent.profile.site_id not in self._closed

    def _gate(self, waiting: _Waiting, now: float) -> None:
        """Check the conditions of the targets the contact has reached; a target whose
        condition is not met is given a group no agent belongs to, so it admits nobody."""
        queue, contact = waiting.queue, waiting.contact
        passed = waiting.passed
        pending = self._conditioned[queue.id] & ~passed & ((1 << waiting.active) - 1)
        if pending:
            context = RuleContext(self, contact, queue, now)
            for index, target in enumerate(queue.targets[: waiting.active]):
                bit = 1 << index
                if pending & bit and target.condition and target.condition.evaluate(context):
                    passed |= bit
        if passed == waiting.passed and waiting.gated:
            return  # nothing new met: the groups built last time still hold
        waiting.passed, waiting.gated = passed, True
        waiting.groups = tuple(
            group
            if target.condition is None or passed & (1 << index)
            else self._closed_group(group)
            for index, (group, target) in enumerate(
                zip(waiting.targets, queue.targets, strict=True)
            )
        )

    def _closed_group(self, group: AgentGroup) -> AgentGroup:
        """The group's twin that admits no site (built once per group)."""
        closed = self._closed_twin.get(group.number)
        if closed is None:
            spec = dataclasses.replace(group.spec, sites=frozenset())
            closed = self._groups.get(spec) or self._build_group(spec)
            self._closed_twin[group.number] = closed
        return closed

    def _condition_groups_for(self, queue: Queue) -> None:
        """The groups that target conditions count agents of, and the closed twins of the
        targets' groups (for targets whose condition is not met)."""
        for target, group in zip(queue.targets, self._groups_for(queue, ()), strict=True):
            if target.condition is None:
                continue
            self._closed_group(group)
            for skills in skill_calls(target.condition):
                spec = GroupSpec(
                    channel=queue.channel,
                    expression=parse_skill_expr(skills, self.network.skills),
                    min_proficiency=1,
                    sites=None,
                    strategy=queue.strategy,
                )
                self._skill_groups[(queue.id, skills)] = self._groups.get(
                    spec
                ) or self._build_group(spec)

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
                if site_id in self._closed:
                    continue
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
        if queue.sticky is not None and contact.customer_id is not None:
            self._customer_of[contact.id] = contact.customer_id
        if queue.answer_timeout is not None:
            waiting.offer_token = agent.last_offered
            self._ringing_by_seq[waiting.seq] = waiting
            entry = (now + queue.answer_timeout, self._next_seq(), _Timer.NO_ANSWER)
            self._timers.push_after(
                queue.answer_timeout, (*entry, waiting.seq, waiting.offer_token)
            )
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
            callback=waiting.callback,
        )

    def _serve(self, agent: _Agent, now: float) -> list[Assignment]:
        """A freed agent takes the best waiting contact it may take, as often as it can."""
        assignments: list[Assignment] = []
        site_id = agent.profile.site_id
        while True:
            channel, load = agent.available_channel()
            if load < 0:
                return assignments
            mine = self._waiting_for(agent, channel, load)
            if mine is not None:
                self._dequeue(mine)
                mine.for_agent, mine.hold_until = None, math.inf
                index = self._target_of(mine.groups, agent)
                assert index is not None  # checked when it began to wait for the agent
                assignments.append(self._assign(mine, agent, index, now))
                continue
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

    def _waiting_for(self, agent: _Agent, channel: Channel | None, load: int) -> _Waiting | None:
        """The first contact waiting for this agent as its customer's last agent, if the
        agent can take its channel now: it has waited for them, so it goes first."""
        waiters = self._for_agent.get(agent.seq)
        if not waiters:
            return None
        fits = [
            waiting
            for waiting in waiters
            if (channel is None or waiting.queue.channel is channel)
            and load < agent.profile.capacity_for(waiting.queue.channel)
        ]
        return min(fits, key=lambda waiting: waiting.key, default=None)

    # ----------------------------------------------------------------- bookkeeping

    def _new_waiting(self, contact: Contact, queue: Queue) -> _Waiting:
        seq = self._next_seq()
        priority = queue.priority if contact.priority is None else contact.priority
        if queue.deferrable:
            key: ContactKey = (_DEFERRED, contact.arrival, seq)
        elif queue.ageing is None:
            key = (-priority, contact.arrival, seq)
        else:
            key = (0, contact.arrival - priority * queue.ageing, seq)
        groups = self._groups_for(queue, tuple(sorted(contact.required_skills.items())))
        return _Waiting(
            contact=contact,
            queue=queue,
            seq=seq,
            key=key,
            targets=groups,
            groups=groups,
            activations=self._activations[queue.id],
            landed_at=contact.origin_site,
        )

    def _enqueue(self, waiting: _Waiting, now: float) -> None:
        self._waiting[waiting.contact.id] = waiting
        self._waiting_by_seq[waiting.seq] = waiting
        self._queue_length[waiting.queue.id] += 1
        if waiting.for_agent is not None:
            # Waiting for one agent only: its targets widen once the wait for them ends.
            self._for_agent.setdefault(waiting.for_agent, []).append(waiting)
            self._schedule(waiting.hold_until, _Timer.RELEASE_HOLD, waiting.seq, 0)
            return
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
        self._queue_length[waiting.queue.id] -= 1
        if waiting.for_agent is not None:
            self._for_agent[waiting.for_agent].remove(waiting)
            return
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
        if not self._may_take_new(agent, now):
            return []
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

    def _protect(self, agent: _Agent, shift_end: float | None, now: float) -> None:
        """End-of-shift protection: when the agent stops getting new contacts, and a timer
        then.  Under the overrun rule the longest expected handle time of the network's queues
        decides, so the guard holds whichever queue's contact the agent would get."""
        guard = self.settings.shift_guard
        agent.shift_token = self._next_seq()
        agent.protected_from = math.inf
        if guard is None or shift_end is None:
            return
        margin = guard.protection_minutes * 60.0
        if guard.rule is ShiftGuardRule.WINDOW:
            agent.protected_from = shift_end - margin
        else:
            agent.protected_from = min(shift_end, shift_end + margin - self._longest_handle)
        if agent.protected_from > now:
            entry = (agent.protected_from, self._next_seq(), _Timer.SHIFT_GUARD, agent.seq)
            self._timers.push_rare((*entry, agent.shift_token))

    def _release_waiters(self, agent: _Agent, now: float) -> None:
        """Contacts waiting for this agent (their customer's last agent) stop waiting at once
        when the agent can no longer take them: released by a timer due now."""
        for waiting in self._for_agent.get(agent.seq, ()):
            waiting.hold_until = now
            self._schedule(now, _Timer.RELEASE_HOLD, waiting.seq, 0)

    def _remember(self, customer: str, agent: _Agent, now: float) -> None:
        """The customer's last agent; customers not seen for the longest sticky memory are
        forgotten, so memory follows the recent customers, not every customer ever."""
        self._last_agent[customer] = (agent.seq, now)
        self._remembered.append((now, customer))
        while self._remembered and self._remembered[0][0] < now - self._remember_for:
            ended, forgotten = self._remembered.popleft()
            if self._last_agent.get(forgotten, (0, None))[1] == ended:
                del self._last_agent[forgotten]

    def _tick(self, now: float) -> None:
        """Business hours: which sites are open is first worked out at the first event (the
        engine has no time before); openings and closings after that come by timer."""
        if self._calendar_pending:
            self._calendar_pending = False
            self._refresh_calendar(now)

    def _refresh_calendar(self, now: float) -> list[Assignment]:
        """Open and close sites by their business hours at ``now``.  Agents of a closing site
        get no new contact (they finish theirs); contacts queued or held there, or waiting
        for one of its agents, are released to the other sites; an opening site's free agents
        take waiting work."""
        epoch = self.settings.clock_epoch
        assignments: list[Assignment] = []
        due = math.inf
        for site_id, hours in self._hours.items():
            is_open = hours.is_open(now + epoch)
            if is_open == (site_id in self._closed):
                if is_open:
                    self._closed.discard(site_id)
                else:
                    self._closed.add(site_id)
                for agent in self._agents_by_site[site_id]:
                    if agent.presence is not _Presence.LOGGED_OUT:
                        assignments += self._changed(agent, now)
                    if not is_open:
                        self._release_waiters(agent, now)
                if not is_open:
                    self._release_held_at(site_id, now)
            change = hours.next_change(now + epoch)
            if change is not None:
                due = min(due, max(change - epoch, math.nextafter(now, math.inf)))
        self._calendar_token += 1
        if math.isfinite(due):
            self._schedule(due, _Timer.CALENDAR, 0, self._calendar_token)
        return assignments

    def _release_held_at(self, site_id: str, now: float) -> None:
        for waiting in self._waiting.values():
            if site_id in waiting.held_at:
                waiting.hold_until = now
                self._schedule(now, _Timer.RELEASE_HOLD, waiting.seq, 0)

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

    @staticmethod
    def _targets_reached(waiting: _Waiting, now: float) -> int:
        """How many of the contact's targets apply after the time it has waited."""
        elapsed = now - waiting.contact.arrival
        return sum(1 for activation in waiting.activations if activation <= elapsed)

    def _live(self, entry: _Entry) -> bool:
        """Whether a timer still has work: not for a wrap-up that ended, a contact that left the
        queue, a target already reached or a hold already released (re-queueing a contact
        schedules its timers again, so earlier copies go stale)."""
        _, _, kind, ref, token = entry
        if kind is _Timer.WRAP_UP_END:
            return self._agent_by_seq[ref].wrap_up_token == token
        if kind is _Timer.SHIFT_GUARD:
            return self._agent_by_seq[ref].shift_token == token
        if kind is _Timer.CALENDAR:
            return self._calendar_token == token
        if kind is _Timer.NO_ANSWER:
            ringing = self._ringing_by_seq.get(ref)
            return ringing is not None and ringing.offer_token == token
        if kind is _Timer.CALLBACK_DUE:
            return ref in self._scheduled
        waiting = self._waiting_by_seq.get(ref)
        if waiting is None:
            return False
        if kind is _Timer.TARGET:
            return waiting.active <= token
        return bool(waiting.held_at) or waiting.for_agent is not None

    def _schedule(self, when: float, kind: _Timer, ref: int, token: int) -> None:
        self._timers.push((when, self._next_seq(), kind, ref, token))

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
