"""Tests for routing.erlang: published reference values, exact rational/high-precision
recomputations, model identities, a Monte-Carlo cross-check of Erlang A and property tests."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.erlang import (
    ErlangAResult,
    ErlangCResult,
    agents_for_service_level,
    erlang_a_metrics,
    erlang_b,
    erlang_c,
    erlang_c_metrics,
)

# --------------------------------------------------------------------------------------------
# Independent exact references (rational arithmetic, no recursion shared with the module)
# --------------------------------------------------------------------------------------------


def _exact_erlang_b(servers: int, load: Fraction) -> Fraction:
    """Textbook definition B = (A^c / c!) / sum_{k<=c} A^k / k!, in exact rationals."""
    terms = [load**k / math.factorial(k) for k in range(servers + 1)]
    return terms[-1] / sum(terms)


def _exact_erlang_c(servers: int, load: Fraction) -> Fraction:
    """Textbook direct-summation Erlang C, in exact rationals:
    C = (A^c/c! · c/(c-A)) / (sum_{k<c} A^k/k! + A^c/c! · c/(c-A))."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    return top / (sum(load**k / math.factorial(k) for k in range(servers)) + top)


def _exact_erlang_b_integer_load(servers: int, load: int) -> Fraction:
    """Exact B for an integer load and thousands of servers, via integers only:
    J_n = A^n / B(n) satisfies J_0 = 1, J_n = A^n + n·J_{n-1}."""
    j = 1
    for n in range(1, servers + 1):
        j = load**n + n * j
    return Fraction(load**servers, j)


def _exact_service_level(servers: int, load: Fraction, aht: float, t: float) -> float:
    c = _exact_erlang_c(servers, load)
    return 1.0 - float(c) * math.exp(-(servers - float(load)) * t / aht)


# --------------------------------------------------------------------------------------------
# Erlang B
# --------------------------------------------------------------------------------------------


def test_erlang_b_published_values() -> None:
    # B(c=10, A=5) = 0.01838 (standard Erlang B table value; also recomputed exactly below).
    assert erlang_b(10, 5.0) == pytest.approx(0.0183846, abs=5e-7)
    # Standard Erlang B table, N = 10 row: 1% -> 4.461 E, 2% -> 5.084 E, 5% -> 6.216 E.  The
    # table rounds A to 0.001 E, which moves B by < 1.5e-5 here, hence abs=2e-5.
    assert erlang_b(10, 4.461) == pytest.approx(0.01, abs=2e-5)
    assert erlang_b(10, 5.084) == pytest.approx(0.02, abs=2e-5)
    assert erlang_b(10, 6.216) == pytest.approx(0.05, abs=2e-5)
    # Westbay Erlang calculator manual (erlang.com, "How much traffic can a trunk group
    # handle"): 15 lines at 1% blocking carry 8.108 E.
    assert erlang_b(15, 8.108) == pytest.approx(0.01, abs=2e-5)
    # Wolfram Language ErlangB docs: 30 lines, 25 E -> "approximately 0.05".
    assert erlang_b(30, 25.0) == pytest.approx(0.05, abs=5e-3)


def test_erlang_b_closed_forms() -> None:
    # One and two servers: B = A/(1+A), B = (A²/2)/(1 + A + A²/2).
    for load in (0.1, 0.5, 1.0, 3.7, 50.0):
        assert erlang_b(1, load) == pytest.approx(load / (1 + load), rel=1e-15)
        expected = (load**2 / 2) / (1 + load + load**2 / 2)
        assert erlang_b(2, load) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("servers", "load"),
    [(1, "1/3"), (5, "2"), (10, "5"), (10, "4.461"), (25, "31.5"), (60, "48.25"), (120, "100")],
)
def test_erlang_b_matches_exact_rational_definition(servers: int, load: str) -> None:
    exact = _exact_erlang_b(servers, Fraction(load))
    assert erlang_b(servers, float(Fraction(load))) == pytest.approx(float(exact), rel=1e-13)


