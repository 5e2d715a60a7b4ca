"""The discrete-event loop: contacts arrive, agents log in, take breaks and leave, and the real
routing engine decides who takes what.

Events sit in one heap as ``(time, seq, kind, ref)``; ``seq`` grows with every push, so events at
the same instant run in the order they were scheduled and a run is a pure function of its
workload.  The engine keeps timers of its own (target time-outs, least-cost holds, wrap-up
ends); the loop fires them through ``advance`` before any of its own events at the same time, so
an agent whose wrap-up ends at t is free for a contact arriving at t.

Agents are never pulled off a contact: a break or the end of a shift first makes the agent not
ready (no new work), and the break starts, or the agent logs out, once the contact and its
wrap-up are over.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, auto

from routing.calendar import ShiftGuard
from routing.engine import NO_ANSWER_REASON, Router
from routing.estimators import ESTIMATORS, EwtEstimator, QueueSnapshot, make_estimator
from routing.model import AgentState, Assignment, Network
from routing.settings import RouterSettings
from routing.site_stats import QueueStats, SitePulse
from site_agent.simulation.policies import Deployment, Policy, Pooling
from site_agent.simulation.scenario import Scenario
from site_agent.simulation.shifts import AgentShift, PlannedBreak, plan_shifts
from site_agent.simulation.trace import AgentRecord, BreakRecord, ContactOutcome, Trace
from site_agent.simulation.traffic import ScheduledContact, generate_traffic, random_stream

BREAK_REASON = "break"
# Arrivals over the last this many seconds give a site's arrival rate (Erlang estimators).
RATE_WINDOW_SECONDS = 900.0
END_OF_SHIFT_REASON = "end of shift"


@dataclass(frozen=True, slots=True)
class Workload:
    """What every compared policy gets, identically: the network, the contacts, the shifts."""

    scenario: Scenario
    seed: int
    network: Network
    contacts: tuple[ScheduledContact, ...]
    shifts: tuple[AgentShift, ...]


def prepare_workload(scenario: Scenario, seed: int) -> Workload:
    return Workload(
        scenario=scenario,
        seed=seed,
        network=scenario.network(),
        contacts=generate_traffic(scenario, seed),
        shifts=plan_shifts(scenario, seed),
    )


def run_policy(workload: Workload, policy: Policy, settings: RouterSettings) -> Trace:
    """Simulate the workload under one policy."""
    simulation = workload.scenario.simulation
    # The router trusts pulses by the interval the sites actually pulse at (stale after a few
    # missed ones, down after a watchdog of at least two intervals).
    status = settings.site_status
    timing = {
        "pulse_interval": simulation.pulse_seconds,
        "watchdog_timeout": max(status.watchdog_timeout, 2 * simulation.pulse_seconds),
    }
    update: dict[str, object] = {
        "clock_epoch": simulation.epoch,
        "site_status": status.model_copy(update=timing),
    }
    if simulation.shift_protection_minutes is not None:
        update["shift_guard"] = ShiftGuard(simulation.shift_protection_minutes)
    deployment = policy.deploy(workload.network, settings.model_copy(update=update), simulation)
    return _EventLoop(workload, policy, deployment).run()


class _Kind(Enum):
    """What an event does; ``ref`` is a contact, agent or planned-break index accordingly."""

    ARRIVAL = auto()
    ANSWER = auto()
    FINISH = auto()
    ABANDON = auto()
    SHIFT_START = auto()
    BREAK_START = auto()
    BREAK_END = auto()
    SHIFT_END = auto()
    AGENT_FREE = auto()
    PULSE = auto()
    CALLBACK_OFFER = auto()
    NO_ANSWER_RECOVERY = auto()


class _Duty(Enum):
    """Where an agent is in its shift, as the simulation (not the engine) sees it."""

    OFF = "off"
    WORKING = "working"
    BREAK_PENDING = "break pending"
    ON_BREAK = "on break"
    LEAVING = "leaving"


@dataclass(slots=True, eq=False)
class _Agent:
    record: AgentRecord
    router: Router
    duty: _Duty = _Duty.OFF
    break_length: float = 0.0

    @property
    def id(self) -> str:
        return self.record.shift.agent_id


class _EventLoop:
    def __init__(self, workload: Workload, policy: Policy, deployment: Deployment) -> None:
        self._workload = workload
        self._deployment = deployment
        simulation = workload.scenario.simulation
        self._pre_routed = simulation.pre_routing and policy.networked
        self._pulses = policy.pooling is Pooling.SITES
        self._pulse_every = simulation.pulse_seconds
        self._pulse_sequence = 0
        self._site_counters = _SiteCounters(workload)
        self._pulse_estimator = make_estimator(simulation.ewt_estimator)
        self._estimators = {name: make_estimator(name) for name in ESTIMATORS}
        self._predictions = {name: [math.nan] * len(workload.contacts) for name in ESTIMATORS}
        self._end = workload.scenario.simulation.end
        self._ring = workload.scenario.simulation.ring_seconds
        self._no_answer_share = simulation.no_answer_share
        self._recovery = simulation.no_answer_recovery_seconds
        self._last_agent_of: dict[str, str] = {}
        self._wrap_up = {q.id: q.wrap_up for q in workload.network.queues.values()}
        self._contacts = workload.contacts
        self._outcomes = tuple(ContactOutcome() for _ in workload.contacts)
        self._index = {c.contact.id: i for i, c in enumerate(workload.contacts)}
        self._agents = [
            _Agent(AgentRecord(shift=shift), deployment.router_for(shift.site_id))
            for shift in workload.shifts
        ]
        self._agent_index = {agent.id: i for i, agent in enumerate(self._agents)}
        self._breaks: list[tuple[int, PlannedBreak]] = []
        self._heap: list[tuple[float, int, _Kind, int]] = []
        self._seq = 0
        self._handlers: dict[_Kind, Callable[[int, float], None]] = {
            _Kind.ARRIVAL: self._arrive,
            _Kind.ANSWER: self._answer,
            _Kind.FINISH: self._finish,
            _Kind.ABANDON: self._abandon,
            _Kind.SHIFT_START: self._shift_start,
            _Kind.BREAK_START: self._break_start,
            _Kind.BREAK_END: self._break_end,
            _Kind.SHIFT_END: self._shift_end,
            _Kind.AGENT_FREE: self._agent_free,
            _Kind.PULSE: self._pulse,
            _Kind.CALLBACK_OFFER: self._offer_callback,
            _Kind.NO_ANSWER_RECOVERY: self._recover,
        }

    def run(self) -> Trace:
        self._schedule_shifts()
        for i, scheduled in enumerate(self._contacts):
            self._push(scheduled.contact.arrival, _Kind.ARRIVAL, i)
        if self._pulses:
            self._push(self._workload.scenario.simulation.start, _Kind.PULSE, 0)
        heap = self._heap
        while True:
            event_time = heap[0][0] if heap else math.inf
            timer_time, router = self._next_timer()
            if min(event_time, timer_time) >= self._end:
                break
            if router is not None and timer_time <= event_time:
                assignments = router.advance(timer_time)
                self._redirected(router, timer_time)
                self._reserve(assignments, timer_time)
                continue
            now, _, kind, ref = heapq.heappop(heap)
            self._handlers[kind](ref, now)
        return Trace(
            start=self._workload.scenario.simulation.start,
            end=self._end,
            contacts=self._contacts,
            outcomes=self._outcomes,
            agents=tuple(agent.record for agent in self._agents),
            engine_waiting=frozenset(
                contact_id
                for router in self._deployment.routers
                for contact_id in router.waiting_contacts()
            ),
            site_switches=sum(
                router.site_switches(queue_id)
                for router in self._deployment.routers
                for queue_id in router.network.queues
            ),
            ewt_predictions={name: tuple(p) for name, p in self._predictions.items()},
        )

    # ----------------------------------------------------------------- plumbing

    def _push(self, when: float, kind: _Kind, ref: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, ref))

    def _next_timer(self) -> tuple[float, Router | None]:
        best: tuple[float, Router | None] = (math.inf, None)
        for router in self._deployment.routers:
            when = router.next_timer()
            if when is not None and when < best[0]:
                best = (when, router)
        return best

    def _schedule_shifts(self) -> None:
        for i, agent in enumerate(self._agents):
            shift = agent.record.shift
            self._push(shift.start, _Kind.SHIFT_START, i)
            for planned in shift.breaks:
                self._breaks.append((i, planned))
                self._push(planned.start, _Kind.BREAK_START, len(self._breaks) - 1)
            self._push(shift.end, _Kind.SHIFT_END, i)

    def _reserve(self, assignments: Iterable[Assignment], now: float) -> None:
        """The engine reserved agents: they ring for the scenario's ring time, then answer, or
        (a share of offers) let it ring out until the queue's answer time-out redirects it."""
        for assignment in assignments:
            i = self._index[assignment.contact_id]
            outcome = self._outcomes[i]
            outcome.agent_id = assignment.agent_id
            outcome.serving_site = assignment.site_id
            outcome.transfer = assignment.transfer
            outcome.reserved_at = now
            if self._no_answer_share and self._rings_out(assignment.contact_id, outcome):
                continue
            self._push(now + self._ring, _Kind.ANSWER, i)

    def _rings_out(self, contact_id: str, outcome: ContactOutcome) -> bool:
        """One draw per offer of a contact, the same under every policy (its own stream)."""
        name = f"{contact_id}/{outcome.redirects}"
        return (
            random_stream(self._workload.seed, "no-answer", name).random() < self._no_answer_share
        )

    def _redirected(self, router: Router, now: float) -> None:
        """Offers the engine took back for no answer: the contact waits again (or was already
        re-assigned), the agent is not ready until it recovers."""
        for redirect in router.take_redirects():
            outcome = self._outcomes[self._index[redirect.contact_id]]
            outcome.redirects += 1
            outcome.agent_id = outcome.serving_site = outcome.reserved_at = None
            outcome.transfer = False
            a = self._agent_index[redirect.agent_id]
            self._push(now + self._recovery, _Kind.NO_ANSWER_RECOVERY, a)
            self._agent_free(a, now)

    def _serving_agent(self, outcome: ContactOutcome) -> _Agent:
        assert outcome.agent_id is not None, "only a delivered contact has an agent"
        return self._agents[self._agent_index[outcome.agent_id]]

    # ----------------------------------------------------------------- contacts

    def _arrive(self, i: int, now: float) -> None:
        scheduled = self._contacts[i]
        router = self._deployment.router_for(scheduled.site)
        contact = scheduled.contact
        self._site_counters.arrived(scheduled.site, contact.queue_id, now)
        snapshot = self._site_counters.snapshot(router, scheduled.site, contact.queue_id, now)
        for name, estimator in self._estimators.items():
            self._predictions[name][i] = estimator.estimate(snapshot)
        if self._pre_routed:
            # Routed in the carrier network: not landed anywhere yet, its site the preferred.
            contact = dataclasses.replace(contact, origin_site=None, preferred_site=scheduled.site)
        assignment = router.offer(contact, now)
        if assignment is not None:
            self._reserve((assignment,), now)
        if math.isfinite(scheduled.contact.patience):
            self._push(now + scheduled.contact.patience, _Kind.ABANDON, i)
        if scheduled.callback_after is not None:
            self._push(now + scheduled.callback_after, _Kind.CALLBACK_OFFER, i)

    def _offer_callback(self, i: int, now: float) -> None:
        """The caller, still queued, takes the callback offer and hangs up (it no longer
        abandons): called when it reaches the head of the queue, or at the time it chose."""
        outcome = self._outcomes[i]
        contact = self._contacts[i]
        router = self._deployment.router_for(contact.site)
        if outcome.resolved or outcome.agent_id is not None:
            return
        if not router.is_waiting(contact.contact.id):
            return
        delay = contact.callback_delay
        router.request_callback(contact.contact.id, now, at=None if delay is None else now + delay)
        outcome.callback_at = now

    def _answer(self, i: int, now: float) -> None:
        outcome = self._outcomes[i]
        if outcome.abandoned_at is not None:
            return  # the caller hung up while it rang
        agent = self._serving_agent(outcome)
        contact = self._contacts[i].contact
        agent.router.answer(contact.id, now)
        outcome.answered_at = now
        if contact.customer_id is not None:
            outcome.previous_agent = self._last_agent_of.get(contact.customer_id)
            self._last_agent_of[contact.customer_id] = agent.id
        self._push(now + self._contacts[i].handle_time, _Kind.FINISH, i)

    def _finish(self, i: int, now: float) -> None:
        contact = self._contacts[i].contact
        agent = self._serving_agent(self._outcomes[i])
        self._reserve(agent.router.finish(contact.id, now), now)
        # The engine times the wrap-up; a break or logout asked for meanwhile waits for its end.
        wrap_end = now + self._wrap_up[contact.queue_id]
        self._push(wrap_end, _Kind.AGENT_FREE, self._agent_index[agent.id])

    def _abandon(self, i: int, now: float) -> None:
        outcome = self._outcomes[i]
        if outcome.resolved or outcome.callback_at is not None:
            return  # answered before patience ran out, or waiting for its callback
        contact_id, site = self._contacts[i].contact.id, self._contacts[i].site
        if outcome.agent_id is None:
            self._reserve(self._deployment.router_for(site).abandon(contact_id, now), now)
            outcome.abandoned_at = now
            return
        # Hung up while ringing: the agent is free again, maybe for a pending break.
        a = self._agent_index[outcome.agent_id]
        self._reserve(self._agents[a].router.abandon(contact_id, now), now)
        outcome.abandoned_at = now
        self._agent_free(a, now)

    # ----------------------------------------------------------------- agents

    def _shift_start(self, a: int, now: float) -> None:
        agent = self._agents[a]
        agent.record.login_at = now
        agent.duty = _Duty.WORKING
        shift_end = agent.record.shift.end
        self._reserve(agent.router.login(agent.id, now, ready=True, shift_end=shift_end), now)

    def _break_start(self, b: int, now: float) -> None:
        a, planned = self._breaks[b]
        agent = self._agents[a]
        if agent.duty is not _Duty.WORKING:
            return  # still on (or waiting for) the previous break: breaks do not stack
        agent.record.breaks.append(BreakRecord(requested_at=now))
        agent.router.set_not_ready(agent.id, now, BREAK_REASON)
        agent.duty = _Duty.BREAK_PENDING
        agent.break_length = planned.length
        self._agent_free(a, now)

    def _break_end(self, a: int, now: float) -> None:
        agent = self._agents[a]
        if agent.duty is not _Duty.ON_BREAK:
            return  # the shift ended during the break
        agent.record.breaks[-1].ended_at = now
        agent.duty = _Duty.WORKING
        self._reserve(agent.router.set_ready(agent.id, now), now)

    def _shift_end(self, a: int, now: float) -> None:
        agent = self._agents[a]
        agent.record.logout_requested_at = now
        if agent.duty is _Duty.ON_BREAK:
            agent.record.breaks[-1].ended_at = now
        agent.router.set_not_ready(agent.id, now, END_OF_SHIFT_REASON)
        agent.duty = _Duty.LEAVING
        self._agent_free(a, now)

    def _pulse(self, _: int, now: float) -> None:
        """Every site reports each queue's figures to the network router, as site agents do."""
        self._pulse_sequence += 1
        for router in self._deployment.routers:
            for site_id in router.network.sites:
                queues = {
                    queue_id: self._site_counters.stats(
                        router, site_id, queue_id, now, self._pulse_estimator
                    )
                    for queue_id in router.network.queues
                }
                pulse = SitePulse(site_id, self._pulse_sequence, now, queues)
                router.receive_pulse(pulse, now)
        self._push(now + self._pulse_every, _Kind.PULSE, 0)

    def _recover(self, a: int, now: float) -> None:
        """An agent made not ready for letting a contact ring out is ready again, unless a
        break or the end of the shift came meanwhile."""
        agent = self._agents[a]
        router = agent.router
        if agent.duty is _Duty.WORKING and router.agent_reason(agent.id) == NO_ANSWER_REASON:
            self._reserve(router.set_ready(agent.id, now), now)

    def _agent_free(self, a: int, now: float) -> None:
        """Start a pending break or log out, if the agent has no contact or wrap-up left."""
        agent = self._agents[a]
        if agent.duty not in (_Duty.BREAK_PENDING, _Duty.LEAVING):
            return
        if agent.router.agent_state(agent.id) is not AgentState.NOT_READY:
            return
        if agent.duty is _Duty.BREAK_PENDING:
            agent.record.breaks[-1].started_at = now
            agent.duty = _Duty.ON_BREAK
            self._push(now + agent.break_length, _Kind.BREAK_END, a)
        elif agent.duty is _Duty.LEAVING:
            agent.router.logout(agent.id, now)
            agent.record.logout_at = now
            agent.duty = _Duty.OFF


