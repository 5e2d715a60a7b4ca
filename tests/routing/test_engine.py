"""The routing engine, one behaviour per test, on small hand-built networks.

Time is whatever the test passes: agents log in one second apart (``make_router``) so the first
one named has been idle longest, and timers are driven explicitly with ``next_timer``/``advance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from routing.engine import Router, RoutingError, SiteLoad
from routing.model import AgentState, Assignment, Channel, Network

Factory = Callable[..., Any]

READY = AgentState.READY
NOT_READY = AgentState.NOT_READY


def pairs(assignments: Iterable[Assignment | None]) -> list[tuple[str, str]]:
    """(contact, agent) of each decision, in order."""
    return [(a.contact_id, a.agent_id) for a in assignments if a is not None]


def offer_all(router: Router, call: Factory, *ids: str, at: float = 0.0, **fields: Any) -> None:
    """Offer contacts that must all wait (nobody free for them)."""
    for i, contact_id in enumerate(ids):
        assert router.offer(call(contact_id, arrival=at + i, **fields), at + i) is None


def talk(router: Router, assignment: Assignment | None, now: float) -> str:
    """Answer a delivered contact; the agent who has it."""
    assert assignment is not None
    router.answer(assignment.contact_id, now)
    return assignment.agent_id


# ----------------------------------------------------------------------------- agent choice


def test_longest_idle_gives_the_contact_to_the_agent_idle_longest(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(agents=[agent("a1"), agent("a2"), agent("a3")])
    router = make_router(network, "a2", "a3", "a1")
    decisions = [router.offer(call(f"c{i}", arrival=10), 10) for i in range(3)]
    assert pairs(decisions) == [("c0", "a2"), ("c1", "a3"), ("c2", "a1")]


def test_agent_who_just_finished_is_idle_shortest(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(agents=[agent("a1"), agent("a2")])
    router = make_router(network, "a1", "a2")
    talk(router, router.offer(call("c1", arrival=5), 5), 5)
    router.finish("c1", 8)
    # a1 was idle longest before the call; after it, a2 (idle since 1) beats a1 (idle since 8).
    assert pairs([router.offer(call("c2", arrival=9), 9)]) == [("c2", "a2")]


def test_longest_idle_ties_break_by_agent_order_in_the_configuration(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(agents=[agent("zed"), agent("max"), agent("abe")])
    router = Router(network)
    for agent_id in ("abe", "max", "zed"):  # all at the same instant, in another order
        router.login(agent_id, 0, ready=True)
    decisions = [router.offer(call(f"c{i}", arrival=1), 1) for i in range(3)]
    assert pairs(decisions) == [("c0", "zed"), ("c1", "max"), ("c2", "abe")]


def test_most_skilled_picks_the_highest_proficiency(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("a1", billing=3), agent("a2", billing=9), agent("a3", billing=6)],
        queues=[queue("q", "billing", strategy="most_skilled")],
    )
    router = make_router(network, "a1", "a2", "a3")
    decisions = [router.offer(call(f"c{i}", arrival=10), 10) for i in range(3)]
    assert pairs(decisions) == [("c0", "a2"), ("c1", "a3"), ("c2", "a1")]


def test_most_skilled_ranks_by_the_weakest_required_skill(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("lopsided", billing=10, spanish=2), agent("even", billing=5, spanish=5)],
        queues=[queue("q", "billing & spanish", strategy="most_skilled")],
    )
    router = make_router(network, "lopsided", "even")
    assert pairs([router.offer(call("c1"), 5)]) == [("c1", "even")]


def test_most_skilled_ties_go_to_the_agent_idle_longest(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("a1", billing=7), agent("a2", billing=7), agent("a3", billing=2)],
        queues=[queue("q", "billing", strategy="most_skilled")],
    )
    router = make_router(network, "a3", "a2", "a1")
    decisions = [router.offer(call(f"c{i}"), 5) for i in range(2)]
    assert pairs(decisions) == [("c0", "a2"), ("c1", "a1")]


def test_agents_below_the_targets_minimum_level_never_qualify(
    make_network: Factory,
    agent: Factory,
    queue: Factory,
    target: Factory,
    make_router: Factory,
    call: Factory,
) -> None:
    network = make_network(
        agents=[agent("junior", billing=4), agent("senior", billing=8)],
        queues=[queue("q", target("billing", min_proficiency=5))],
    )
    router = make_router(network, "junior")
    assert router.offer(call("c1"), 5) is None
    assert pairs(router.login("senior", 6, ready=True)) == [("c1", "senior")]


# ----------------------------------------------------------------------------- contact choice


def test_contact_waits_when_nobody_is_free(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0)
    assert router.offer(call("c1", arrival=1), 1) is None
    assert router.is_waiting("c1")
    assert router.waiting_contacts() == ["c1"]
    assert router.delivered_to("c1") is None


def test_agent_becoming_ready_takes_the_waiting_contact(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0)
    offer_all(router, call, "c1", at=1)
    assert pairs(router.set_ready("a1", 5)) == [("c1", "a1")]
    assert not router.is_waiting("c1")
    assert router.delivered_to("c1") == "a1"
    assert router.agent_state("a1") is AgentState.RESERVED


def test_freed_agent_takes_highest_priority_first_then_oldest(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0)
    router.offer(call("low-old", arrival=1, priority=0), 1)
    router.offer(call("high-old", arrival=2, priority=5), 2)
    router.offer(call("high-new", arrival=3, priority=5), 3)
    router.offer(call("low-new", arrival=4, priority=0), 4)
    served = pairs(router.set_ready("a1", 10))
    for now in (11.0, 12.0, 13.0):
        router.answer(served[-1][0], now)
        served += pairs(router.finish(served[-1][0], now + 0.5))
    assert [contact for contact, _ in served] == ["high-old", "high-new", "low-old", "low-new"]


def test_queue_priority_applies_when_the_contact_sets_none(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("a1")], queues=[queue("q", "billing"), queue("vip", "billing", priority=3)]
    )
    router = Router(network)
    router.login("a1", 0)
    router.offer(call("plain", "q", arrival=1), 1)
    router.offer(call("vip", "vip", arrival=2), 2)
    assert pairs(router.set_ready("a1", 3)) == [("vip", "a1")]


def test_contact_priority_overrides_its_queues_priority(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("a1")], queues=[queue("q", "billing"), queue("vip", "billing", priority=3)]
    )
    router = Router(network)
    router.login("a1", 0)
    router.offer(call("demoted", "vip", arrival=1, priority=0), 1)
    router.offer(call("promoted", "q", arrival=2, priority=9), 2)
    assert pairs(router.set_ready("a1", 3)) == [("promoted", "a1")]


@pytest.mark.parametrize(
    ("new_arrival", "first"),
    [
        (25.0, "old-low"),  # old waited 25 s more: 2.5 levels at 10 s/level > 2 levels
        (15.0, "new-high"),  # only 1.5 levels of extra wait: priority still wins
    ],
)
def test_priority_ageing_lets_an_old_low_priority_contact_overtake(
    make_network: Factory,
    agent: Factory,
    queue: Factory,
    call: Factory,
    new_arrival: float,
    first: str,
) -> None:
    network = make_network(agents=[agent("a1")], queues=[queue("q", "billing", ageing=10)])
    router = Router(network)
    router.login("a1", 0)
    router.offer(call("old-low", arrival=0, priority=0), 0)
    router.offer(call("new-high", arrival=new_arrival, priority=2), new_arrival)
    assert pairs(router.set_ready("a1", 40)) == [(first, "a1")]


def test_without_ageing_priority_is_strict_however_long_the_wait(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0)
    router.offer(call("old-low", arrival=0, priority=0), 0)
    router.offer(call("new-high", arrival=3_000, priority=1), 3_000)
    assert pairs(router.set_ready("a1", 3_001)) == [("new-high", "a1")]


# ----------------------------------------------------------------------------- overflow


@pytest.fixture
def overflow_network(
    make_network: Factory, agent: Factory, queue: Factory, target: Factory
) -> Network:
    """Paris first; after 30 s Lyon too."""
    return make_network(
        agents=[agent("p1", "paris"), agent("l1", "lyon")],
        queues=[
            queue(
                "q",
                target("billing", sites=["paris"], timeout=30),
                target("billing", sites=["lyon"]),
            )
        ],
    )


def test_overflow_moves_contact_to_second_site_after_timeout(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.login("p1", 0)  # logged in, not ready
    router.login("l1", 0, ready=True)
    assert router.offer(call("c1", arrival=0), 0) is None
    assert router.next_timer() == 30
    assert router.advance(29.999) == []
    assert router.is_waiting("c1")
    (decision,) = router.advance(router.next_timer() or 0)
    assert (decision.agent_id, decision.site_id, decision.target_index) == ("l1", "lyon", 1)
    assert decision.decided_at == 30


def test_second_target_agent_freed_before_the_timeout_does_not_take_the_contact(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.login("p1", 0)
    router.login("l1", 0)
    router.offer(call("c1", arrival=0), 0)
    assert router.set_ready("l1", 10) == []
    assert router.is_waiting("c1")
    assert pairs(router.advance(30)) == [("c1", "l1")]


def test_first_target_agent_freed_before_the_timeout_takes_the_contact(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.login("p1", 0)
    router.login("l1", 0, ready=True)
    router.offer(call("c1", arrival=0), 0)
    (decision,) = router.set_ready("p1", 12)
    assert (decision.agent_id, decision.target_index) == ("p1", 0)
    assert router.advance(60) == []


def test_after_overflow_the_first_targets_agents_still_qualify(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.login("p1", 0)
    router.login("l1", 0)
    router.offer(call("c1", arrival=0), 0)
    router.advance(45)
    (decision,) = router.set_ready("p1", 50)
    assert (decision.agent_id, decision.target_index) == ("p1", 0)


def test_contact_offered_late_starts_at_the_target_its_wait_reached(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.login("p1", 0)
    router.login("l1", 0, ready=True)
    decision = router.offer(call("c1", arrival=0), 31)
    assert decision is not None
    assert (decision.agent_id, decision.target_index) == ("l1", 1)


def test_interflow_queue_targets_apply_after_the_entry_queue_times_out(
    make_network: Factory, agent: Factory, queue: Factory, target: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("biller", billing=5), agent("seller", sales=5)],
        queues=[
            queue("billing", target("billing", timeout=20), overflow_to="sales"),
            queue("sales", "sales"),
        ],
    )
    router = Router(network)
    router.login("biller", 0)
    router.login("seller", 0, ready=True)
    assert router.offer(call("c1", "billing"), 0) is None
    (decision,) = router.advance(20)
    assert (decision.agent_id, decision.queue_id, decision.target_index) == (
        "seller",
        "billing",
        1,
    )


def test_overflowed_assignment_reports_the_earliest_target_the_agent_meets(
    make_network: Factory, agent: Factory, queue: Factory, target: Factory, call: Factory
) -> None:
    # "billing" is also another queue's target, so its index exists before "billing & spanish".
    network = make_network(
        agents=[agent("both", billing=5, spanish=5)],
        queues=[
            queue("plain", "billing"),
            queue("es", target("billing & spanish", timeout=10), "billing"),
        ],
    )
    router = Router(network)
    router.login("both", 0, ready=True)
    talk(router, router.offer(call("c0", "plain"), 0), 0)
    router.offer(call("c1", "es"), 1)
    router.advance(20)
    (decision,) = router.finish("c0", 30)
    assert (decision.contact_id, decision.target_index) == ("c1", 0)


# ----------------------------------------------------------------------------- eligibility


def test_target_sites_are_respected(
    make_network: Factory,
    agent: Factory,
    queue: Factory,
    target: Factory,
    make_router: Factory,
    call: Factory,
) -> None:
    network = make_network(
        agents=[agent("p1", "paris"), agent("l1", "lyon")],
        queues=[queue("q", target("billing", sites=["lyon"]))],
    )
    router = make_router(network, "p1")
    assert router.offer(call("c1"), 5) is None
    assert pairs(router.login("l1", 6, ready=True)) == [("c1", "l1")]


def test_required_skills_narrow_eligibility_for_that_contact(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("anglo", billing=9), agent("hispano", billing=5, spanish=6)]
    )
    router = make_router(network, "anglo", "hispano")
    spanish = router.offer(call("es1", required_skills={"spanish": 1}), 5)
    assert pairs([spanish]) == [("es1", "hispano")]
    # The only Spanish speaker is busy: the next Spanish caller waits though anglo is free.
    assert router.offer(call("es2", required_skills={"spanish": 1}), 6) is None
    assert router.agent_state("anglo") is READY
    # A caller without the requirement still goes to anglo.
    assert pairs([router.offer(call("en1"), 7)]) == [("en1", "anglo")]


def test_spanish_caller_never_goes_to_an_agent_without_spanish(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("anglo", billing=9), agent("hispano", spanish=6, billing=2)]
    )
    router = Router(network)
    router.login("anglo", 0)
    router.login("hispano", 0)
    router.offer(call("es1", required_skills={"spanish": 1}), 1)
    assert router.set_ready("anglo", 2) == []
    assert router.is_waiting("es1")
    assert pairs(router.set_ready("hispano", 3)) == [("es1", "hispano")]


def test_required_skill_level_is_a_minimum(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(agents=[agent("a1", billing=5, spanish=6)])
    router = make_router(network, "a1")
    assert router.offer(call("c1", required_skills={"spanish": 7}), 5) is None
    assert pairs([router.offer(call("c2", required_skills={"spanish": 6}), 6)]) == [("c2", "a1")]


def test_not_ready_agents_never_receive_contacts(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0)
    router.set_not_ready("a1", 1, "lunch")
    assert router.offer(call("c1"), 2) is None
    assert router.agent_state("a1") is NOT_READY
    assert router.agent_reason("a1") == "lunch"


def test_logged_out_agents_never_receive_contacts(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    assert router.agent_state("a1") is AgentState.LOGGED_OUT
    assert router.offer(call("c1"), 2) is None
    assert router.advance(1_000) == []
    assert router.is_waiting("c1")


def test_agent_logging_out_stops_receiving_contacts(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("a1")]), "a1")
    router.logout("a1", 5)
    assert router.offer(call("c1"), 6) is None
    assert router.agent_state("a1") is AgentState.LOGGED_OUT


def test_login_ready_takes_waiting_work_at_once(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.offer(call("c1"), 1)
    assert pairs(router.login("a1", 2, ready=True)) == [("c1", "a1")]


def test_login_not_ready_carries_the_login_reason(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    assert router.login("a1", 0) == []
    assert router.agent_state("a1") is NOT_READY
    assert router.agent_reason("a1") == "login"
    router.set_ready("a1", 1)
    assert router.agent_reason("a1") is None


def test_set_not_ready_during_a_call_takes_effect_after_it(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("a1")]), "a1")
    talk(router, router.offer(call("c1"), 1), 2)
    router.set_not_ready("a1", 3, "training")
    assert router.agent_state("a1") is AgentState.ON_CONTACT
    router.offer(call("c2", arrival=4), 4)
    assert router.finish("c1", 10) == []
    assert router.is_waiting("c2")
    assert router.agent_state("a1") is NOT_READY
    assert router.agent_reason("a1") == "training"


# ----------------------------------------------------------------------------- wrap-up


@pytest.fixture
def wrap_network(make_network: Factory, agent: Factory, queue: Factory) -> Network:
    return make_network(agents=[agent("a1")], queues=[queue("q", "billing", wrap_up=10)])


def test_wrap_up_keeps_the_agent_from_new_work_until_the_timer_ends(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    talk(router, router.offer(call("c1"), 1), 2)
    assert router.finish("c1", 5) == []
    assert router.agent_state("a1") is AgentState.AFTER_CONTACT_WORK
    assert router.offer(call("c2", arrival=6), 6) is None
    assert router.next_timer() == 15
    assert router.advance(14.9) == []
    (decision,) = router.advance(15)
    assert (decision.contact_id, decision.agent_id, decision.decided_at) == ("c2", "a1", 15)


def test_state_since_is_the_time_of_each_state_change(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    assert router.agent_state_since("a1") == 0
    router.offer(call("c1", arrival=1), 1)
    assert (router.agent_state("a1"), router.agent_state_since("a1")) == (AgentState.RESERVED, 1)
    router.answer("c1", 2)
    assert (router.agent_state("a1"), router.agent_state_since("a1")) == (AgentState.ON_CONTACT, 2)
    router.finish("c1", 5)
    assert router.agent_state_since("a1") == 5
    router.advance(15)
    assert (router.agent_state("a1"), router.agent_state_since("a1")) == (AgentState.READY, 15)
    router.set_not_ready("a1", 20, "lunch")
    assert router.agent_state_since("a1") == 20


def test_wrap_up_is_not_cut_short_by_set_ready(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    talk(router, router.offer(call("c1"), 1), 2)
    router.finish("c1", 5)
    router.offer(call("c2", arrival=6), 6)
    assert router.set_ready("a1", 7) == []
    assert router.agent_state("a1") is AgentState.AFTER_CONTACT_WORK


def test_end_wrap_up_frees_the_agent_early(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    talk(router, router.offer(call("c1"), 1), 2)
    router.finish("c1", 5)
    router.offer(call("c2", arrival=6), 6)
    assert pairs(router.end_wrap_up("a1", 8)) == [("c2", "a1")]
    assert router.advance(15) == []  # the cancelled timer does nothing


def test_unbounded_wrap_up_lasts_until_the_agent_ends_it(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    talk(router, router.offer(call("c1"), 1), 2)
    router.finish("c1", 5, wrap_up=math.inf)
    router.offer(call("c2", arrival=6), 6)
    assert router.advance(10_000) == []
    assert router.agent_state("a1") is AgentState.AFTER_CONTACT_WORK
    assert pairs(router.end_wrap_up("a1", 10_001)) == [("c2", "a1")]


def test_finish_with_zero_wrap_up_overrides_the_queue(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    talk(router, router.offer(call("c2"), 0), 1)
    router.offer(call("c3", arrival=2), 2)
    assert pairs(router.finish("c2", 5, wrap_up=0)) == [("c3", "a1")]


def test_agent_not_ready_at_the_end_of_wrap_up_stays_not_ready(
    wrap_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(wrap_network, "a1")
    talk(router, router.offer(call("c1"), 1), 2)
    router.finish("c1", 5)
    router.set_not_ready("a1", 6, "break")
    router.offer(call("c2", arrival=7), 7)
    assert router.advance(15) == []
    assert router.agent_state("a1") is NOT_READY


# ----------------------------------------------------------------------------- redirect, abandon


def test_reject_puts_the_contact_back_at_the_head_and_the_agent_not_ready(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1"), agent("a2")]))
    router.login("a1", 0)
    router.login("a2", 0)
    offer_all(router, call, "c1", "c2", at=1)
    assert pairs(router.set_ready("a1", 5)) == [("c1", "a1")]
    assert router.reject("c1", 20) is None
    assert router.agent_state("a1") is NOT_READY
    assert router.agent_reason("a1") == "no answer"
    assert sorted(router.waiting_contacts()) == ["c1", "c2"]
    assert pairs(router.set_ready("a2", 21)) == [("c1", "a2")]


def test_reject_goes_straight_to_another_free_agent(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("a1"), agent("a2")]), "a1", "a2")
    assert pairs([router.offer(call("c1"), 5)]) == [("c1", "a1")]
    decision = router.reject("c1", 15, reason="refused")
    assert pairs([decision]) == [("c1", "a2")]
    assert router.agent_reason("a1") == "refused"


def test_abandon_of_a_waiting_contact_removes_it(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    router.login("a1", 0)
    offer_all(router, call, "c1", "c2", at=1)
    assert router.abandon("c1", 5) == []
    assert not router.is_waiting("c1")
    assert router.delivered_to("c1") is None
    assert pairs(router.set_ready("a1", 6)) == [("c2", "a1")]


def test_abandon_of_a_ringing_contact_frees_the_agent_for_the_next(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("a1")]), "a1")
    router.offer(call("c1"), 1)
    router.offer(call("c2", arrival=2), 2)
    assert pairs(router.abandon("c1", 3)) == [("c2", "a1")]
    assert router.delivered_to("c1") is None


def test_abandon_of_a_ringing_contact_leaves_a_ready_agent_ready(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("a1")]), "a1")
    router.offer(call("c1"), 1)
    assert router.abandon("c1", 3) == []
    assert router.agent_state("a1") is READY


def test_next_timer_forgets_a_contact_that_abandoned(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.offer(call("c1"), 0)
    assert router.next_timer() == 30
    router.abandon("c1", 5)
    assert router.next_timer() is None


def test_next_timer_forgets_a_contact_that_was_served(
    overflow_network: Network, call: Factory
) -> None:
    router = Router(overflow_network)
    router.login("p1", 0)
    router.offer(call("c1"), 0)
    router.set_ready("p1", 5)
    assert router.next_timer() is None


# ----------------------------------------------------------------------------- channels


@pytest.fixture
def blended_network(make_network: Factory, agent: Factory, queue: Factory) -> Network:
    return make_network(
        agents=[agent("a1", capacity={"voice": 1, "chat": 3})],
        queues=[queue("q", "billing"), queue("chat", "billing", channel="chat")],
    )


def test_agent_with_chat_capacity_three_takes_three_chats(
    blended_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(blended_network, "a1")
    decisions = [
        router.offer(call(f"chat{i}", "chat", arrival=i, channel=Channel.CHAT), i) for i in range(4)
    ]
    assert pairs(decisions) == [("chat0", "a1"), ("chat1", "a1"), ("chat2", "a1")]
    assert decisions[3] is None


def test_agent_chatting_takes_no_voice_until_every_chat_ends(
    blended_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(blended_network, "a1")
    for i in range(2):
        talk(router, router.offer(call(f"chat{i}", "chat", channel=Channel.CHAT), 1), 2)
    assert router.offer(call("voice", arrival=3), 3) is None
    assert router.finish("chat0", 4) == []
    assert router.is_waiting("voice")
    assert pairs(router.finish("chat1", 5)) == [("voice", "a1")]


def test_agent_on_a_call_takes_no_chat(
    blended_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(blended_network, "a1")
    talk(router, router.offer(call("voice"), 1), 2)
    assert router.offer(call("chat0", "chat", arrival=3, channel=Channel.CHAT), 3) is None


def test_freed_chat_slot_takes_the_waiting_chat_not_the_waiting_call(
    blended_network: Network, make_router: Factory, call: Factory
) -> None:
    router = make_router(blended_network, "a1")
    for i in range(3):
        talk(router, router.offer(call(f"chat{i}", "chat", channel=Channel.CHAT), 1), 2)
    router.offer(call("voice", arrival=3), 3)
    router.offer(call("chat3", "chat", arrival=4, channel=Channel.CHAT), 4)
    assert pairs(router.finish("chat0", 5)) == [("chat3", "a1")]


def test_chats_go_to_the_least_loaded_agent_first(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("a1", capacity={"chat": 3}), agent("a2", capacity={"chat": 3})],
        queues=[queue("chat", "billing", channel="chat")],
    )
    router = make_router(network, "a1", "a2")
    decisions = [router.offer(call(f"chat{i}", "chat", channel=Channel.CHAT), 5) for i in range(4)]
    assert pairs(decisions) == [
        ("chat0", "a1"),
        ("chat1", "a2"),
        ("chat2", "a1"),
        ("chat3", "a2"),
    ]


def test_agent_without_capacity_for_a_channel_never_gets_it(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("voice-only")], queues=[queue("chat", "billing", channel="chat")]
    )
    router = make_router(network, "voice-only")
    assert router.offer(call("chat0", "chat", channel=Channel.CHAT), 5) is None


# ----------------------------------------------------------------------------- least cost


def cost_sites(**per_hour: float) -> list[dict[str, Any]]:
    return [
        {"id": site, "region": "eu", "agent_cost_per_hour": cost} for site, cost in per_hour.items()
    ]


def test_least_cost_picks_the_cheapest_site_with_a_free_agent(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        sites=cost_sites(paris=60, lyon=20, nice=40),
        agents=[agent("p1", "paris"), agent("l1", "lyon"), agent("n1", "nice")],
        queues=[queue("q", "billing", cost_mode="least_cost")],
    )
    router = make_router(network, "p1", "n1", "l1")  # the cheapest agent idle shortest
    decisions = [router.offer(call(f"c{i}"), 5) for i in range(3)]
    assert [(d.agent_id, d.site_id) for d in decisions if d] == [
        ("l1", "lyon"),
        ("n1", "nice"),
        ("p1", "paris"),
    ]
    costs = [d.expected_cost for d in decisions if d]
    assert costs == sorted(costs)
    assert costs[0] == pytest.approx(20 * 300 / 3600)


def test_least_cost_weighs_the_transfer_of_a_landed_call(
    make_network: Factory, agent: Factory, queue: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        sites=cost_sites(paris=30, lyon=20),
        agents=[agent("p1", "paris"), agent("l1", "lyon")],
        queues=[queue("q", "billing", cost_mode="least_cost")],
        tariffs={"transfer_fee": 1.0},
    )
    router = make_router(network, "l1", "p1")
    landed = router.offer(call("c1", origin_site="paris"), 5)
    assert landed is not None
    assert (landed.site_id, landed.transfer) == ("paris", False)
    moved = router.offer(call("c2", origin_site="paris"), 6)
    assert moved is not None
    assert (moved.site_id, moved.transfer) == ("lyon", True)
    assert moved.expected_cost == pytest.approx(20 * 300 / 3600 + 1.0)


def test_service_mode_ignores_cost(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    network = make_network(
        sites=cost_sites(paris=60, lyon=20), agents=[agent("p1", "paris"), agent("l1", "lyon")]
    )
    router = make_router(network, "p1", "l1")
    assert pairs([router.offer(call("c1"), 5)]) == [("c1", "p1")]


@pytest.fixture
def hold_network(make_network: Factory, agent: Factory, queue: Factory) -> Network:
    """Lyon is cheap, Paris dear.  Budget: 40 s threshold x 0.5 = 20 s; one Lyon agent busy
    with a 10 s handle time gives an expected wait of 10 s, which fits."""
    return make_network(
        sites=cost_sites(paris=60, lyon=0),
        agents=[agent("p1", "paris"), agent("l1", "lyon")],
        queues=[
            queue("q", "billing", cost_mode="least_cost", sl_threshold=40, expected_handle_time=10)
        ],
    )


def busy_cheap_site(network: Network, call: Factory) -> Router:
    """l1 (Lyon) on a call, p1 (Paris) free."""
    router = Router(network)
    router.login("l1", 0, ready=True)
    talk(router, router.offer(call("busy", arrival=0), 0), 0)
    router.login("p1", 0, ready=True)
    return router


def test_least_cost_holds_a_contact_for_a_cheaper_site_whose_wait_fits(
    hold_network: Network, call: Factory
) -> None:
    router = busy_cheap_site(hold_network, call)
    assert router.offer(call("c1", arrival=0), 0) is None
    assert router.agent_state("p1") is READY
    assert router.next_timer() == 20
    assert pairs(router.finish("busy", 7)) == [("c1", "l1")]


def test_least_cost_releases_a_held_contact_to_any_site_when_the_hold_expires(
    hold_network: Network, call: Factory
) -> None:
    router = busy_cheap_site(hold_network, call)
    router.offer(call("c1", arrival=0), 0)
    assert router.advance(19.9) == []
    (decision,) = router.advance(20)
    assert (decision.agent_id, decision.site_id, decision.decided_at) == ("p1", "paris", 20)


def test_dear_site_agent_freed_during_a_hold_does_not_take_the_held_contact(
    hold_network: Network, call: Factory
) -> None:
    router = busy_cheap_site(hold_network, call)
    router.set_not_ready("p1", 0)
    router.offer(call("c1", arrival=0), 0)
    assert router.set_ready("p1", 5) == []
    assert pairs(router.advance(20)) == [("c1", "p1")]


def test_least_cost_does_not_hold_when_the_cheaper_sites_wait_exceeds_the_budget(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    network = make_network(
        sites=cost_sites(paris=60, lyon=0),
        agents=[agent("p1", "paris"), agent("l1", "lyon")],
        queues=[
            queue("q", "billing", cost_mode="least_cost", sl_threshold=40, expected_handle_time=300)
        ],
    )
    router = busy_cheap_site(network, call)
    assert pairs([router.offer(call("c1"), 0)]) == [("c1", "p1")]


def test_least_cost_never_holds_for_a_site_with_nobody_staffed(
    hold_network: Network, call: Factory
) -> None:
    router = Router(hold_network)
    router.login("p1", 0, ready=True)  # l1 stays logged out
    assert pairs([router.offer(call("c1"), 0)]) == [("c1", "p1")]


def test_held_contact_may_go_to_any_site_cheaper_than_the_one_it_waits_for(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    network = make_network(
        sites=cost_sites(nice=0, lyon=10, paris=60),
        agents=[agent("n1", "nice"), agent("l1", "lyon"), agent("p1", "paris")],
        queues=[
            queue("q", "billing", cost_mode="least_cost", sl_threshold=40, expected_handle_time=10)
        ],
    )
    router = busy_cheap_site(network, call)  # nice unstaffed, l1 busy, p1 free
    assert router.offer(call("c1"), 1) is None  # held for Lyon (and anything cheaper)
    assert pairs(router.login("n1", 2, ready=True)) == [("c1", "n1")]


def test_least_cost_does_not_hold_once_the_wait_budget_is_spent(
    hold_network: Network, call: Factory
) -> None:
    router = busy_cheap_site(hold_network, call)
    assert pairs([router.offer(call("c1", arrival=0), 20)]) == [("c1", "p1")]


def test_rejected_contact_whose_hold_expired_may_go_to_any_site(
    hold_network: Network, agent: Factory, call: Factory, make_network: Factory, queue: Factory
) -> None:
    network = make_network(
        sites=cost_sites(paris=60, lyon=0),
        agents=[agent("p1", "paris"), agent("l1", "lyon"), agent("l2", "lyon")],
        queues=[
            queue("q", "billing", cost_mode="least_cost", sl_threshold=40, expected_handle_time=10)
        ],
    )
    router = Router(network)
    router.login("l1", 0, ready=True)
    talk(router, router.offer(call("busy", arrival=0), 0), 0)
    router.login("l2", 0)
    router.login("p1", 0)
    assert router.offer(call("c1", arrival=0), 0) is None  # held for Lyon
    (taken,) = router.set_ready("l2", 5)
    assert taken.agent_id == "l2"
    router.set_ready("p1", 6)
    # l2 never answers; by now the 20 s hold is long over: Paris must take the call.
    assert pairs([router.reject("c1", 30)]) == [("c1", "p1")]


# ----------------------------------------------------------------------------- queries


def test_site_load_counts_staffed_ready_and_waiting(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("p1"), agent("p2"), agent("p3"), agent("l1", "lyon", sales=3)]
    )
    router = Router(network)
    router.login("p1", 0, ready=True)
    router.login("p2", 0)
    router.login("l1", 0, ready=True)
    # p2 logged in not ready: logged in, but not staffing the queue (no work expected of it).
    assert router.site_load("q", "paris") == SiteLoad(staffed=1, ready=1, waiting=0)
    assert router.site_load("q", "lyon") == SiteLoad(staffed=0, ready=0, waiting=0)
    router.offer(call("c1"), 1)
    router.offer(call("c2"), 1)
    assert router.site_load("q", "paris") == SiteLoad(staffed=1, ready=0, waiting=1)
    router.set_ready("p2", 2)
    assert router.site_load("q", "paris") == SiteLoad(staffed=2, ready=0, waiting=0)
    router.set_not_ready("p1", 3)  # still on c1: no longer staffing once it ends
    assert router.site_load("q", "paris") == SiteLoad(staffed=1, ready=0, waiting=0)


def test_assignment_describes_the_decision(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("l1", "lyon")]), "l1")
    decision = router.offer(call("c1", arrival=3, origin_site="paris"), 4)
    assert decision == Assignment(
        contact_id="c1",
        agent_id="l1",
        site_id="lyon",
        queue_id="q",
        target_index=0,
        decided_at=4,
        expected_cost=0.0,
        transfer=True,
    )


def test_agent_states_follow_the_acd_state_machine(wrap_network: Network, call: Factory) -> None:
    router = Router(wrap_network)
    seen = [router.agent_state("a1")]
    router.login("a1", 0, ready=True)
    seen.append(router.agent_state("a1"))
    router.offer(call("c1"), 1)
    seen.append(router.agent_state("a1"))
    router.answer("c1", 2)
    seen.append(router.agent_state("a1"))
    router.finish("c1", 3)
    seen.append(router.agent_state("a1"))
    router.advance(13)
    seen.append(router.agent_state("a1"))
    router.set_not_ready("a1", 14)
    seen.append(router.agent_state("a1"))
    router.logout("a1", 15)
    seen.append(router.agent_state("a1"))
    assert seen == [
        AgentState.LOGGED_OUT,
        READY,
        AgentState.RESERVED,
        AgentState.ON_CONTACT,
        AgentState.AFTER_CONTACT_WORK,
        READY,
        NOT_READY,
        AgentState.LOGGED_OUT,
    ]


# ----------------------------------------------------------------------------- errors


def snapshot(router: Router, contacts: Iterable[str] = ()) -> tuple[object, ...]:
    agents = tuple(
        (a, router.agent_state(a), router.agent_reason(a)) for a in router.network.agents
    )
    delivered = tuple((c, router.delivered_to(c), router.is_waiting(c)) for c in contacts)
    loads = tuple(
        router.site_load(q, s) for q in router.network.queues for s in router.network.sites
    )
    return agents, tuple(router.waiting_contacts()), delivered, loads, router.next_timer()


@pytest.fixture
def busy_router(make_network: Factory, agent: Factory, queue: Factory, call: Factory) -> Router:
    """a1 talking to c1, a2 ringing with c2, c3 waiting, a3 logged out, a4 not ready."""
    network = make_network(
        agents=[agent("a1"), agent("a2"), agent("a3"), agent("a4")],
        queues=[queue("q", "billing"), queue("chat", "billing", channel="chat")],
    )
    router = Router(network)
    router.login("a1", 0, ready=True)
    router.login("a2", 1, ready=True)
    router.login("a4", 1)
    router.offer(call("c1"), 2)
    router.offer(call("c2"), 2)
    router.offer(call("c3", arrival=3), 3)
    router.answer("c1", 4)
    return router


CONTACTS = ("c1", "c2", "c3", "c4", "nobody")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (lambda r, c: r.login("ghost", 5), "unknown agent 'ghost'"),
        (lambda r, c: r.set_ready("ghost", 5), "unknown agent 'ghost'"),
        (lambda r, c: r.set_not_ready("ghost", 5), "unknown agent 'ghost'"),
        (lambda r, c: r.logout("ghost", 5), "unknown agent 'ghost'"),
        (lambda r, c: r.agent_state("ghost"), "unknown agent 'ghost'"),
        (lambda r, c: r.login("a1", 5), "already logged in"),
        (lambda r, c: r.logout("a3", 5), "not logged in"),
        (lambda r, c: r.set_ready("a3", 5), "not logged in"),
        (lambda r, c: r.set_not_ready("a3", 5), "not logged in"),
        (lambda r, c: r.end_wrap_up("a4", 5), "not in after-contact work"),
        (lambda r, c: r.logout("a1", 5), "contacts in progress"),
        (lambda r, c: r.logout("a2", 5), "contacts in progress"),
        (lambda r, c: r.answer("nobody", 5), "'nobody' is not delivered"),
        (lambda r, c: r.finish("nobody", 5), "'nobody' is not delivered"),
        (lambda r, c: r.reject("nobody", 5), "'nobody' is not delivered"),
        (lambda r, c: r.abandon("nobody", 5), "'nobody' is not delivered"),
        (lambda r, c: r.answer("c3", 5), "'c3' is not delivered"),
        (lambda r, c: r.answer("c1", 5), "'c1' is already answered"),
        (lambda r, c: r.finish("c2", 5), "'c2' was never answered"),
        (lambda r, c: r.reject("c1", 5), "'c1' was already answered"),
        (lambda r, c: r.abandon("c1", 5), "'c1' is answered; finish it instead"),
        (lambda r, c: r.offer(c("c1"), 5), "'c1' is already being routed"),
        (lambda r, c: r.offer(c("c2"), 5), "'c2' is already being routed"),
        (lambda r, c: r.offer(c("c3"), 5), "'c3' is already being routed"),
        (lambda r, c: r.offer(c("c4", "nope"), 5), "unknown queue 'nope'"),
        (lambda r, c: r.offer(c("c4", channel=Channel.CHAT), 5), "is chat but queue 'q'"),
        (lambda r, c: r.offer(c("c4", "chat"), 5), "is voice but queue 'chat'"),
        (
            lambda r, c: r.offer(c("c4", required_skills={"klingon": 3}), 5),
            "unknown skill\\(s\\) \\['klingon'\\]",
        ),
    ],
)
def test_invalid_event_raises_and_leaves_state_unchanged(
    busy_router: Router, call: Factory, event: Callable[[Router, Factory], object], message: str
) -> None:
    before = snapshot(busy_router, CONTACTS)
    with pytest.raises(RoutingError, match=message):
        event(busy_router, call)
    assert snapshot(busy_router, CONTACTS) == before
    # The router still works: a2 answers, a1 finishes and takes the waiting c3.
    busy_router.answer("c2", 6)
    assert pairs(busy_router.finish("c1", 7)) == [("c3", "a1")]
    assert busy_router.waiting_contacts() == []


def test_answering_twice_raises_and_the_call_continues(busy_router: Router) -> None:
    with pytest.raises(RoutingError, match="already answered"):
        busy_router.answer("c1", 5)
    assert busy_router.agent_state("a1") is AgentState.ON_CONTACT
    assert busy_router.delivered_to("c1") == "a1"


def test_finished_contact_is_forgotten_and_its_id_may_be_reused(
    make_network: Factory, agent: Factory, make_router: Factory, call: Factory
) -> None:
    router = make_router(make_network(agents=[agent("a1")]), "a1")
    talk(router, router.offer(call("c1"), 1), 1)
    router.finish("c1", 2)
    assert router.delivered_to("c1") is None
    with pytest.raises(RoutingError, match="not delivered"):
        router.finish("c1", 3)
    assert pairs([router.offer(call("c1", arrival=4), 4)]) == [("c1", "a1")]


def test_routing_error_is_a_value_error(make_network: Factory, agent: Factory) -> None:
    router = Router(make_network(agents=[agent("a1")]))
    with pytest.raises(ValueError, match="unknown agent"):
        router.login("ghost", 0)


def test_adopt_records_a_contact_decided_elsewhere(
    make_network: Any, agent: Any, call: Any
) -> None:
    """A site routed a call on its own while the router was away: the router adopts it, the
    agent is busy with it, and it finishes like any other; a copy still queued leaves."""
    router = Router(make_network(agents=[agent("a1"), agent("a2")]))
    router.login("a1", 0.0, ready=True)
    router.login("a2", 1.0, ready=True)
    router.set_not_ready("a2", 1.0)
    router.offer(call("busy"), 2.0)
    router.answer("busy", 2.0)
    assert router.offer(call("c1", arrival=3.0), 3.0) is None  # queued here
    router.set_ready("a2", 3.5)  # a2 takes c1 here...
    router.abandon("c1", 3.6)  # ...but the site says otherwise: reset
    assert router.offer(call("c2", arrival=4.0), 4.0) is not None  # a2 again
    router.adopt(call("c3", arrival=4.5), "a1", 5.0, answered=True)  # a1 had two calls
    assert router.delivered_to("c3") == "a1"
    assert router.agent_state("a1") is AgentState.ON_CONTACT
    router.finish("busy", 6.0)
    assert router.finish("c3", 7.0) == []
    assert router.agent_state("a1") is AgentState.READY
    queued = call("c4", arrival=8.0)
    router.answer("c2", 8.0)
    router.offer(call("c5", arrival=8.0), 8.0)  # a1
    router.answer("c5", 8.0)
    assert router.offer(queued, 8.0) is None
    router.adopt(queued, "a2", 9.0, answered=False)  # ringing at a2 by the site's decision
    assert not router.is_waiting("c4") and router.delivered_to("c4") == "a2"
    assert router.reject("c4", 10.0) is None  # back to the queue, a2 not ready
    assert router.is_waiting("c4")
    with pytest.raises(RoutingError, match="already delivered"):
        router.adopt(call("c5"), "a2", 11.0, answered=True)