@pytest.mark.parametrize(("servers", "load"), [(1000, 950), (3000, 2900), (3000, 3500)])
def test_erlang_b_thousands_of_servers_no_overflow(servers: int, load: int) -> None:
    # A^c / c! overflows doubles past c ≈ 170; the recursion must stay exact to rounding.
    exact = float(_exact_erlang_b_integer_load(servers, load))
    assert erlang_b(servers, float(load)) == pytest.approx(exact, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Erlang C
# --------------------------------------------------------------------------------------------


def test_erlang_c_published_values() -> None:
    # A = 10 E with 11 agents: P(wait) = 0.6821182 (ErlangC R package README, first row of its
    # `calculate_agents` process table; rdocumentation.org/packages/ErlangC/versions/0.1.0).
    assert erlang_c(11, 10.0) == pytest.approx(0.6821182, abs=1e-7)
    # M/M/c with A = 2, c = 3: C = 4/9 (hand-computable: (8/6·3) / (1 + 2 + 2 + 4)).
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-14)


def test_erlang_c_textbook_closed_forms() -> None:
    # M/M/1: P(wait) = ρ; M/M/2: P(wait) = 2ρ²/(1+ρ), ρ = A/2 (Kleinrock, Queueing Systems I).
    for rho in (0.05, 0.3, 0.5, 0.9, 0.999):
        assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-14)
        assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-13)


@pytest.mark.parametrize(
    ("servers", "load"),
    [(1, "0.5"), (2, "1.5"), (11, "10"), (14, "10"), (30, "24"), (55, "48"), (150, "140.5")],
)
def test_erlang_c_matches_exact_direct_summation(servers: int, load: str) -> None:
    exact = _exact_erlang_c(servers, Fraction(load))
    assert erlang_c(servers, float(Fraction(load))) == pytest.approx(float(exact), rel=1e-13)


def test_erlang_c_thousands_of_servers() -> None:
    servers, load = 3000, 2950
    b = _exact_erlang_b_integer_load(servers, load)
    exact = servers * b / (servers - load * (1 - b))
    assert erlang_c(servers, float(load)) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(("servers", "load"), [(10, 10.0), (10, 10.5), (1, 3.0)])
def test_erlang_c_unstable_queue_always_waits(servers: int, load: float) -> None:
    assert erlang_c(servers, load) == 1.0
    result = erlang_c_metrics(load / 60.0, 60.0, servers, 20.0)
    assert result.prob_wait == 1.0
    assert result.service_level == 0.0
    assert result.asa == math.inf
    assert result.occupancy == 1.0


def test_erlang_c_metrics_published_example() -> None:
    # 100 calls per 30 minutes, AHT 180 s (A = 10 E), 14 agents, 80% in 20 s target.  Two
    # independent implementations publish the same figures: pyworkforce README
    # (pypi.org/project/pyworkforce/0.1.0: service_level 0.8883500191794669, occupancy
    # 0.7142857142857143, waiting_probability 0.1741319335950498) and the ErlangC R package
    # README (ASA 7.83593701177724 s).  Tolerances are a few ulps of the printed digits.
    result = erlang_c_metrics(100 / 1800, 180.0, 14, 20.0)
    assert isinstance(result, ErlangCResult)
    assert result.offered_load == pytest.approx(10.0, rel=1e-15)
    assert result.prob_wait == pytest.approx(0.1741319335950498, rel=1e-12)
    assert result.service_level == pytest.approx(0.8883500191794669, rel=1e-12)
    assert result.asa == pytest.approx(7.83593701177724, rel=1e-12)
    assert result.occupancy == pytest.approx(0.7142857142857143, rel=1e-15)


def test_erlang_c_metrics_formulas_against_exact_c() -> None:
    # 360 calls/hour at AHT 240 s = 24 E; SL and ASA from exact-rational C.
    arrival_rate, aht, t = 360 / 3600, 240.0, 20.0
    for servers in (25, 27, 30, 35):
        c_exact = float(_exact_erlang_c(servers, Fraction(24)))
        result = erlang_c_metrics(arrival_rate, aht, servers, t)
        assert result.prob_wait == pytest.approx(c_exact, rel=1e-13)
        expected_sl = _exact_service_level(servers, Fraction(24), aht, t)
        assert result.service_level == pytest.approx(expected_sl, rel=1e-13)
        assert result.asa == pytest.approx(c_exact * aht / (servers - 24), rel=1e-13)
        assert result.occupancy == pytest.approx(24 / servers, rel=1e-15)


