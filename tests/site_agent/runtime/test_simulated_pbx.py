"""The simulated PBX on its own: one site of a scenario in (sped-up) real time."""

from __future__ import annotations

import pytest
from fake_router import eventually, outcomes, run, two_sites

from routing.model import Contact
from site_agent.pbx import (
    AgentLogin,
    AgentReadied,
    AgentUnready,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerHungUp,
    CallNotAnswered,
    CallState,
    CallTransferred,
    PbxEvent,
    PbxRefusedError,
    WrapUpOver,
)
from site_agent.simulated_pbx import SimulatedPbx
from site_agent.simulation.scenario import ScenarioError


def test_the_site_plays_its_share_of_the_scenarios_workload() -> None:
    scenario = two_sites()
    pbx = SimulatedPbx(scenario, "north", seed=3, speed=600)
    again = SimulatedPbx(scenario, "north", seed=3, speed=600)
    other = SimulatedPbx(scenario, "north", seed=4, speed=600)
    assert pbx.contacts == again.contacts  # same seed, same calls
    assert pbx.contacts != other.contacts
    assert pbx.contacts and all(c.site == "north" for c in pbx.contacts)
    assert [a.agent_id for a in pbx.state().agents] == [
        "north.agents.001",
        "north.agents.002",
        "north.agents.003",
    ]
    assert not any(a.logged_in for a in pbx.state().agents)  # nobody before the clock runs


def test_unknown_site_is_refused_with_the_sites_it_has() -> None:
    with pytest.raises(ScenarioError, match=r"unknown site 'west'.*north, south"):
        SimulatedPbx(two_sites(), "west", seed=1)


def test_calls_nobody_rings_are_abandoned_after_their_patience() -> None:
    async def body() -> None:
        pbx = SimulatedPbx(two_sites(), "north", seed=5, speed=6000, keep_events=True)
        seen: list[PbxEvent] = []
        pbx.subscribe(seen.append)
        await pbx.start()
        try:
            await eventually(lambda: any(isinstance(e, CallerHungUp) for e in seen), "a hang-up")
        finally:
            await pbx.close()
        logins = [e for e in seen if isinstance(e, AgentLogin)]
        assert {e.agent_id for e in logins} == {a.agent_id for a in pbx.state().agents}
        assert all(e.ready and e.at == pbx.scenario.simulation.start for e in logins)
        arrived = {e.contact.id: e.at for e in seen if isinstance(e, CallArrived)}
        patience = {c.contact.id: c.contact.patience for c in pbx.contacts}
        for hang_up in (e for e in seen if isinstance(e, CallerHungUp)):
            assert hang_up.at == pytest.approx(
                arrived[hang_up.contact_id] + patience[hang_up.contact_id]
            )
        assert seen == pbx.ledger.events
        outcomes(pbx)

    run(body())


def test_a_rung_agent_answers_after_the_ring_talks_its_handle_time_then_wraps_up() -> None:
    async def body() -> None:
        pbx = SimulatedPbx(two_sites(mean_patience=None), "north", seed=2, speed=3000)
        seen: list[PbxEvent] = []
        pbx.subscribe(seen.append)
        await pbx.start()
        try:
            arrival = await eventually(
                lambda: next((e for e in seen if isinstance(e, CallArrived)), None), "a call"
            )
            contact_id = arrival.contact.id
            pbx.ring(contact_id, "north.agents.002")
            rung_at = pbx.ledger.rings[-1][2]
            call = pbx.call(contact_id)
            assert call is not None and call.state is CallState.RINGING
            with pytest.raises(PbxRefusedError, match="not queued"):
                pbx.ring(contact_id, "north.agents.001")  # one call rings one agent
            with pytest.raises(PbxRefusedError, match="busy"):
                pbx.ring(_second_call(pbx, seen, contact_id), "north.agents.002")
            await eventually(lambda: any(isinstance(e, WrapUpOver) for e in seen), "wrap-up end")
        finally:
            await pbx.close()
        answered = next(e for e in seen if isinstance(e, CallAnswered))
        ended = next(e for e in seen if isinstance(e, CallEnded))
        wrap = next(e for e in seen if isinstance(e, WrapUpOver))
        handle = next(c.handle_time for c in pbx.contacts if c.contact.id == contact_id)
        assert answered.at == pytest.approx(rung_at + 2.0)  # the scenario's ring time
        assert ended.at == pytest.approx(answered.at + handle)
        assert (ended.wrap_up, wrap.at) == (10.0, pytest.approx(ended.at + 10.0))

    run(body())


def _second_call(pbx: SimulatedPbx, seen: list[PbxEvent], first: str) -> str:
    """Another queued call (waits for one if need be: called only while the first rings)."""
    for event in seen:
        if isinstance(event, CallArrived) and event.contact.id != first:
            return event.contact.id
    # No second call yet: a transferred-in one is as good for a busy agent.
    contact = Contact(id="t-1", queue_id="q", arrival=pbx.now())
    pbx.transfer_in(contact, "south")
    return contact.id


def test_an_agent_going_not_ready_while_rung_gives_the_call_back_at_once() -> None:
    async def body() -> None:
        pbx = SimulatedPbx(two_sites(ring_seconds=60), "north", seed=2, speed=3000)
        seen: list[PbxEvent] = []
        pbx.subscribe(seen.append)
        await pbx.start()
        try:
            arrival = await eventually(
                lambda: next((e for e in seen if isinstance(e, CallArrived)), None), "a call"
            )
            pbx.ring(arrival.contact.id, "north.agents.001")
            pbx.force_not_ready("north.agents.001", "training")
        finally:
            await pbx.close()
        unready, not_answered = seen[-2:]
        assert isinstance(unready, AgentUnready) and unready.reason == "training"
        assert isinstance(not_answered, CallNotAnswered)
        assert not_answered.reason == "agent not ready"
        call = pbx.call(arrival.contact.id)
        assert call is not None and call.state is CallState.QUEUED
        with pytest.raises(PbxRefusedError, match="not ready"):
            pbx.ring(arrival.contact.id, "north.agents.001")

    run(body())


def test_taking_a_ring_back_makes_the_agent_not_ready_until_it_recovers() -> None:
    async def body() -> None:
        pbx = SimulatedPbx(two_sites(ring_seconds=60), "north", seed=2, speed=3000)
        seen: list[PbxEvent] = []
        pbx.subscribe(seen.append)
        await pbx.start()
        try:
            arrival = await eventually(
                lambda: next((e for e in seen if isinstance(e, CallArrived)), None), "a call"
            )
            pbx.ring(arrival.contact.id, "north.agents.003")
            pbx.stop_ringing(arrival.contact.id, agent_reason="no answer")
            unready, not_answered = seen[-2:]
            assert isinstance(unready, AgentUnready) and unready.reason == "no answer"
            assert isinstance(not_answered, CallNotAnswered)
            readied = await eventually(
                lambda: next((e for e in seen if isinstance(e, AgentReadied)), None), "recovery"
            )
            assert readied.agent_id == "north.agents.003"
            # no_answer_recovery_seconds of 60, on a clock running 3,000x: a loop that lags
            # 10 ms on a loaded machine is 30 simulated seconds late, never early.
            assert unready.at + 60.0 <= readied.at < unready.at + 60.0 + 90.0
            pbx.transfer_out(arrival.contact.id, "south")
            assert isinstance(seen[-1], CallTransferred) and pbx.call(arrival.contact.id) is None
            with pytest.raises(PbxRefusedError):
                pbx.transfer_out(arrival.contact.id, "south")
        finally:
            await pbx.close()

    run(body())
