"""The router core against two simulated sites that behave like real ones, at random: calls
arrive, ring, are answered or not, end or are abandoned; agents come and go; calls move between
the sites by the transfer handshake; the router's messages reach a site late (in order), deltas
get lost (the router asks for a snapshot, which the site sends in turn with the router's
messages), site agents restart, and links drop (``disconnected``) for a while, during which the
site carries on alone and reports its abandoned calls once back; and the router itself restarts,
empty, and learns everything again from the sites, calls in transit between two sites included.
Whatever happens, no call is ever delivered while it rings or talks elsewhere, nor taken in at a
site while it is still at another; and after each site's snapshot the router's view equals the
sites' (fixed seeds)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

import pytest

from orchestrator.global_router import GlobalRouter, Outbound
from routing.engine import NO_ANSWER_REASON
from routing.model import Network
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
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    TransferSettled,
    Withdraw,
)
from tests.routing.conftest import agent_config, build_network, queue_config

SITES = ("paris", "lyon")
AGENTS = {f"{site[0]}{n}": site for site in SITES for n in range(3)}


@dataclass
class Call:
    data: ContactData
    site: str | None  # None: in transit (left a site by transfer, not taken in anywhere yet)
    state: str = "queued"  # queued, ringing, talking
    agent: str | None = None
    reservation: int | None = None


@dataclass
class Agent:
    site: str
    logged_in: bool = False
    ready: bool = False


@dataclass
class Confirmation:
    """A transfer's confirmation (the call left) or a call's intake (it arrived from transit)
    that the site keeps, listing it in its snapshots: an intake until the router acknowledges
    it, a transfer until the router says the call arrived (``TransferSettled``)."""

    seq: int  # the delta that carried it (0: listed in the latest snapshot)
    event: ContactTransferred | ContactTakenIn
    data: ContactData


@dataclass
class World:
    """Both sites' PBXs and site agents: the truth the router must converge to."""

    router: GlobalRouter
    rng: random.Random
    network: Network
    now: float = 0.0
    calls: dict[str, Call] = field(default_factory=dict)
    agents: dict[str, Agent] = field(
        default_factory=lambda: {a: Agent(s) for a, s in AGENTS.items()}
    )
    seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SITES, 0))
    up: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(SITES, True))
    # The router's messages on their way to each site, in order.
    inbox: dict[str, list[Outbound]] = field(default_factory=lambda: {s: [] for s in SITES})
    unacked: dict[str, dict[tuple[str, str], Confirmation]] = field(
        default_factory=lambda: {s: {} for s in SITES}
    )
    abandoned_offline: dict[str, list[LocallyAbandoned]] = field(
        default_factory=lambda: {s: [] for s in SITES}
    )
    received: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in SITES})
    next_call: int = 0
    double_deliveries: int = 0
    crossed: int = 0
    delivered: int = 0
    transfers: int = 0
    drops: int = 0
    restarts: int = 0
    routers: list[GlobalRouter] = field(default_factory=list)  # those restarted, for counters

    # ------------------------------------------------------------- the link

    def snapshot(self, site: str) -> None:
        """The site (re)connects or was asked: its whole state, then its offline reports."""
        self.up[site] = True
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
        taken_in = []
        for confirmation in self.unacked[site].values():
            confirmation.seq = 0
            event = confirmation.event
            call = self.calls.get(event.contact_id)
            if isinstance(event, ContactTakenIn):
                taken_in.append(event.reservation)
            elif call is None or call.site != site:  # not back here since
                contacts.append(
                    ContactStatus(contact=confirmation.data, state="transferred",
                                  reservation=event.reservation, to_site=event.to_site)
                )  # fmt: skip
        message = Snapshot(
            site_id=site, at=self.now, agents=agents, contacts=contacts, taken_in=taken_in,
            received=self.received[site],
        )  # fmt: skip
        self.take(self.router.receive(site, message, self.now))
        reports, self.abandoned_offline[site] = self.abandoned_offline[site], []
        if reports:
            self.send(site, *reports)

    def send(self, site: str, *events: SiteEvent, lose: bool = False) -> int:
        """A delta from the site (nothing while its link is down); returns its number."""
        if not self.up[site]:
            return 0
        self.seq[site] += 1
        if not lose:  # lost on the WAN: the next delta reveals the gap
            delta = Delta(site_id=site, seq=self.seq[site], events=list(events))
            self.take(self.router.receive(site, delta, self.now))
        return self.seq[site]

    def take(self, out: list[Outbound]) -> None:
        """The router's messages leave for their sites (a site whose link is down: lost)."""
        for site, message in out:
            if self.up[site]:
                self.inbox[site].append((site, message))

    def restart_router(self) -> None:
        """The router process dies and a new one starts, knowing nothing: every link drops
        with what was on its way, and each site reconnects (later) with its snapshot."""
        self.restarts += 1
        self.routers.append(self.router)
        for site in SITES:
            self.up[site] = False
            self.inbox[site].clear()
        self.router = GlobalRouter(self.network)

    def drop(self, site: str) -> None:
        """The link drops: what the router sent and the site did not handle yet is lost (a
        call on its way in from transit stays in transit)."""
        self.drops += 1
        self.up[site] = False
        self.inbox[site].clear()
        self.take(self.router.disconnected(site, self.now))

    def process(self, site: str, count: int) -> None:
        """The site handles the next ``count`` router messages."""
        for _ in range(count):
            if not self.inbox[site]:
                return
            _, message = self.inbox[site].pop(0)
            if isinstance(message, SnapshotRequest):
                self.snapshot(site)
            elif isinstance(message, Ack):
                for key, confirmation in list(self.unacked[site].items()):
                    intake = isinstance(confirmation.event, ContactTakenIn)
                    if intake and confirmation.seq <= message.seq:
                        del self.unacked[site][key]
            elif isinstance(message, TransferSettled):
                key = ("out", message.contact_id)
                confirmation = self.unacked[site].get(key)
                if confirmation is not None and confirmation.event.reservation == (
                    message.reservation
                ):
                    del self.unacked[site][key]
            elif isinstance(message, Deliver):
                self.deliver(site, message)
            elif isinstance(message, TransferOut):
                self.transfer_out(site, message)
            elif isinstance(message, Withdraw):
                self.withdraw(site, message)

    def flush(self) -> None:
        while any(self.inbox.values()):
            for site in SITES:
                self.process(site, len(self.inbox[site]))

    # ------------------------------------------------------------- the router's orders

    def deliver(self, site: str, message: Deliver) -> None:
        """As a site agent does: take the call in if it comes from transit, ring the agent if
        the call is queued here and the agent free, else refuse."""
        call = self.calls.get(message.contact.id)
        agent = self.agents[message.agent_id]
        assert agent.site == site
        if message.from_site is not None and call is not None and call.site is None:
            call.site = site  # taken in from transit, and said so until acknowledged
            assert message.order is not None, message
            self.received[site].append(message.order)
            intake = ContactTakenIn(
                reservation=message.reservation, contact_id=call.data.id, at=self.now
            )
            key = ("in", call.data.id)
            self.unacked[site][key] = Confirmation(self.seq[site] + 1, intake, call.data)
            self.send(site, intake, lose=self.rng.random() < 0.03)
        elif message.from_site is not None and (call is None or call.site != site):
            # The site would take in a second copy of a call still at another site, or one
            # that ended: a double delivery.
            self.double_deliveries += 1
            return
        busy = any(c.agent == message.agent_id for c in self.calls.values())
        if (
            call is None
            or call.site != site
            or call.state != "queued"
            or not (agent.logged_in and agent.ready)
            or busy
        ):
            if call is not None and call.state != "queued":
                self.crossed += 1  # sent as the call was answered (or rung) here: refused
            event = DeliveryRejected(
                reservation=message.reservation, contact_id=message.contact.id, at=self.now,
                reason="not ready",
            )  # fmt: skip
            self.send(site, event)
            return
        self.delivered += 1
        call.state, call.agent, call.reservation = "ringing", message.agent_id, message.reservation

    def transfer_out(self, site: str, message: TransferOut) -> None:
        call = self.calls.get(message.contact_id)
        trunk_busy = self.rng.random() < 0.05  # the call stays, queued here
        if call is None or call.site != site or call.state != "queued" or trunk_busy:
            event = DeliveryRejected(
                reservation=message.reservation, contact_id=message.contact_id, at=self.now,
                reason="trunk busy" if trunk_busy else "not queued here",
            )  # fmt: skip
            self.send(site, event)
            return
        self.transfers += 1
        call.site = None
        confirmation = ContactTransferred(
            reservation=message.reservation, contact_id=message.contact_id,
            to_site=message.to_site, at=self.now,
        )  # fmt: skip
        key = ("out", call.data.id)
        self.unacked[site][key] = Confirmation(self.seq[site] + 1, confirmation, call.data)
        self.send(site, confirmation, lose=self.rng.random() < 0.03)

    def withdraw(self, site: str, message: Withdraw) -> None:
        call = self.calls.get(message.contact_id)
        if call is None or call.reservation != message.reservation or call.site != site:
            return
        self.agents[message.agent_id].ready = False
        call.state, call.agent, call.reservation = "queued", None, None
        event = AgentNotReady(agent_id=message.agent_id, at=self.now, reason=NO_ANSWER_REASON)
        self.send(site, event)

    # ------------------------------------------------------------- what happens at the sites

    def step(self) -> None:
        self.now += self.rng.expovariate(1.0)
        rng = self.rng
        lose = rng.random() < 0.03
        roll = rng.random()
        if roll < 0.15:
            self.next_call += 1
            site = rng.choice(SITES)
            data = ContactData(id=f"c{self.next_call}", queue_id="q", arrival=self.now)
            self.calls[data.id] = Call(data=data, site=site)
            self.send(site, ContactArrived(contact=data, at=self.now), lose=lose)
        elif roll < 0.45:
            # Calls with an agent move on (answer, ring out, end) more often than queued
            # callers hang up.
            present = {c: call for c, call in self.calls.items() if call.site is not None}
            served = sorted(c for c, call in present.items() if call.agent is not None)
            queued = sorted(c for c, call in present.items() if call.agent is None)
            pool = served if served and (rng.random() < 0.8 or not queued) else queued
            if pool:
                self.settle(self.calls[rng.choice(pool)], lose)
        elif roll < 0.57:
            self.toggle(rng.choice(sorted(self.agents)), lose)
        elif roll < 0.87:
            self.process(rng.choice(SITES), rng.randint(1, 4))  # the router's messages arrive
        elif roll < 0.89:
            up = [s for s in SITES if self.up[s]]
            if up:  # the site agent restarts: a new connection, which starts with a snapshot
                site = rng.choice(up)
                self.drop(site)
                self.snapshot(site)
        elif roll < 0.897:
            self.drop(rng.choice(SITES))  # back later, with its snapshot
        elif roll < 0.9:
            self.restart_router()
        else:
            self.take(self.router.tick(self.now))
        for site in SITES:
            if not self.up[site] and rng.random() < 0.08:
                self.snapshot(site)  # back, with its snapshot

    def settle(self, call: Call, lose: bool) -> None:
        cid, site = call.data.id, call.site
        assert site is not None
        event: SiteEvent
        if call.state == "queued":
            if self.rng.random() >= 0.3:
                return
            del self.calls[cid]
            if not self.up[site]:
                self.abandoned_offline[site].append(
                    LocallyAbandoned(contact=call.data, at=self.now)
                )
                return
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
    """Once every site is back and has handled the router's messages, and after both sites'
    snapshots, the router holds exactly the sites' calls (those in transit as queued: waiting
    for an agent to take them in) and states."""
    for site in SITES:
        if not world.up[site]:
            world.snapshot(site)
    world.flush()
    for site in SITES:
        world.snapshot(site)
    world.flush()
    router = world.router
    assert sorted(router.live_contacts()) == sorted(world.calls)
    for site in SITES:  # a call sent away is forgotten once it arrived
        for way, cid in world.unacked[site]:
            if way == "out":
                assert cid in world.calls and world.calls[cid].site is None, (site, cid)
    for cid, call in world.calls.items():
        assert router.contact_state(cid) == call.state, cid
        if call.state != "queued":
            assert router.engine.delivered_to(cid) == call.agent, cid
    for agent_id, agent in world.agents.items():
        assert router.engine.agent_ready(agent_id) == (agent.logged_in and agent.ready)