def test_erlang_c_zero_threshold_service_level_is_no_wait() -> None:
    result = erlang_c_metrics(100 / 1800, 180.0, 14, 0.0)
    assert result.service_level == pytest.approx(1.0 - result.prob_wait, rel=1e-15)


# --------------------------------------------------------------------------------------------
# Staffing
# --------------------------------------------------------------------------------------------


def test_staffing_published_example() -> None:
    # pyworkforce README / ErlangC R README: 100 calls per 30 min, AHT 180 s, 80/20, max
    # occupancy 0.85 -> 14 raw agents (the same example with 13 agents gives 79.6%).
    assert agents_for_service_level(100 / 1800, 180.0, 20.0, 0.8, max_occupancy=0.85) == 14
    assert agents_for_service_level(100 / 1800, 180.0, 20.0, 0.8) == 14


def _meets(
    arrival_rate: float,
    aht: float,
    servers: int,
    t: float,
    target: float,
    max_occupancy: float,
) -> bool:
    if servers < 1:
        return False
    result = erlang_c_metrics(arrival_rate, aht, servers, t)
    load = arrival_rate * aht
    return load < servers and load / servers <= max_occupancy and result.service_level >= target


@pytest.mark.parametrize(
    ("arrival_rate", "aht", "t", "target", "max_occupancy"),
    [
        (100 / 1800, 180.0, 20.0, 0.8, 1.0),
        (360 / 3600, 240.0, 20.0, 0.8, 1.0),
        (360 / 1800, 240.0, 20.0, 0.9, 1.0),
        (1 / 3600, 300.0, 30.0, 0.5, 1.0),  # tiny load: one agent
        (1 / 180, 180.0, 600.0, 0.5, 0.5),  # occupancy cap binds, not the SL target
        (0.5, 30.0, 10.0, 0.95, 0.85),
        (5000 / 180, 180.0, 20.0, 0.9, 1.0),  # 5000 E: the search must stay fast
        (10.0, 1.0, 0.0, 0.5, 1.0),  # t = 0: target on immediate answers
    ],
)
def test_staffing_returns_minimal_agents(
    arrival_rate: float, aht: float, t: float, target: float, max_occupancy: float
) -> None:
    agents = agents_for_service_level(arrival_rate, aht, t, target, max_occupancy)
    assert _meets(arrival_rate, aht, agents, t, target, max_occupancy)
    assert not _meets(arrival_rate, aht, agents - 1, t, target, max_occupancy)


def test_staffing_against_independent_exact_scan() -> None:
    # 360 calls/hour, AHT 240 s, 80/20: scan c upwards using exact-rational Erlang C only.
    expected = next(
        c for c in range(25, 100) if _exact_service_level(c, Fraction(24), 240.0, 20.0) >= 0.8
    )
    assert agents_for_service_level(360 / 3600, 240.0, 20.0, 0.8) == expected


def test_staffing_occupancy_cap() -> None:
    # 1 E with a 50% occupancy cap needs 2 agents however lax the service target is.
    assert agents_for_service_level(1 / 180, 180.0, 600.0, 0.01, max_occupancy=0.5) == 2


# --------------------------------------------------------------------------------------------
# Erlang A: an independent reference in 80-digit decimal arithmetic
# --------------------------------------------------------------------------------------------


