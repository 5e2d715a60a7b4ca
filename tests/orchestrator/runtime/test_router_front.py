"""The front that splits site messages among router shards, on in-process shards (no Ray):
events reach their shard with consecutive numbering, the site is acked with its own numbers,
gaps and refusals bring a snapshot, timers fire, and a sharded router decides as one would."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from typing import Any

from orchestrator.router_actor import RouterFront, RouterMessage
from site_agent.protocol import (
    Ack,
    AgentLoggedIn,
    AgentReady,
    ContactArrived,
    ContactFinished,
    ContactStatus,
    ContactTakenIn,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    LocallyAbandoned,
    SnapshotRequest,
    TransferOut,
    Withdraw,
)
from tests.orchestrator.runtime.conftest import (
    SiteScript,
    contact,
    local_front,
    queued,
    ready,
    two_group_network,
)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def kinds(sent: list[tuple[str, RouterMessage]]) -> list[tuple[str, str]]:
    return [(site, message.kind) for site, message in sent]


def delivers(sent: list[tuple[str, RouterMessage]]) -> list[Deliver]:
    return [m for _, m in sent if isinstance(m, Deliver)]


def test_events_reach_their_shard_numbered_in_sequence_and_the_site_is_acked() -> None:
    async def scenario() -> None:
        front, hosts, sent = local_front(two_group_network(), 2)
        billing, sales = front.plan.shard_of_queue("billing"), front.plan.shard_of_queue("sales")
        assert billing is not None and sales is not None and billing != sales
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot())
        await front.receive(
            "paris",
            paris.delta(
                AgentLoggedIn(agent_id="p1", at=0.0, ready=True),
                AgentLoggedIn(agent_id="s1", at=0.0, ready=True),
            ),
        )
        assert sent == [("paris", Ack(seq=1))]
        sent.clear()
        # Delta 2 has nothing for the billing shard: its next delta is still its number 2.
        await front.receive(
            "paris", paris.delta(ContactArrived(contact=contact("c1", "sales"), at=1.0))
        )
        await front.receive("paris", paris.delta(ContactArrived(contact=contact("c2"), at=2.0)))
        (to_sales, to_billing) = delivers(sent)
        assert (to_sales.agent_id, to_billing.agent_id) == ("s1", "p1")
        assert to_sales.reservation % 2 == sales and to_billing.reservation % 2 == billing
        assert [m for _, m in sent if isinstance(m, Ack)] == [Ack(seq=2), Ack(seq=3)]
        for host in hosts:
            assert host.router.counters.gaps == 0 and host.router.counters.refused_events == 0
        assert hosts[billing].router.counters.deltas == 2
        assert hosts[sales].router.counters.deltas == 2

    run(scenario())


def test_confirmations_and_ends_reach_the_shard_holding_the_contact() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(), 2)
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot([ready("s1")]))
        await front.receive(
            "paris", paris.delta(ContactArrived(contact=contact("c1", "sales"), at=1.0))
        )
        (deliver,) = delivers(sent)
        await front.receive(
            "paris",
            paris.delta(
                DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=2.0)
            ),
        )
        assert await front.contact_state("c1") == "talking"
        await front.receive("paris", paris.delta(ContactFinished(contact_id="c1", at=3.0)))
        assert await front.contact_state("c1") is None
        assert await front.agent_state("s1") == "ready"
        assert sent[-1] == ("paris", Ack(seq=3))

    run(scenario())


def test_a_gap_asks_for_one_snapshot_and_deltas_wait_for_it() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(), 2)
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot())
        await front.receive("paris", paris.delta(AgentLoggedIn(agent_id="p1", at=0.0)))
        paris.seq += 1  # delta 2 lost on the way
        await front.receive("paris", paris.delta(AgentReady(agent_id="p1", at=1.0)))
        await front.receive("paris", paris.delta(AgentReady(agent_id="p1", at=1.0)))
        assert sent == [
            ("paris", Ack(seq=1)),
            ("paris", SnapshotRequest(reason="expected delta 2, got 3")),
        ]
        assert front.counters.gaps == 1 and front.counters.ignored_deltas == 1
        assert dict(front.links())["paris"] is False
        await front.receive("paris", paris.snapshot([ready("p1")]))
        await front.receive("paris", paris.delta(ContactArrived(contact=contact("c1"), at=2.0)))
        assert kinds(sent[2:]) == [("paris", "deliver"), ("paris", "ack")]
        assert sent[-1] == ("paris", Ack(seq=1))

    run(scenario())


def test_a_delta_before_any_snapshot_asks_for_one() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(), 2)
        await front.receive("lyon", SiteScript("lyon").delta(AgentLoggedIn(agent_id="l1", at=0.0)))
        assert kinds(sent) == [("lyon", "snapshot_request")]

    run(scenario())


def test_an_event_a_shard_refuses_brings_a_snapshot_and_no_ack() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(), 2)
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot())
        # l1 is an agent of lyon: the paris link may not speak for it.
        await front.receive("paris", paris.delta(AgentReady(agent_id="l1", at=1.0)))
        ((site, request),) = sent
        assert site == "paris" and isinstance(request, SnapshotRequest)
        assert "l1" in request.reason
        await front.receive("paris", paris.delta(AgentLoggedIn(agent_id="p1", at=1.0)))
        assert len(sent) == 1  # ignored until the snapshot

    run(scenario())


def test_a_forced_resync_asks_again_with_its_reason() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(), 2)
        front.resync("paris", "invalid message: frame: Invalid JSON")
        front.resync("paris", "invalid message: delta.seq: too small")
        assert [m for _, m in sent] == [
            SnapshotRequest(reason="invalid message: frame: Invalid JSON"),
            SnapshotRequest(reason="invalid message: delta.seq: too small"),
        ]

    run(scenario())


def test_a_snapshot_is_split_so_each_shard_restores_its_own_part() -> None:
    async def scenario() -> None:
        front, hosts, sent = local_front(two_group_network(), 2)
        paris = SiteScript("paris")
        talking = ContactStatus(contact=contact("c0"), state="talking", agent_id="p2")
        await front.receive(
            "paris",
            paris.snapshot(
                [ready("p1"), ready("s1"), ready("p2")],
                [queued("c1", "sales"), queued("c2"), talking],
            ),
        )
        assert sorted((d.contact.id, d.agent_id) for d in delivers(sent)) == [
            ("c1", "s1"),
            ("c2", "p1"),
        ]
        assert await front.contact_state("c0") == "talking"
        for host in hosts:
            assert host.router.counters.snapshots == 1
            assert host.router.counters.refused_events == 0
        # A later snapshot without c2 ends it on its shard.
        await front.receive("paris", paris.snapshot([ready("p1"), ready("s1")], [talking]))
        assert await front.contact_state("c2") is None
        assert await front.contact_state("c0") == "talking"

    run(scenario())


async def settled(front: RouterFront) -> None:
    """Let the front's link-drop settlements (tasks) run."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_transfer_is_a_handshake_through_the_contacts_shard() -> None:
    async def scenario() -> None:
        front, hosts, sent = local_front(two_group_network(), 2)
        sales = front.plan.shard_of_queue("sales")
        assert sales is not None
        paris, lyon = SiteScript("paris"), SiteScript("lyon")
        await front.receive("paris", paris.snapshot())
        await front.receive("lyon", lyon.snapshot([ready("s2")]))
        await front.receive(
            "paris", paris.delta(ContactArrived(contact=contact("c1", "sales"), at=1.0))
        )
        # Only the order to Paris: Lyon hears of the call once it left Paris.
        assert kinds(sent) == [("paris", "transfer_out"), ("paris", "ack")]
        order = sent[0][1]
        assert isinstance(order, TransferOut) and order.reservation % 2 == sales
        sent.clear()
        left = ContactTransferred(
            reservation=order.reservation, contact_id="c1", to_site="lyon", at=2.0
        )
        await front.receive("paris", paris.delta(left))
        (deliver,) = delivers(sent)
        assert (deliver.agent_id, deliver.from_site) == ("s2", "paris")
        assert deliver.reservation == order.reservation
        await front.receive(
            "lyon",
            lyon.delta(
                ContactTakenIn(reservation=deliver.reservation, contact_id="c1", at=3.0),
                DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=3.0),
            ),
        )
        assert await front.contact_state("c1") == "talking"
        # A call abandoned while Paris was cut off is recorded by its queue's shard only.
        gone = LocallyAbandoned(contact=contact("c9", "sales"), at=4.0)
        await front.receive("paris", paris.delta(gone))
        assert [h.router.counters.locally_abandoned for h in hosts][sales] == 1
        assert sum(h.router.counters.locally_abandoned for h in hosts) == 1
        for host in hosts:
            assert host.router.counters.refused_events == 0 and host.router.counters.gaps == 0
        assert sent[-1] == ("paris", Ack(seq=3))

    run(scenario())


