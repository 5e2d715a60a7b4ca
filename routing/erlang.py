"""Erlang queueing formulas for sizing and predicting queues: B (loss), C (wait) and A (abandon).

The router and the workforce planner need the same answers quickly and for very different sizes
(a 3-agent niche skill, a 3000-seat merged virtual queue), so everything here is closed-form or a
short recursion in plain floating point: no factorials or powers that overflow, no iterative
solvers that can fail to converge.

Units are up to the caller but must agree: if ``arrival_rate`` is per second then
``mean_handle_time``, ``mean_patience`` and ``sl_threshold`` are seconds, and every time in a
result is in seconds too.  "Service level" always means the fraction of *offered* contacts
answered within ``sl_threshold``; Erlang C has no abandonment, so there that is also the fraction
of answered contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ErlangAResult",
    "ErlangCResult",
    "agents_for_service_level",
    "erlang_a_metrics",
    "erlang_b",
    "erlang_c",
    "erlang_c_metrics",
]

# Stationary mass left out when the Erlang A state space is truncated, relative to the mass
# kept.  It is an upper bound (geometric tail), so results are exact to double precision.
_TAIL_EPSILON = 1e-16
# Erlang A walks the queue states one by one (about a microsecond each).  A queue this long
# only arises with an overloaded system and patience many orders of magnitude above the handle
# time, where the model no longer describes a contact center, so refuse rather than spin.
_MAX_QUEUE_STATES = 2_000_000


def _require_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _require_servers(servers: int) -> None:
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
        raise ValueError(f"servers must be an integer >= 1, got {servers!r}")


def _require_threshold(sl_threshold: float) -> None:
    if not (math.isfinite(sl_threshold) and sl_threshold >= 0.0):
        raise ValueError(
            f"sl_threshold must be a finite number of time units >= 0, got {sl_threshold!r}"
        )


def _erlang_b_step(servers: int, offered_load: float, previous: float) -> float:
    """One step of B(n) = A·B(n-1) / (n + A·B(n-1)), shared so staffing searches that extend
    the recursion one agent at a time get bit-for-bit the values ``erlang_b`` would return."""
    carried = offered_load * previous
    return carried / (servers + carried)


def _erlang_c_from_b(servers: int, offered_load: float, blocking: float) -> float:
    # C = c·B / (c - A·(1 - B)), valid only for a stable queue (A < c).
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of an M/M/c/c loss system (Erlang B).

    Used to size trunks, media ports and other resources where a contact that finds everything
    busy is rejected rather than queued, and as the stable building block for Erlang C.  The
    textbook ratio A^c/c! / sum(A^k/k!) overflows beyond a couple of hundred servers, so this
    uses the recursion B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1)): every intermediate value is
    a probability, so it is exact to rounding for any number of servers, in O(c) time.

    ``offered_load`` is in Erlangs (arrival rate × mean holding time).
    """
    _require_servers(servers)
    _require_positive("offered_load", offered_load)
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = _erlang_b_step(n, offered_load, blocking)
    return blocking


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arriving contact has to wait in an M/M/c queue (Erlang C).

    This is the classic call-center staffing model: Poisson arrivals, exponential handle times,
    callers who never abandon.  It is derived from Erlang B as C = c·B / (c - A·(1 - B)) so it
    inherits B's numerical stability.  With ``offered_load >= servers`` the queue grows without
    bound and every contact eventually waits, so the answer is 1.0 rather than an error: callers
    sweeping over staffing levels can treat "unstable" as "worst possible".
    """
    _require_servers(servers)
    _require_positive("offered_load", offered_load)
    if offered_load >= servers:
        return 1.0
    return _erlang_c_from_b(servers, offered_load, erlang_b(servers, offered_load))


@dataclass(frozen=True, slots=True)
class ErlangCResult:
    """Erlang C (M/M/c, no abandonment) predictions for one staffing level.

    ``offered_load`` is in Erlangs; ``occupancy`` is the fraction of agent time spent handling
    contacts (capped at 1.0 when unstable); ``prob_wait`` is the probability a contact queues at
    all; ``service_level`` is the fraction answered within the threshold; ``asa`` is the average
    speed of answer over all contacts, those answered immediately included (``math.inf`` when
    the queue is unstable).
    """

    offered_load: float
    occupancy: float
    prob_wait: float
    service_level: float
    asa: float


def _erlang_c_service_level(
    servers: int, offered_load: float, prob_wait: float, mean_handle_time: float, t: float
) -> float:
    # The M/M/c wait, given that one waits, is exponential with rate (c - A)/AHT.
    return 1.0 - prob_wait * math.exp(-(servers - offered_load) * t / mean_handle_time)


def erlang_c_metrics(
    arrival_rate: float, mean_handle_time: float, servers: int, sl_threshold: float
) -> ErlangCResult:
    """The figures a planner reads off an Erlang C calculator for ``servers`` agents.

    Service level is 1 - C·exp(-(c - A)·t / AHT) and ASA is C·AHT / (c - A): the conditional
    wait of a queued M/M/c customer is exponential.  An unstable queue (A >= c) reports service
    level 0 and ASA infinity, which sorts correctly when comparing staffing options.
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("mean_handle_time", mean_handle_time)
    _require_servers(servers)
    _require_threshold(sl_threshold)
    load = arrival_rate * mean_handle_time
    _require_positive("offered load (arrival_rate * mean_handle_time)", load)
    if load >= servers:
        return ErlangCResult(
            offered_load=load, occupancy=1.0, prob_wait=1.0, service_level=0.0, asa=math.inf
        )
    prob_wait = erlang_c(servers, load)
    return ErlangCResult(
        offered_load=load,
        occupancy=load / servers,
        prob_wait=prob_wait,
        service_level=_erlang_c_service_level(
            servers, load, prob_wait, mean_handle_time, sl_threshold
        ),
        asa=prob_wait * mean_handle_time / (servers - load),
    )


