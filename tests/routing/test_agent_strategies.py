"""Agent selection strategies beyond longest idle and most skilled: workload balancing (fewest
contacts since login) and round robin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing.engine import Router
from routing.model import Network

Factory = Callable[..., Any]


def network_with(strategy: str, make_network: Factory, agent: Factory, queue: Factory) -> Network:
    agents = [agent("a1"), agent("a2"), agent("a3")]
    return make_network(agents=agents, queues=[queue("q", "billing", strategy=strategy)])


def serve(router: Router, call: Factory, contact_id: str, at: float, hold: float = 10.0) -> str:
    """Offer a contact, answer it, finish it ``hold`` seconds later; the agent who took it."""
    decision = router.offer(call(contact_id, arrival=at), at)
    assert decision is not None
    router.answer(contact_id, at)
    router.finish(contact_id, at + hold)
    return decision.agent_id


def test_fewest_contacts_balances_work_whoever_has_idled_longest(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(network_with("fewest_contacts", make_network, agent, queue))
    for agent_id in ("a1", "a2", "a3"):
        router.login(agent_id, 0.0, ready=True)
    # a1 takes three short contacts while the others idle...
    router.set_not_ready("a2", 0.0)
    router.set_not_ready("a3", 0.0)
    for n in range(3):
        assert serve(router, call, f"c{n}", 1.0 + n, hold=0.5) == "a1"
    router.set_ready("a2", 10.0)
    router.set_ready("a3", 20.0)
    # ...so a1, idle since 3.5 (longest), is passed over for a2 and a3 (none handled yet).
    first = serve(router, call, "d1", 30.0, hold=100.0)
    second = serve(router, call, "d2", 31.0, hold=100.0)
    assert (first, second) == ("a2", "a3")


def test_fewest_contacts_counts_from_login(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(network_with("fewest_contacts", make_network, agent, queue))
    router.login("a1", 0.0, ready=True)
    serve(router, call, "c1", 1.0)
    serve(router, call, "c2", 20.0)
    router.set_not_ready("a1", 40.0)
    router.logout("a1", 40.0)
    router.login("a2", 41.0, ready=True)
    router.login("a1", 50.0, ready=True)  # back with a clean count, idle for less time
    assert serve(router, call, "c3", 60.0) == "a2"  # tie on count: longest idle
    assert serve(router, call, "c4", 61.0) == "a1"  # a2 has one now


def test_round_robin_offers_each_agent_in_turn(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = Router(network_with("round_robin", make_network, agent, queue))
    for agent_id in ("a3", "a1", "a2"):  # login order does not matter
        router.login(agent_id, 0.0, ready=True)
    takers = [serve(router, call, f"c{n}", 1.0 + n, hold=0.1) for n in range(7)]
    # Never offered first in configuration order, then the least recently offered.
    assert takers == ["a1", "a2", "a3", "a1", "a2", "a3", "a1"]


def test_round_robin_keeps_an_agents_turn_across_a_break(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    takers = {}
    for strategy in ("round_robin", "longest_idle"):
        router = Router(network_with(strategy, make_network, agent, queue))
        for agent_id in ("a1", "a2", "a3"):
            router.login(agent_id, 0.0, ready=True)
        serve(router, call, "c1", 1.0)  # a1 (all tied: first configured)
        serve(router, call, "c2", 2.0)  # a2
        router.set_not_ready("a3", 3.0)  # a3, whose turn it is, takes a break
        router.set_ready("a3", 30.0)
        takers[strategy] = serve(router, call, "c3", 40.0)
    # Round robin still owes a3 its turn; longest idle counts a3's idle time from 30 s.
    assert takers == {"round_robin": "a3", "longest_idle": "a1"}
