"""Network routing by site in the simulator: statistics pulses, site selection with and without a
margin, pre- and post-routing, and the expected-wait estimators' errors (fixed seeds)."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from site_agent.simulation.ewt_accuracy import ewt_errors
from site_agent.simulation.experiment import SimulationResult, simulate
from site_agent.simulation.loading import load_scenario
from site_agent.simulation.policies import (
    ISOLATED,
    NETWORK_SKILL,
    NETWORK_SKILL_MARGIN,
    SKILL_POOL,
)
from site_agent.simulation.scenario import Scenario

SEED = 7


def demo(**simulation: Any) -> Scenario:
    """The three-site demo, four hours from its morning start, with simulation overrides."""
    scenario = load_scenario("three-site-demo")
    config = scenario.simulation.model_copy(update={"hours": 4.0, **simulation})
    return scenario.model_copy(update={"simulation": config})


@cache
def runs(**simulation: Any) -> dict[str, SimulationResult]:
    policies = [ISOLATED, NETWORK_SKILL, NETWORK_SKILL_MARGIN, SKILL_POOL]
    return {r.policy.key: r for r in simulate(demo(**simulation), policies, seed=SEED)}


def test_a_margin_stops_load_flapping_between_sites() -> None:
    results = runs(margin_seconds=60.0)
    zero, margin = results["skill"], results["skill-margin"]
    assert zero.trace.site_switches > 100
    assert margin.trace.site_switches < 0.5 * zero.trace.site_switches
    # Fewer contacts leave their site: fewer transfers.
    assert margin.statistics.network.total.transferred < zero.statistics.network.total.transferred
    # Routing between sites at all beats isolated sites; site queues stay below one pool.
    sl = {key: r.statistics.network.total.service_level for key, r in results.items()}
    assert sl["isolated"] is not None and sl["skill-pool"] is not None
    assert sl["isolated"] < sl["skill-margin"] <= sl["skill-pool"]  # type: ignore[operator]


def test_only_site_selection_switches_sites() -> None:
    results = runs()
    assert results["isolated"].trace.site_switches == 0
    assert results["skill-pool"].trace.site_switches == 0


def test_pre_routing_moves_contacts_without_transfers() -> None:
    landed = runs()["skill"].statistics.network.total
    pre = runs(pre_routing=True)["skill"].statistics.network.total
    assert landed.transferred > 50 and landed.transfer_cost > 0
    assert pre.transferred == 0 and pre.transfer_cost == 0
    # The same decisions otherwise: the same contacts answered, only the bill differs.
    assert pre.answered == landed.answered
    assert pre.cost_per_contact is not None and landed.cost_per_contact is not None
    assert pre.cost_per_contact < landed.cost_per_contact


def test_post_routing_moves_contacts_that_waited_past_the_time_out() -> None:
    never = runs(pre_routing=True)["skill"]
    post = runs(pre_routing=True, post_route_after=30.0)["skill"]
    assert never.statistics.network.total.transferred == 0
    moved = [
        (scheduled, outcome)
        for scheduled, outcome in zip(post.trace.contacts, post.trace.outcomes, strict=True)
        if outcome.transfer
    ]
    assert len(moved) > 20
    # Every transfer is a post-routing: the contact had waited at least the time-out.
    for scheduled, outcome in moved:
        assert outcome.reserved_at is not None
        assert outcome.reserved_at - scheduled.contact.arrival >= 30.0 - 1e-9


def test_every_estimator_is_scored_on_the_same_contacts() -> None:
    result = runs()["isolated"]
    errors = ewt_errors(result.trace, result.statistics.measured_from)
    assert set(errors) == {"queue_position", "erlang_c", "erlang_a"}
    counts = {e.n for e in errors.values()}
    assert len(counts) == 1 and counts.pop() > 1000
    for error in errors.values():
        assert error.mae is not None and error.bias is not None
        assert math.isfinite(error.mae) and error.mae >= abs(error.bias)