def _erlang_a_partial_fractions(
    arrival_rate: float,
    aht: float,
    patience: float,
    servers: int,
    t: float,
    queue_states: int,
) -> dict[str, float]:
    """Erlang A the textbook way, sharing nothing with the module's negative-binomial form.

    Stationary distribution by direct products; a customer finding q queued ahead leaves the
    queue after D = sum of Exp(c·μ + k·θ), k = 0..q (hypoexponential, density
    sum_k A_k r_k e^{-r_k s} with A_k = prod_{j!=k} r_j / (r_j - r_k)) unless its patience
    T ~ Exp(θ) ends first.  All integrals of e^{-θs}·(density) are then closed form.  The
    alternating partial-fraction sums cancel catastrophically in doubles, so everything runs at
    80 significant digits; ``queue_states`` must cover the non-negligible tail.
    """
    with localcontext() as ctx:
        ctx.prec = 80
        lam, mu = Decimal(arrival_rate), 1 / Decimal(aht)
        theta, tt = 1 / Decimal(patience), Decimal(t)
        weights = [Decimal(1)]
        for n in range(1, servers + queue_states):
            death = n * mu if n <= servers else servers * mu + (n - servers) * theta
            weights.append(weights[-1] * lam / death)
        total = sum(weights)
        pi = [w / total for w in weights]
        idle = sum(pi[:servers])
        served, served_within, served_wait = idle, idle, Decimal(0)
        abandon, abandon_within, mean_wait = Decimal(0), Decimal(0), Decimal(0)
        for q in range(queue_states):
            p = pi[servers + q]
            rates = [servers * mu + k * theta for k in range(q + 1)]
            coef = []
            for k, rk in enumerate(rates):
                prod = Decimal(1)
                for j, rj in enumerate(rates):
                    if j != k:
                        prod *= rj / (rj - rk)
                coef.append(prod)
            decay = [(-(r + theta) * tt).exp() for r in rates]
            served += p * sum(a * r / (r + theta) for a, r in zip(coef, rates, strict=True))
            served_within += p * sum(
                a * r * (1 - e) / (r + theta) for a, r, e in zip(coef, rates, decay, strict=True)
            )
            served_wait += p * sum(
                a * r / (r + theta) ** 2 for a, r in zip(coef, rates, strict=True)
            )
            abandon += p * sum(a * theta / (r + theta) for a, r in zip(coef, rates, strict=True))
            abandon_within += p * sum(
                a * theta * (1 - e) / (r + theta)
                for a, r, e in zip(coef, rates, decay, strict=True)
            )
            mean_wait += p * sum(a / (r + theta) for a, r in zip(coef, rates, strict=True))
        return {
            "prob_wait": float(1 - idle),
            "prob_abandon": float(abandon),
            "service_level": float(served_within),
            "prob_abandon_within_threshold": float(abandon_within),
            "asa": float(served_wait / served),
            "mean_wait": float(mean_wait),
        }


@pytest.mark.parametrize(
    ("arrival_rate", "aht", "patience", "servers", "t"),
    [
        (1.0, 3.0, 2.0, 2, 1.5),  # overloaded (A = 3 on 2 agents): always stable with abandons
        (0.5, 4.0, 0.7, 1, 3.0),  # single agent, very impatient callers
        (2.0, 1.0, 5.0, 3, 0.0),  # t = 0: service level = P(answered at once)
        (3.0, 1.0, 0.25, 4, 0.4),
    ],
)
def test_erlang_a_matches_high_precision_partial_fractions(
    arrival_rate: float, aht: float, patience: float, servers: int, t: float
) -> None:
    # 60 queue states: the stationary tail beyond is < 1e-40 for all these cases.
    reference = _erlang_a_partial_fractions(arrival_rate, aht, patience, servers, t, 60)
    result = erlang_a_metrics(arrival_rate, aht, patience, servers, t)
    assert isinstance(result, ErlangAResult)
    for name, expected in reference.items():
        assert getattr(result, name) == pytest.approx(expected, rel=1e-12, abs=1e-15), name


def _stationary_distribution(
    arrival_rate: float, aht: float, patience: float, servers: int, max_queue: int
) -> list[float]:
    weights = [1.0]
    for n in range(1, servers + max_queue):
        death = n / aht if n <= servers else servers / aht + (n - servers) / patience
        weights.append(weights[-1] * arrival_rate / death)
    total = math.fsum(weights)
    return [w / total for w in weights]