class _SiteCounters:
    """What a site's ACD counts for its statistics: recent arrivals per queue (for an arrival
    rate) and the callers' mean patience, beside the router's live agent and queue counts."""

    def __init__(self, workload: Workload) -> None:
        self._window = RATE_WINDOW_SECONDS
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._handle = {q.id: q.expected_handle_time for q in workload.network.queues.values()}
        patience: dict[tuple[str, str], list[float | None]] = {}
        for stream in workload.scenario.traffic:
            patience.setdefault((stream.site, stream.queue), []).append(stream.mean_patience)
        self._patience = {
            key: None if None in values else sum(v for v in values if v) / len(values)
            for key, values in patience.items()
        }

    def arrived(self, site_id: str, queue_id: str, now: float) -> None:
        self._recent.setdefault((site_id, queue_id), deque()).append(now)

    def snapshot(self, router: Router, site_id: str, queue_id: str, now: float) -> QueueSnapshot:
        load = router.site_load(queue_id, site_id)
        recent = self._recent.get((site_id, queue_id))
        rate = 0.0
        if recent:
            while recent and recent[0] < now - self._window:
                recent.popleft()
            rate = len(recent) / self._window
        return QueueSnapshot(
            ahead=load.waiting,
            staffed=load.staffed,
            busy=max(load.staffed - load.ready, 0),
            ready=load.ready,
            mean_handle_time=self._handle[queue_id],
            arrival_rate=rate,
            mean_patience=self._patience.get((site_id, queue_id)),
        )

    def stats(
        self, router: Router, site_id: str, queue_id: str, now: float, estimator: EwtEstimator
    ) -> QueueStats:
        snap = self.snapshot(router, site_id, queue_id, now)
        return QueueStats(
            waiting=snap.ahead,
            ready=snap.ready,
            staffed=snap.staffed,
            busy=snap.busy,
            sl_in_interval=None,
            occupancy=snap.busy / snap.staffed if snap.staffed else 0.0,
            ewt=estimator.estimate(snap),
        )
