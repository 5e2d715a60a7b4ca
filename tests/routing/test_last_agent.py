"""Last-agent (sticky) routing: a returning customer goes back to the agent who served them,
waits a little for them when busy, and is forgotten after the queue's memory time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing.engine import Router
from routing.model import Network

Factory = Callable[..., Any]


def sticky_network(
    make_network: Factory, agent: Factory, queue: Factory, *, remember: float, wait: float
) -> Network:
    agents = [agent("a1"), agent("a2"), agent("a3", sales=5)]
    sticky = {"remember": remember, "wait": wait}
    return make_network(
        agents=agents,
        queues=[queue("q", "billing", sticky=sticky), queue("s", "sales")],
    )


def served_by(router: Router, call: Factory, contact_id: str, at: float, **fields: Any) -> str:
    decision = router.offer(call(contact_id, arrival=at, **fields), at)
    assert decision is not None
    router.answer(contact_id, at)
    router.finish(contact_id, at + 10.0)
    return decision.agent_id


def busy_last_agent(router: Router, call: Factory) -> None:
    """Alice was served by a1; now a1 is busy (on "y") and a2 is free again."""
    router.login("a1", 0.0, ready=True)
    router.login("a2", 1.0, ready=True)
    served_by(router, call, "c1", 5.0, customer_id="alice")
    router.offer(call("x", arrival=20.0), 20.0)  # a2 idled longest: takes it
    router.answer("x", 20.0)
    router.offer(call("y", arrival=21.0), 21.0)  # a1
    router.answer("y", 21.0)
    router.finish("x", 22.0)


def test_returning_customer_gets_the_last_agent_not_the_longest_idle(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(sticky_network(make_network, agent, queue, remember=3600.0, wait=0.0))
    router.login("a1", 0.0, ready=True)
    router.login("a2", 1.0, ready=True)
    assert served_by(router, call, "c1", 5.0, customer_id="alice") == "a1"
    # a2 has idled longest now, but Alice's last agent was a1.
    assert served_by(router, call, "c2", 100.0, customer_id="alice") == "a1"
    assert served_by(router, call, "c3", 200.0, customer_id="bob") == "a2"


def test_memory_ends_after_the_remember_time(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(sticky_network(make_network, agent, queue, remember=60.0, wait=0.0))
    router.login("a1", 0.0, ready=True)
    router.login("a2", 1.0, ready=True)
    assert served_by(router, call, "c1", 5.0, customer_id="alice") == "a1"  # ends at 15
    assert served_by(router, call, "c2", 80.0, customer_id="alice") == "a2"  # 65 s later


def test_waits_for_the_busy_last_agent_then_gives_up(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(sticky_network(make_network, agent, queue, remember=3600.0, wait=30.0))
    busy_last_agent(router, call)
    # Alice waits for a1 though a2 is free...
    assert router.offer(call("c2", arrival=30.0, customer_id="alice"), 30.0) is None
    # ...and gets a1 the moment a1 is free (within the 30 s wait).
    (decision,) = router.finish("y", 50.0)
    assert (decision.contact_id, decision.agent_id) == ("c2", "a1")


def test_wait_for_the_last_agent_times_out_to_any_agent(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(sticky_network(make_network, agent, queue, remember=3600.0, wait=30.0))
    busy_last_agent(router, call)
    assert router.offer(call("c2", arrival=30.0, customer_id="alice"), 30.0) is None
    assert router.next_timer() == 60.0
    (decision,) = router.advance(60.0)
    assert (decision.contact_id, decision.agent_id) == ("c2", "a2")


def test_last_agent_going_not_ready_releases_the_customer_at_once(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(sticky_network(make_network, agent, queue, remember=3600.0, wait=300.0))
    busy_last_agent(router, call)
    assert router.offer(call("c2", arrival=30.0, customer_id="alice"), 30.0) is None
    router.set_not_ready("a1", 40.0, "lunch")
    (decision,) = router.advance(40.0)
    assert (decision.contact_id, decision.agent_id) == ("c2", "a2")


def test_last_agent_must_still_qualify(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    """Alice's last contact was with a3 (sales only) on the sales queue; a billing call does
    not wait for a3, who cannot take it."""
    sticky = {"remember": 3600.0, "wait": 30.0}
    network = make_network(
        agents=[agent("a1"), agent("a3", sales=5)],
        queues=[queue("q", "billing", sticky=sticky), queue("s", "sales", sticky=sticky)],
    )
    router = Router(network)
    router.login("a3", 0.0, ready=True)
    router.login("a1", 1.0, ready=True)
    assert served_by(router, call, "c1", 5.0, queue_id="s", customer_id="alice") == "a3"
    assert served_by(router, call, "c2", 50.0, customer_id="alice") == "a1"


def test_a_contact_served_by_its_last_agent_and_then_redirected_waits_for_anyone(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    """Once taken off the agent's own waiting list, a contact that rings out there goes back
    to the queue for any agent, not to the same agent's list again."""
    router = Router(sticky_network(make_network, agent, queue, remember=3600.0, wait=30.0))
    router.login("a1", 0.0, ready=True)
    router.login("a2", 1.0, ready=True)
    served_by(router, call, "c1", 5.0, customer_id="alice")
    router.offer(call("x", arrival=20.0), 20.0)  # a2
    router.answer("x", 20.0)
    router.offer(call("y", arrival=21.0), 21.0)  # a1
    router.answer("y", 21.0)
    assert router.offer(call("c2", arrival=30.0, customer_id="alice"), 30.0) is None
    (mine,) = router.finish("y", 40.0)
    assert (mine.contact_id, mine.agent_id) == ("c2", "a1")
    assert router.reject("c2", 45.0) is None  # a1 did not answer; a2 is busy
    (anyone,) = router.finish("x", 50.0)
    assert (anyone.contact_id, anyone.agent_id) == ("c2", "a2")