def test_a_delivery_lost_with_its_sites_link_brings_the_call_in_once_it_is_back() -> None:
    async def scenario() -> None:
        front, hosts, sent = local_front(two_group_network(), 2)
        record = front.sink
        assert record is not None
        lyon, paris = SiteScript("lyon"), SiteScript("paris")
        await front.receive("lyon", lyon.snapshot([ready("l1")]))
        await front.receive("paris", paris.snapshot())
        await front.receive("paris", paris.delta(ContactArrived(contact=contact("c1"), at=1.0)))
        assert kinds(sent) == [("paris", "transfer_out"), ("paris", "ack")]
        order = sent[0][1]
        assert isinstance(order, TransferOut) and order.to_site == "lyon"
        # Lyon's link is gone when the delivery that would bring the call in is sent.
        front.sink = lambda site, message: site != "lyon" and record(site, message)
        left = ContactTransferred(
            reservation=order.reservation, contact_id="c1", to_site="lyon", at=2.0
        )
        await front.receive("paris", paris.delta(left))
        await settled(front)
        assert front.counters.dropped == 1
        assert dict(front.links())["lyon"] is False
        assert all(host.router.needs_snapshot("lyon") for host in hosts)
        # Back: its snapshot has no such call, nor took any in: it is still in transit, and
        # is brought in now, under a new number.
        front.sink = record
        sent.clear()
        await front.receive("lyon", lyon.snapshot([ready("l1")]))
        (deliver,) = delivers(sent)
        assert (deliver.contact.id, deliver.agent_id, deliver.from_site) == ("c1", "l1", "paris")
        assert deliver.reservation != order.reservation

    run(scenario())