def agents_for_service_level(
    arrival_rate: float,
    mean_handle_time: float,
    sl_threshold: float,
    sl_target: float,
    max_occupancy: float = 1.0,
) -> int:
    """Fewest agents whose Erlang C service level reaches ``sl_target`` (e.g. 0.8 for 80/20).

    This is the raw staffing requirement (before shrinkage).  The search starts at the smallest
    stable count that also keeps occupancy at or below ``max_occupancy`` (a burn-out cap that
    matters for small loads, where the service-level target alone would run agents hot) and adds
    one agent at a time; Erlang C service level increases with servers, so the first count that
    meets the target is the minimum.  Erlang B is extended incrementally, so the search costs
    O(answer) rather than O(answer²).
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("mean_handle_time", mean_handle_time)
    _require_threshold(sl_threshold)
    if not (0.0 < sl_target < 1.0):
        raise ValueError(f"sl_target must be strictly between 0 and 1, got {sl_target!r}")
    if not (0.0 < max_occupancy <= 1.0):
        raise ValueError(f"max_occupancy must be in (0, 1], got {max_occupancy!r}")
    load = arrival_rate * mean_handle_time
    _require_positive("offered load (arrival_rate * mean_handle_time)", load)
    servers = max(1, math.floor(load) + 1, math.ceil(load / max_occupancy))
    while load >= servers or load / servers > max_occupancy:
        servers += 1
    blocking = erlang_b(servers, load)
    while True:
        prob_wait = _erlang_c_from_b(servers, load, blocking)
        level = _erlang_c_service_level(servers, load, prob_wait, mean_handle_time, sl_threshold)
        if level >= sl_target:
            return servers
        servers += 1
        blocking = _erlang_b_step(servers, load, blocking)


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Erlang A (M/M/c+M) predictions for one staffing level.

    Probabilities are over all offered contacts.  ``prob_abandon`` is the fraction that hang up
    before being answered; ``asa`` is the mean wait of answered contacts (immediate answers
    included), which is what ACD reports call ASA; ``mean_wait`` is the mean time spent queued by
    every contact, abandoned ones included (= mean queue length / arrival rate);
    ``service_level`` is answered-within-threshold over *offered*, so abandons count against it
    whenever they happen; ``prob_abandon_within_threshold`` is the fraction that abandon before
    the threshold, for the report variants that exclude "short abandons" from the denominator
    (``service_level / (1 - prob_abandon_within_threshold)``); ``occupancy`` uses the carried
    (answered) load.
    """

    offered_load: float
    occupancy: float
    prob_wait: float
    prob_abandon: float
    asa: float
    mean_wait: float
    service_level: float
    prob_abandon_within_threshold: float