@pytest.mark.parametrize(
    ("arrival_rate", "aht", "patience", "servers"),
    [
        (10 / 180, 180.0, 120.0, 10),
        (12 / 180, 180.0, 300.0, 10),  # overloaded: 12 E on 10 agents
        (40 / 240, 240.0, 60.0, 45),
        (0.2, 10.0, 1.0, 1),
    ],
)
def test_erlang_a_littles_law_identities(
    arrival_rate: float, aht: float, patience: float, servers: int
) -> None:
    # Every abandoning customer spends an Exp(θ) patience in queue, so the abandonment flow is
    # θ·E[queue]: P(abandon) = θ·E[Q]/λ; Little gives mean wait (all arrivals) = E[Q]/λ; and
    # PASTA gives P(wait) = P(n >= c).  E[Q] comes from the plain stationary distribution here.
    pi = _stationary_distribution(arrival_rate, aht, patience, servers, 2000)
    mean_queue = math.fsum((n - servers) * p for n, p in enumerate(pi) if n > servers)
    result = erlang_a_metrics(arrival_rate, aht, patience, servers, 20.0)
    assert result.prob_abandon == pytest.approx(mean_queue / patience / arrival_rate, rel=1e-12)
    assert result.mean_wait == pytest.approx(mean_queue / arrival_rate, rel=1e-12)
    assert result.prob_wait == pytest.approx(math.fsum(pi[servers:]), rel=1e-12)
    # Carried load: occupancy = λ·(1 - P(abandon))·AHT / c.
    carried = arrival_rate * aht * (1 - result.prob_abandon) / servers
    assert result.occupancy == pytest.approx(carried, rel=1e-12)


def test_erlang_a_converges_to_erlang_c_as_patience_grows() -> None:
    arrival_rate, aht, servers, t = 10 / 180, 180.0, 11, 20.0
    erlang_c_result = erlang_c_metrics(arrival_rate, aht, servers, t)
    gaps = []
    for factor in (1e3, 1e5, 1e7, 1e9):
        result = erlang_a_metrics(arrival_rate, aht, factor * aht, servers, t)
        gaps.append(abs(result.service_level - erlang_c_result.service_level))
        assert result.prob_abandon < 1.0 / factor
    final = erlang_a_metrics(arrival_rate, aht, 1e9 * aht, servers, t)
    assert final.prob_wait == pytest.approx(erlang_c_result.prob_wait, abs=1e-8)
    assert final.service_level == pytest.approx(erlang_c_result.service_level, abs=1e-8)
    assert final.asa == pytest.approx(erlang_c_result.asa, rel=1e-7)
    assert final.mean_wait == pytest.approx(erlang_c_result.asa, rel=1e-7)
    assert final.prob_abandon_within_threshold < 1e-9
    # The gap closes like 1/patience (each 100× more patience, ~100× closer): an exact model,
    # not an approximation with an error floor.
    for before, after in itertools.pairwise(gaps):
        assert 50 < before / after < 200


def test_erlang_a_abandonment_vanishes_as_servers_grow() -> None:
    arrival_rate, aht, patience = 10 / 180, 180.0, 60.0
    abandons = [
        erlang_a_metrics(arrival_rate, aht, patience, c, 20.0).prob_abandon
        for c in (5, 10, 15, 20, 30, 40, 60)
    ]
    assert all(a > b for a, b in itertools.pairwise(abandons))
    assert abandons[0] > 0.4
    assert abandons[-1] < 1e-20


def test_erlang_a_large_center_is_fast_and_sane() -> None:
    # 3000 agents, 3500 E offered: heavily overloaded, still exact and finite.
    result = erlang_a_metrics(3500 / 180, 180.0, 60.0, 3000, 30.0)
    assert 0.0 < result.service_level < 1.0
    assert result.prob_abandon == pytest.approx(1 - 3000 / 3500, rel=1e-6)
    assert result.occupancy == pytest.approx(1.0, abs=1e-6)


