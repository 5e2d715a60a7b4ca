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

Figures read at scrape time (links, the shards' counters, real-time statistics) are built by
:mod:`orchestrator.metrics_endpoint`, which serves ``GET /metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

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


class RouterMetrics:
    """The instruments of one router (module docstring); ``render()`` is their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[Any, ...], Any] = {}
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open files
        self.site_messages = Counter(
            "vcc_router_site_messages",
            "Site messages taken by the router (deltas and snapshots).",
            ["site", "kind"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "vcc_router_decision_seconds",
            "From a site message (or an injected change) reaching the router to every shard "
            "having answered and the resulting orders sent.",
            ["kind"],
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self.sent = Counter(
            "vcc_router_messages_sent",
            "Messages sent to sites, by kind (deliver, transfer_out, withdraw, ack, ...).",
            ["site", "kind"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "vcc_router_messages_dropped",
            "Messages for a site that was not connected (its snapshot on reconnect repairs "
            "what they would have done).",
            ["site"],
            registry=self.registry,
        )
        self.contacts = {
            name: Counter(
                f"vcc_contacts_{name}",
                text,
                ["site", "queue"],
                registry=self.registry,
            )
            for name, text in CONTACT_COUNTERS.items()
        }

    def received(self, site: str, kind: str) -> None:
        self._child(self.site_messages, site, kind).inc()

    def decided(self, kind: str, seconds: float) -> None:
        self._child(self.decision_seconds, kind).observe(seconds)

    def sent_to(self, site: str, kind: str) -> None:
        self._child(self.sent, site, kind).inc()

    def dropped_for(self, site: str) -> None:
        self._child(self.dropped, site).inc()

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """The labelled series, looked up once: ``labels()`` costs a microsecond a call, which
        the router would pay several times for every message."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count_contacts(self, site: str, queue: str, counters: Counters) -> None:
        """What the history adds to a site's and queue's interval counters."""
        for name, counter in self.contacts.items():
            value = getattr(counters, name)
            if value:
                counter.labels(site, queue).inc(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
