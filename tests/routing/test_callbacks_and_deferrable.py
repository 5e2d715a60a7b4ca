"""Callbacks that keep the caller's place, callbacks at a time the customer chose, and
deferrable work (e-mail) that only agents with nothing else to do receive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from routing.engine import Router, RoutingError
from routing.model import Channel

Factory = Callable[..., Any]


@pytest.fixture
def router(make_network: Factory, agent: Factory, queue: Factory) -> Router:
    network = make_network(
        agents=[agent("a1", capacity={"voice": 1, "callback": 1, "email": 1})],
        queues=[
            queue("q", "billing"),
            queue("mail", "billing", channel="email", deferrable=True),
        ],
    )
    router = Router(network)
    router.login("a1", 0.0, ready=True)
    return router


def busy(router: Router, call: Factory, at: float) -> None:
    router.offer(call("busy", arrival=at), at)
    router.answer("busy", at)


def test_callback_keeps_its_place_ahead_of_later_callers(router: Router, call: Factory) -> None:
    busy(router, call, 0.0)
    router.offer(call("c1", arrival=10.0), 10.0)
    router.offer(call("c2", arrival=20.0), 20.0)
    router.request_callback("c1", 60.0)
    (decision,) = router.finish("busy", 100.0)
    assert (decision.contact_id, decision.callback) == ("c1", True)
    router.answer("c1", 100.0)
    (second,) = router.finish("c1", 200.0)
    assert (second.contact_id, second.callback) == ("c2", False)


def test_callback_at_a_chosen_time_goes_to_the_head_then(router: Router, call: Factory) -> None:
    busy(router, call, 0.0)
    router.offer(call("c1", arrival=10.0), 10.0)
    router.request_callback("c1", 30.0, at=500.0)
    router.offer(call("c2", arrival=40.0), 40.0)
    (decision,) = router.finish("busy", 100.0)
    assert decision.contact_id == "c2"  # c1 is not due yet
    router.answer("c2", 100.0)
    router.offer(call("c3", arrival=200.0), 200.0)
    router.finish("c2", 400.0)  # c3 takes a1 before c1 is due
    router.answer("c3", 400.0)
    assert router.is_waiting("c1")
    assert router.advance(500.0) == []  # due, at the head, waiting for a1
    (after,) = router.finish("c3", 600.0)
    assert (after.contact_id, after.callback) == ("c1", True)


def test_scheduled_callback_can_be_cancelled(router: Router, call: Factory) -> None:
    busy(router, call, 0.0)
    router.offer(call("c1", arrival=10.0), 10.0)
    router.request_callback("c1", 30.0, at=500.0)
    router.abandon("c1", 40.0)
    assert not router.is_waiting("c1")
    assert router.advance(600.0) == []
    assert router.finish("busy", 700.0) == []


def test_callback_errors(router: Router, call: Factory) -> None:
    with pytest.raises(RoutingError, match="not waiting"):
        router.request_callback("nobody", 1.0)
    busy(router, call, 0.0)
    router.offer(call("c1", arrival=10.0), 10.0)
    with pytest.raises(RoutingError, match="not a time from now on"):
        router.request_callback("c1", 30.0, at=20.0)
    assert router.is_waiting("c1")  # unchanged by the refused request


def test_deferrable_work_waits_behind_every_call(router: Router, call: Factory) -> None:
    busy(router, call, 0.0)
    router.offer(call("m1", "mail", arrival=1.0, channel=Channel.EMAIL), 1.0)
    router.offer(call("c1", arrival=50.0), 50.0)  # a call 49 s younger than the e-mail
    (decision,) = router.finish("busy", 100.0)
    assert decision.contact_id == "c1"
    router.answer("c1", 100.0)
    (then,) = router.finish("c1", 200.0)  # nothing else to do: now the e-mail
    assert then.contact_id == "m1"


def test_deferrable_work_goes_to_an_idle_agent_at_once(router: Router, call: Factory) -> None:
    decision = router.offer(call("m1", "mail", arrival=1.0, channel=Channel.EMAIL), 1.0)
    assert decision is not None and decision.agent_id == "a1"
