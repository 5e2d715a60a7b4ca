"""Loading a network configuration: every mistake an operator can make is rejected with a
ConfigError naming the bad field, and a valid document flattens into the engine's model."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from routing.config import ConfigError, network_from_dict
from routing.model import AgentStrategy, Channel, CostMode, Target
from routing.skills import Skill, parse_skill_expr

Factory = Callable[..., dict[str, Any]]


def rejection(document: dict[str, Any]) -> str:
    """The loader's message for a document it must refuse."""
    with pytest.raises(ConfigError) as caught:
        network_from_dict(document)
    message = str(caught.value)
    assert message.startswith("invalid network configuration:")
    return message


def problems(document: dict[str, Any]) -> list[str]:
    """One line per problem, as the message lists them."""
    return [line.strip() for line in rejection(document).splitlines()[1:]]


# ----------------------------------------------------------------------------- valid documents


def test_a_minimal_document_loads(make_config: Factory, agent: Factory) -> None:
    network = network_from_dict(make_config(agents=[agent("a1", billing=5)]))
    assert set(network.sites) == {"paris", "lyon"}
    assert network.skills == frozenset({"billing", "spanish", "sales", "trainee"})
    assert network.agents["a1"].site_id == "paris"
    assert network.agents["a1"].skills == {"billing": 5}
    queue = network.queues["q"]
    assert queue.channel is Channel.VOICE
    assert queue.targets == (Target(expression=Skill("billing")),)
    assert queue.strategy is AgentStrategy.LONGEST_IDLE
    assert queue.cost_mode is CostMode.SERVICE


def test_agents_default_to_one_voice_and_one_callback(make_config: Factory, agent: Factory) -> None:
    profile = network_from_dict(make_config(agents=[agent("a1")])).agents["a1"]
    assert profile.capacity_for(Channel.VOICE) == 1
    assert profile.capacity_for(Channel.CALLBACK) == 1
    assert profile.capacity_for(Channel.CHAT) == 0


def test_target_fields_are_compiled(make_config: Factory, queue: Factory, target: Factory) -> None:
    document = make_config(
        queues=[
            queue(
                "q",
                target("billing>=5 & !trainee", timeout=15, sites=["lyon"], min_proficiency=3),
                "billing | sales",
            )
        ]
    )
    first, second = network_from_dict(document).queues["q"].targets
    assert first == Target(
        expression=parse_skill_expr("billing>=5 & !trainee"),
        min_proficiency=3,
        sites=frozenset({"lyon"}),
        timeout=15.0,
    )
    assert second == Target(expression=parse_skill_expr("billing | sales"))


def test_tariffs_are_keyed_by_caller_region_and_site(make_config: Factory) -> None:
    document = make_config(
        tariffs={
            "per_minute": {"eu": {"paris": 0.02, "lyon": 0.05}},
            "default_per_minute": 0.1,
            "transfer_fee": 0.3,
            "transfer_per_minute": 0.01,
        }
    )
    tariffs = network_from_dict(document).tariffs
    assert tariffs.trunk("eu", "lyon") == 0.05
    assert tariffs.trunk("us", "lyon") == 0.1
    assert (tariffs.transfer_fee, tariffs.transfer_per_minute) == (0.3, 0.01)


