"""Running policies on one workload, so that their differences are the policies' and not luck.

Every policy of one call sees the same contacts and shifts (common random numbers); the seed
alone decides them, so two calls with the same seed give identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from routing.settings import RouterSettings
from site_agent.simulation.policies import Policy
from site_agent.simulation.scenario import Scenario
from site_agent.simulation.simulation import prepare_workload, run_policy
from site_agent.simulation.statistics import RunStatistics, summarize
from site_agent.simulation.trace import Trace


@dataclass(frozen=True, slots=True)
class SimulationResult:
    scenario: Scenario
    policy: Policy
    seed: int
    statistics: RunStatistics
    trace: Trace


def simulate(
    scenario: Scenario,
    policies: Sequence[Policy],
    *,
    seed: int,
    settings: RouterSettings | None = None,
) -> list[SimulationResult]:
    """One result per policy, in the order given."""
    workload = prepare_workload(scenario, seed)
    router_settings = settings or RouterSettings()
    results = []
    for policy in policies:
        trace = run_policy(workload, policy, router_settings)
        results.append(
            SimulationResult(
                scenario=scenario,
                policy=policy,
                seed=seed,
                statistics=summarize(trace, workload.network, scenario.simulation),
                trace=trace,
            )
        )
    return results
