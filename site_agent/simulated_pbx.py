"""The default PBX adapter: one site of a scenario, simulated in real time on asyncio.

It plays the same workload as the discrete-event simulator (:mod:`site_agent.simulation`): the
contacts of :func:`generate_traffic` that land at this site and the shifts and breaks of
:func:`plan_shifts` for its agents, drawn from the same seed, so a run is the same workload
whatever routes it.  Unlike the simulator it does not route: calls wait in the site's queue
until the site agent rings an agent (on the router's word, or its own when the router is away).

Time is the scenario's clock run ``speed`` times faster than the wall clock (60: a simulated
minute per second).  Events happen in clock order with their scheduled times, so a run is
deterministic for a seed apart from *when* the site agent's commands land.

What an agent does, as in the simulator: a rung agent answers after the scenario's ring time
(or, a ``no_answer_share`` of offers, lets it ring until it is taken back), unless it went not
ready meanwhile, which takes the call back at once; calls last their handle time, then the
queue's wrap-up; a break or the end of the shift makes the agent not ready at once and starts,
or logs the agent out, when its call and wrap-up are over.  Callers hang up after their patience
unless answered.  A supervisor's commands act at once: not ready (a ringing call is taken back),
ready (a working agent only; it ends the wrap-up), log out (an agent with a call ringing or
talking is refused; one logged out stays off for the rest of its shift).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, auto

from routing.model import Contact
from site_agent.aio import stop, wait_event
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
    PbxAdapter,
    PbxAgent,
    PbxCall,
    PbxEvent,
    PbxRefusedError,
    PbxState,
    WrapUpOver,
)
from site_agent.simulation.distributions import Exponential, HandleTime
from site_agent.simulation.scenario import Scenario, ScenarioError
from site_agent.simulation.shifts import AgentShift, plan_shifts
from site_agent.simulation.traffic import ScheduledContact, generate_traffic, random_stream

BREAK_REASON = "break"
END_OF_SHIFT_REASON = "end of shift"
NOT_READY_WHILE_RINGING = "agent not ready"
TAKEN_BACK = "taken back"


class SimulatedClock:
    """The scenario's clock: ``start`` when :meth:`restart` was last called, then ``speed``
    simulated seconds per wall-clock second.  Pinned to a network's ``origin`` (Unix time;
    given here or to :meth:`pin`), it reads ``start`` at that instant instead, on the wall
    clock, like every clock pinned to the same origin in any process, and restarts no more."""

    def __init__(self, start: float, speed: float, *, origin: float | None = None) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, not {speed!r}")
        self.start = start
        self.speed = speed
        self.origin = origin
        self._origin = time.monotonic()

    def restart(self) -> None:
        self._origin = time.monotonic()

    def pin(self, origin: float) -> None:
        """Read ``start`` at Unix time ``origin`` from now on."""
        self.origin = origin

    def now(self) -> float:
        if self.origin is not None:
            return self.start + (time.time() - self.origin) * self.speed
        return self.start + (time.monotonic() - self._origin) * self.speed

    def delay_until(self, when: float) -> float:
        """Wall-clock seconds until the clock reads ``when`` (0 if it has)."""
        return max(0.0, (when - self.now()) / self.speed)


class _Kind(Enum):
    ARRIVAL = auto()
    SHIFT_START = auto()
    BREAK_START = auto()
    BREAK_END = auto()
    SHIFT_END = auto()
    ANSWER = auto()
    FINISH = auto()
    WRAP_UP_END = auto()
    ABANDON = auto()
    RECOVER = auto()


class _Duty(Enum):
    """Where the agent is in its shift (the plan), beside its ACD presence."""

    OFF = auto()
    WORKING = auto()
    BREAK_PENDING = auto()
    ON_BREAK = auto()
    LEAVING = auto()


@dataclass(slots=True, eq=False)
class _Agent:
    agent_id: str
    shift: AgentShift | None
    logged_in: bool = False
    ready: bool = False
    reason: str | None = None
    call: str | None = None  # the call ringing at or talking to the agent
    wrap_up_token: int | None = None
    recover_token: int = 0
    recover_from: str | None = None  # the not-ready reason a missed call gave
    duty: _Duty = _Duty.OFF
    break_length: float = 0.0


@dataclass(slots=True, eq=False)
class _Call:
    contact: Contact  # as the PBX reports it (patience unknown: infinite)
    handle_time: float
    patience: float
    state: CallState = CallState.QUEUED
    agent_id: str | None = None
    offers: int = 0  # rings so far; a ring's answer is valid only for the latest one


@dataclass(slots=True)
class Ledger:
    """What the simulated site did, for tests and reports: every event emitted (when kept)
    and every ring (contact, agent, clock time)."""

    events: list[PbxEvent] = field(default_factory=list)
    rings: list[tuple[str, str, float]] = field(default_factory=list)


def run_tag(origin: float) -> str:
    """A network run's tag: its clock's origin (the Unix time its scenario started at), to the
    second, in UTC; e.g. ``20261123T181502Z``."""
    return datetime.fromtimestamp(origin, UTC).strftime("%Y%m%dT%H%M%SZ")


class SimulatedPbx(PbxAdapter):
    """One site of ``scenario`` (its staffing and traffic) running in real time."""

    def __init__(
        self,
        scenario: Scenario,
        site_id: str,
        *,
        seed: int,
        speed: float = 60.0,
        keep_events: bool = False,
        origin: float | None = None,
    ) -> None:
        """``origin``: the Unix time the clock reads the scenario's start at (a network's
        shared clock, :meth:`SimulatedClock.pin`); ``None``: when the PBX starts."""
        sites = [s.id for s in scenario.sites]
        if site_id not in sites:
            raise ScenarioError(
                f"unknown site {site_id!r} in scenario {scenario.name or '(unnamed)'} "
                f"(sites: {', '.join(sites)})"
            )
        simulation = scenario.simulation
        self._sim_clock = SimulatedClock(simulation.start, speed, origin=origin)
        super().__init__(site_id, self._sim_clock)
        self.scenario = scenario
        self.seed = seed
        self.ledger = Ledger()
        self._keep_events = keep_events
        self._ring = simulation.ring_seconds
        self._no_answer_share = simulation.no_answer_share
        self._recovery = simulation.no_answer_recovery_seconds
        self._wrap_up = {q.id: q.wrap_up for q in scenario.queues}
        self._contacts: tuple[ScheduledContact, ...] = tuple(
            c for c in generate_traffic(scenario, seed) if c.site == site_id
        )
        shifts = {s.agent_id: s for s in plan_shifts(scenario, seed) if s.site_id == site_id}
        self._agents = {
            agent.id: _Agent(agent.id, shifts.get(agent.id))
            for agent in scenario.agent_configs()
            if agent.site == site_id
        }
        self._calls: dict[str, _Call] = {}
        self._heap: list[tuple[float, int, _Kind, str, float]] = []
        self._seq = 0
        self._time = simulation.start
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def contacts(self) -> tuple[ScheduledContact, ...]:
        """The calls that will land here during the run, in arrival order, under the ids
        they will have (:meth:`_contact`)."""
        return tuple(dataclasses.replace(c, contact=self._contact(c)) for c in self._contacts)

    def _contact(self, scheduled: ScheduledContact) -> Contact:
        """The call as it lands: on a network's clock its id carries the run's tag
        (:func:`run_tag`), since every run numbers its calls c1, c2, ... afresh and a network's
        database keeps the calls of every run."""
        origin = self._sim_clock.origin
        if origin is None:
            return scheduled.contact
        return dataclasses.replace(
            scheduled.contact, id=f"{run_tag(origin)}-{scheduled.contact.id}"
        )

    async def start(self) -> None:
        if self._task is not None:
            return
        # On a network's clock, a PBX started late does not replay the calls that came before
        # it started (its agents' shifts and breaks up to now do happen, at once).
        joined = self._sim_clock.now() if self._sim_clock.origin is not None else -math.inf
        self._sim_clock.restart()
        for i, scheduled in enumerate(self._contacts):
            if scheduled.contact.arrival >= joined:
                self._push(scheduled.contact.arrival, _Kind.ARRIVAL, str(i))
        for agent in self._agents.values():
            if agent.shift is None:
                continue
            self._push(agent.shift.start, _Kind.SHIFT_START, agent.agent_id)
            for planned in agent.shift.breaks:
                self._push(planned.start, _Kind.BREAK_START, agent.agent_id, planned.length)
            self._push(agent.shift.end, _Kind.SHIFT_END, agent.agent_id)
        self._task = asyncio.create_task(self._run(), name=f"simulated-pbx-{self.site_id}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop(task)

    def now(self) -> float:
        """The clock, never behind the last event handled (times only move forward)."""
        return max(self._sim_clock.now(), self._time)

    async def _run(self) -> None:
        heap = self._heap
        while True:
            self._wake.clear()
            if not heap:
                await self._wake.wait()
                continue
            delay = self._sim_clock.delay_until(heap[0][0])
            if delay > 0:
                await wait_event(self._wake, delay)
                continue
            when, _, kind, ref, arg = heapq.heappop(heap)
            self._time = max(self._time, when)
            self._handle(kind, ref, arg, when)
            if heap and heap[0][0] > when:
                await asyncio.sleep(0)  # let the site agent run between instants

    def _push(self, when: float, kind: _Kind, ref: str, arg: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, ref, arg))
        self._wake.set()

    def _emit(self, event: PbxEvent) -> None:
        if self._keep_events:
            self.ledger.events.append(event)
        super()._emit(event)

    def _handle(self, kind: _Kind, ref: str, arg: float, now: float) -> None:
        if kind is _Kind.ARRIVAL:
            self._arrive(int(ref), now)
        elif kind is _Kind.ANSWER:
            self._answer(ref, int(arg), now)
        elif kind is _Kind.FINISH:
            self._finish(ref, now)
        elif kind is _Kind.ABANDON:
            self._abandon(ref, now)
        elif kind is _Kind.WRAP_UP_END:
            self._wrap_up_end(self._agents[ref], int(arg), now)
        elif kind is _Kind.RECOVER:
            self._recover(self._agents[ref], int(arg), now)
        elif kind is _Kind.SHIFT_START:
            self._shift_start(self._agents[ref], now)
        elif kind is _Kind.BREAK_START:
            self._break_start(self._agents[ref], arg, now)
        elif kind is _Kind.BREAK_END:
            self._break_end(self._agents[ref], now)
        else:
            self._shift_end(self._agents[ref], now)

    # ----------------------------------------------------------------- reading

    def state(self) -> PbxState:
        return PbxState(
            at=self.now(),
            agents=tuple(
                PbxAgent(
                    agent_id=a.agent_id,
                    logged_in=a.logged_in,
                    ready=a.ready,
                    reason=a.reason,
                    wrap_up=a.wrap_up_token is not None,
                    shift_end=a.shift.end if a.shift and a.logged_in else None,
                )
                for a in sorted(self._agents.values(), key=lambda a: a.agent_id)
            ),
            calls=tuple(self._view(call) for call in self._calls.values()),
        )

    def call(self, contact_id: str) -> PbxCall | None:
        call = self._calls.get(contact_id)
        return None if call is None else self._view(call)

    @staticmethod
    def _view(call: _Call) -> PbxCall:
        return PbxCall(contact=call.contact, state=call.state, agent_id=call.agent_id)

    # ----------------------------------------------------------------- commands

    def ring(self, contact_id: str, agent_id: str) -> None:
        call = self._queued(contact_id)
        agent = self._agents.get(agent_id)
        if agent is None:
            raise PbxRefusedError(f"agent {agent_id} is not at site {self.site_id}")
        if not agent.logged_in:
            raise PbxRefusedError(f"agent {agent_id} is not logged in")
        if not agent.ready:
            raise PbxRefusedError(f"agent {agent_id} is not ready ({agent.reason})")
        if agent.call is not None or agent.wrap_up_token is not None:
            raise PbxRefusedError(f"agent {agent_id} is busy")
        now = self.now()
        call.state, call.agent_id = CallState.RINGING, agent_id
        call.offers += 1
        agent.call = contact_id
        self.ledger.rings.append((contact_id, agent_id, now))
        name = f"{contact_id}/{call.offers - 1}"
        if (
            self._no_answer_share
            and random_stream(self.seed, "no-answer", name).random() < self._no_answer_share
        ):
            return  # rings until taken back (the queue's answer time-out) or the caller hangs up
        self._push(now + self._ring, _Kind.ANSWER, contact_id, call.offers)

    def stop_ringing(self, contact_id: str, *, agent_reason: str | None) -> None:
        call = self._calls.get(contact_id)
        if call is None or call.state is not CallState.RINGING or call.agent_id is None:
            raise PbxRefusedError(f"call {contact_id} is not ringing")
        agent = self._agents[call.agent_id]
        now = self.now()
        if agent_reason is None:
            self._unring(call, now, TAKEN_BACK)
        else:
            # Not ready first, so whoever hears the call is queued again does not give it
            # straight back to the same agent.
            self._unready(agent, now, agent_reason, unring_reason=TAKEN_BACK)
            if agent.duty is _Duty.WORKING:
                agent.recover_token += 1
                agent.recover_from = agent_reason
                self._push(now + self._recovery, _Kind.RECOVER, agent.agent_id, agent.recover_token)
        self._agent_free(agent, now)

    def transfer_out(self, contact_id: str, to_site: str) -> None:
        if to_site == self.site_id:
            raise PbxRefusedError(f"call {contact_id} is already at {to_site}")
        self._queued(contact_id)
        del self._calls[contact_id]
        self._emit(CallTransferred(contact_id, to_site, self.now()))

    def transfer_in(self, contact: Contact, from_site: str) -> None:
        if contact.id in self._calls:
            raise PbxRefusedError(f"call {contact.id} is already at {self.site_id}")
        if contact.queue_id not in self._wrap_up:
            raise PbxRefusedError(f"unknown queue {contact.queue_id}")
        handle = self._transfer_handle_time(contact).sample(
            random_stream(self.seed, "transfer-handle", contact.id)
        )
        landed = dataclasses.replace(contact, origin_site=self.site_id, patience=math.inf)
        # The caller already waited elsewhere; this site does not know its patience left.
        self._calls[contact.id] = _Call(landed, handle_time=handle, patience=math.inf)

    def force_not_ready(self, agent_id: str, reason: str) -> None:
        """A supervisor makes the agent not ready (a ringing call goes back to the queue).  A
        break or the end of the shift keeps its course: a break still ends in ready."""
        agent = self._logged_in(agent_id)
        now = self.now()
        self._unready(agent, now, reason)
        self._agent_free(agent, now)

    def force_ready(self, agent_id: str) -> None:
        """A supervisor makes a working agent ready (not one on a break or leaving); in
        after-contact work, the wrap-up ends."""
        agent = self._logged_in(agent_id)
        if agent.duty is not _Duty.WORKING:
            duty = agent.duty.name.lower().replace("_", " ")
            raise PbxRefusedError(f"agent {agent_id} is {duty}")
        now = self.now()
        self._ready(agent, now)
        if agent.wrap_up_token is not None:
            agent.wrap_up_token = None  # its timer finds another token: void
            self._emit(WrapUpOver(agent.agent_id, now))
            self._agent_free(agent, now)

    def force_logout(self, agent_id: str) -> None:
        """A supervisor logs the agent out: off for the rest of its shift (its breaks and the
        shift's end no longer apply).  Refused while a call rings at it or talks to it (set it
        not ready, and log it out once the call ended); after-contact work ends."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise PbxRefusedError(f"agent {agent_id} is not at site {self.site_id}")
        if not agent.logged_in:
            return
        call = self._calls.get(agent.call) if agent.call is not None else None
        if call is not None:
            raise PbxRefusedError(
                f"agent {agent_id} has a call {call.state}: set not ready, and log out once "
                "the call ends"
            )
        agent.call = agent.wrap_up_token = None
        agent.recover_token += 1  # a pending recovery from a missed call is void
        agent.logged_in, agent.ready, agent.reason = False, False, None
        agent.duty = _Duty.OFF
        self._emit(AgentLogout(agent.agent_id, self.now()))

    def _queued(self, contact_id: str) -> _Call:
        call = self._calls.get(contact_id)
        if call is None:
            raise PbxRefusedError(f"call {contact_id} is not at site {self.site_id}")
        if call.state is not CallState.QUEUED:
            raise PbxRefusedError(f"call {contact_id} is {call.state}, not queued")
        return call

    def _logged_in(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise PbxRefusedError(f"agent {agent_id} is not at site {self.site_id}")
        if not agent.logged_in:
            raise PbxRefusedError(f"agent {agent_id} is not logged in at {self.site_id}")
        return agent

    def _transfer_handle_time(self, contact: Contact) -> HandleTime:
        """A transferred call talks like this site's own calls of its queue (and skills)."""
        streams = [s for s in self.scenario.traffic if s.queue == contact.queue_id]
        for candidates in (
            [s for s in streams if s.required_skills == dict(contact.required_skills)],
            streams,
        ):
            local = [s for s in candidates if s.site == self.site_id]
            if local or candidates:
                return (local or candidates)[0].handle_time
        queue = next(q for q in self.scenario.queues if q.id == contact.queue_id)
        return Exponential(distribution="exponential", mean=queue.expected_handle_time)

    # ----------------------------------------------------------------- calls

    def _arrive(self, i: int, now: float) -> None:
        scheduled = self._contacts[i]
        contact = dataclasses.replace(self._contact(scheduled), patience=math.inf)
        patience = scheduled.contact.patience
        self._calls[contact.id] = _Call(contact, scheduled.handle_time, patience)
        self._emit(CallArrived(contact, now))
        if math.isfinite(patience):
            self._push(now + patience, _Kind.ABANDON, contact.id)

    def _answer(self, contact_id: str, offer: int, now: float) -> None:
        call = self._calls.get(contact_id)
        if call is None or call.state is not CallState.RINGING or call.offers != offer:
            return  # taken back, or the caller hung up, while it rang
        assert call.agent_id is not None
        call.state = CallState.TALKING
        self._emit(CallAnswered(contact_id, call.agent_id, now))
        self._push(now + call.handle_time, _Kind.FINISH, contact_id)

    def _finish(self, contact_id: str, now: float) -> None:
        call = self._calls.pop(contact_id)
        assert call.agent_id is not None
        agent = self._agents[call.agent_id]
        agent.call = None
        wrap_up = self._wrap_up[call.contact.queue_id]
        if wrap_up > 0:
            self._seq += 1
            agent.wrap_up_token = self._seq
            self._push(now + wrap_up, _Kind.WRAP_UP_END, agent.agent_id, self._seq)
        self._emit(CallEnded(contact_id, agent.agent_id, now, wrap_up))
        self._agent_free(agent, now)

    def _abandon(self, contact_id: str, now: float) -> None:
        call = self._calls.get(contact_id)
        if call is None or call.state is CallState.TALKING:
            return  # answered, or transferred away
        del self._calls[contact_id]
        agent = self._agents[call.agent_id] if call.agent_id is not None else None
        if agent is not None:
            agent.call = None
        self._emit(CallerHungUp(contact_id, now))
        if agent is not None:
            self._agent_free(agent, now)

    def _unring(self, call: _Call, now: float, reason: str) -> None:
        assert call.agent_id is not None
        agent_id = call.agent_id
        self._agents[agent_id].call = None
        call.state, call.agent_id = CallState.QUEUED, None
        call.offers += 1  # its pending answer is void
        self._emit(CallNotAnswered(call.contact.id, agent_id, now, reason))

    # ----------------------------------------------------------------- agents

    def _ready(self, agent: _Agent, now: float) -> None:
        if agent.ready:
            return
        agent.ready, agent.reason = True, None
        self._emit(AgentReadied(agent.agent_id, now))

    def _unready(
        self, agent: _Agent, now: float, reason: str, unring_reason: str = NOT_READY_WHILE_RINGING
    ) -> None:
        """Not ready takes a ringing call back at once (after saying the agent is not ready)."""
        if agent.ready or agent.reason != reason:
            agent.ready, agent.reason = False, reason
            self._emit(AgentUnready(agent.agent_id, now, reason))
        call = self._calls.get(agent.call) if agent.call else None
        if call is not None and call.state is CallState.RINGING:
            self._unring(call, now, unring_reason)

    def _agent_free(self, agent: _Agent, now: float) -> None:
        """Start a pending break or log out once the agent has no call or wrap-up left."""
        if agent.call is not None or agent.wrap_up_token is not None:
            return
        if agent.duty is _Duty.BREAK_PENDING:
            agent.duty = _Duty.ON_BREAK
            self._push(now + agent.break_length, _Kind.BREAK_END, agent.agent_id)
        elif agent.duty is _Duty.LEAVING:
            agent.logged_in, agent.ready, agent.reason = False, False, None
            agent.duty = _Duty.OFF
            self._emit(AgentLogout(agent.agent_id, now))

    def _shift_start(self, agent: _Agent, now: float) -> None:
        agent.logged_in, agent.ready, agent.reason = True, True, None
        agent.duty = _Duty.WORKING
        shift_end = agent.shift.end if agent.shift else None
        self._emit(AgentLogin(agent.agent_id, now, ready=True, shift_end=shift_end))

    def _break_start(self, agent: _Agent, length: float, now: float) -> None:
        if agent.duty is not _Duty.WORKING:
            return  # still on (or waiting for) the previous break: breaks do not stack
        agent.duty, agent.break_length = _Duty.BREAK_PENDING, length
        self._unready(agent, now, BREAK_REASON)
        self._agent_free(agent, now)

    def _break_end(self, agent: _Agent, now: float) -> None:
        if agent.duty is not _Duty.ON_BREAK:
            return  # the shift ended during the break
        agent.duty = _Duty.WORKING
        self._ready(agent, now)

    def _shift_end(self, agent: _Agent, now: float) -> None:
        if not agent.logged_in:
            return
        agent.duty = _Duty.LEAVING
        self._unready(agent, now, END_OF_SHIFT_REASON)
        self._agent_free(agent, now)

    def _wrap_up_end(self, agent: _Agent, token: int, now: float) -> None:
        if agent.wrap_up_token != token:
            return
        agent.wrap_up_token = None
        self._emit(WrapUpOver(agent.agent_id, now))
        self._agent_free(agent, now)

    def _recover(self, agent: _Agent, token: int, now: float) -> None:
        """An agent made not ready for a missed call is ready again, unless a break or the end
        of the shift came meanwhile (or it was made ready or not ready since)."""
        if (
            agent.recover_token == token
            and agent.duty is _Duty.WORKING
            and not agent.ready
            and agent.reason == agent.recover_from
        ):
            self._ready(agent, now)
