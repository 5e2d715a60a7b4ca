"""Redirect on no answer as the engine's own timer: a reserved agent who does not answer within
the queue's answer time-out loses the contact, which goes back to the head of its queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from routing.engine import NO_ANSWER_REASON, Router
from routing.model import AgentState, Redirect

Factory = Callable[..., Any]


@pytest.fixture
def router(make_network: Factory, agent: Factory, queue: Factory) -> Router:
    network = make_network(
        agents=[agent("a1"), agent("a2")],
        queues=[queue("q", "billing", answer_timeout=12.0)],
    )
    router = Router(network)
    router.login("a1", 0.0, ready=True)
    router.login("a2", 1.0, ready=True)
    return router


def test_unanswered_contact_goes_to_the_next_agent_and_the_first_is_not_ready(
    router: Router, call: Factory
) -> None:
    first = router.offer(call("c1", arrival=5.0), 5.0)
    assert first is not None and first.agent_id == "a1"
    assert router.next_timer() == 17.0
    assert router.advance(16.9) == [] and router.take_redirects() == []
    (second,) = router.advance(17.0)
    assert (second.contact_id, second.agent_id, second.decided_at) == ("c1", "a2", 17.0)
    assert router.take_redirects() == [Redirect("c1", "a1", 17.0)]
    assert router.take_redirects() == []  # taken once
    assert router.agent_state("a1") is AgentState.NOT_READY
    assert router.agent_reason("a1") == NO_ANSWER_REASON


def test_answered_in_time_cancels_the_timer(router: Router, call: Factory) -> None:
    router.offer(call("c1", arrival=5.0), 5.0)
    router.answer("c1", 16.0)
    assert router.advance(100.0) == []
    assert router.take_redirects() == []
    assert router.agent_state("a1") is AgentState.ON_CONTACT


def test_redirected_contact_keeps_its_place_at_the_head(router: Router, call: Factory) -> None:
    router.set_not_ready("a2", 2.0)
    router.offer(call("old", arrival=5.0), 5.0)  # rings a1
    assert router.offer(call("new", arrival=6.0), 6.0) is None  # nobody free
    assert router.advance(17.0) == []  # a1 made not ready, nobody to take "old"
    (decision,) = router.set_ready("a2", 20.0)
    assert decision.contact_id == "old"  # still ahead of the younger contact


def test_no_timeout_no_redirect(make_network: Factory, agent: Factory, call: Factory) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0.0, ready=True)
    router.offer(call("c1"), 0.0)
    assert router.next_timer() is None
    assert router.advance(1e6) == [] and router.take_redirects() == []


def test_hang_up_while_ringing_cancels_the_timer(router: Router, call: Factory) -> None:
    router.offer(call("c1", arrival=5.0), 5.0)
    router.abandon("c1", 8.0)
    assert router.advance(100.0) == [] and router.take_redirects() == []
    assert router.agent_state("a1") is AgentState.READY
