"""Shard plans: components of the eligibility graph, as the engine itself matches agents to
targets, packed onto shards by agent count; no queue/agent pair that can meet is split."""

from __future__ import annotations

import random

import pytest

from orchestrator.sharding import eligibility_components, plan_shards
from routing.engine import Router
from routing.model import Network
from tests.routing.conftest import (
    agent_config,
    build_network,
    contact,
    queue_config,
    target_config,
)


def components(network: Network) -> set[tuple[frozenset[str], frozenset[str]]]:
    return {(frozenset(c.queues), frozenset(c.agents)) for c in eligibility_components(network)}


def test_disjoint_skill_groups_are_separate_shards_with_only_their_queues_and_agents() -> None:
    network = build_network(
        agents=[agent_config("b1", billing=5), agent_config("s1", "lyon", sales=5)],
        queues=[queue_config("qb", "billing"), queue_config("qs", "sales")],
    )
    plan = plan_shards(network, 4)
    assert len(plan) == 2
    by_queue = {q: plan.networks[plan.shard_of_queue(q) or 0] for q in ("qb", "qs")}
    assert set(by_queue["qb"].queues) == {"qb"} and set(by_queue["qb"].agents) == {"b1"}
    assert set(by_queue["qs"].queues) == {"qs"} and set(by_queue["qs"].agents) == {"s1"}
    for shard in plan.networks:
        assert shard.sites == network.sites and shard.tariffs == network.tariffs
        assert shard.skills == network.skills
    assert plan.shard_of_agent("b1") == plan.shard_of_queue("qb")
    assert plan.shard_of_agent("s1") == plan.shard_of_queue("qs")


def test_an_agent_with_both_skills_joins_the_two_queues() -> None:
    network = build_network(
        agents=[
            agent_config("b1", billing=5),
            agent_config("s1", sales=5),
            agent_config("bs", billing=3, sales=3),
        ],
        queues=[queue_config("qb", "billing"), queue_config("qs", "sales")],
    )
    assert components(network) == {
        (frozenset({"qb", "qs"}), frozenset({"b1", "s1", "bs"})),
    }
    assert len(plan_shards(network, 8)) == 1


@pytest.mark.parametrize(
    ("target", "agent", "joined"),
    [
        # Proficiency: the target's default minimum, or the expression's own level.
        (target_config("billing", min_proficiency=6), agent_config("a", billing=5), False),
        (target_config("billing>=5"), agent_config("a", billing=5), True),
        (target_config("billing>=6"), agent_config("a", billing=9, sales=1), True),
        # Negation and disjunction, evaluated as the engine does.
        ("billing & !trainee", agent_config("a", billing=5, trainee=1), False),
        ("billing | spanish", agent_config("a", spanish=2), True),
        # Site restriction of the target.
        (target_config("billing", sites=["lyon"]), agent_config("a", "paris"), False),
        (target_config("billing", sites=["lyon"]), agent_config("a", "lyon"), True),
        # Capacity for the queue's channel (voice here).
        ("billing", agent_config("a", capacity={"chat": 2}, billing=5), False),
    ],
)
def test_eligibility_uses_the_engines_own_matching(
    target: str | dict[str, object], agent: dict[str, object], joined: bool
) -> None:
    network = build_network(agents=[agent], queues=[queue_config("q", target)])
    assert (len(eligibility_components(network)) == 1) is joined


def test_target_conditions_join_the_agents_they_count_and_the_queues_they_read() -> None:
    network = build_network(
        agents=[agent_config("b1", billing=5), agent_config("s1", sales=5)],
        queues=[
            queue_config(
                "qb", {"skills": "billing", "condition": 'ready("sales") >= 1'}, priority=1
            ),
            queue_config("qs", "sales"),
            queue_config("qx", {"skills": "spanish", "condition": 'waiting("qs") > 3'}),
        ],
    )
    assert components(network) == {
        (frozenset({"qb", "qs", "qx"}), frozenset({"b1", "s1"})),
    }


def test_overflow_targets_keep_the_overflow_agents_in_the_queues_shard() -> None:
    network = build_network(
        agents=[agent_config("b1", billing=5), agent_config("s1", sales=5)],
        queues=[
            queue_config("qb", target_config("billing", timeout=30), overflow_to="qs"),
            queue_config("qs", "sales"),
        ],
    )
    assert len(plan_shards(network, 2)) == 1


def test_components_are_packed_largest_first_onto_the_least_loaded_shard() -> None:
    agents = [agent_config(f"b{i}", billing=5) for i in range(5)]
    agents += [agent_config(f"s{i}", sales=5) for i in range(3)]
    agents += [agent_config(f"e{i}", spanish=5) for i in range(2)]
    network = build_network(
        agents=agents,
        queues=[queue_config("qb", "billing"), queue_config("qs", "sales"),
                queue_config("qe", "spanish")],
    )  # fmt: skip
    plan = plan_shards(network, 2)
    assert sorted(len(n.agents) for n in plan.networks) == [5, 5]
    assert plan.shard_of_queue("qs") == plan.shard_of_queue("qe") != plan.shard_of_queue("qb")
    assert plan.largest_component == 5
    assert len(plan_shards(network, 1)) == 1
    assert len(plan_shards(network, 10)) == 3


def test_agents_no_queue_can_use_and_queues_without_agents_still_have_a_shard() -> None:
    network = build_network(
        agents=[agent_config("idle1", trainee=1), agent_config("idle2", trainee=1),
                agent_config("b1", billing=5)],
        queues=[queue_config("qb", "billing"), queue_config("qs", "sales")],
    )  # fmt: skip
    plan = plan_shards(network, 3)
    assert set(plan.agent_shard) == set(network.agents)
    assert set(plan.queue_shard) == set(network.queues)
    # Each unusable agent is a component of its own, spread like any other.
    assert len(components(network)) == 4
    assert sorted(len(n.agents) for n in plan.networks) == [1, 1, 1]


def test_at_least_one_shard() -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        plan_shards(build_network(), 0)
    plan = plan_shards(build_network(), 3)
    assert len(plan) == 1 and set(plan.networks[0].queues) == {"q"}


def test_every_assignment_of_the_whole_engine_is_within_one_shard() -> None:
    """Random skills and targets: whatever the unsharded engine assigns, the contact's queue
    and the agent share a shard."""
    rng = random.Random(3)
    skills = ["billing", "spanish", "sales", "trainee"]
    agents = [
        agent_config(
            f"a{i}",
            rng.choice(["paris", "lyon"]),
            **{s: rng.randint(1, 9) for s in rng.sample(skills, rng.randint(1, 2))},
        )
        for i in range(40)
    ]
    expressions = ["billing>=7", "spanish & !trainee", "sales>=8", "trainee>=9", "spanish>=9"]
    queues = [
        queue_config(f"q{i}", target_config(expr, sites=rng.choice([None, ["lyon"]])))
        for i, expr in enumerate(expressions)
    ]
    network = build_network(agents=agents, queues=queues)
    plan = plan_shards(network, 4)
    assert len(plan) > 1
    router = Router(network)
    for agent_id in network.agents:
        router.login(agent_id, 0.0, ready=True)
    assigned = 0
    for n in range(200):
        queue_id = f"q{n % len(queues)}"
        decision = router.offer(contact(f"c{n}", queue_id, float(n)), float(n))
        if decision is not None:
            assigned += 1
            assert plan.shard_of_agent(decision.agent_id) == plan.shard_of_queue(queue_id)
            router.answer(decision.contact_id, float(n))
            router.finish(decision.contact_id, float(n) + 0.5)
    assert assigned > 50
