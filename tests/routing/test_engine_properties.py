"""Properties of the routing engine under random event sequences on small random networks.

A test-side model follows what the engine told us (assignments) and what we told it (events), and
after every step the engine must agree with it and keep its invariants:

* a contact is exactly one of waiting / delivered / finished / abandoned;
* no agent holds more contacts than its capacity, nor two channels at once;
* work conservation: a waiting contact and a free agent who qualifies for one of its active
  targets never coexist (service-mode queues; least-cost queues once their hold budget is spent);
* every decision is one the rules allow (agent free, target active, agent qualifies);
* an event the engine refuses (RoutingError) changes nothing;
* replaying the same events on a fresh router gives identical decisions.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.config import network_from_dict
from routing.engine import Router, RoutingError
from routing.model import (
    AgentProfile,
    AgentState,
    Assignment,
    Channel,
    Contact,
    CostMode,
    Network,
    Queue,
)

SKILLS = ("a", "b", "c")
SITES = ("s1", "s2")
EXPRESSIONS = ("a", "a", "b", "c", "a | b", "a & b", "b>=5", "a & !c", "(a | c) & !b>=8")
WAIT_SHARE = 0.5  # RouterSettings().least_cost_wait_share

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- networks


@st.composite
def agent_docs(draw: st.DrawFn, index: int) -> dict[str, Any]:
    skills = draw(
        st.dictionaries(
            st.sampled_from(SKILLS), st.sampled_from([2, 5, 7, 9, 10]), min_size=2, max_size=3
        )
    )
    capacity = draw(
        st.sampled_from(
            [
                {"voice": 1, "callback": 1},
                {"voice": 1, "chat": 2},
                {"voice": 1, "chat": 3},
                {"chat": 2},
            ]
        )
    )
    return {
        "id": f"ag{index}",
        "site": draw(st.sampled_from(SITES)),
        "skills": skills,
        "capacity": capacity,
    }


@st.composite
def target_docs(draw: st.DrawFn, timeout: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "skills": draw(st.sampled_from(EXPRESSIONS)),
        "min_proficiency": draw(st.sampled_from([1, 1, 3, 6])),
    }
    sites = draw(st.sampled_from([None, ["s1"], ["s2"]]))
    if sites is not None:
        doc["sites"] = sites
    if timeout:
        doc["timeout"] = draw(st.sampled_from([2.0, 10.0, 30.0]))
    return doc


@st.composite
def network_docs(draw: st.DrawFn) -> dict[str, Any]:
    queue_count = draw(st.integers(1, 3))
    channels = [
        draw(st.sampled_from([Channel.VOICE, Channel.VOICE, Channel.CHAT]))
        for _ in range(queue_count)
    ]
    queues = []
    for i in range(queue_count):
        later = [j for j in range(i + 1, queue_count) if channels[j] is channels[i]]
        overflow = draw(st.sampled_from([None, *later])) if later else None
        steps = draw(st.integers(1, 2))
        targets = [
            draw(target_docs(timeout=k + 1 < steps or overflow is not None)) for k in range(steps)
        ]
        queue: dict[str, Any] = {
            "id": f"q{i}",
            "channel": channels[i].value,
            "targets": targets,
            "strategy": draw(st.sampled_from(["longest_idle", "most_skilled"])),
            "cost_mode": draw(st.sampled_from(["service", "least_cost"])),
            "priority": draw(st.integers(0, 3)),
            "expected_handle_time": draw(st.sampled_from([5.0, 20.0, 300.0])),
            "sl_threshold": draw(st.sampled_from([10.0, 40.0])),
            "wrap_up": draw(st.sampled_from([0.0, 0.0, 3.0])),
        }
        ageing = draw(st.sampled_from([None, 5.0, 20.0]))
        if ageing is not None:
            queue["ageing"] = ageing
        if overflow is not None:
            queue["overflow_to"] = f"q{overflow}"
        queues.append(queue)
    agent_count = draw(st.integers(2, 5))
    return {
        "skills": list(SKILLS),
        "sites": [
            {"id": site, "region": "eu", "agent_cost_per_hour": draw(st.sampled_from([0, 10, 30]))}
            for site in SITES
        ],
        "queues": queues,
        "agents": [draw(agent_docs(i)) for i in range(agent_count)],
        "tariffs": {"transfer_fee": draw(st.sampled_from([0.0, 0.5]))},
    }


# ----------------------------------------------------------------------------- events

# An event is (kind, pick, stray, *arguments).  ``pick`` chooses among the agents or contacts for
# which the event makes sense now; with ``stray`` (about one event in eight) it chooses among all
# of them, so the engine also sees events it must refuse.
Op = tuple[Any, ...]

picks = st.integers(0, 99)
strays = st.integers(0, 7).map(lambda n: n == 0)

login = st.tuples(st.just("login"), picks, strays, st.booleans() | st.just(True))
offer = st.tuples(
    st.just("offer"),
    picks,
    strays,
    st.sampled_from([None, None, 0, 2, 5]),
    st.sampled_from([None, None, None, "a", "b", "c"]),
)
finish = st.tuples(
    st.just("finish"), picks, strays, st.sampled_from([None, None, 0.0, 4.0, math.inf])
)
WEIGHTED: list[tuple[int, st.SearchStrategy[Op]]] = [
    (2, login),
    (1, st.tuples(st.just("logout"), picks, strays)),
    (2, st.tuples(st.just("ready"), picks, strays)),
    (1, st.tuples(st.just("not_ready"), picks, strays)),
    (1, st.tuples(st.just("end_wrap_up"), picks, strays)),
    (4, offer),
    (3, st.tuples(st.just("answer"), picks, strays)),
    (3, finish),
    (1, st.tuples(st.just("reject"), picks, strays)),
    (1, st.tuples(st.just("abandon"), picks, strays)),
    (2, st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0, 40.0]))),
    (1, st.tuples(st.just("advance_to_next_timer"))),
]
ops = st.sampled_from([i for i, (weight, _) in enumerate(WEIGHTED) for _ in range(weight)]).flatmap(
    lambda i: WEIGHTED[i][1]
)


@st.composite
def event_lists(draw: st.DrawFn) -> list[Op]:
    """Most agents start logged in and ready (events like any other), then random events."""
    present = draw(st.lists(st.integers(0, 3).map(bool), min_size=5, max_size=5))
    logins: list[Op] = [("login", i, False, True) for i, here in enumerate(present) if here]
    return logins + draw(st.lists(ops, min_size=10, max_size=80))


@dataclass
class Model:
    """What the test knows from the events it sent and the decisions it received."""

    network: Network
    now: float = 0.0
    presence: dict[str, str] = field(default_factory=dict)  # out / ready / not_ready
    wrap_until: dict[str, float] = field(default_factory=dict)
    holding: dict[str, dict[str, Channel]] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    status: dict[str, str] = field(
        default_factory=dict
    )  # waiting ringing talking finished abandoned
    agent_of: dict[str, str] = field(default_factory=dict)
    offered: int = 0

    def __post_init__(self) -> None:
        for agent_id in self.network.agents:
            self.presence[agent_id] = "out"
            self.holding[agent_id] = {}

    # --------------------------------------------------------------- rules

    def free_for(self, agent_id: str, channel: Channel) -> bool:
        if self.presence[agent_id] != "ready" or agent_id in self.wrap_until:
            return False
        held = list(self.holding[agent_id].values())
        if any(ch is not channel for ch in held):
            return False
        return len(held) < self.network.agents[agent_id].capacity_for(channel)

    def qualifies(self, profile: AgentProfile, contact: Contact, queue: Queue, index: int) -> bool:
        target = queue.targets[index]
        if target.sites is not None and profile.site_id not in target.sites:
            return False
        if profile.capacity_for(queue.channel) <= 0:
            return False
        if not target.expression.matches(profile.skills, target.min_proficiency):
            return False
        return all(profile.skills.get(s, 0) >= lvl for s, lvl in contact.required_skills.items())

    def active_targets(self, contact: Contact, queue: Queue, at: float) -> list[int]:
        waited = at - contact.arrival
        return [i for i, t in enumerate(queue.activation_times()) if t <= waited]

    def must_be_served(self, contact: Contact, queue: Queue) -> bool:
        """Work conservation applies: no least-cost hold can be keeping the contact back."""
        if queue.cost_mode is CostMode.SERVICE:
            return True
        return self.now - contact.arrival >= queue.sl_threshold * WAIT_SHARE

    def sensible(self, kind: str) -> list[str]:
        """Agents or contacts for which event ``kind`` is valid now."""
        if kind == "login":
            return sorted(a for a, p in self.presence.items() if p == "out")
        if kind == "logout":
            return sorted(a for a, p in self.presence.items() if p != "out" and not self.holding[a])
        if kind == "ready":
            return sorted(a for a, p in self.presence.items() if p == "not_ready")
        if kind == "not_ready":
            return sorted(a for a, p in self.presence.items() if p == "ready")
        if kind == "end_wrap_up":
            return sorted(self.wrap_until)
        wanted = {
            "answer": {"ringing"},
            "finish": {"talking"},
            "reject": {"ringing"},
            "abandon": {"waiting", "ringing"},
            "offer": {"finished", "abandoned"},
        }[kind]
        return sorted(c for c, s in self.status.items() if s in wanted)

    # --------------------------------------------------------------- updates

    def take(self, decisions: list[Assignment]) -> None:
        for decision in decisions:
            contact = self.contacts[decision.contact_id]
            queue = self.network.queues[contact.queue_id]
            profile = self.network.agents[decision.agent_id]
            assert self.status[contact.id] == "waiting", decision
            assert self.free_for(profile.id, contact.channel), decision
            assert decision.target_index in self.active_targets(
                contact, queue, decision.decided_at
            ), decision
            assert self.qualifies(profile, contact, queue, decision.target_index), decision
            assert decision.site_id == profile.site_id
            assert decision.queue_id == queue.id
            assert decision.decided_at <= self.now
            self.status[contact.id] = "ringing"
            self.agent_of[contact.id] = profile.id
            self.holding[profile.id][contact.id] = contact.channel

    def release(self, contact_id: str, status: str) -> str:
        agent_id = self.agent_of.pop(contact_id)
        del self.holding[agent_id][contact_id]
        self.status[contact_id] = status
        return agent_id

    def expected_state(self, agent_id: str) -> AgentState:
        if self.presence[agent_id] == "out":
            return AgentState.LOGGED_OUT
        statuses = {self.status[c] for c in self.holding[agent_id]}
        if "talking" in statuses:
            return AgentState.ON_CONTACT
        if statuses:
            return AgentState.RESERVED
        if agent_id in self.wrap_until:
            return AgentState.AFTER_CONTACT_WORK
        return AgentState.READY if self.presence[agent_id] == "ready" else AgentState.NOT_READY


# ----------------------------------------------------------------------------- driver


@dataclass
class Step:
    """One event as sent to the engine, replayable on another router."""

    call: Callable[[Router], object]
    describe: str


def snapshot(router: Router, model: Model) -> tuple[object, ...]:
    agents = tuple((a, router.agent_state(a), router.agent_reason(a)) for a in model.presence)
    contacts = tuple((c, router.is_waiting(c), router.delivered_to(c)) for c in model.status)
    return agents, tuple(sorted(router.waiting_contacts())), contacts, router.next_timer()


AGENT_EVENTS = frozenset({"login", "logout", "ready", "not_ready", "end_wrap_up"})


def pick(items: list[str], k: int) -> str | None:
    return items[k % len(items)] if items else None


def plan(op: Op, model: Model, router: Router) -> tuple[Step, Callable[[object], None]] | None:
    """The engine call for ``op`` in the model's current state, and how the model follows a
    successful call."""
    now = model.now
    kind = op[0]

    if kind == "advance" or kind == "advance_to_next_timer":
        # Time only moves forward, and everything due by then is processed.
        if kind == "advance":
            until = now + op[1]
        else:
            timer = router.next_timer()
            if timer is None:
                return None
            until = max(now, timer)

        def after_advance(result: object) -> None:
            model.now = until
            for agent_id, wrap_end in list(model.wrap_until.items()):
                if wrap_end <= until:
                    del model.wrap_until[agent_id]
            model.take(result)  # type: ignore[arg-type]

        return Step(lambda r: r.advance(until), f"advance to {until}"), after_advance

    sensible = model.sensible(kind)
    pool = sorted(model.presence if kind in AGENT_EVENTS else model.status)
    choice = pick(pool if op[2] else sensible, op[1])

    if kind == "offer":
        queues = list(model.network.queues.values())
        queue = queues[op[1] % len(queues)]
        reuse = choice is not None and (op[2] or op[1] % 4 == 0)
        contact_id = choice if reuse and choice is not None else f"c{model.offered}"
        required = {} if op[4] is None else {op[4]: 1 + op[1] % 6}
        contact = Contact(
            id=contact_id,
            queue_id=queue.id,
            arrival=now,
            channel=queue.channel,
            priority=op[3],
            required_skills=required,
        )

        def after_offer(result: object) -> None:
            if not reuse:
                model.offered += 1
            model.contacts[contact_id] = contact
            model.status[contact_id] = "waiting"
            model.take([result] if isinstance(result, Assignment) else [])

        return Step(lambda r: r.offer(contact, now), f"offer {contact} @{now}"), after_offer

    if choice is None:
        return None
    target = choice

    if kind == "login":
        ready = bool(op[3])

        def after_login(result: object) -> None:
            model.presence[target] = "ready" if ready else "not_ready"
            model.take(result)  # type: ignore[arg-type]

        return Step(
            lambda r: r.login(target, now, ready=ready), f"login {target} {ready} @{now}"
        ), after_login

    if kind == "logout":

        def after_logout(result: object) -> None:
            model.presence[target] = "out"
            model.wrap_until.pop(target, None)

        return Step(lambda r: r.logout(target, now), f"logout {target} @{now}"), after_logout

    if kind == "ready":

        def after_ready(result: object) -> None:
            model.presence[target] = "ready"
            model.take(result)  # type: ignore[arg-type]

        return Step(lambda r: r.set_ready(target, now), f"ready {target} @{now}"), after_ready

    if kind == "not_ready":

        def after_not_ready(result: object) -> None:
            model.presence[target] = "not_ready"

        return Step(
            lambda r: r.set_not_ready(target, now, "break"), f"not ready {target} @{now}"
        ), after_not_ready

    if kind == "end_wrap_up":

        def after_end_wrap_up(result: object) -> None:
            model.wrap_until.pop(target, None)
            model.take(result)  # type: ignore[arg-type]

        return Step(
            lambda r: r.end_wrap_up(target, now), f"end wrap-up {target} @{now}"
        ), after_end_wrap_up

    if kind == "answer":

        def after_answer(result: object) -> None:
            model.status[target] = "talking"

        return Step(lambda r: r.answer(target, now), f"answer {target} @{now}"), after_answer

    if kind == "finish":
        override = op[3]

        def after_finish(result: object) -> None:
            agent_id = model.release(target, "finished")
            queue = model.network.queues[model.contacts[target].queue_id]
            duration = queue.wrap_up if override is None else override
            if duration > 0:
                model.wrap_until[agent_id] = now + duration
            model.take(result)  # type: ignore[arg-type]

        return Step(
            lambda r: r.finish(target, now, wrap_up=override),
            f"finish {target} wrap={override} @{now}",
        ), after_finish

    if kind == "reject":

        def after_reject(result: object) -> None:
            agent_id = model.release(target, "waiting")
            model.presence[agent_id] = "not_ready"
            model.take([result] if isinstance(result, Assignment) else [])

        return Step(lambda r: r.reject(target, now), f"reject {target} @{now}"), after_reject

    def after_abandon(result: object) -> None:
        if model.status[target] == "waiting":
            model.status[target] = "abandoned"
        else:
            model.release(target, "abandoned")
        model.take(result)  # type: ignore[arg-type]

    return Step(lambda r: r.abandon(target, now), f"abandon {target} @{now}"), after_abandon


def check_invariants(router: Router, model: Model) -> None:
    waiting = set(router.waiting_contacts())
    assert waiting == {c for c, s in model.status.items() if s == "waiting"}
    for contact_id, status in model.status.items():
        is_waiting = router.is_waiting(contact_id)
        agent_id = router.delivered_to(contact_id)
        # exactly one of waiting / delivered / finished / abandoned
        assert not (is_waiting and agent_id is not None), contact_id
        assert is_waiting == (status == "waiting"), (contact_id, status)
        assert agent_id == model.agent_of.get(contact_id), (contact_id, status)
        assert (agent_id is not None) == (status in {"ringing", "talking"})
    for agent_id, profile in model.network.agents.items():
        held = model.holding[agent_id]
        channels = set(held.values())
        assert len(channels) <= 1, (agent_id, held)
        for channel in channels:
            assert len(held) <= profile.capacity_for(channel), (agent_id, held)
        assert router.agent_state(agent_id) is model.expected_state(agent_id), agent_id
    # work conservation
    for contact_id in waiting:
        contact = model.contacts[contact_id]
        queue = model.network.queues[contact.queue_id]
        if not model.must_be_served(contact, queue):
            continue
        active = model.active_targets(contact, queue, model.now)
        for agent_id, profile in model.network.agents.items():
            if not model.free_for(agent_id, contact.channel):
                continue
            assert not any(model.qualifies(profile, contact, queue, i) for i in active), (
                f"{contact_id} waits while {agent_id} is free and qualifies"
            )


def run(network: Network, events: list[Op]) -> list[tuple[str, object]]:
    """Drive a router and the model through ``events``; the log of (event, outcome)."""
    router = Router(network)
    model = Model(network)
    log: list[tuple[str, object]] = []
    for op in events:
        planned = plan(op, model, router)
        if planned is None:
            continue
        step, follow = planned
        before = snapshot(router, model)
        try:
            result = step.call(router)
        except RoutingError as error:
            assert snapshot(router, model) == before, step.describe
            log.append((step.describe, f"refused: {error}"))
            continue
        follow(result)
        log.append((step.describe, result))
        check_invariants(router, model)
    return log


# ----------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(document=network_docs(), events=event_lists())
def test_invariants_hold_after_every_event(document: dict[str, Any], events: list[Op]) -> None:
    run(network_from_dict(document), events)


@PROPERTY_SETTINGS
@given(document=network_docs(), events=event_lists())
def test_replaying_the_same_events_gives_identical_decisions(
    document: dict[str, Any], events: list[Op]
) -> None:
    network = network_from_dict(document)
    assert run(network, events) == run(network, events)


REPLAY_SCRIPT = """
import json, random, sys
from routing.config import network_from_dict
from routing.engine import Router, RoutingError
from routing.model import Channel, Contact