def _log_idle_mass(servers: int, offered_load: float) -> float:
    """log of sum_{n<c} pi_n / pi_c for the M/M/c part of the chain (pi_n ∝ A^n / n!).

    Walks down from c with pi_{n-1} / pi_n = n / A in log space, so neither A^n nor n! is ever
    formed, and stops once the states still below are provably negligible.
    """
    log_load = math.log(offered_load)
    log_term = 0.0  # log(pi_n / pi_c), starting at n = c
    best = -math.inf
    total = 0.0  # sum of exp(log_term - best)
    for n in range(servers, 0, -1):
        log_term += math.log(n) - log_load  # now the state n - 1
        if log_term > best:
            total = total * math.exp(best - log_term) + 1.0
            best = log_term
        else:
            total += math.exp(log_term - best)
        # Below the mode the terms shrink; n - 1 states are left, each smaller than this one.
        if n <= offered_load and (n - 1) * math.exp(log_term - best) < _TAIL_EPSILON * total:
            break
    return best + math.log(total)


def _queue_too_long(mean_patience: float, mean_handle_time: float) -> ValueError:
    return ValueError(
        f"Erlang A queue too long to evaluate exactly (over {_MAX_QUEUE_STATES} states): the "
        f"system is overloaded or critically loaded and mean_patience ({mean_patience!r}) is "
        f"extreme relative to mean_handle_time ({mean_handle_time!r})"
    )


