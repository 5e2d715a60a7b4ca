"""Router shards as Ray actors behind the front: one local Ray session for the module."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import ray

from orchestrator.router_actor import RouterFront, RouterMessage, start_ray, start_ray_shards
from orchestrator.sharding import plan_shards
from site_agent.protocol import (
    Ack,
    AgentLoggedIn,
    ContactArrived,
    Deliver,
    DeliveryConfirmed,
    Withdraw,
)
from tests.orchestrator.runtime.conftest import SiteScript, contact, ready, two_group_network


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


def ray_front(
    shards: int, **queue_fields: float
) -> tuple[RouterFront, list[tuple[str, RouterMessage]]]:
    plan = plan_shards(two_group_network(**queue_fields), shards)
    sent: list[tuple[str, RouterMessage]] = []

    def sink(site_id: str, message: RouterMessage) -> bool:
        sent.append((site_id, message))
        return True

    return RouterFront(plan, start_ray_shards(plan, None), sink=sink), sent


def test_start_ray_leaves_a_running_session_alone() -> None:
    assert start_ray(None, num_cpus=1) is False
    assert ray.is_initialized()


def test_each_shard_actor_routes_its_queue_and_settles_its_reservation() -> None:
    async def scenario(front: RouterFront, sent: list[tuple[str, RouterMessage]]) -> None:
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot([ready("s1")]))
        await front.receive("paris", paris.delta(AgentLoggedIn(agent_id="p1", at=0.0, ready=True)))
        await front.receive(
            "paris",
            paris.delta(
                ContactArrived(contact=contact("c1", "sales"), at=1.0),
                ContactArrived(contact=contact("c2", "billing"), at=1.0),
            ),
        )
        deliveries = {m.contact.id: m for _, m in sent if isinstance(m, Deliver)}
        assert {c: d.agent_id for c, d in deliveries.items()} == {"c1": "s1", "c2": "p1"}
        for contact_id, queue_id in (("c1", "sales"), ("c2", "billing")):
            assert deliveries[contact_id].reservation % 2 == front.plan.shard_of_queue(queue_id)
        assert sent[-1] == ("paris", Ack(seq=2))
        confirm = DeliveryConfirmed(reservation=deliveries["c1"].reservation, contact_id="c1", at=2)
        await front.receive("paris", paris.delta(confirm))
        assert await front.contact_state("c1") == "talking"
        assert await front.contact_state("c2") == "ringing"
        counters = await front.shard_counters()
        assert sorted(c.deliveries for c in counters) == [1, 1]
        assert all(c.gaps == 0 and c.refused_events == 0 for c in counters)

    front, sent = ray_front(2)
    try:
        assert len(front.shards) == 2
        asyncio.run(scenario(front, sent))
    finally:
        front.close()


def test_the_front_drives_the_actors_timers() -> None:
    async def scenario(front: RouterFront, sent: list[tuple[str, RouterMessage]]) -> None:
        timers = asyncio.create_task(front.run_timers())
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot([ready("p1")]))
        arrival = ContactArrived(contact=contact("c1", arrival=time.time()), at=time.time())
        await front.receive("paris", paris.delta(arrival))
        async with asyncio.timeout(10.0):
            while not any(isinstance(m, Withdraw) for _, m in sent):
                await asyncio.sleep(0.01)
        front.stop_timers()
        await asyncio.wait_for(timers, 5.0)
        assert await front.agent_state("p1") == "not_ready"

    front, sent = ray_front(2, answer_timeout=0.1)
    try:
        asyncio.run(scenario(front, sent))
    finally:
        front.close()


def test_the_actor_freezes_its_heap_after_building_the_router() -> None:
    front, _ = ray_front(1)
    try:
        assert asyncio.run(_frozen(front)) > 0
    finally:
        front.close()


async def _frozen(front: RouterFront) -> int:
    count: int = await front.shards[0].query("gc_frozen")
    return count


def test_shards_that_cannot_be_placed_time_out_instead_of_hanging() -> None:
    plan = plan_shards(two_group_network(), 1)
    with pytest.raises(TimeoutError, match="not started within 1 s"):
        start_ray_shards(plan, None, cpus=4, timeout=1.0)


def test_calls_made_in_one_turn_reach_the_actor_as_one_batch_in_order() -> None:
    """Twenty deltas submitted without waiting travel as one actor call, and the shard takes
    them in submission order: each is acknowledged with its own number, none is seen as a gap."""

    async def scenario() -> None:
        plan = plan_shards(two_group_network(), 1)
        [shard] = start_ray_shards(plan, None)
        try:
            paris = SiteScript("paris")
            calls = [shard.receive("paris", paris.snapshot([ready("p1")]), 0.0)]
            calls += [
                shard.receive(
                    "paris",
                    paris.delta(ContactArrived(contact=contact(f"c{i}"), at=1.0)),
                    1.0,
                )
                for i in range(20)
            ]
            replies = await asyncio.gather(*calls)
            assert (shard.batches, shard.calls) == (1, 21)
            acks = [[m for _, m in reply.out if isinstance(m, Ack)] for reply in replies[1:]]
            assert acks == [[Ack(seq=n)] for n in range(1, 21)]
            [counters] = [await shard.query("counters")]
            assert counters.gaps == 0
            assert await shard.query("contact_state", "c0") == "ringing"  # p1 took the first
            assert await shard.query("contact_state", "c19") == "queued"
        finally:
            shard.close()

    asyncio.run(scenario())


def test_a_call_that_fails_in_a_batch_fails_alone() -> None:
    async def scenario() -> None:
        [shard] = start_ray_shards(plan_shards(two_group_network(), 1), None)
        try:
            bad = shard.query("agent_figures", "nobody")
            good = shard.query("next_timer")
            results = await asyncio.gather(bad, good, return_exceptions=True)
            assert shard.batches == 1
            assert isinstance(results[0], Exception) and "nobody" in str(results[0])
            assert results[1] is None
        finally:
            shard.close()

    asyncio.run(scenario())


def test_a_shards_actor_imports_neither_the_database_nor_the_web_layers() -> None:
    """Each shard's Ray worker imports ``orchestrator.router_actor``: SQLAlchemy, Alembic,
    FastAPI and the like there cost seconds per worker on a loaded machine (seen: shards 8 s to
    start beside two busy cores, 21 s with the database layer imported), for nothing a shard
    uses."""
    heavy = ["sqlalchemy", "alembic", "psycopg", "fastapi", "uvicorn", "orchestrator.api"]
    script = (
        "import sys, orchestrator.router_actor; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert imported == ""
