"""A connected site agent against a scripted router on loopback: the snapshot and deltas it
streams, and the router's decisions it carries out (each exactly once)."""

from __future__ import annotations

import itertools

from fake_router import FakeRouter, eventually, north_agent, outcomes, run, running, two_sites

from site_agent.protocol import (
    Ack,
    AgentLoggedIn,
    AgentNotReady,
    AgentReady,
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
    Snapshot,
    SnapshotRequest,
    TransferOut,
    TransferSettled,
    Withdraw,
)


def _requested(router: FakeRouter) -> list[str]:
    """Calls the router heard of: in the connection's snapshot, or as route requests."""
    snapshot = router.messages[0]
    assert isinstance(snapshot, Snapshot)
    return [c.contact.id for c in snapshot.contacts] + [
        e.contact.id for e in router.events(ContactArrived)
    ]


def _numbering(messages: list[Delta | Snapshot]) -> list[int]:
    """0 for a snapshot, the seq of a delta."""
    return [0 if isinstance(m, Snapshot) else m.seq for m in messages]


def _restarts_at_each_snapshot(numbers: list[int]) -> bool:
    return all(b == (0 if b == 0 else a + 1) for a, b in itertools.pairwise(numbers))


def test_a_snapshot_comes_first_then_deltas_numbered_one_by_one() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, pbx = north_agent(router)
        async with running(agent):
            await router.wait_for(lambda: len(router.events(ContactArrived)) >= 3, "3 arrivals")
            # Every call that landed is a route request, once, unless the snapshot had it.
            await router.wait_for(
                lambda: sorted(_requested(router)) == sorted(outcomes(pbx)), "all calls reported"
            )
        await router.stop()
        first, *rest = router.messages
        assert isinstance(first, Snapshot) and first.site_id == "north"
        assert _numbering(router.messages) == list(range(len(rest) + 1))
        assert all(isinstance(m, Delta) and m.site_id == "north" for m in rest)
        # Every agent is accounted for: logged in at the snapshot, or reported logging in.
        logged_in = {a.agent_id for a in first.agents if a.logged_in}
        logged_in |= {e.agent_id for e in router.events(AgentLoggedIn)}
        assert logged_in == {a.agent_id for a in pbx.state().agents}

    run(body())


def test_a_delivery_rings_once_and_is_confirmed_once_however_often_it_is_sent() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, pbx = north_agent(router, two_sites(mean_patience=None))
        async with running(agent):
            arrival = await router.wait_for(
                lambda: next(iter(router.events(ContactArrived)), None), "a route request"
            )
            contact_id = arrival.contact.id
            deliver = Deliver(reservation=7, contact=arrival.contact, agent_id="north.agents.002")
            await router.send(deliver)
            await router.send(deliver)  # re-sent while it rings
            await router.wait_for(lambda: router.events(DeliveryConfirmed), "the confirmation")
            await router.send(deliver)  # re-sent after the answer
            await router.send(SnapshotRequest(reason="test"))
            await router.wait_for(
                lambda: sum(isinstance(m, Snapshot) for m in router.messages) == 2, "a snapshot"
            )
            await eventually(lambda: agent.duplicate_deliveries == 2, "both duplicates seen")
        await router.stop()
        assert [r[:2] for r in pbx.ledger.rings] == [(contact_id, "north.agents.002")]
        confirmed = router.events(DeliveryConfirmed)
        assert [(e.reservation, e.contact_id) for e in confirmed] == [(7, contact_id)]
        assert not router.events(DeliveryRejected)
        assert outcomes(pbx)[contact_id] in ("talking", "finished")
        # The snapshot asked for shows the call at its agent under its reservation, or it ended
        # (and was reported so) before.
        snapshot = [m for m in router.messages if isinstance(m, Snapshot)][-1]
        status = next((c for c in snapshot.contacts if c.contact.id == contact_id), None)
        if status is None:
            assert contact_id in {e.contact_id for e in router.events(ContactFinished)}
        else:
            assert (status.state, status.agent_id, status.reservation) == (
                "talking",
                "north.agents.002",
                7,
            )

    run(body())


