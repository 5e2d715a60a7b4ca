"""With no router the site routes its calls itself, and tells a returning router what it did:
a snapshot, then each call it gave an agent who answered.  Nothing lost, nothing twice."""

from __future__ import annotations

from fake_router import (
    FakeRouter,
    eventually,
    north_agent,
    outcomes,
    run,
    running,
    two_sites,
)

from site_agent.agent import Mode
from site_agent.pbx import CallAnswered, CallArrived, CallEnded, CallerHungUp, CallNotAnswered
from site_agent.protocol import (
    ContactArrived,
    ContactFinished,
    Deliver,
    DeliveryConfirmed,
    Delta,
    LocallyAbandoned,
    LocallyRouted,
    Snapshot,
)
from site_agent.simulated_pbx import SimulatedPbx

BUSY = two_sites(agents=3, calls_per_hour=150, mean_handle=90)


def _answers(pbx: object) -> dict[str, str]:
    events = pbx.ledger.events  # type: ignore[attr-defined]
    return {e.contact_id: e.agent_id for e in events if isinstance(e, CallAnswered)}


def _check_returning_router_is_told(router: FakeRouter, pbx: object) -> None:
    """The last connection starts with a snapshot, numbers its deltas from 1, and reports each
    call the site answered on its own exactly once, at the agent that answered it; a call
    already over by then is reported finished right after."""
    messages = router.messages
    assert isinstance(messages[0], Snapshot)
    assert [m.seq for m in messages[1:] if isinstance(m, Delta)] == list(range(1, len(messages)))
    answered = _answers(pbx)
    every = router.events(LocallyRouted, every=True)  # (a first call may beat the first link)
    assert len(every) == len({r.contact.id for r in every})
    assert {r.contact.id: r.agent_id for r in every} == answered
    reports = router.events(LocallyRouted)
    # The snapshot names the calls whose local reports follow in delta 1 (and only those).
    delta_1 = next(m for m in messages if isinstance(m, Delta) and m.seq == 1)
    local = [e for e in delta_1.events if isinstance(e, LocallyRouted | LocallyAbandoned)]
    assert messages[0].reported == [e.contact.id for e in local]
    assert {r.contact.id for r in reports} <= set(messages[0].reported)
    ended = {e.contact_id for e in pbx.ledger.events if isinstance(e, CallEnded)}  # type: ignore[attr-defined]
    snapshot = messages[0]
    talking = {c.contact.id for c in snapshot.contacts if c.state == "talking"}
    finished = [e.contact_id for e in router.events(ContactFinished)]
    for report in reports:
        if report.contact.id not in talking:
            assert report.contact.id in ended and report.contact.id in finished


def test_router_gone_mid_stream_the_site_routes_locally_and_reports_on_return() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, pbx = north_agent(router, BUSY)
        async with running(agent):
            await router.wait_for(lambda: len(router.events(ContactArrived)) >= 2, "arrivals")
            await router.stop()
            await eventually(lambda: agent.mode is Mode.LOCAL, "local routing")
            await eventually(lambda: len(_answers(pbx)) >= 4, "calls answered locally")
            await router.start()  # same port: the site finds it by itself
            await router.wait_for(
                lambda: len(router.connections) == 2 and router.events(LocallyRouted),
                "reports on the new connection",
            )
            assert agent.mode is Mode.ROUTER
            # The returning router routes again: no local decision after the snapshot.
            await router.wait_for(lambda: len(router.events(ContactArrived)) >= 1, "a request")
        await router.stop()
        _check_returning_router_is_told(router, pbx)
        assert agent.local_decisions >= len(_answers(pbx)) >= 4
        outcomes(pbx)  # every call answered, abandoned or still at the site; none twice

    run(body())


