"""A supervisor's agent state change, as the router sends it: the site agent carries it out on its
(simulated) PBX, streams the PBX's events as usual and answers after them, or reports the PBX's
refusal; and the simulated PBX's supervisor commands on their own."""

from __future__ import annotations

from typing import Any

import pytest
from fake_router import FakeRouter, eventually, north_agent, run, running, two_sites

from routing.model import Contact
from site_agent.pbx import (
    AgentLogout,
    AgentUnready,
    CallAnswered,
    CallArrived,
    CallEnded,
    PbxAgent,
    PbxEvent,
    PbxRefusedError,
    WrapUpOver,
)
from site_agent.protocol import (
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentStateApplied,
    AgentStateRefused,
    ContactData,
    ContactFinished,
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    SetAgentState,
    SiteEvent,
    WrapUpEnded,
)
from site_agent.simulated_pbx import SimulatedPbx

ONE = "north.agents.001"
# Next to no calls of their own: the tests bring the calls they need.
QUIET = {"calls_per_hour": 0.001, "mean_patience": None}


def command(
    request_id: str, state: str, agent_id: str = ONE, reason: str | None = None
) -> SetAgentState:
    document = {"request_id": request_id, "agent_id": agent_id, "state": state, "at": 0.0}
    return SetAgentState.model_validate(document | {"reason": reason})


def agent(pbx: SimulatedPbx, agent_id: str = ONE) -> PbxAgent:
    return next(a for a in pbx.state().agents if a.agent_id == agent_id)


def answer(router: FakeRouter, request_id: str) -> AgentStateApplied | AgentStateRefused | None:
    for event in router.events():
        if (
            isinstance(event, AgentStateApplied | AgentStateRefused)
            and event.request_id == request_id
        ):
            return event
    return None


def before_answer(router: FakeRouter, request_id: str) -> list[SiteEvent]:
    """The events of the connection since the previous answer, up to this one's (excluded)."""
    events: list[Any] = []
    for event in router.events():
        if isinstance(event, AgentStateApplied | AgentStateRefused):
            if event.request_id == request_id:
                return events
            events = []
        else:
            events.append(event)
    raise AssertionError(f"no answer to {request_id}")


async def ask(router: FakeRouter, message: SetAgentState) -> AgentStateApplied | AgentStateRefused:
    await router.send(message)
    return await router.wait_for(
        lambda: answer(router, message.request_id), f"the answer to {message.request_id}"
    )


async def logged_in(router: FakeRouter, pbx: SimulatedPbx) -> None:
    await router.wait_for(lambda: router.messages, "the snapshot")
    await eventually(lambda: all(a.logged_in for a in pbx.state().agents), "the shift to start")


def test_not_ready_ready_and_logout_are_carried_out_and_answered_after_their_events() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        agent_, pbx = north_agent(router, two_sites(**QUIET))
        async with running(agent_):
            await logged_in(router, pbx)

            done = await ask(router, command("r1", "not_ready", reason="coaching"))
            assert isinstance(done, AgentStateApplied) and done.agent_id == ONE
            assert [(type(e), e.agent_id) for e in before_answer(router, "r1")] == [
                (AgentNotReady, ONE)
            ]
            assert (agent(pbx).ready, agent(pbx).reason) == (False, "coaching")

            # The PBX has the agent so already (it emits nothing): the site restates it.
            done = await ask(router, command("r2", "not_ready", reason="coaching"))
            assert isinstance(done, AgentStateApplied)
            [restated] = before_answer(router, "r2")
            assert isinstance(restated, AgentNotReady) and restated.reason == "coaching"

            done = await ask(router, command("r3", "ready"))
            assert isinstance(done, AgentStateApplied)
            assert [type(e) for e in before_answer(router, "r3")] == [AgentReady]
            assert agent(pbx).ready

            done = await ask(router, command("r4", "logged_out"))
            assert isinstance(done, AgentStateApplied)
            assert [type(e) for e in before_answer(router, "r4")] == [AgentLoggedOut]
            assert not agent(pbx).logged_in

            # A PBX does not log an agent in: refused, and nothing changes.
            refused = await ask(router, command("r5", "ready"))
            assert isinstance(refused, AgentStateRefused) and refused.agent_id == ONE
            assert refused.reason == f"agent {ONE} is not logged in at north"
            assert before_answer(router, "r5") == []
            assert not agent(pbx).logged_in

            refused = await ask(router, command("r6", "not_ready", "north.agents.999", "lunch"))
            assert isinstance(refused, AgentStateRefused)
            assert refused.reason == "agent north.agents.999 is not at site north"
        await router.stop()
        # Each command answered once; the other agents untouched.
        answers = [
            e for e in router.events() if isinstance(e, AgentStateApplied | AgentStateRefused)
        ]
        assert [e.request_id for e in answers] == ["r1", "r2", "r3", "r4", "r5", "r6"]
        assert all(a.logged_in and a.ready for a in pbx.state().agents if a.agent_id != ONE)

    run(body())