def test_a_transfer_confirmed_only_in_the_snapshot_after_a_drop_is_completed() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(), 2)
        lyon, paris = SiteScript("lyon"), SiteScript("paris")
        await front.receive("lyon", lyon.snapshot([ready("s2")]))
        await front.receive("paris", paris.snapshot())
        await front.receive(
            "paris", paris.delta(ContactArrived(contact=contact("c1", "sales"), at=1.0))
        )
        order = sent[0][1]
        assert isinstance(order, TransferOut)
        front.disconnected("paris")  # the confirmation is lost with the link
        await settled(front)
        sent.clear()
        transferred = ContactStatus(
            contact=contact("c1", "sales"),
            state="transferred",
            reservation=order.reservation,
            to_site="lyon",
        )
        await front.receive("paris", paris.snapshot([], [transferred]))
        (deliver,) = delivers(sent)
        assert (deliver.contact.id, deliver.agent_id, deliver.from_site) == ("c1", "s2", "paris")
        # Lyon took it in, the caller hung up, and Lyon's link dropped before either report
        # got through: its snapshot lists the intake, so the call is not brought in again.
        front.disconnected("lyon")
        await settled(front)
        sent.clear()
        snapshot = lyon.snapshot([ready("s2")]).model_copy(
            update={"taken_in": [deliver.reservation]}
        )
        await front.receive("lyon", snapshot)
        assert delivers(sent) == []
        assert await front.contact_state("c1") is None

    run(scenario())


def test_due_timers_fire_on_the_shard_that_has_them() -> None:
    async def scenario() -> None:
        now = [0.0]
        front, _, sent = local_front(two_group_network(answer_timeout=10.0), 2, lambda: now[0])
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot([ready("p1"), ready("p2")]))
        now[0] = 1.0
        await front.receive("paris", paris.delta(ContactArrived(contact=contact("c1"), at=1.0)))
        (first,) = delivers(sent)
        assert front.next_timer() == 11.0
        now[0] = 5.0
        await front.tick_due()  # nothing due yet
        assert len(sent) == 2
        now[0] = 11.0
        await front.tick_due()
        withdraw, again = sent[2][1], sent[3][1]
        assert isinstance(withdraw, Withdraw) and withdraw.agent_id == first.agent_id
        assert isinstance(again, Deliver) and again.agent_id != first.agent_id

    run(scenario())