@pytest.mark.parametrize("seed", range(60))
def test_random_site_behaviour_never_double_delivers_and_converges(seed: int) -> None:
    agents = [agent_config(a, site) for a, site in AGENTS.items()]
    network = build_network(agents=agents, queues=[queue_config(answer_timeout=30)])
    world = World(router=GlobalRouter(network), rng=random.Random(seed), network=network)
    for site in SITES:
        world.snapshot(site)
    for _ in range(800):
        world.step()
        assert world.double_deliveries == 0
        for call in world.calls.values():  # one agent per call, one call per voice agent
            if call.agent is not None:
                others = [c for c in world.calls.values() if c.agent == call.agent]
                assert others == [call]
    assert world.delivered > 30
    assert world.transfers > 10
    assert world.drops >= 3
    converged(world)
    assert world.double_deliveries == 0


def test_the_random_runs_exercise_the_handshake_and_the_drops() -> None:
    """Across the seeds: transfers refused, confirmations and intakes that reach the router
    only in a snapshot after a drop, calls routed again from transit (a transfer overtaken by
    an answer time-out, a destination whose link dropped, a delivery that never arrived),
    offline abandons; and nothing lost (each run converged, in transit calls included)."""
    totals: dict[str, int] = {}
    crossed = restarts = 0
    for seed in range(12):
        agents = [agent_config(a, site) for a, site in AGENTS.items()]
        network = build_network(agents=agents, queues=[queue_config(answer_timeout=30)])
        world = World(router=GlobalRouter(network), rng=random.Random(seed), network=network)
        for site in SITES:
            world.snapshot(site)
        for _ in range(800):
            world.step()
        converged(world)
        crossed += world.crossed
        restarts += world.restarts
        for router in [*world.routers, world.router]:
            for name, value in dataclasses.asdict(router.counters).items():
                if isinstance(value, int):
                    totals[name] = totals.get(name, 0) + value
    assert totals["transfers"] > 200
    assert totals["transfer_refusals"] > 5
    assert totals["overtaken_transfers"] > 5
    assert totals["rerouted_in_transit"] > 10
    assert totals["locally_abandoned"] > 5
    assert totals["withdrawals"] > 20
    assert crossed < totals["withdrawals"]  # only answers racing a Withdraw: refused
    assert restarts >= 6