def test_a_ringing_call_blocks_a_logout_and_goes_back_to_the_queue_on_not_ready() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        # A ring of ten simulated minutes: a second here, time to act while it rings.
        agent_, pbx = north_agent(router, two_sites(ring_seconds=600, **QUIET))
        async with running(agent_):
            await logged_in(router, pbx)
            call = ContactData(id="t-1", queue_id="q", arrival=pbx.now())
            await router.send(Deliver(reservation=5, contact=call, agent_id=ONE, from_site="south"))
            await eventually(lambda: pbx.ledger.rings, "the ring")

            refused = await ask(router, command("r1", "logged_out"))
            assert isinstance(refused, AgentStateRefused)
            assert refused.reason == (
                f"agent {ONE} has a call ringing: set not ready, and log out once the call ends"
            )
            assert agent(pbx).logged_in

            done = await ask(router, command("r2", "not_ready", reason="meeting"))
            assert isinstance(done, AgentStateApplied)
            events = before_answer(router, "r2")
            assert [type(e) for e in events] == [AgentNotReady, DeliveryRejected]
            assert isinstance(events[1], DeliveryRejected) and events[1].reservation == 5
            queued = pbx.call("t-1")
            assert queued is not None and str(queued.state) == "queued"

            done = await ask(router, command("r3", "logged_out"))
            assert isinstance(done, AgentStateApplied)
            assert not agent(pbx).logged_in
        await router.stop()

    run(body())


def test_ready_during_wrap_up_ends_it() -> None:
    async def body() -> None:
        router = FakeRouter()
        await router.start()
        # Calls of a few simulated seconds, then ten minutes of wrap-up (a second here).
        scenario = two_sites(ring_seconds=1, mean_handle=5, wrap_up=600, **QUIET)
        agent_, pbx = north_agent(router, scenario)
        async with running(agent_):
            await logged_in(router, pbx)
            call = ContactData(id="t-1", queue_id="q", arrival=pbx.now())
            await router.send(Deliver(reservation=5, contact=call, agent_id=ONE, from_site="south"))
            await router.wait_for(lambda: router.events(ContactFinished), "the call's end")
            assert agent(pbx).wrap_up and agent(pbx).ready

            done = await ask(router, command("r1", "ready"))
            assert isinstance(done, AgentStateApplied)
            # Ready already: the wrap-up's end is the change, and the presence is restated.
            events = before_answer(router, "r1")
            assert [type(e) for e in events[-3:]] == [ContactFinished, WrapUpEnded, AgentReady]
            assert not agent(pbx).wrap_up and agent(pbx).ready
        await router.stop()
        assert [e.reservation for e in router.events(DeliveryConfirmed)] == [5]

    run(body())


# ------------------------------------------------------------------ the simulated PBX alone


