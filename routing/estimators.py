"""Expected-wait-time (EWT) estimators a site can publish in its pulse, selectable by name.

A site's EWT feeds both the network router (is another site's wait better by more than the
hysteresis margin?) and site status (congested when EWT exceeds the service-level threshold),
so each estimator works from one cheap snapshot of the queue, never from history the router
does not have, and says "infinite" for a queue nobody is staffed to answer.

Every estimator estimates the same quantity: the *virtual* wait of a contact arriving now, i.e.
how long until an agent would take it if it never hung up.  That is the wait callers are told
and the one routing compares; a contact's own patience decides whether it lives to see it, not
how long it is.  Contacts already queued may still hang up, which is what the Erlang A
estimator accounts for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from routing.erlang import erlang_c_metrics
from routing.ewt import queue_position_ewt

__all__ = [
    "ESTIMATORS",
    "ErlangAEstimator",
    "ErlangCEstimator",
    "EwtEstimator",
    "QueuePositionEstimator",
    "QueueSnapshot",
    "make_estimator",
]


def _require_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What a site knows about one queue at the moment it estimates.

    Counts are the site's own ACD counters: ``ahead`` contacts waiting, ``staffed`` agents
    logged in for the queue, of whom ``busy`` are handling contacts and ``ready`` are free.
    The counters are sampled one after another, so ``ready + busy`` may briefly disagree with
    ``staffed``; that is accepted rather than rejected, since refusing a pulse over it would
    cost the router a whole site's statistics.  Times are seconds, ``arrival_rate`` is per
    second (0 when nothing arrives), ``mean_patience`` is ``None`` when the site does not
    measure abandonment.
    """

    ahead: int
    staffed: int
    busy: int
    ready: int
    mean_handle_time: float
    arrival_rate: float = 0.0
    mean_patience: float | None = None

    def __post_init__(self) -> None:
        _require_count("ahead", self.ahead)
        _require_count("staffed", self.staffed)
        _require_count("busy", self.busy)
        _require_count("ready", self.ready)
        if not (math.isfinite(self.mean_handle_time) and self.mean_handle_time > 0.0):
            raise ValueError(
                f"mean_handle_time must be a positive finite number, got {self.mean_handle_time!r}"
            )
        if not (math.isfinite(self.arrival_rate) and self.arrival_rate >= 0.0):
            raise ValueError(
                f"arrival_rate must be a finite number >= 0, got {self.arrival_rate!r}"
            )
        if self.mean_patience is not None and not (
            math.isfinite(self.mean_patience) and self.mean_patience > 0.0
        ):
            raise ValueError(
                f"mean_patience must be a positive finite number or None, "
                f"got {self.mean_patience!r}"
            )

    @property
    def position(self) -> int | None:
        """Contacts that must leave the queue before a new one reaches its head, or ``None``
        when a ready agent is left over for it.  Ready agents take the first ``ready`` waiting
        contacts at once (they are being offered them as the snapshot is taken)."""
        if self.ready > self.ahead:
            return None
        return self.ahead - self.ready

    @property
    def serving(self) -> int:
        """Agents whose completions move the queue: the busy ones.  With nobody busy and
        nobody ready every staffed agent is in a not-ready state that ends (wrap-up, break),
        and with no better rate known they are counted as if about to free up."""
        return self.busy if self.busy > 0 else self.staffed


@runtime_checkable
class EwtEstimator(Protocol):
    """Seconds a contact arriving now would wait for an agent; ``math.inf`` when nobody is
    staffed, so that an unstaffed site always compares worst."""

    def estimate(self, snapshot: QueueSnapshot) -> float: ...


@dataclass(frozen=True, slots=True)
class QueuePositionEstimator:
    """The ACD vendors' classic: position in queue times handle time over staffed agents.

    Needs no arrival rate, so it works from the first pulse; it counts every staffed agent as
    freeing up, so agents on break make it optimistic.
    """

    def estimate(self, snapshot: QueueSnapshot) -> float:
        if snapshot.staffed <= 0:
            return math.inf
        position = snapshot.position
        if position is None:
            return 0.0
        return queue_position_ewt(position, snapshot.staffed, snapshot.mean_handle_time)