def _simulate_erlang_a(
    arrival_rate: float,
    aht: float,
    patience: float,
    servers: int,
    t: float,
    customers: int,
    warmup: int,
    seed: int,
) -> dict[str, float]:
    """FCFS M/M/c+M by customer: with FCFS, a customer's service would start when the earliest
    server frees up (later arrivals never overtake it), so it waits for that unless its
    patience ends first, in which case it never occupies a server."""
    rng = random.Random(seed)
    server_free_at = [0.0] * servers
    now = 0.0
    waited = answered_within = abandoned = abandoned_within = answered = 0
    answered_wait = 0.0
    for i in range(warmup + customers):
        now += rng.expovariate(arrival_rate)
        own_patience = rng.expovariate(1.0 / patience)
        start = max(now, server_free_at[0])
        wait = start - now
        counted = i >= warmup
        if wait > own_patience:
            if counted:
                waited += 1
                abandoned += 1
                abandoned_within += own_patience <= t
            continue
        heapq.heapreplace(server_free_at, start + rng.expovariate(1.0 / aht))
        if counted:
            waited += wait > 0.0
            answered += 1
            answered_wait += wait
            answered_within += wait <= t
    return {
        "prob_wait": waited / customers,
        "service_level": answered_within / customers,
        "prob_abandon": abandoned / customers,
        "prob_abandon_within_threshold": abandoned_within / customers,
        "asa": answered_wait / answered,
    }


def test_erlang_a_against_monte_carlo() -> None:
    # 10 E on 10 agents, AHT 180 s, mean patience 120 s, 20 s threshold; 195k measured
    # customers after 5k warm-up, fixed seed (~0.15 s).  Tolerances are ~5 standard deviations
    # of each estimate, measured over 12 independent seeds (SL sd 0.003, abandon sd 0.0015,
    # abandon-within sd 0.0006, P(wait) sd 0.003, ASA sd 0.16 s); a wrong SL variant (e.g. over
    # answered instead of offered: 0.74) or Erlang C's 0 would fail by far.
    arrival_rate, aht, patience, servers, t = 10 / 180, 180.0, 120.0, 10, 20.0
    estimate = _simulate_erlang_a(arrival_rate, aht, patience, servers, t, 195_000, 5_000, 2024)
    exact = erlang_a_metrics(arrival_rate, aht, patience, servers, t)
    assert estimate["service_level"] == pytest.approx(exact.service_level, abs=0.015)
    assert estimate["prob_abandon"] == pytest.approx(exact.prob_abandon, abs=0.0075)
    assert estimate["prob_abandon_within_threshold"] == pytest.approx(
        exact.prob_abandon_within_threshold, abs=0.003
    )
    assert estimate["prob_wait"] == pytest.approx(exact.prob_wait, abs=0.015)
    assert estimate["asa"] == pytest.approx(exact.asa, abs=0.8)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

loads = st.floats(min_value=0.01, max_value=60.0, allow_nan=False, allow_infinity=False)
handle_times = st.floats(min_value=1.0, max_value=600.0)
thresholds = st.floats(min_value=0.0, max_value=300.0)


@settings(max_examples=200, deadline=None)
@given(servers=st.integers(min_value=1, max_value=400), load=st.floats(0.001, 500.0))
def test_property_b_and_c_are_probabilities(servers: int, load: float) -> None:
    b = erlang_b(servers, load)
    c = erlang_c(servers, load)
    assert 0.0 <= b <= 1.0
    assert 0.0 <= c <= 1.0
    assert c >= b * (1 - 1e-15)  # waiting is at least as likely as being blocked would be


@settings(max_examples=100, deadline=None)
@given(load=loads, aht=handle_times, t=thresholds)
def test_property_erlang_c_monotone_in_servers(load: float, aht: float, t: float) -> None:
    arrival_rate = load / aht
    previous: ErlangCResult | None = None
    for servers in range(1, math.floor(load) + 15):
        result = erlang_c_metrics(arrival_rate, aht, servers, t)
        for p in (result.prob_wait, result.service_level, result.occupancy):
            assert 0.0 <= p <= 1.0
        if previous is not None:
            assert result.service_level >= previous.service_level - 1e-12
            assert result.asa <= previous.asa * (1 + 1e-12)
        previous = result