def test_router_unreachable_from_the_start_then_up() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        await router.stop()  # keeps its port, now closed
        agent, pbx = north_agent(router, BUSY, seed=4)
        async with running(agent):
            await eventually(lambda: len(_answers(pbx)) >= 3, "calls answered locally")
            assert agent.mode is Mode.LOCAL and not router.connections
            await router.start()
            await router.wait_for(lambda: router.events(LocallyRouted), "the reports")
            await router.wait_for(lambda: len(router.events(ContactArrived)) >= 1, "a request")
        await router.stop()
        _check_returning_router_is_told(router, pbx)
        outcomes(pbx)

    run(body())


def test_a_wrong_token_is_refused_and_the_site_keeps_working_alone() -> None:
    async def body() -> None:
        router = FakeRouter(token="the-right-one")
        await router.start()
        agent, pbx = north_agent(router, BUSY)
        async with running(agent):
            await eventually(lambda: len(_answers(pbx)) >= 2, "calls answered locally")
            await eventually(lambda: router.refused >= 2, "a retry")
        await router.stop()
        assert agent.mode is Mode.LOCAL and not router.connections
        outcomes(pbx)

    run(body())


def test_a_delivery_rung_as_the_link_drops_is_not_rung_again_when_resent() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, pbx = north_agent(router, two_sites(ring_seconds=60, mean_patience=None))
        async with running(agent):
            arrival = await router.wait_for(
                lambda: next(iter(router.events(ContactArrived)), None), "a route request"
            )
            deliver = Deliver(reservation=5, contact=arrival.contact, agent_id="north.agents.001")
            await router.send(deliver)
            await eventually(lambda: pbx.ledger.rings, "the ring")
            await router.stop()  # the confirmation, if any, cannot reach it now
            await eventually(lambda: arrival.contact.id in _answers(pbx), "the answer")
            await router.start()
            await router.wait_for(lambda: len(router.connections) == 2, "the new connection")
            await router.send(deliver)  # the router re-sends what it had not seen settled
            await eventually(lambda: agent.duplicate_deliveries == 1, "the duplicate")
        await router.stop()
        contact_id = arrival.contact.id
        assert [r[0] for r in pbx.ledger.rings].count(contact_id) == 1
        # The new connection's snapshot has the call at its agent under reservation 5, or it
        # already ended; either way no second confirmation is needed or sent.
        snapshot = router.messages[0]
        assert isinstance(snapshot, Snapshot)
        status = next((c for c in snapshot.contacts if c.contact.id == contact_id), None)
        if status is not None:
            assert (status.state, status.reservation) == ("talking", 5)
        assert not router.events(DeliveryConfirmed)
        assert contact_id not in {r.contact.id for r in router.events(LocallyRouted)}
        outcomes(pbx)

    run(body())


def test_a_whole_day_routed_locally_keeps_engine_and_pbx_in_step() -> None:
    """Shifts, breaks, wrap-up, and agents letting a fifth of offers ring out until the queue's
    answer time-out takes them back (the local engine's redirects), at a speed where a
    millisecond of lag is 40 simulated seconds, so answers and time-outs race: the engine
    never refuses what the PBX reports, and every call ends once (or still waits)."""

    async def body() -> None:
        router = FakeRouter()
        await router.start()
        await router.stop()
        day = two_sites(
            agents=4,
            calls_per_hour=100,
            breaks=True,
            answer_timeout=15,
            no_answer_share=0.2,
            hours=8.5,
        )
        agent, pbx = north_agent(router, day, speed=40_000)
        def day_over() -> bool:
            """Past the end, every call over or waiting and everyone gone home: a time alone
            is not enough, on a loaded machine the PBX's clock runs ahead of its events."""
            if pbx.now() <= day.simulation.end + 600:
                return False
            settled = set(outcomes(pbx).values()) <= {"finished", "abandoned", "queued"}
            return settled and not any(a.logged_in for a in pbx.state().agents)

        async with running(agent):
            await eventually(day_over, "the end of the day", timeout=20)
        result = outcomes(pbx)
        assert "finished" in result.values()
        assert agent.local_decisions >= list(result.values()).count("finished")
        not_answered = [e for e in pbx.ledger.events if isinstance(e, CallNotAnswered)]
        assert any(e.reason == "taken back" for e in not_answered)  # the engine's redirects

    run(body())