document = json.loads(sys.argv[1])
network = network_from_dict(document)
router, rng, now, out = Router(network), random.Random(7), 0.0, []
agents, queues = sorted(network.agents), sorted(network.queues)
delivered, offered = [], 0
for _ in range(400):
    kind = rng.choice(["login", "ready", "not_ready", "offer", "offer", "answer", "finish",
                       "advance", "abandon"])
    try:
        if kind == "login":
            got = router.login(rng.choice(agents), now, ready=True)
        elif kind == "ready":
            got = router.set_ready(rng.choice(agents), now)
        elif kind == "not_ready":
            got = router.set_not_ready(rng.choice(agents), now)
        elif kind == "offer":
            queue = network.queues[rng.choice(queues)]
            skill = rng.choice([None, "a", "b"])
            got = router.offer(Contact(id=f"c{offered}", queue_id=queue.id, arrival=now,
                                       channel=queue.channel, priority=rng.choice([None, 1]),
                                       required_skills={} if skill is None else {skill: 2}), now)
            offered += 1
        elif kind == "answer" and delivered:
            got = router.answer(rng.choice(delivered), now)
        elif kind == "finish" and delivered:
            got = router.finish(rng.choice(delivered), now)
        elif kind == "abandon" and offered:
            got = router.abandon(f"c{rng.randrange(offered)}", now)
        else:
            now += rng.choice([0.5, 2.0, 15.0])
            got = router.advance(now)
    except RoutingError as error:
        got = str(error)
    if not isinstance(got, list):
        got = [got]
    for item in got:
        if hasattr(item, "contact_id"):
            delivered.append(item.contact_id)
    out.append(repr(got))