@settings(max_examples=40, deadline=None)
@given(
    load=st.floats(min_value=0.05, max_value=25.0),
    aht=handle_times,
    patience_ratio=st.floats(min_value=0.05, max_value=20.0),
    t=thresholds,
)
def test_property_erlang_a_probabilities_and_monotone_in_servers(
    load: float, aht: float, patience_ratio: float, t: float
) -> None:
    arrival_rate, patience = load / aht, patience_ratio * aht
    previous: ErlangAResult | None = None
    for servers in range(1, math.floor(load) + 8):
        result = erlang_a_metrics(arrival_rate, aht, patience, servers, t)
        probabilities = (
            result.prob_wait,
            result.prob_abandon,
            result.service_level,
            result.prob_abandon_within_threshold,
            result.occupancy,
        )
        for p in probabilities:
            assert 0.0 <= p <= 1.0
        # Answered-within and abandoned-within are disjoint; abandoning within t implies waiting.
        assert result.service_level + result.prob_abandon <= 1.0 + 1e-12
        assert result.prob_abandon_within_threshold <= result.prob_abandon + 1e-15
        assert result.asa <= result.mean_wait / (1 - result.prob_abandon) * (1 + 1e-12) + 1e-12
        if previous is not None:
            assert result.service_level >= previous.service_level - 1e-12
            assert result.asa <= previous.asa * (1 + 1e-12) + 1e-300
            assert result.prob_abandon <= previous.prob_abandon * (1 + 1e-12) + 1e-300
        previous = result


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------

_BAD_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("servers", lambda: erlang_b(0, 5.0)),
    ("servers", lambda: erlang_b(-3, 5.0)),
    ("servers", lambda: erlang_b(2.5, 5.0)),  # type: ignore[arg-type]
    ("servers", lambda: erlang_b(True, 5.0)),
    ("offered_load", lambda: erlang_b(5, 0.0)),
    ("offered_load", lambda: erlang_b(5, -1.0)),
    ("offered_load", lambda: erlang_b(5, math.nan)),
    ("offered_load", lambda: erlang_c(5, math.inf)),
    ("servers", lambda: erlang_c(0, 1.0)),
    ("arrival_rate", lambda: erlang_c_metrics(0.0, 180.0, 10, 20.0)),
    ("mean_handle_time", lambda: erlang_c_metrics(0.1, -180.0, 10, 20.0)),
    ("servers", lambda: erlang_c_metrics(0.1, 180.0, 0, 20.0)),
    ("sl_threshold", lambda: erlang_c_metrics(0.1, 180.0, 10, -1.0)),
    ("sl_threshold", lambda: erlang_c_metrics(0.1, 180.0, 10, math.nan)),
    ("arrival_rate", lambda: agents_for_service_level(-0.1, 180.0, 20.0, 0.8)),
    ("mean_handle_time", lambda: agents_for_service_level(0.1, 0.0, 20.0, 0.8)),
    ("sl_target", lambda: agents_for_service_level(0.1, 180.0, 20.0, 1.0)),
    ("sl_target", lambda: agents_for_service_level(0.1, 180.0, 20.0, 0.0)),
    ("max_occupancy", lambda: agents_for_service_level(0.1, 180.0, 20.0, 0.8, 0.0)),
    ("max_occupancy", lambda: agents_for_service_level(0.1, 180.0, 20.0, 0.8, 1.5)),
    ("arrival_rate", lambda: erlang_a_metrics(0.0, 180.0, 60.0, 10, 20.0)),
    ("mean_handle_time", lambda: erlang_a_metrics(0.1, 0.0, 60.0, 10, 20.0)),
    ("mean_patience", lambda: erlang_a_metrics(0.1, 180.0, 0.0, 10, 20.0)),
    ("mean_patience", lambda: erlang_a_metrics(0.1, 180.0, math.inf, 10, 20.0)),
    ("servers", lambda: erlang_a_metrics(0.1, 180.0, 60.0, 0, 20.0)),
    ("sl_threshold", lambda: erlang_a_metrics(0.1, 180.0, 60.0, 10, -5.0)),
    # Overloaded with patience 1e9 × AHT: ~1e9 queue states, refused up front.
    ("mean_patience", lambda: erlang_a_metrics(2.0, 1.0, 1e9, 1, 10.0)),
]


@pytest.mark.parametrize(("name", "call"), _BAD_CALLS)
def test_bad_inputs_raise_value_error(name: str, call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=name):
        call()
