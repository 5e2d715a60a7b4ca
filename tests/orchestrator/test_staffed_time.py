"""Staffed time through the router the sites use: RayRouting over in-process shards
(LocalShard) counts agents' staffed seconds from the sites' presence reports and snapshots,
and the control API's interval report shows occupancy from them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.persistence import Database
from orchestrator.ray_routing import RayRouting
from orchestrator.router_actor import LocalShard, RouterFront, RouterMessage, RouterShard
from orchestrator.settings import Settings
from orchestrator.sharding import plan_shards
from routing.config import NetworkConfig, compile_network
from site_agent.protocol import (
    AgentLoggedOut,
    AgentStatus,
    ContactArrived,
    ContactData,
    ContactFinished,
    Deliver,
    DeliveryConfirmed,
    Delta,
    SiteEvent,
    Snapshot,
)
from tests.orchestrator.api.conftest import KEYS, NETWORK, SUPERVISOR, T0

TEN = T0 + 3600.0  # 2025-03-14 10:00 UTC
MINUTE = 60.0
CONFIG = NetworkConfig.model_validate(NETWORK)


def m(minutes: float) -> float:
    return TEN + minutes * MINUTE


@dataclass
class Clock:
    now: float = TEN

    def __call__(self) -> float:
        return self.now


@dataclass
class Sites:
    """Scripted sites over a front and the service watching it; the clock follows the
    sites' time stamps."""

    front: RouterFront
    routing: RayRouting
    clock: Clock
    sent: list[tuple[str, RouterMessage]] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)

    async def snapshot(self, site: str, at: float, *agents: str) -> None:
        self.clock.now, self.seq[site] = at, 0
        statuses = [AgentStatus(agent_id=a, logged_in=True, ready=True) for a in agents]
        await self.front.receive(site, Snapshot(site_id=site, at=at, agents=statuses, contacts=[]))

    async def report(self, site: str, at: float, *events: SiteEvent) -> None:
        self.clock.now = at
        self.seq[site] = self.seq.get(site, 0) + 1
        await self.front.receive(site, Delta(site_id=site, seq=self.seq[site], events=list(events)))

    async def handle(self, site: str, contact_id: str, start: float, talk: float) -> None:
        """A call arriving at ``site`` at ``start`` (minutes), answered at once by the agent
        the router gives it, talking ``talk`` minutes, no wrap-up."""
        data = ContactData(id=contact_id, queue_id="billing", arrival=m(start), caller_region="fr")
        await self.report(site, m(start), ContactArrived(contact=data, at=m(start)))
        [deliver] = [msg for s, msg in self.sent if isinstance(msg, Deliver) and s == site
                     and msg.contact.id == contact_id]  # fmt: skip
        confirm = DeliveryConfirmed(
            reservation=deliver.reservation, contact_id=contact_id, at=m(start)
        )
        await self.report(site, m(start), confirm)
        await self.report(
            site,
            m(start + talk),
            ContactFinished(contact_id=contact_id, at=m(start + talk), wrap_up=0),
        )


@pytest.fixture
def database(empty_database: Database) -> Database:
    empty_database.config.replace(CONFIG, actor="test")
    return empty_database


def run(
    database: Database, scenario: Callable[[Sites], Coroutine[Any, Any, None]], shards: int = 1
) -> Sites:
    """Run ``scenario`` over a fresh front, then close the service (which writes the staffed
    time of the running interval)."""
    network = compile_network(CONFIG)
    plan = plan_shards(network, shards)
    clock = Clock()
    front = RouterFront(
        plan,
        [
            LocalShard(RouterShard(net, None, index, len(plan), freeze=False))
            for index, net in enumerate(plan.networks)
        ],
        clock=clock,
    )
    sent: list[tuple[str, RouterMessage]] = []

    def hub(site: str, message: RouterMessage) -> bool:
        sent.append((site, message))
        return True

    routing = RayRouting(front, network, database, downstream=hub)
    sites = Sites(front, routing, clock, sent)

    async def main() -> None:
        await scenario(sites)
        await routing.drain()

    try:
        asyncio.run(main())
    finally:
        routing.close()
    return sites


def report(database: Database, sites: Sites, query: str = "") -> dict[str, Any]:
    app = create_app(Settings(api_keys=KEYS), database=database, routing=sites.routing)
    with TestClient(app) as client:
        response = client.get(
            "/v1/reports/intervals?start=2025-03-14T10:00:00Z&end=2025-03-14T11:00:00Z" + query,
            headers=SUPERVISOR,
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


def staffed(database: Database) -> dict[tuple[str, str, str], float]:
    start = datetime.fromtimestamp(TEN, UTC)
    return {
        (r.start.astimezone(UTC).strftime("%H:%M"), r.site, r.queue): r.counters.staffed_seconds
        for r in database.intervals.query(start, start + timedelta(hours=1))
        if r.counters.staffed_seconds
    }


def test_the_api_report_shows_occupancy_from_the_sites_reports(database: Database) -> None:
    async def scenario(s: Sites) -> None:
        await s.snapshot("paris", m(0), "bob")  # bob logged in when paris connects
        await s.snapshot("madrid", m(0))
        await s.handle("paris", "c1", start=2, talk=10)  # 10:02-10:12
        await s.handle("paris", "c2", start=16, talk=2)  # 10:16-10:18
        await s.report("paris", m(20), AgentLoggedOut(agent_id="bob", at=m(20)))
        s.clock.now = m(31)  # closed at 10:31

    sites = run(database, scenario)
    assert staffed(database) == {
        ("10:00", "paris", "billing"): 900.0,
        ("10:15", "paris", "billing"): 300.0,
    }
    body = report(database, sites, "&site=paris")
    rows = {row["start"][11:16]: row for row in body["intervals"]}
    assert rows["10:00"]["occupancy"] == pytest.approx(600 / 900)
    assert rows["10:15"]["occupancy"] == pytest.approx(120 / 300)
    assert body["total"]["occupancy"] == pytest.approx(720 / 1200)
    assert report(database, sites)["total"]["occupancy"] == pytest.approx(720 / 1200)


def test_a_dropped_link_stops_its_sites_agents_until_its_snapshot(database: Database) -> None:
    async def scenario(s: Sites) -> None:
        await s.snapshot("paris", m(0), "bob")
        await s.snapshot("madrid", m(0), "ana")
        s.clock.now = m(5)
        s.front.disconnected("paris")
        # The service notices at the next message it sees (madrid's, here).
        await s.report("madrid", m(6), AgentLoggedOut(agent_id="ana", at=m(6)))
        await s.snapshot("paris", m(10), "bob")  # back: counted again from its snapshot
        s.clock.now = m(15)

    run(database, scenario)
    assert staffed(database) == {
        ("10:00", "paris", "billing"): (6 + 5) * MINUTE,
        ("10:00", "madrid", "billing"): 6 * MINUTE,
    }


def test_agents_in_a_sites_snapshot_count_once_whichever_shard_has_them(
    database: Database,
) -> None:
    async def scenario(s: Sites) -> None:
        await s.snapshot("paris", m(0), "bob", "eve")  # bob: billing's shard, eve: tech's
        await s.snapshot("paris", m(3), "bob", "eve")  # again (a resynchronisation)
        s.clock.now = m(9)

    run(database, scenario, shards=2)
    assert staffed(database) == {
        ("10:00", "paris", "billing"): 9 * MINUTE,
        ("10:00", "paris", "tech"): 9 * MINUTE,
    }