def _listen(pbx: SimulatedPbx) -> list[PbxEvent]:
    seen: list[PbxEvent] = []
    pbx.subscribe(seen.append)
    return seen


def test_the_pbx_refuses_ready_for_an_agent_on_a_break_and_logs_one_out() -> None:
    async def body() -> None:
        pbx = SimulatedPbx(two_sites(breaks=True, **QUIET), "north", seed=3, speed=3000)
        seen = _listen(pbx)
        await pbx.start()
        try:
            on_break = await eventually(
                lambda: next((e for e in seen if isinstance(e, AgentUnready)), None), "a break"
            )
            assert on_break.reason == "break"
            with pytest.raises(PbxRefusedError, match=f"agent {on_break.agent_id} is on break"):
                pbx.force_ready(on_break.agent_id)
            pbx.force_logout(on_break.agent_id)
            assert isinstance(seen[-1], AgentLogout) and seen[-1].agent_id == on_break.agent_id
            count = len(seen)
            pbx.force_logout(on_break.agent_id)  # logged out already: nothing
            assert len(seen) == count
            with pytest.raises(PbxRefusedError, match="not logged in"):
                pbx.force_not_ready(on_break.agent_id, "training")
            # An hour later its ten-minute break is long over: it did not bring it back.
            await eventually(lambda: pbx.now() > on_break.at + 3600, "an hour to pass")
        finally:
            await pbx.close()
        assert not agent(pbx, on_break.agent_id).logged_in
        assert not [e for e in seen[count:] if getattr(e, "agent_id", "") == on_break.agent_id]

    run(body())


def test_the_pbx_refuses_to_log_out_an_agent_talking() -> None:
    async def body() -> None:
        # Calls of ten simulated hours on average: this one talks for a while.
        scenario = two_sites(ring_seconds=1, mean_handle=36_000, **QUIET)
        pbx = SimulatedPbx(scenario, "north", seed=2, speed=600)
        seen = _listen(pbx)
        await pbx.start()
        try:
            await eventually(lambda: all(a.logged_in for a in pbx.state().agents), "logins")
            pbx.transfer_in(Contact(id="t-1", queue_id="q", arrival=pbx.now()), "south")
            pbx.ring("t-1", ONE)
            await eventually(lambda: any(isinstance(e, CallAnswered) for e in seen), "answer")
            assert not any(isinstance(e, CallEnded) for e in seen)
            with pytest.raises(PbxRefusedError, match="has a call talking"):
                pbx.force_logout(ONE)
            pbx.force_not_ready(ONE, "leaving")  # what a supervisor does instead
        finally:
            await pbx.close()
        assert (agent(pbx).logged_in, agent(pbx).ready, agent(pbx).reason) == (
            True,
            False,
            "leaving",
        )
        call = pbx.call("t-1")
        assert call is not None and str(call.state) == "talking"

    run(body())


def test_logging_out_in_wrap_up_ends_it() -> None:
    async def body() -> None:
        scenario = two_sites(ring_seconds=1, mean_handle=5, wrap_up=3600, **QUIET)
        pbx = SimulatedPbx(scenario, "north", seed=2, speed=600)
        seen = _listen(pbx)
        await pbx.start()
        try:
            await eventually(lambda: all(a.logged_in for a in pbx.state().agents), "logins")
            pbx.transfer_in(Contact(id="t-1", queue_id="q", arrival=pbx.now()), "south")
            pbx.ring("t-1", ONE)
            await eventually(lambda: any(isinstance(e, CallEnded) for e in seen), "the call's end")
            assert agent(pbx).wrap_up
            pbx.force_logout(ONE)
            assert isinstance(seen[-1], AgentLogout)
            assert (agent(pbx).logged_in, agent(pbx).wrap_up) == (False, False)
        finally:
            await pbx.close()
        assert not any(isinstance(e, WrapUpOver) for e in seen)
        assert not any(isinstance(e, CallArrived) for e in seen)

    run(body())
