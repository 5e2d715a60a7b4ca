"""GET /metrics: the router's Prometheus exposition, read back with Prometheus's own text
parser (prometheus_client.parser), over the in-process front and the control API's routing
service with scripted sites."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.metrics_endpoint import SITE_STATUSES, metrics_router, scrape
from orchestrator.persistence import Database
from orchestrator.router_actor import ShardReply
from site_agent.protocol import (
    AgentLoggedIn,
    ContactArrived,
    ContactFinished,
    Deliver,
    DeliveryConfirmed,
    Delta,
    Snapshot,
)
from tests.orchestrator.api.conftest import T0
from tests.orchestrator.prometheus_text import Samples, parse, total, value
from tests.orchestrator.test_ray_routing import CONFIG, Harness, build, call, ready, run


@pytest.fixture
def database(empty_database: Database) -> Database:
    empty_database.config.replace(CONFIG, actor="test")
    return empty_database


def current_status(samples: Samples, site: str) -> str:
    """The one status whose series is 1 (every status has its series)."""
    statuses = {s: value(samples, "vcc_site_status", site=site, status=s) for s in SITE_STATUSES}
    [current] = [s for s, v in statuses.items() if v == 1]
    assert sum(statuses.values()) == 1
    return current


async def metrics_of(h: Harness) -> Samples:
    return parse(await scrape(h.front, h.connected, h.routing.realtime_stats, timeout=5.0))


def test_a_calls_life_shows_in_the_metrics_as_it_happens(database: Database) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [ready("bob")])
        await h.report("paris", AgentLoggedIn(agent_id="eve", at=T0, ready=False))
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
        [deliver] = h.to("paris", Deliver)
        h.clock.now = T0 + 4
        await h.report(
            "paris",
            DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=T0 + 4),
        )
        talking = await metrics_of(h)
        h.clock.now = T0 + 124
        await h.report("paris", ContactFinished(contact_id="c1", at=T0 + 124, wrap_up=6))
        ended = await metrics_of(h)

        # The links: paris connected and in step, madrid never connected.
        assert value(talking, "vcc_site_connected", site="paris") == 1
        assert value(talking, "vcc_site_in_step", site="paris") == 1
        assert value(talking, "vcc_site_connected", site="madrid") == 0
        assert value(talking, "vcc_router_shards") == value(talking, "vcc_router_shards_answering")
        # Each message from paris counted and timed; the delivery and the acks counted.
        assert value(ended, "vcc_router_site_messages_total", site="paris", kind="delta") == 4
        assert value(ended, "vcc_router_site_messages_total", site="paris", kind="snapshot") == 1
        assert value(ended, "vcc_router_decision_seconds_count", kind="delta") == 4
        assert value(ended, "vcc_router_decision_seconds_bucket", kind="delta", le="+Inf") == 4
        assert value(ended, "vcc_router_messages_sent_total", site="paris", kind="deliver") == 1
        assert value(ended, "vcc_router_messages_sent_total", site="paris", kind="ack") == 4
        # The shards' decisions.
        assert value(ended, "vcc_router_deliveries_total") == 1
        assert value(ended, "vcc_router_confirmations_total") == 1
        assert value(ended, "vcc_router_site_events_total", kind="contact_arrived") == 1
        # The contact's outcome as the interval reports count it.
        for name, expected in [
            ("offered", 1),
            ("answered", 1),
            ("answered_within_sl", 1),
            ("wait_seconds", 4.0),
        ]:
            series = f"vcc_contacts_{name}_total"
            assert value(talking, series, site="paris", queue="billing") == expected, name
        assert ("vcc_contacts_handle_seconds_total", frozenset()) not in talking
        handle = value(ended, "vcc_contacts_handle_seconds_total", site="paris", queue="billing")
        assert handle == pytest.approx(126.0)  # 120 s talk + 6 s wrap-up
        assert value(ended, "vcc_contacts_cost_total", site="paris", queue="billing") > 0
        # Live figures: bob on the call, then in wrap-up; eve logged in, not ready.
        assert value(talking, "vcc_site_agents", site="paris", state="on_contact") == 1
        assert value(talking, "vcc_site_agents", site="paris", state="not_ready") == 1
        assert value(talking, "vcc_site_agents", site="paris", state="staffed") == 2
        assert value(talking, "vcc_queue_contacts", queue="billing", state="talking") == 1
        assert value(ended, "vcc_queue_contacts", queue="billing", state="talking") == 0
        assert value(ended, "vcc_site_agents", site="paris", state="after_contact_work") == 1
        # One series per status, the current one at 1.
        # One series per status, the current one at 1: the API's real-time statistics'.
        live = {row.site: row.status for row in (await h.routing.realtime_stats()).sites}
        assert current_status(ended, "paris") == live["paris"]
        assert current_status(ended, "madrid") == "initialising"  # never heard from
        assert value(ended, "vcc_site_open", site="paris") == 1

    run(database, scenario)


def test_a_message_for_a_disconnected_site_is_counted_as_dropped(database: Database) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [ready("bob")])
        h.connected.discard("paris")  # the link went away: the delivery finds nobody
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
        samples = await metrics_of(h)
        assert value(samples, "vcc_router_messages_dropped_total", site="paris") >= 1
        assert value(samples, "vcc_site_connected", site="paris") == 0
        assert value(samples, "vcc_site_in_step", site="paris") == 0

    run(database, scenario)


class _DeadShard:
    """A shard client whose actor is gone: every call fails."""

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> Awaitable[ShardReply]:
        return self._fail()

    def tick(self, now: float) -> Awaitable[ShardReply]:
        return self._fail()

    def disconnected(self, site_id: str, now: float) -> Awaitable[ShardReply]:
        return self._fail()

    def query(self, method: str, *args: Any) -> Awaitable[Any]:
        return self._fail()

    def close(self) -> None:
        pass

    async def _fail(self) -> Any:
        raise RuntimeError("the actor died")


def test_a_dead_shard_does_not_fail_the_scrape_it_shows_in_it(database: Database) -> None:
    harness = build(database, clients=lambda network: [_DeadShard()])

    async def main() -> bytes:
        app = FastAPI()
        app.include_router(
            metrics_router(
                harness.front,
                harness.connected.copy,
                harness.routing.realtime_stats,
                timeout=5.0,
            )
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vcc") as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        return response.content

    try:
        samples = parse(asyncio.run(main()))
    finally:
        harness.routing.close()
    assert value(samples, "vcc_router_shards") == 1
    assert value(samples, "vcc_router_shards_answering") == 0
    assert not any(name == "vcc_router_deliveries_total" for name, _ in samples)
    assert not any(name == "vcc_site_agents" for name, _ in samples)
    assert value(samples, "vcc_site_connected", site="paris") == 0
    assert value(samples, "process_resident_memory_bytes") > 0


def test_two_routers_in_one_process_keep_their_own_series(database: Database) -> None:
    first, second = build(database), build(database)

    async def scenario() -> tuple[Samples, Samples]:
        await first.snapshot("paris", [ready("bob")])
        return await metrics_of(first), await metrics_of(second)

    try:
        one, other = asyncio.run(scenario())
    finally:
        first.routing.close()
        second.routing.close()
    assert value(one, "vcc_router_site_messages_total", site="paris", kind="snapshot") == 1
    assert total(other, "vcc_router_site_messages_total") == 0