def test_snapshot_request_restarts_the_numbering() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, _ = north_agent(router)
        async with running(agent):
            await router.wait_for(lambda: len(router.messages) >= 4, "a few deltas")
            await router.send(SnapshotRequest(reason="gap after 3"))
            await router.wait_for(
                lambda: (
                    _numbering(router.messages).count(0) == 2
                    and _numbering(router.messages)[-1] >= 2
                ),
                "a snapshot and two deltas after it",
            )
        await router.stop()
        numbers = _numbering(router.messages)
        assert numbers[0] == 0 and numbers.count(0) == 2
        assert _restarts_at_each_snapshot(numbers), numbers
        assert len(router.connections) == 1

    run(body())


def test_a_delivery_to_an_agent_not_ready_or_going_not_ready_while_rung_is_rejected() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        # A ring of five simulated minutes is half a second here: time to go not ready.
        agent, pbx = north_agent(router, two_sites(ring_seconds=300, mean_patience=None))
        async with running(agent):
            arrival = await router.wait_for(
                lambda: next(iter(router.events(ContactArrived)), None), "a route request"
            )
            contact, contact_id = arrival.contact, arrival.contact.id
            pbx.force_not_ready("north.agents.001", "training")
            await router.wait_for(
                lambda: any(e.reason == "training" for e in router.events(AgentNotReady)),
                "the agent's not ready",
            )
            await router.send(Deliver(reservation=1, contact=contact, agent_id="north.agents.001"))
            refused = await router.wait_for(lambda: router.events(DeliveryRejected), "rejection")
            assert (refused[0].reservation, refused[0].contact_id) == (1, contact_id)
            assert "not ready" in refused[0].reason

            await router.send(Deliver(reservation=2, contact=contact, agent_id="north.agents.003"))
            await eventually(lambda: len(pbx.ledger.rings) == 1, "the ring")
            pbx.force_not_ready("north.agents.003", "lunch")
            rejected = await router.wait_for(
                lambda: len(router.events(DeliveryRejected)) == 2, "second rejection"
            )
            assert rejected

            await router.send(Deliver(reservation=3, contact=contact, agent_id="north.agents.002"))
            await router.wait_for(lambda: router.events(DeliveryConfirmed), "the confirmation")
        await router.stop()
        second = router.events(DeliveryRejected)[1]
        assert (second.reservation, second.reason) == (2, "agent not ready")
        assert [e.reservation for e in router.events(DeliveryConfirmed)] == [3]
        assert [r[:2] for r in pbx.ledger.rings] == [
            (contact_id, "north.agents.003"),
            (contact_id, "north.agents.002"),
        ]
        assert outcomes(pbx)[contact_id] in ("talking", "finished")

    run(body())


def test_transfers_out_and_in_and_a_withdrawn_ring() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, pbx = north_agent(router, two_sites(ring_seconds=300, mean_patience=None))
        async with running(agent):
            first, second = await router.wait_for(
                lambda: (
                    router.events(ContactArrived)[:2]
                    if len(router.events(ContactArrived)) >= 2
                    else None
                ),
                "two route requests",
            )
            out = TransferOut(reservation=10, contact_id=first.contact.id, to_site="south")
            await router.send(out)
            await router.send(out)
            await router.send(TransferOut(reservation=11, contact_id="nowhere", to_site="south"))
            rejected = await router.wait_for(lambda: router.events(DeliveryRejected), "rejection")
            assert (rejected[0].reservation, rejected[0].contact_id) == (11, "nowhere")
            assert pbx.call(first.contact.id) is None
            assert agent.duplicate_deliveries == 1
            # The call left, and the router is told so (once): only then does it deliver it.
            (left,) = router.events(ContactTransferred)
            assert (left.reservation, left.contact_id, left.to_site) == (10, first.contact.id,
                                                                          "south")  # fmt: skip

            agent_id = "north.agents.001"
            await router.send(Deliver(reservation=12, contact=second.contact, agent_id=agent_id))
            await eventually(lambda: pbx.ledger.rings, "the ring")
            await router.send(
                Withdraw(reservation=12, contact_id=second.contact.id, agent_id=agent_id)
            )
            await router.wait_for(
                lambda: any(e.reason == "no answer" for e in router.events(AgentNotReady)),
                "the agent made not ready",
            )
            await router.wait_for(  # recovers after no_answer_recovery_seconds
                lambda: [e for e in router.events(AgentReady) if e.agent_id == agent_id], "ready"
            )
            call = pbx.call(second.contact.id)
            assert call is not None and str(call.state) == "queued"

            transferred = ContactData(id="s-77", queue_id="q", arrival=pbx.now())
            await router.send(
                Deliver(
                    reservation=13,
                    contact=transferred,
                    agent_id="north.agents.002",
                    from_site="south",
                    order=9,
                )
            )
            await router.wait_for(lambda: router.events(DeliveryConfirmed), "the confirmation")
            # Its transfer order is listed as received, acknowledged or not.
            count = len([m for m in router.messages if isinstance(m, Snapshot)])
            await router.send(SnapshotRequest(reason="test"))
            snapshot = await router.wait_for(lambda: _snapshot(router, count + 1), "snapshot")
            assert snapshot.received == [9]
        await router.stop()
        assert [e.reservation for e in router.events(DeliveryConfirmed)] == [13]
        assert [e.reservation for e in router.events(DeliveryRejected)] == [11]
        assert [e.reservation for e in router.events(ContactTransferred)] == [10]
        # Taken in from transit: said so before the ring's outcome.
        taken_in = router.events(ContactTakenIn)
        assert [(e.reservation, e.contact_id) for e in taken_in] == [(13, "s-77")]
        events = router.events()
        assert events.index(taken_in[0]) < events.index(router.events(DeliveryConfirmed)[0])
        assert outcomes(pbx)[first.contact.id] == "transferred"
        assert outcomes(pbx)["s-77"] in ("talking", "finished")

    run(body())