def test_the_timer_task_wakes_for_a_timer_a_reply_brings() -> None:
    async def scenario() -> None:
        front, _, sent = local_front(two_group_network(answer_timeout=0.05), 2, time.time)
        timers = asyncio.create_task(front.run_timers())
        paris = SiteScript("paris")
        await front.receive("paris", paris.snapshot([ready("p1")]))
        await front.receive(
            "paris", paris.delta(ContactArrived(contact=contact("c1", arrival=time.time()), at=0))
        )
        async with asyncio.timeout(5.0):
            while not any(isinstance(m, Withdraw) for _, m in sent):
                await asyncio.sleep(0.01)
        front.stop_timers()
        await asyncio.wait_for(timers, 5.0)
        assert front.counters.ticks >= 1

    run(scenario())


def test_two_shards_decide_exactly_as_one_router() -> None:
    """The same random site traffic through one shard and through two: the same deliveries."""

    async def replay(shards: int) -> list[list[tuple[str, str, str, str]]]:
        front, _, sent = local_front(two_group_network(wrap_up=5.0), shards)
        sites = {"paris": SiteScript("paris"), "lyon": SiteScript("lyon")}
        agents = {"p1": "paris", "p2": "paris", "l1": "lyon", "s1": "paris", "s2": "lyon"}
        for site_id, script in sites.items():
            await front.receive(site_id, script.snapshot())
        for agent_id, site_id in agents.items():
            login = AgentLoggedIn(agent_id=agent_id, at=0.0, ready=True)
            await front.receive(site_id, sites[site_id].delta(login))
        rng = random.Random(11)
        steps: list[list[tuple[str, str, str, str]]] = []
        ringing: dict[str, Deliver] = {}
        talking: dict[str, str] = {}
        for step in range(300):
            now = float(step)
            front.clock = lambda now=now: now
            sent.clear()
            await front.tick_due()
            site_id = rng.choice(["paris", "lyon"])
            choice = rng.random()
            if choice < 0.3 or not (ringing or talking):
                queue = rng.choice(["billing", "sales"])
                data = contact(f"c{step}", queue, now)
                event: Any = ContactArrived(contact=data, at=now)
            elif ringing and (choice < 0.65 or not talking):
                deliver = ringing.pop(sorted(ringing)[0])
                site_id = agents[deliver.agent_id]
                talking[deliver.contact.id] = site_id
                event = DeliveryConfirmed(
                    reservation=deliver.reservation, contact_id=deliver.contact.id, at=now
                )
            elif talking:
                contact_id = sorted(talking)[0]
                site_id = talking.pop(contact_id)
                event = ContactFinished(contact_id=contact_id, at=now, wrap_up=3.0)
            await front.receive(site_id, sites[site_id].delta(event))
            # The landing site sends on each call ordered out at once (the delivery follows).
            confirmed = 0
            while orders := [(to, m) for to, m in sent[confirmed:] if isinstance(m, TransferOut)]:
                confirmed = len(sent)
                for to, order in orders:
                    left = ContactTransferred(
                        reservation=order.reservation,
                        contact_id=order.contact_id,
                        to_site=order.to_site,
                        at=now,
                    )
                    await front.receive(to, sites[to].delta(left))
            for _, message in sent:
                if isinstance(message, Deliver):
                    ringing[message.contact.id] = message
            steps.append(
                sorted(
                    (to, m.kind, getattr(m, "contact_id", "") or m.contact.id, m.agent_id)
                    if isinstance(m, Deliver)
                    else (to, m.kind, str(getattr(m, "contact_id", "")), "")
                    for to, m in sent
                )
            )
        return steps

    async def scenario() -> None:
        one, two = await replay(1), await replay(2)
        assert sum(kind == "deliver" for step in one for _, kind, _, _ in step) > 30
        assert one == two

    run(scenario())
