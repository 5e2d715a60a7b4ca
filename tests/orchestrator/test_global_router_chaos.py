"""The router core against two simulated sites that behave like real ones, at random: calls
arrive, ring, are answered or not, end or are abandoned; agents come and go; deltas get lost and
sites restart.  Whatever happens, no call is ever delivered while it rings or talks elsewhere,
and after each site's snapshot the router's view equals the sites' (fixed seeds)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from orchestrator.global_router import GlobalRouter, Outbound
from site_agent.protocol import (
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
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
)
from tests.routing.conftest import agent_config, build_network

SITES = ("paris", "lyon")
AGENTS = {f"{site[0]}{n}": site for site in SITES for n in range(3)}


@dataclass
class Call:
    data: ContactData
    site: str
    state: str = "queued"  # queued, ringing, talking
    agent: str | None = None
    reservation: int | None = None


@dataclass
class Agent:
    site: str
    logged_in: bool = False
    ready: bool = False


@dataclass
class World:
    """Both sites' PBXs: the truth the router must converge to."""

    router: GlobalRouter
    rng: random.Random
    now: float = 0.0
    calls: dict[str, Call] = field(default_factory=dict)
    agents: dict[str, Agent] = field(
        default_factory=lambda: {a: Agent(s) for a, s in AGENTS.items()}
    )
    seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SITES, 0))
    next_call: int = 0
    double_deliveries: int = 0
    delivered: int = 0

    def snapshot(self, site: str) -> None:
        self.seq[site] = 0
        agents = [
            AgentStatus(agent_id=a, logged_in=x.logged_in, ready=x.ready)
            for a, x in self.agents.items()
            if x.site == site
        ]
        contacts = [
            ContactStatus(contact=c.data, state=c.state, agent_id=c.agent,  # type: ignore[arg-type]
                          reservation=c.reservation)
            for c in self.calls.values()
            if c.site == site
        ]  # fmt: skip
        message = Snapshot(site_id=site, at=self.now, agents=agents, contacts=contacts)
        self.handle(self.router.receive(site, message, self.now))

    def send(self, site: str, event: SiteEvent, *, lose: bool = False) -> None:
        self.seq[site] += 1
        if lose:
            return  # lost on the WAN: the next delta reveals the gap
        delta = Delta(site_id=site, seq=self.seq[site], events=[event])
        self.handle(self.router.receive(site, delta, self.now))

    def handle(self, out: list[Outbound]) -> None:
        for site, message in out:
            if isinstance(message, SnapshotRequest):
                self.snapshot(site)
            elif isinstance(message, Deliver):
                self.deliver(site, message)
            elif isinstance(message, TransferOut):
                pass  # the call already moved with its Deliver (one world, no transit)

    def deliver(self, site: str, message: Deliver) -> None:
        call = self.calls.get(message.contact.id)
        agent = self.agents[message.agent_id]
        assert agent.site == site
        if call is not None and call.state != "queued":
            self.double_deliveries += 1
            return
        busy = any(c.agent == message.agent_id for c in self.calls.values())
        if call is None or not (agent.logged_in and agent.ready) or busy:
            event = DeliveryRejected(
                reservation=message.reservation, contact_id=message.contact.id, at=self.now,
                reason="not ready",
            )  # fmt: skip
            self.send(site, event)
            return
        self.delivered += 1
        call.site, call.state = site, "ringing"
        call.agent, call.reservation = message.agent_id, message.reservation

    def step(self) -> None:
        self.now += self.rng.expovariate(1.0)
        rng = self.rng
        lose = rng.random() < 0.03
        roll = rng.random()
        if roll < 0.2:
            self.next_call += 1
            site = rng.choice(SITES)
            data = ContactData(id=f"c{self.next_call}", queue_id="q", arrival=self.now)
            self.calls[data.id] = Call(data=data, site=site)
            self.send(site, ContactArrived(contact=data, at=self.now), lose=lose)
        elif roll < 0.7:
            # Calls with an agent move on (answer, ring out, end) more often than queued
            # callers hang up.
            served = sorted(c for c, call in self.calls.items() if call.agent is not None)
            queued = sorted(c for c, call in self.calls.items() if call.agent is None)
            pool = served if served and (rng.random() < 0.8 or not queued) else queued
            if pool:
                self.settle(self.calls[rng.choice(pool)], lose)
        elif roll < 0.9:
            self.toggle(rng.choice(sorted(self.agents)), lose)
        elif roll < 0.94:
            self.snapshot(rng.choice(SITES))  # a site restarts, or reconnects
        else:
            self.handle(self.router.tick(self.now))

    def settle(self, call: Call, lose: bool) -> None:
        cid, site = call.data.id, call.site
        event: SiteEvent
        if call.state == "queued":
            if self.rng.random() >= 0.3:
                return
            del self.calls[cid]
            event = ContactAbandoned(contact_id=cid, at=self.now)
        elif call.state == "ringing":
            assert call.reservation is not None and call.agent is not None
            if self.rng.random() < 0.8:
                event = DeliveryConfirmed(reservation=call.reservation, contact_id=cid, at=self.now)
                call.state = "talking"
            else:  # the agent lets it ring out: not ready, the call queues again
                event = DeliveryRejected(reservation=call.reservation, contact_id=cid, at=self.now)
                self.agents[call.agent].ready = False
                call.state, call.agent = "queued", None
            call.reservation = None
        else:
            del self.calls[cid]
            event = ContactFinished(contact_id=cid, at=self.now)
        self.send(site, event, lose=lose)

    def toggle(self, agent_id: str, lose: bool) -> None:
        agent = self.agents[agent_id]
        busy = any(c.agent == agent_id for c in self.calls.values())
        event: SiteEvent
        if not agent.logged_in:
            agent.logged_in, agent.ready = True, True
            event = AgentLoggedIn(agent_id=agent_id, at=self.now, ready=True)
        elif agent.ready:
            agent.ready = False
            event = AgentNotReady(agent_id=agent_id, at=self.now, reason="break")
        elif not busy and self.rng.random() < 0.3:
            agent.logged_in = False
            event = AgentLoggedOut(agent_id=agent_id, at=self.now)
        else:
            agent.ready = True
            event = AgentReady(agent_id=agent_id, at=self.now)
        self.send(agent.site, event, lose=lose)


def converged(world: World) -> None:
    """After both sites' snapshots, the router holds exactly the sites' calls and states."""
    for site in SITES:
        world.snapshot(site)
    router = world.router
    assert sorted(router.live_contacts()) == sorted(world.calls)
    for cid, call in world.calls.items():
        assert router.contact_state(cid) == call.state, cid
        if call.state != "queued":
            assert router.engine.delivered_to(cid) == call.agent, cid
    for agent_id, agent in world.agents.items():
        assert router.engine.agent_ready(agent_id) == (agent.logged_in and agent.ready)


@pytest.mark.parametrize("seed", range(12))
def test_random_site_behaviour_never_double_delivers_and_converges(seed: int) -> None:
    agents = [agent_config(a, site) for a, site in AGENTS.items()]
    world = World(router=GlobalRouter(build_network(agents=agents)), rng=random.Random(seed))
    for site in SITES:
        world.snapshot(site)
    for _ in range(600):
        world.step()
        assert world.double_deliveries == 0
        for call in world.calls.values():  # one agent per call, one call per voice agent
            if call.agent is not None:
                others = [c for c in world.calls.values() if c.agent == call.agent]
                assert others == [call]
    assert world.delivered > 50
    converged(world)