def test_valid_interflow_flattens_targets_in_order(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    document = make_config(
        queues=[
            queue("front", target("billing>=7", timeout=10), overflow_to="second"),
            queue("second", target("billing", timeout=20, sites=["lyon"]), overflow_to="last"),
            queue("last", "billing | sales"),
        ]
    )
    queues = network_from_dict(document).queues
    front_step = Target(expression=Skill("billing", 7), timeout=10.0)
    second_step = Target(expression=Skill("billing"), sites=frozenset({"lyon"}), timeout=20.0)
    last_step = Target(expression=parse_skill_expr("billing | sales"))
    assert queues["front"].targets == (front_step, second_step, last_step)
    assert queues["second"].targets == (second_step, last_step)
    assert queues["last"].targets == (last_step,)
    assert queues["front"].activation_times() == (0.0, 10.0, 30.0)


def test_interflow_keeps_the_entry_queues_own_settings(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    document = make_config(
        queues=[
            queue("vip", target("billing", timeout=5), overflow_to="q", priority=5, wrap_up=9),
            queue("q", "billing", priority=1),
        ]
    )
    vip = network_from_dict(document).queues["vip"]
    assert (vip.priority, vip.wrap_up) == (5, 9.0)


def test_activation_times_accumulate_timeouts_across_an_interflow(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    document = make_config(
        queues=[
            queue(
                "a",
                target("billing>=8", timeout=4),
                target("billing>=5", timeout=6),
                overflow_to="b",
            ),
            queue("b", "billing"),
        ]
    )
    queues = network_from_dict(document).queues
    assert queues["a"].activation_times() == (0.0, 4.0, 10.0)
    assert queues["b"].activation_times() == (0.0,)


# ----------------------------------------------------------------------------- unknown names


def test_unknown_skill_in_a_target_is_rejected(make_config: Factory, queue: Factory) -> None:
    assert problems(make_config(queues=[queue("q", "billing & french")])) == [
        "queues[0] (q).targets[0]: unknown skill(s) french in skill expression 'billing & french'"
    ]


def test_unparsable_target_names_the_target_and_column(
    make_config: Factory, queue: Factory
) -> None:
    message = rejection(make_config(queues=[queue("q", "billing", "billing sales")]))
    assert "queues[0] (q).targets[1]: unexpected 'sales' at column 9" in message


def test_unknown_skill_of_an_agent_is_rejected(make_config: Factory, agent: Factory) -> None:
    assert problems(make_config(agents=[agent("a1"), agent("a2", french=3)])) == [
        "agents[1] (a2): unknown skill 'french'"
    ]


def test_unknown_site_of_an_agent_is_rejected(make_config: Factory, agent: Factory) -> None:
    assert problems(make_config(agents=[agent("a1", "rome")])) == [
        "agents[0] (a1): unknown site 'rome'"
    ]


def test_unknown_site_in_a_target_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    assert problems(make_config(queues=[queue("q", target("billing", sites=["lyon", "rome"]))]))[
        0
    ] == ("queues[0] (q).targets[0]: unknown site(s) ['rome']")


def test_empty_site_list_in_a_target_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    assert "queues[0] (q).targets[0]: empty site list admits nobody" in rejection(
        make_config(queues=[queue("q", target("billing", sites=[]))])
    )


def test_unknown_site_in_tariffs_is_rejected(make_config: Factory) -> None:
    assert problems(make_config(tariffs={"per_minute": {"eu": {"rome": 0.1}}})) == [
        "tariffs.per_minute.eu: unknown site 'rome'"
    ]


def test_overflow_to_an_unknown_queue_is_rejected(make_config: Factory, queue: Factory) -> None:
    message = rejection(
        make_config(queues=[queue("q", {"skills": "billing", "timeout": 5}, overflow_to="zz")])
    )
    assert "queues[0] (q): overflow_to names unknown queue 'zz'" in message


# ----------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("tariffs", "field"),
    [
        ({"default_per_minute": -0.01}, "tariffs.default_per_minute"),
        ({"transfer_fee": -1}, "tariffs.transfer_fee"),
        ({"transfer_per_minute": -1}, "tariffs.transfer_per_minute"),
    ],
)
def test_negative_tariff_is_rejected_naming_the_field(
    make_config: Factory, tariffs: dict[str, Any], field: str
) -> None:
    assert problems(make_config(tariffs=tariffs)) == [
        f"{field}: Input should be greater than or equal to 0"
    ]


def test_negative_per_minute_price_names_region_and_site(make_config: Factory) -> None:
    message = rejection(make_config(tariffs={"per_minute": {"eu": {"paris": 0.1, "lyon": -0.5}}}))
    assert "tariffs.per_minute" in message
    assert "negative price -0.5 for region 'eu' at 'lyon'" in message


def test_negative_agent_cost_is_rejected_naming_the_site_field(make_config: Factory) -> None:
    sites = [
        {"id": "paris", "region": "eu"},
        {"id": "lyon", "region": "eu", "agent_cost_per_hour": -3},
    ]
    assert problems(make_config(sites=sites)) == [
        "sites.1.agent_cost_per_hour: Input should be greater than or equal to 0"
    ]


def test_negative_capacity_is_rejected(make_config: Factory, agent: Factory) -> None:
    message = rejection(make_config(agents=[agent("a1", capacity={"voice": -1})]))
    assert "agents.0.capacity" in message
    assert "negative capacity -1" in message


# ----------------------------------------------------------------------------- policies


def test_queue_without_targets_is_rejected(make_config: Factory) -> None:
    assert problems(make_config(queues=[{"id": "q", "targets": []}])) == [
        "queues[0] (q): routing policy has no targets"
    ]


def test_overflow_cycle_between_two_queues_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    message = rejection(
        make_config(
            queues=[
                queue("a", target("billing", timeout=5), overflow_to="b"),
                queue("b", target("billing", timeout=5), overflow_to="a"),
            ]
        )
    )
    assert "queues: overflow cycle a -> b -> a" in message


def test_queue_overflowing_to_itself_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    assert problems(
        make_config(queues=[queue("a", target("billing", timeout=5), overflow_to="a")])
    ) == ["queues: overflow cycle a -> a"]


def test_cycle_further_down_the_chain_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    message = rejection(
        make_config(
            queues=[
                queue("a", target("billing", timeout=5), overflow_to="b"),
                queue("b", target("billing", timeout=5), overflow_to="c"),
                queue("c", target("billing", timeout=5), overflow_to="b"),
            ]
        )
    )
    assert re.search(r"overflow cycle (b -> c -> b|c -> b -> c)", message)


def test_overflow_without_timeout_on_the_last_target_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    assert problems(
        make_config(
            queues=[
                queue("a", target("billing", timeout=5), "billing>=3", overflow_to="b"),
                queue("b", "billing"),
            ]
        )
    ) == ["queues[0] (a): overflows to 'b' but its last target has no timeout"]


def test_target_after_a_step_without_timeout_is_rejected_as_unreachable(
    make_config: Factory, queue: Factory
) -> None:
    assert problems(make_config(queues=[queue("q", "billing>=7", "billing")])) == [
        "queues[0] (q).targets[0]: has no timeout, so targets[1] can never apply"
    ]


def test_overflow_to_a_queue_of_another_channel_is_rejected(
    make_config: Factory, queue: Factory, target: Factory
) -> None:
    message = rejection(
        make_config(
            queues=[
                queue("voice", target("billing", timeout=5), overflow_to="chat"),
                queue("chat", "billing", channel="chat"),
            ]
        )
    )
    assert "'voice' overflows to 'chat' of another channel" in message


@pytest.mark.parametrize("timeout", [0, -5])
def test_non_positive_timeout_is_rejected(
    make_config: Factory, queue: Factory, target: Factory, timeout: float
) -> None:
    assert problems(make_config(queues=[queue("q", target("billing", timeout=timeout))])) == [
        "queues.0.targets.0.timeout: Input should be greater than 0"
    ]


# ----------------------------------------------------------------------------- ids and levels


@pytest.mark.parametrize("kind", ["sites", "queues", "agents"])
def test_duplicate_ids_are_rejected(
    make_config: Factory, agent: Factory, queue: Factory, kind: str
) -> None:
    document = make_config(agents=[agent("a1")], queues=[queue("q")])
    document[kind].append(dict(document[kind][0]))
    duplicate = document[kind][0]["id"]
    assert f"{kind}: duplicate id {duplicate!r}" in problems(document)


@pytest.mark.parametrize("level", [0, 11])
def test_agent_proficiency_out_of_range_is_rejected(
    make_config: Factory, agent: Factory, level: int
) -> None:
    assert problems(make_config(agents=[agent("a1", billing=5, spanish=level)])) == [
        f"agents.0.skills: Value error, proficiency of 'spanish' is {level}, expected 1-10"
    ]


@pytest.mark.parametrize("level", [0, 11])
def test_target_min_proficiency_out_of_range_is_rejected(
    make_config: Factory, queue: Factory, target: Factory, level: int
) -> None:
    message = rejection(make_config(queues=[queue("q", target("billing", min_proficiency=level))]))
    assert "queues.0.targets.0.min_proficiency" in message


def test_level_out_of_range_inside_an_expression_is_rejected(
    make_config: Factory, queue: Factory
) -> None:
    assert "proficiency 11 out of range 1-10" in rejection(
        make_config(queues=[queue("q", "billing>=11")])
    )


# ----------------------------------------------------------------------------- shape


def test_unknown_field_is_rejected(make_config: Factory, agent: Factory) -> None:
    document = make_config(agents=[{**agent("a1"), "shoe_size": 42}])
    assert problems(document) == ["agents.0.shoe_size: Extra inputs are not permitted"]


@pytest.mark.parametrize("field", ["skills", "sites", "queues"])
def test_empty_required_lists_are_rejected(make_config: Factory, field: str) -> None:
    document = make_config()
    document[field] = []
    assert problems(document)[0].startswith(f"{field}: List should have at least 1 item")


def test_every_problem_is_listed_in_one_message(
    make_config: Factory, agent: Factory, queue: Factory
) -> None:
    found = problems(
        make_config(
            agents=[agent("a1", "rome"), agent("a1", french=2)],
            queues=[queue("q", "klingon")],
        )
    )
    assert set(found) == {
        "agents: duplicate id 'a1'",
        "agents[0] (a1): unknown site 'rome'",
        "agents[1] (a1): unknown skill 'french'",
        "queues[0] (q).targets[0]: unknown skill(s) klingon in skill expression 'klingon'",
    }


def test_config_error_is_a_value_error(make_config: Factory) -> None:
    with pytest.raises(ValueError, match="routing policy has no targets"):
        network_from_dict(make_config(queues=[{"id": "q", "targets": []}]))
