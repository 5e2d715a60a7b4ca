"""The router's Prometheus instruments: what this process counts and times as it happens.

Each :class:`~orchestrator.router_actor.RouterFront` owns one :class:`RouterMetrics`, on a
registry of its own (not the library's global one), so that two routers in one process (the
tests run many) never share or clash on a series.  Updated at every decision:

* ``vcc_router_site_messages_total{site,kind}``: deltas and snapshots taken from each site,
  and ``vcc_router_decision_seconds{kind}``, the time from a site's message (or a contact or
  state change the control API injects) reaching the router to every shard concerned having
  answered and its orders being on their way: for a contact's arrival, the routing decision as
  the site sees it, Ray's round trips included;
* ``vcc_router_messages_sent_total{site,kind}``: deliveries, transfer orders, withdrawals,
  acknowledgements, snapshot requests, agent state commands, transfer settlements sent;
  ``vcc_router_messages_dropped_total{site}`` those that found the site disconnected;
* ``vcc_contacts_*_total{site,queue}``: the contacts' outcomes as the 15-minute reports count
  them (landing site and queue, at the moment each is known), so that ``rate()`` over them
  gives the service level, abandon rate, ASA, AHT and cost of any window.

**Why plain dictionaries.**  prometheus_client's own counters and histograms take a lock and
resolve their labels on every update: ~1.5 µs each, 12 % of the in-process router's path per
site message (``benchmarks/metrics_bench.py``).  Everything here is updated and read on the
router's event loop only, so the counts are plain dictionary entries (~0.1 µs), and the library
does what it is for: the exposition, from these counts, at scrape time (:meth:`collect`).

Figures read at scrape time (links, the shards' counters, real-time statistics) are built by
:mod:`orchestrator.metrics_endpoint`, which serves ``GET /metrics``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the shards' actors import this module: no SQLAlchemy for them
    from orchestrator.persistence import Counters

DECISION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Seconds: from the in-process router's tens of microseconds to Ray under load (tens of ms);
past 10 s a decision is as good as lost to the site waiting for it."""

CONTACT_COUNTERS = {
    "offered": "Contacts offered (counted at arrival, by landing site and queue).",
    "answered": "Contacts answered by an agent.",
    "abandoned": "Contacts whose caller hung up before an answer.",
    "answered_within_sl": "Contacts answered within their queue's service-level threshold.",
    "wait_seconds": "Seconds answered contacts waited (ASA = rate(this) / rate(answered)).",
    "handle_seconds": "Seconds of talk and after-contact work of ended contacts.",
    "cost": "Cost of ended contacts: trunk, transfer and labour (the tariffs' currency).",
}
"""``Counters`` fields exported, each as ``vcc_contacts_<field>_total`` (staffed time is an
agent's, not a contact's: it is in the interval reports)."""


@dataclass(slots=True)
class _Timings:
    """One histogram series: observations per bucket (the last past every bound), and sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(DECISION_BUCKETS) + 1))
    total: float = 0.0


class RouterMetrics(Collector):
    """The instruments of one router (module docstring); ``render()`` is their exposition."""

    def __init__(self) -> None:
        self._received: Counter[tuple[str, str]] = Counter()
        self._sent: Counter[tuple[str, str]] = Counter()
        self._dropped: Counter[tuple[str]] = Counter()
        self._decisions: dict[str, _Timings] = {}
        self._contacts: dict[str, Counter[tuple[str, str]]] = {
            name: Counter() for name in CONTACT_COUNTERS
        }
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open files

    # ----------------------------------------------------------------- updates

    def received(self, site: str, kind: str) -> None:
        self._received[site, kind] += 1

    def decided(self, kind: str, seconds: float) -> None:
        timings = self._decisions.get(kind)
        if timings is None:
            timings = self._decisions[kind] = _Timings()
        timings.counts[bisect_left(DECISION_BUCKETS, seconds)] += 1  # le: bound >= seconds
        timings.total += seconds

    def sent_to(self, site: str, kind: str) -> None:
        self._sent[site, kind] += 1

    def dropped_for(self, site: str) -> None:
        self._dropped[(site,)] += 1

    def count_contacts(self, site: str, queue: str, counters: Counters) -> None:
        """What the history adds to a site's and queue's interval counters."""
        for name, counts in self._contacts.items():
            value = getattr(counters, name)
            if value:
                counts[site, queue] += value

    # ----------------------------------------------------------------- exposition

    def collect(self) -> Iterator[Metric]:
        yield _counters(
            "vcc_router_site_messages",
            "Site messages taken by the router (deltas and snapshots).",
            ["site", "kind"],
            self._received,
        )
        decisions = HistogramMetricFamily(
            "vcc_router_decision_seconds",
            "From a site message (or an injected change) reaching the router to every shard "
            "having answered and the resulting orders sent.",
            labels=["kind"],
        )
        bounds = (*map(str, DECISION_BUCKETS), "+Inf")
        for kind, timings in sorted(self._decisions.items()):
            cumulative = list(accumulate(timings.counts))
            decisions.add_metric([kind], list(zip(bounds, cumulative, strict=True)), timings.total)
        yield decisions
        yield _counters(
            "vcc_router_messages_sent",
            "Messages sent to sites, by kind (deliver, transfer_out, withdraw, ack, ...).",
            ["site", "kind"],
            self._sent,
        )
        yield _counters(
            "vcc_router_messages_dropped",
            "Messages for a site that was not connected (its snapshot on reconnect repairs "
            "what they would have done).",
            ["site"],
            self._dropped,
        )
        for name, text in CONTACT_COUNTERS.items():
            yield _counters(f"vcc_contacts_{name}", text, ["site", "queue"], self._contacts[name])

    def render(self) -> bytes:
        return generate_latest(self.registry)


Labels = TypeVar("Labels", bound=tuple[str, ...])


def _counters(
    name: str, text: str, labels: list[str], counts: Mapping[Labels, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=labels)
    for values, count in sorted(counts.items()):
        family.add_metric(list(values), count)
    return family
