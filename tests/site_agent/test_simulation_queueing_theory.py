"""The simulator against queueing theory: Erlang C and Erlang A, and the pooling effect.

Tolerance: each check runs independent replications (seeds 1..n) and compares the mean of the
replication estimates with the formula.  The replications are i.i.d., so the mean is within
Z = 3.5 standard errors of the true value except with probability about 5e-4 (two-sided normal
tail); a correct simulator passes, a biased one (a measure off by a few percent) fails.  The
standard error itself is bounded too, so the comparison is tight and cannot pass by being noisy.
A 30-minute warm-up per replication removes the empty-start bias.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from routing.erlang import erlang_a_metrics, erlang_c_metrics
from site_agent.simulation.experiment import simulate
from site_agent.simulation.policies import ISOLATED, SKILL_POOL
from site_agent.simulation.scenario import Scenario
from site_agent.simulation.statistics import Measures

ScenarioBuilder = Callable[..., Scenario]

Z = 3.5
# A = 160/h x 180 s = 8 Erlangs on 10 agents: 80% occupancy, about 40% of callers wait.
CALLS_PER_HOUR = 160.0
MEAN_HANDLE = 180.0
THRESHOLD = 20.0


def _replicate(
    scenario_hours: float, replications: int, build: ScenarioBuilder, **kw: float
) -> list[Measures]:
    scenario = build(hours=scenario_hours, **kw)
    return [
        simulate(scenario, [SKILL_POOL], seed=seed)[0].statistics.network.total
        for seed in range(1, replications + 1)
    ]


def _mean_and_error(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def _assert_agrees(values: list[float], theory: float, max_error: float, what: str) -> None:
    mean, error = _mean_and_error(values)
    assert error <= max_error, f"{what}: standard error {error:.4f} too wide to test"
    assert abs(mean - theory) <= Z * error, (
        f"{what}: simulated {mean:.4f} ± {error:.4f}, Erlang says {theory:.4f}"
    )


def test_single_skill_service_level_and_asa_agree_with_erlang_c(one_queue: ScenarioBuilder) -> None:
    runs = _replicate(24.0, 30, one_queue, agents=10, calls_per_hour=CALLS_PER_HOUR)
    theory = erlang_c_metrics(CALLS_PER_HOUR / 3600, MEAN_HANDLE, 10, THRESHOLD)

    _assert_agrees([m.service_level or 0.0 for m in runs], theory.service_level, 0.01, "SL")
    _assert_agrees([m.asa or 0.0 for m in runs], theory.asa, 0.05 * theory.asa, "ASA")
    assert all(m.abandoned == 0 for m in runs)


def test_abandonment_service_level_and_asa_agree_with_erlang_a(one_queue: ScenarioBuilder) -> None:
    # 8 Erlangs on 9 agents, callers give up after 2 minutes on average.
    runs = _replicate(
        24.0, 20, one_queue, agents=9, calls_per_hour=CALLS_PER_HOUR, mean_patience=120.0
    )
    theory = erlang_a_metrics(CALLS_PER_HOUR / 3600, MEAN_HANDLE, 120.0, 9, THRESHOLD)

    _assert_agrees([m.abandon_rate or 0.0 for m in runs], theory.prob_abandon, 0.004, "abandon")
    _assert_agrees([m.service_level or 0.0 for m in runs], theory.service_level, 0.01, "SL")
    _assert_agrees([m.asa or 0.0 for m in runs], theory.asa, 0.05 * theory.asa, "ASA")


def test_pooling_two_identical_sites_beats_isolated_sites(one_queue: ScenarioBuilder) -> None:
    scenario = one_queue(
        sites=(("east", 20.0), ("west", 20.0)), agents=10, calls_per_hour=CALLS_PER_HOUR, hours=48.0
    )
    isolated, pooled = (
        r.statistics.network.total for r in simulate(scenario, [ISOLATED, SKILL_POOL], seed=11)
    )
    rate = CALLS_PER_HOUR / 3600
    alone = erlang_c_metrics(rate, MEAN_HANDLE, 10, THRESHOLD)
    together = erlang_c_metrics(2 * rate, MEAN_HANDLE, 20, THRESHOLD)

    # Same contacts in both runs; theory: SL 67% -> 85%, ASA 37 s -> 11 s.
    assert isolated.offered == pooled.offered
    assert (pooled.service_level or 0) >= (isolated.service_level or 0) + 0.1
    assert (pooled.asa or 0) <= 0.5 * (isolated.asa or 0)
    # And each run is where Erlang C puts it (one long run: a looser, 0.05 band on SL).
    assert abs((isolated.service_level or 0) - alone.service_level) < 0.05
    assert abs((pooled.service_level or 0) - together.service_level) < 0.05