@dataclass(frozen=True, slots=True)
class ErlangCEstimator:
    """Mean wait in an M/M/c queue (no abandonment) given the current queue.

    With exponential handle times each busy agent frees up at rate μ = 1/AHT whatever it has
    already spent, so with c agents serving and k contacts still to go before ours, the wait is
    k + 1 exponential gaps of rate c·μ: mean (k + 1)/(c·μ).  That conditional mean is exact for
    M/M/c, so its error is only the randomness of service completions.

    ``unconditioned_when_empty``: a site publishes one EWT per pulse and the router applies it
    to every contact it sends there until the next pulse.  A loaded queue that happens to be
    empty at the pulse would then advertise "no wait" for the whole interval; with this set,
    an empty queue reports the long-run Erlang C ASA for the measured arrival rate instead
    (the conditional estimate is kept when there is no arrival rate or the queue is unstable,
    where the long-run average says nothing about the next few seconds).
    """

    unconditioned_when_empty: bool = False

    def estimate(self, snapshot: QueueSnapshot) -> float:
        if snapshot.staffed <= 0:
            return math.inf
        if self.unconditioned_when_empty and snapshot.ahead == 0 and snapshot.arrival_rate > 0:
            result = erlang_c_metrics(
                snapshot.arrival_rate, snapshot.mean_handle_time, snapshot.staffed, 0.0
            )
            if math.isfinite(result.asa):
                return result.asa
        position = snapshot.position
        if position is None:
            return 0.0
        return (position + 1) * snapshot.mean_handle_time / snapshot.serving


@dataclass(frozen=True, slots=True)
class ErlangAEstimator:
    """Mean virtual wait in an M/M/c+M queue (Erlang A: exponential patience) given the queue.

    Erlang C's (k + 1)/(c·μ) assumes all k contacts ahead will be served first.  When callers
    hang up, some of them will not, and with short patience that is most of them.  Derivation:
    with j contacts still ahead, our contact moves up one place at the first of c·μ (an agent
    frees up and takes the head) or j·θ (one of the j abandons; θ = 1/mean patience), so the
    time spent with j ahead is exponential with rate c·μ + j·θ, and with none ahead we wait for
    the next agent at rate c·μ (our own patience does not shorten the *virtual* wait).  Hence

        E[wait | k ahead] = sum_{j=0}^{k} 1 / (c·μ + j·θ),

    which is (k + 1)/(c·μ) at θ = 0.  Equivalently, of the k ahead only
    sum_{j=1}^{k} c·μ/(c·μ + j·θ) are expected to be served before us, the rest abandon.
    Without a measured patience this is exactly the Erlang C estimate.
    """

    def estimate(self, snapshot: QueueSnapshot) -> float:
        if snapshot.staffed <= 0:
            return math.inf
        position = snapshot.position
        if position is None:
            return 0.0
        service_rate = snapshot.serving / snapshot.mean_handle_time
        if snapshot.mean_patience is None:
            return (position + 1) / service_rate
        abandon_rate = 1.0 / snapshot.mean_patience
        return math.fsum(1.0 / (service_rate + j * abandon_rate) for j in range(position + 1))


ESTIMATORS: Mapping[str, type[EwtEstimator]] = MappingProxyType(
    {
        "queue_position": QueuePositionEstimator,
        "erlang_c": ErlangCEstimator,
        "erlang_a": ErlangAEstimator,
    }
)
"""Estimators by the name scenarios and site configurations use."""


def make_estimator(name: str) -> EwtEstimator:
    """The estimator registered under ``name``, with its default configuration; an unknown
    name is a configuration error, so the message lists the names that would have worked."""
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(ESTIMATORS))
        raise ValueError(f"unknown EWT estimator {name!r}; known: {known}") from None
    return cls()
