"""Site statuses and expected waits in real-time statistics: sites send no statistics over
their links, so the router pulses its own view of each connected site into its engine (every
pulse interval), and statuses (initialising, operational, congested, critical, down) and
expected waits follow the live traffic; merged over router shards as one router sees them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api.live import merged_site_status
from orchestrator.global_router import GlobalRouter
from orchestrator.persistence import Database, upgrade
from orchestrator.ray_routing import RayRouting
from orchestrator.router_actor import LocalShard, RouterFront, RouterMessage, RouterShard
from orchestrator.sharding import plan_shards
from routing.config import NetworkConfig, compile_network
from routing.model import Network
from site_agent.protocol import (
    AgentStatus,
    ContactArrived,
    ContactData,
    Delta,
    SiteEvent,
    Snapshot,
)
from tests.orchestrator.api.conftest import NETWORK

# Billing: a 20 s service-level threshold and 40 s handle time, so one busy agent means an
# expected wait of 40 s (congested: over 20 s) and one caller waiting 80 s (critical: over 60).
FAST_BILLING: dict[str, Any] = {
    **NETWORK,
    "queues": [
        {
            "id": "billing",
            "targets": [{"skills": "billing"}],
            "sl_threshold": 20,
            "expected_handle_time": 40,
        },
        *NETWORK["queues"][1:],
    ],
}


def network(config: dict[str, Any] = FAST_BILLING) -> Network:
    return compile_network(NetworkConfig.model_validate(config))


# ------------------------------------------------------------------ the router's own pulses


class Site:
    def __init__(self, router: GlobalRouter, site_id: str) -> None:
        self.router, self.site_id, self.seq = router, site_id, 0

    def snapshot(self, now: float, *ready: str) -> None:
        self.seq = 0
        agents = [AgentStatus(agent_id=a, logged_in=True, ready=True) for a in ready]
        self.router.receive(
            self.site_id, Snapshot(site_id=self.site_id, at=now, agents=agents, contacts=[]), now
        )

    def send(self, now: float, *events: SiteEvent) -> None:
        self.seq += 1
        delta = Delta(site_id=self.site_id, seq=self.seq, events=list(events))
        self.router.receive(self.site_id, delta, now)

    def arrive(self, now: float, contact_id: str, queue: str = "billing") -> None:
        data = ContactData(id=contact_id, queue_id=queue, arrival=now)
        self.send(now, ContactArrived(contact=data, at=now))


def test_statuses_and_expected_waits_follow_the_routers_view_of_each_site() -> None:
    net = network()
    router = GlobalRouter(net, first_reservation=1)
    engine, billing = router.engine, net.queues["billing"]
    madrid, paris = Site(router, "madrid"), Site(router, "paris")
    assert engine.site_status("madrid", 0.0) == "initialising"  # never connected

    madrid.snapshot(0.0, "ana")  # pulsed as it connects
    assert engine.site_status("madrid", 0.0) == "operational"
    assert engine.predicted_wait(billing, "madrid", 0.0) == 0.0  # ana is free
    paris.snapshot(0.0)  # nobody logged in there
    assert engine.site_status("paris", 0.0) == "critical"
    assert engine.predicted_wait(billing, "paris", 0.0) == float("inf")

    madrid.arrive(1.0, "c1")  # rings ana; the next pulse is due at 2.0
    assert engine.site_status("madrid", 1.5) == "operational"
    router.tick(2.0)
    assert engine.predicted_wait(billing, "madrid", 2.0) == pytest.approx(40.0)
    assert engine.site_status("madrid", 2.0) == "congested"
    assert router.queue_status("billing", "madrid", 2.0) == "congested"

    madrid.arrive(3.0, "c2")  # waits behind c1
    router.tick(4.0)
    assert engine.predicted_wait(billing, "madrid", 4.0) == pytest.approx(80.0)
    assert engine.site_status("madrid", 4.0) == "critical"
    # Tech is not served at madrid (no agent for it): not in its pulses, not its status.
    assert router.queue_status("tech", "madrid", 4.0) is None
    assert engine.predicted_wait(net.queues["tech"], "madrid", 4.0) is None

    router.disconnected("madrid", 5.0)  # not pulsed any more
    router.tick(9.0)
    assert engine.site_status("madrid", 9.0) == "critical"  # its last pulse, at 4.0
    assert engine.predicted_wait(billing, "madrid", 11.0) is None  # stale after 3 pulses
    router.tick(15.0)
    assert engine.site_status("madrid", 15.0) == "down"  # silent past the 10 s watchdog
    assert engine.site_status("paris", 15.0) == "critical"  # still pulsed, still unstaffed
    madrid.snapshot(16.0, "ana")
    assert engine.site_status("madrid", 16.0) != "down"


def test_a_queue_with_callers_and_nobody_staffed_makes_its_site_critical() -> None:
    router = GlobalRouter(network(), first_reservation=1)
    paris = Site(router, "paris")
    paris.snapshot(0.0, "bob")  # billing staffed; eve (tech) not logged in
    assert router.engine.site_status("paris", 0.0) == "operational"
    assert router.queue_status("tech", "paris", 0.0) is None  # nobody for it, nobody waiting
    paris.arrive(1.0, "t1", "tech")
    router.tick(2.0)
    assert router.queue_status("tech", "paris", 2.0) == "critical"
    assert router.engine.site_status("paris", 2.0) == "critical"


def test_site_statuses_merge_over_shards_as_one_router_sees_them() -> None:
    assert merged_site_status(["initialising", "initialising"], []) == "initialising"
    assert merged_site_status(["down", "critical"], ["operational"]) == "down"
    # A shard whose queues nobody works on at the site says critical; the site is not.
    assert merged_site_status(["operational", "critical"], ["operational", None]) == "operational"
    assert merged_site_status(["critical", "critical"], [None, None]) == "critical"
    worst = merged_site_status(["congested", "critical"], ["congested", "operational", "critical"])
    assert worst == "critical"
    assert merged_site_status([None], []) is None


# ------------------------------------------------------------------ through RayRouting


@dataclass
class Front:
    front: RouterFront
    routing: RayRouting
    clock: list[float]
    seq: dict[str, int]

    async def snapshot(self, site: str, *ready: str) -> None:
        self.seq[site] = 0
        agents = [AgentStatus(agent_id=a, logged_in=True, ready=True) for a in ready]
        at = self.clock[0]
        await self.front.receive(site, Snapshot(site_id=site, at=at, agents=agents, contacts=[]))

    async def arrive(self, site: str, contact_id: str, queue: str) -> None:
        self.seq[site] += 1
        at = self.clock[0]
        data = ContactData(id=contact_id, queue_id=queue, arrival=at)
        event = ContactArrived(contact=data, at=at)
        await self.front.receive(site, Delta(site_id=site, seq=self.seq[site], events=[event]))


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'vcc.db'}"
    upgrade(url)
    db = Database(url)
    yield db
    db.close()


@pytest.mark.parametrize("shards", [1, 2])
def test_realtime_statistics_show_each_sites_status_and_expected_waits(
    database: Database, shards: int
) -> None:
    net = network()
    plan = plan_shards(net, shards)
    assert len(plan) == shards
    clock = [1000.0]
    front = RouterFront(
        plan,
        [
            LocalShard(RouterShard(part, None, index, len(plan), freeze=False))
            for index, part in enumerate(plan.networks)
        ],
        clock=lambda: clock[0],
    )

    def hub(_site: str, _message: RouterMessage) -> bool:
        return True

    routing = RayRouting(front, net, database, downstream=hub)
    sites = Front(front, routing, clock, {})

    async def scenario() -> None:
        before = await routing.realtime_stats()
        assert {row.site: row.status for row in before.sites} == {
            "madrid": "initialising",
            "paris": "initialising",
        }
        await sites.snapshot("madrid", "ana")
        await sites.snapshot("paris", "bob")  # eve (tech) not logged in
        stats = await routing.realtime_stats()
        assert {row.site: row.status for row in stats.sites} == {
            "madrid": "operational",
            "paris": "operational",  # tech is not worked there: nobody for it, nobody waiting
        }
        waits = {(q.queue, s.site): s.ewt_seconds for q in stats.queues for s in q.sites}
        assert waits[("billing", "madrid")] == 0.0
        assert waits[("tech", "paris")] is None  # nobody could answer: no finite wait
        assert waits[("tech", "madrid")] is None  # not served at madrid

        await sites.arrive("madrid", "c1", "billing")  # rings ana
        await sites.arrive("paris", "t1", "tech")  # waits: nobody for tech
        clock[0] += 2.0
        stats = await routing.realtime_stats()
        assert {row.site: row.status for row in stats.sites} == {
            "madrid": "congested",  # 40 s expected for billing, over its 20 s threshold
            "paris": "critical",  # a tech caller and nobody staffed for tech
        }
        waits = {(q.queue, s.site): s.ewt_seconds for q in stats.queues for s in q.sites}
        assert waits[("billing", "madrid")] == pytest.approx(40.0)
        assert waits[("billing", "paris")] == 0.0  # bob is free

    try:
        asyncio.run(scenario())
    finally:
        routing.close()