def test_a_restarted_router_numbering_from_one_again_is_obeyed() -> None:
    """Routers number from the wall clock, so a restarted one does not reuse numbers; should
    one all the same (its clock stepped back), a number seen before for another call or agent
    is obeyed as the new decision it is, not dropped as a re-send."""

    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent, pbx = north_agent(router, two_sites(mean_patience=None))
        async with running(agent):
            first = await router.wait_for(
                lambda: next(iter(router.events(ContactArrived)), None), "a route request"
            )
            await router.send(
                Deliver(reservation=1, contact=first.contact, agent_id="north.agents.001")
            )
            await router.wait_for(lambda: router.events(DeliveryConfirmed), "the confirmation")
            await router.stop()
            await router.start()
            second = await router.wait_for(
                lambda: (
                    len(router.connections) == 2 and next(iter(router.events(ContactArrived)), None)
                ),
                "a route request on the new connection",
            )
            free = _idle_agent(pbx)
            await router.send(Deliver(reservation=1, contact=second.contact, agent_id=free))
            await router.wait_for(lambda: router.events(DeliveryConfirmed), "the confirmation")
        await router.stop()
        rings = [r[:2] for r in pbx.ledger.rings]
        assert rings[0] == (first.contact.id, "north.agents.001")
        assert rings[-1] == (second.contact.id, free)
        assert agent.duplicate_deliveries == 0

    run(body())


def _idle_agent(pbx: SimulatedPbx) -> str:
    state = pbx.state()
    busy = {call.agent_id for call in state.calls}
    return next(
        a.agent_id
        for a in state.agents
        if a.logged_in and a.ready and not a.wrap_up and a.agent_id not in busy
    )


def test_callers_who_hang_up_while_the_router_is_away_are_reported_on_return() -> None:
    """The snapshot cannot show a call that came and went during the outage: each such call is
    reported (with its data, for the router's history) once, after the next snapshot."""

    async def body() -> None:
        router = FakeRouter()
        await router.start()
        # One agent, long calls, impatient callers: many hang up in the queue.
        scenario = two_sites(agents=1, calls_per_hour=240, mean_handle=600, mean_patience=60)
        agent, pbx = north_agent(router, scenario)
        offline: list[str] = []
        async with running(agent):
            # The mode the agent is in as it hears the hang-up (its handler does not change it).
            pbx.subscribe(
                lambda e: (
                    offline.append(e.contact_id)
                    if isinstance(e, CallerHungUp) and agent.mode is not Mode.ROUTER
                    else None
                )
            )
            await router.wait_for(lambda: router.events(ContactArrived), "a route request")
            await router.stop()
            await eventually(lambda: agent.mode is Mode.LOCAL, "local routing")
            await eventually(lambda: len(offline) >= 3, "callers hanging up while alone")
            await router.start()
            await router.wait_for(
                lambda: len(router.connections) == 2 and router.events(LocallyAbandoned),
                "the reports",
            )
            await router.wait_for(  # those of the handover too
                lambda: {e.contact.id for e in router.events(LocallyAbandoned)} >= set(offline),
                "every report",
            )
        await router.stop()
        reports = router.events(LocallyAbandoned, every=True)
        assert sorted(e.contact.id for e in reports) == sorted(offline)  # each once, no other
        arrivals = {e.contact.id: e for e in pbx.ledger.events if isinstance(e, CallArrived)}
        hang_ups = {e.contact_id: e.at for e in pbx.ledger.events if isinstance(e, CallerHungUp)}
        for report in reports:
            assert report.contact.arrival == arrivals[report.contact.id].contact.arrival
            assert report.contact.queue_id == "q" and report.at == hang_ups[report.contact.id]
        # After the new connection's snapshot, in its deltas.
        first = router.connections[-1][0]
        assert isinstance(first, Snapshot)
        assert not {c.contact.id for c in first.contacts} & set(offline)
        outcomes(pbx)

    run(body())