def test_a_call_sent_away_is_listed_in_snapshots_until_the_router_settles_it() -> None:
    """A confirmation lost with the link still reaches the router: in the next snapshot; and
    once acknowledged, the call is still listed until the router says it arrived elsewhere
    (``TransferSettled``): a router that died with the call in transit loses nothing."""

    async def body() -> None:
        router = FakeRouter()
        router.auto_ack = False
        await router.start()
        agent, pbx = north_agent(router, two_sites(mean_patience=None))
        async with running(agent):
            arrival = await router.wait_for(
                lambda: next(iter(router.events(ContactArrived)), None), "a route request"
            )
            contact_id = arrival.contact.id
            await router.send(TransferOut(reservation=21, contact_id=contact_id, to_site="south"))
            await router.wait_for(lambda: router.events(ContactTransferred), "the confirmation")
            expected = ContactStatus(
                contact=arrival.contact, state="transferred", reservation=21, to_site="south"
            )
            # Not acknowledged (say the router never got it): every snapshot lists it.
            for count in (2, 3):
                await router.send(SnapshotRequest(reason="test"))
                snapshot = await router.wait_for(lambda n=count: _snapshot(router, n), "snapshot")
                assert [c for c in snapshot.contacts if c.state == "transferred"] == [expected]
            # Acknowledged: the router has it, but the call may still be in transit.
            seq = await router.wait_for(lambda: _delta_after(router, 3), "a delta after it")
            await router.send(Ack(seq=seq))
            await router.send(SnapshotRequest(reason="test"))
            snapshot = await router.wait_for(lambda: _snapshot(router, 4), "snapshot")
            assert [c for c in snapshot.contacts if c.state == "transferred"] == [expected]
            # Settled under another order: still listed; under its own: forgotten.
            await router.send(TransferSettled(reservation=22, contact_id=contact_id))
            await router.send(SnapshotRequest(reason="test"))
            snapshot = await router.wait_for(lambda: _snapshot(router, 5), "snapshot")
            assert [c for c in snapshot.contacts if c.state == "transferred"] == [expected]
            await router.send(TransferSettled(reservation=21, contact_id=contact_id))
            await router.send(SnapshotRequest(reason="test"))
            snapshot = await router.wait_for(lambda: _snapshot(router, 6), "snapshot")
            assert not [c for c in snapshot.contacts if c.state == "transferred"]
        await router.stop()
        assert outcomes(pbx)[contact_id] == "transferred"
        assert len(router.events(ContactTransferred, every=True)) == 1  # never re-sent as delta

    run(body())


def _snapshot(router: FakeRouter, count: int) -> Snapshot | None:
    """The ``count``-th snapshot of the connection, once it came."""
    snapshots = [m for m in router.messages if isinstance(m, Snapshot)]
    return snapshots[count - 1] if len(snapshots) >= count else None


def _delta_after(router: FakeRouter, count: int) -> int | None:
    """The number of a delta sent after the connection's ``count``-th snapshot."""
    seen = 0
    for message in router.messages:
        if isinstance(message, Snapshot):
            seen += 1
        elif seen == count:
            return message.seq
    return None