def erlang_a_metrics(
    arrival_rate: float,
    mean_handle_time: float,
    mean_patience: float,
    servers: int,
    sl_threshold: float,
) -> ErlangAResult:
    """Exact Erlang A (Palm's M/M/c+M model: exponential patience) for ``servers`` agents.

    Erlang C assumes callers wait forever, which overstates staffing when real callers hang up
    and is undefined when load exceeds agents; Erlang A is always stable, so it is the model to
    use for overload, for what-if routing of overflow, and for predicting abandonment.

    The stationary distribution of the birth-death chain (birth λ; death n·μ up to c and
    c·μ + (n - c)·θ above, with μ = 1/AHT and θ = 1/patience) is summed in log space, truncated
    once the geometric bound on the remaining tail is below 1e-16 of the mass kept.  By PASTA a
    contact arriving with q = n - c others queued ahead moves up one place at rate c·μ + k·θ
    (k ahead) while its own patience runs at rate θ, which gives per state, exactly:

    * P(served) = c·μ / (c·μ + (q + 1)·θ) and mean time queued = (q + 1) / (c·μ + (q + 1)·θ);
    * given service, the wait is a sum of exponentials with rates c·μ + j·θ, j = 1..q+1, whose
      tail is a negative-binomial CDF: P(wait > t) = P(NB(c·μ/θ + 1, e^(-θt)) <= q);
    * the time until it leaves the queue either way exceeds t with probability
      e^(-θt)·P(NB(c·μ/θ, e^(-θt)) <= q).

    The negative-binomial terms are positive and built by ratio recursion in log space, so
    there is no alternating partial-fraction sum to cancel, for any c or q.  Cost is O(c + queue
    states) time and O(1) memory; a case needing more than two million queue states (overload
    with patience ~10^6 handle times) raises ``ValueError`` instead of running for seconds.
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("mean_handle_time", mean_handle_time)
    _require_positive("mean_patience", mean_patience)
    _require_servers(servers)
    _require_threshold(sl_threshold)
    load = arrival_rate * mean_handle_time
    _require_positive("offered load (arrival_rate * mean_handle_time)", load)

    theta = 1.0 / mean_patience
    c_mu = servers / mean_handle_time
    beta = c_mu / theta
    # The queue-length distribution peaks where λ = c·μ + q·θ; refuse before walking there.
    if (arrival_rate - c_mu) / theta > _MAX_QUEUE_STATES:
        raise _queue_too_long(mean_patience, mean_handle_time)
    t = sl_threshold
    # x = e^(-θt) is the negative-binomial success probability; at t = 0 (or θ·t below the
    # smallest double) 1 - x is 0 and the CDFs are all 1.
    x = math.exp(-theta * t)
    one_minus_x = -math.expm1(-theta * t)
    log_1mx = math.log(one_minus_x) if one_minus_x > 0.0 else -math.inf
    log_pmf_served = -(c_mu + theta) * t  # log P(NB(beta + 1, x) = 0)
    log_pmf_left = -c_mu * t  # log P(NB(beta, x) = 0)
    cdf_served = math.exp(log_pmf_served)
    cdf_left = math.exp(log_pmf_left)

    # Weights are exp(log weight - ref), rescaled whenever a larger one turns up.
    log_idle = _log_idle_mass(servers, load)
    ref = max(log_idle, 0.0)
    idle = math.exp(log_idle - ref)  # states n < c: answered at once
    queued = 0.0  # states n >= c: must wait
    served = 0.0
    served_within = 0.0
    served_wait = 0.0
    abandoned = 0.0
    abandoned_within = 0.0
    time_queued = 0.0

    log_weight = 0.0  # log(pi_{c+q} / pi_c)
    mean_wait_if_served = 0.0  # sum_{j=1}^{q+1} 1 / (c·μ + j·θ)
    q = 0
    while True:
        if log_weight > ref:
            scale = math.exp(ref - log_weight)
            idle *= scale
            queued *= scale
            served *= scale
            served_within *= scale
            served_wait *= scale
            abandoned *= scale
            abandoned_within *= scale
            time_queued *= scale
            ref = log_weight
        weight = math.exp(log_weight - ref)
        exit_rate = c_mu + (q + 1) * theta
        p_served = c_mu / exit_rate
        mean_wait_if_served += 1.0 / exit_rate
        p_served_within = p_served * (1.0 - min(cdf_served, 1.0))
        p_left_within = 1.0 - x * min(cdf_left, 1.0)

        queued += weight
        served += weight * p_served
        served_within += weight * p_served_within
        served_wait += weight * p_served * mean_wait_if_served
        abandoned += weight * ((q + 1) * theta / exit_rate)
        abandoned_within += weight * max(p_left_within - p_served_within, 0.0)
        time_queued += weight * ((q + 1) / exit_rate)

        q += 1
        ratio = arrival_rate / (c_mu + q * theta)
        if ratio < 1.0 and weight * ratio / (1.0 - ratio) <= _TAIL_EPSILON * (idle + queued):
            break
        if q > _MAX_QUEUE_STATES:
            raise _queue_too_long(mean_patience, mean_handle_time)
        log_weight += math.log(ratio)
        log_beta_q = math.log(beta + q)
        log_q = math.log(q)
        log_pmf_served += log_1mx + log_beta_q - log_q
        log_pmf_left += log_1mx + math.log(beta + q - 1) - log_q
        cdf_served += math.exp(log_pmf_served)
        cdf_left += math.exp(log_pmf_left)

    total = idle + queued
    answered = idle + served
    prob_abandon = min(abandoned / total, 1.0)
    return ErlangAResult(
        offered_load=load,
        occupancy=min(load * (1.0 - prob_abandon) / servers, 1.0),
        prob_wait=min(queued / total, 1.0),
        prob_abandon=prob_abandon,
        asa=served_wait / answered,
        mean_wait=time_queued / total,
        service_level=min((idle + served_within) / total, 1.0),
        prob_abandon_within_threshold=min(abandoned_within / total, 1.0),
    )
