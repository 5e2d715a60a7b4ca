"""Target conditions in the engine: a step of a queue's policy admits agents only when its
condition over live figures and contact data holds at the time the contact reaches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from routing.config import ConfigError, network_from_dict
from routing.engine import Router

Factory = Callable[..., Any]


def conditioned(
    make_config: Factory, agent: Factory, queue: Factory, target: Factory, condition: str
) -> dict[str, Any]:
    """The sales desk at once when ``condition`` holds; after 30 s the billing agents."""
    config: dict[str, Any] = make_config(
        agents=[agent("b1"), agent("s1", "lyon", sales=5)],
        queues=[queue("q", {"skills": "sales", "condition": condition, "timeout": 30}, "billing")],
    )
    config["contact_attributes"] = {"tier": "string"}
    config["lists"] = {"vip": ["alice", "carol"]}
    return config


def test_step_opens_only_for_listed_customers(
    make_config: Factory, agent: Factory, queue: Factory, target: Factory, call: Factory
) -> None:
    config = conditioned(make_config, agent, queue, target, "customer in vip")
    router = Router(network_from_dict(config))
    router.login("s1", 0.0, ready=True)  # only the sales desk is in
    assert router.offer(call("c1", customer_id="bob"), 1.0) is None
    decision = router.offer(call("c2", customer_id="alice"), 2.0)
    assert decision is not None and decision.agent_id == "s1"


def test_contact_attribute_condition(
    make_config: Factory, agent: Factory, queue: Factory, target: Factory, call: Factory
) -> None:
    config = conditioned(make_config, agent, queue, target, 'contact.tier == "gold"')
    router = Router(network_from_dict(config))
    router.login("s1", 0.0, ready=True)
    assert router.offer(call("c1", attributes={"tier": "silver"}), 1.0) is None
    assert router.offer(call("c2", attributes={"tier": "gold"}), 2.0) is not None
    # An attribute that is missing is unknown: the condition is false.
    assert router.offer(call("c3"), 3.0) is None


def test_queue_length_and_ready_agents(
    make_config: Factory, agent: Factory, queue: Factory, target: Factory, call: Factory
) -> None:
    """The sales desk helps at once only when 2+ calls already wait and one of its agents
    is free."""
    condition = 'queue_length >= 2 and ready("sales") >= 1'
    router = Router(network_from_dict(conditioned(make_config, agent, queue, target, condition)))
    router.login("s1", 0.0, ready=True)
    assert router.offer(call("c1"), 1.0) is None  # queue empty before it
    assert router.offer(call("c2"), 2.0) is None  # one waiting
    decision = router.offer(call("c3"), 3.0)  # two waiting: the step opens for c3
    assert decision is not None and (decision.contact_id, decision.agent_id) == ("c3", "s1")


def test_condition_is_checked_again_when_the_contact_reaches_a_later_step(
    make_config: Factory, agent: Factory, queue: Factory, target: Factory, call: Factory
) -> None:
    """A wait-time condition on a step that is open from the start: re-checked at the next
    step's time-out."""
    config = make_config(
        agents=[agent("s1", "lyon", sales=5), agent("t1", trainee=5)],
        queues=[
            queue(
                "q",
                {"skills": "sales", "condition": "wait >= 10"},
                target("billing", timeout=None),
            )
        ],
    )
    config["queues"][0]["targets"][0]["timeout"] = 20.0
    router = Router(network_from_dict(config))
    router.login("s1", 0.0, ready=True)
    assert router.offer(call("c1", arrival=0.0), 0.0) is None
    (decision,) = router.advance(20.0)  # billing step reached: sales condition now true
    assert decision.agent_id == "s1"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("queue_lenght > 3", "unknown variable 'queue_lenght'"),
        ('ready("billing >") > 1', "ready('billing >')"),
        ('ewt("rome") < 20', "ewt('rome'): unknown site"),
        ('waiting("nope") > 1', "waiting('nope'): unknown queue"),
        ("contact.tier == 3", "cannot compare string with number"),
        ("customer in friends", "friends"),
    ],
)
def test_bad_conditions_are_rejected_at_load_with_where_they_are(
    make_config: Factory,
    agent: Factory,
    queue: Factory,
    target: Factory,
    condition: str,
    message: str,
) -> None:
    config = conditioned(make_config, agent, queue, target, condition)
    with pytest.raises(ConfigError, match=r"queues\[0\] \(q\)\.targets\[0\]\.condition") as error:
        network_from_dict(config)
    assert message in str(error.value)