print("\\n".join(out))
"""


def test_replay_is_identical_across_interpreter_hash_seeds() -> None:
    """A hot standby in another process must decide exactly as the primary: nothing may depend
    on set or dict ordering that string hashing randomises."""
    document = {
        "skills": ["a", "b", "c"],
        "sites": [
            {"id": "s1", "region": "eu", "agent_cost_per_hour": 20},
            {"id": "s2", "region": "eu", "agent_cost_per_hour": 10},
            {"id": "s3", "region": "us", "agent_cost_per_hour": 10},
        ],
        "queues": [
            {
                "id": "lc",
                "targets": [
                    {"skills": "a | b", "sites": ["s1", "s2"], "timeout": 10},
                    {"skills": "a | b | c"},
                ],
                "cost_mode": "least_cost",
                "sl_threshold": 40,
                "expected_handle_time": 10,
            },
            {"id": "sv", "targets": [{"skills": "b & !c"}], "strategy": "most_skilled"},
            {"id": "ch", "channel": "chat", "targets": [{"skills": "a"}], "ageing": 5},
        ],
        "agents": [
            {
                "id": f"ag{i}",
                "site": f"s{1 + i % 3}",
                "skills": {"a": 1 + i % 10, "b": 1 + (3 * i) % 10, **({"c": 4} if i % 4 else {})},
                "capacity": {"voice": 1, "chat": 1 + i % 3},
            }
            for i in range(12)
        ],
    }
    outputs = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        completed = subprocess.run(
            [sys.executable, "-c", REPLAY_SCRIPT, json.dumps(document)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        outputs.append(completed.stdout)
    assert outputs[0].count("Assignment(") > 20
    assert outputs[0] == outputs[1] == outputs[2]
