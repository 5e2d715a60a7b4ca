"""``GET /metrics``: the router's Prometheus exposition, for SREs to scrape.

Two parts, one text.  The instruments this process updates as things happen (every site
message timed, every order counted, the contacts' outcomes: :mod:`orchestrator.metrics`), and
figures read at scrape time, when Prometheus asks, from what holds them:

* the links: ``vcc_site_connected{site}``, ``vcc_site_in_step{site}`` (snapshot applied, no gap
  since), and the front's own counters (gaps, ignored deltas, snapshot requests, timer ticks and
  errors);
* the shards' decision counters summed (``vcc_router_deliveries_total``,
  ``vcc_router_rejections_total``, ``vcc_router_transfers_total`` ... one per field of
  :class:`~orchestrator.global_router.RouterCounters`, events by kind in
  ``vcc_router_site_events_total{kind}``); a restarted router starts them again from zero,
  which Prometheus's ``rate()`` takes as a counter reset;
* with the control API's routing service, its real-time statistics: per site its status (one
  series per status, 1 for the current one), whether it is open, agents by state, contacts
  waiting and the longest wait; per queue contacts by state, the longest wait, and per site its
  first target's agents staffed and ready and the site's expected wait.

A shard that does not answer within the timeout (its actor died, Ray is overloaded) does not
fail the scrape: its figures are left out and ``vcc_router_shards_answering`` says so, since
the moment the router is in trouble is the moment its metrics matter most.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import fields

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator.api.routing import RealtimeStats
from orchestrator.global_router import RouterCounters
from orchestrator.router_actor import RouterFront

log = logging.getLogger(__name__)

SITE_STATUSES = ("initialising", "operational", "congested", "critical", "down")
"""Every status a site can have: each gets its series, so that an alert on one (``== 1``) or a
dashboard's state timeline sees the others at 0, not missing."""

FRONT_COUNTERS = {
    "gaps": "Deltas that arrived out of sequence (the site was asked for a snapshot).",
    "ignored_deltas": "Deltas ignored while a site's snapshot was awaited.",
    "snapshot_requests": "Snapshot requests sent to sites.",
    "ticks": "Shard timers fired (answer time-outs, overflow steps, pulses ...).",
    "timer_errors": "Shard timer calls that failed (a shard's actor dead or unreachable).",
}

RealtimeSource = Callable[[], Awaitable[RealtimeStats]]


class _Scraped(Collector):
    """A collector over figures already read (collectors are synchronous; the reads are not)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def link_metrics(front: RouterFront, connected: Iterable[str]) -> list[Metric]:
    online = set(connected)
    shards = GaugeMetricFamily("vcc_router_shards", "Router shards (one Ray actor each).")
    shards.add_metric([], len(front.shards))
    up = GaugeMetricFamily(
        "vcc_site_connected", "1 when the site's link to the router is open.", labels=["site"]
    )
    in_step = GaugeMetricFamily(
        "vcc_site_in_step",
        "1 when the router's view of the site is in step (snapshot applied, no gap since).",
        labels=["site"],
    )
    for site, synced in front.links():
        up.add_metric([site], float(site in online))
        in_step.add_metric([site], float(synced))
    out: list[Metric] = [shards, up, in_step]
    for name, text in FRONT_COUNTERS.items():
        family = CounterMetricFamily(f"vcc_router_front_{name}", text)
        family.add_metric([], getattr(front.counters, name))
        out.append(family)
    return out


def shard_metrics(counters: list[RouterCounters], shards: int) -> list[Metric]:
    answering = GaugeMetricFamily(
        "vcc_router_shards_answering", "Shards that answered this scrape in time."
    )
    answering.add_metric([], len(counters))
    out: list[Metric] = [answering]
    if not counters:
        return out
    for field in fields(RouterCounters):
        if field.name == "by_kind":
            continue
        family = CounterMetricFamily(
            f"vcc_router_{field.name}", f"The shards' {field.name.replace('_', ' ')}."
        )
        family.add_metric([], sum(getattr(c, field.name) for c in counters))
        out.append(family)
    events = CounterMetricFamily(
        "vcc_router_site_events", "Site events the shards applied, by kind.", labels=["kind"]
    )
    kinds: Counter[str] = Counter()
    for c in counters:
        kinds.update(c.by_kind)
    for kind, count in sorted(kinds.items()):
        events.add_metric([kind], count)
    out.append(events)
    if len(counters) < shards:
        log.warning("metrics: %d of %d router shards answered", len(counters), shards)
    return out


def realtime_metrics(stats: RealtimeStats) -> list[Metric]:
    status = GaugeMetricFamily(
        "vcc_site_status",
        "The site's status from the router's statistics: 1 for the current one.",
        labels=["site", "status"],
    )
    is_open = GaugeMetricFamily(
        "vcc_site_open", "1 when the site's business hours have it open.", labels=["site"]
    )
    agents = GaugeMetricFamily(
        "vcc_site_agents",
        "Agents of the site by state (staffed counts every logged-in agent).",
        labels=["site", "state"],
    )
    waiting = GaugeMetricFamily(
        "vcc_site_waiting_contacts", "Contacts waiting at the site.", labels=["site"]
    )
    site_longest = GaugeMetricFamily(
        "vcc_site_longest_wait_seconds",
        "The longest current wait at the site (absent when none waits).",
        labels=["site"],
    )
    for site in stats.sites:
        for name in SITE_STATUSES:
            status.add_metric([site.site, name], float(site.status == name))
        is_open.add_metric([site.site], float(site.open))
        for state, count in site.agents.model_dump().items():
            agents.add_metric([site.site, state], count)
        waiting.add_metric([site.site], site.waiting)
        if site.longest_wait_seconds is not None:
            site_longest.add_metric([site.site], site.longest_wait_seconds)
    contacts = GaugeMetricFamily(
        "vcc_queue_contacts", "The queue's live contacts by state.", labels=["queue", "state"]
    )
    queue_longest = GaugeMetricFamily(
        "vcc_queue_longest_wait_seconds",
        "The longest current wait in the queue (absent when none waits).",
        labels=["queue"],
    )
    queue_agents = GaugeMetricFamily(
        "vcc_queue_agents",
        "Agents of the queue's first target at the site, staffed or ready.",
        labels=["queue", "site", "state"],
    )
    ewt = GaugeMetricFamily(
        "vcc_queue_expected_wait_seconds",
        "The site's expected wait for the queue from the router's last fresh pulse (absent "
        "when the site's statistics are stale or it has no agent for the queue).",
        labels=["queue", "site"],
    )
    for queue in stats.queues:
        for state in ("waiting", "ringing", "talking"):
            contacts.add_metric([queue.queue, state], getattr(queue, state))
        if queue.longest_wait_seconds is not None:
            queue_longest.add_metric([queue.queue], queue.longest_wait_seconds)
        for row in queue.sites:
            queue_agents.add_metric([queue.queue, row.site, "staffed"], row.staffed)
            queue_agents.add_metric([queue.queue, row.site, "ready"], row.ready)
            if row.ewt_seconds is not None:
                ewt.add_metric([queue.queue, row.site], row.ewt_seconds)
    return [
        status,
        is_open,
        agents,
        waiting,
        site_longest,
        contacts,
        queue_longest,
        queue_agents,
        ewt,
    ]


async def scrape(
    front: RouterFront,
    connected: Iterable[str],
    realtime: RealtimeSource | None,
    *,
    timeout: float,
) -> bytes:
    """The whole exposition (module docstring)."""
    scraped = link_metrics(front, connected)
    try:
        counters = await asyncio.wait_for(front.shard_counters(), timeout)
    except Exception as error:  # a dead actor, a time-out: the scrape goes on without them
        log.warning("metrics: the router's shards did not answer: %r", error)
        counters = []
    scraped += shard_metrics(counters, len(front.shards))
    if realtime is not None and counters:
        try:
            scraped += realtime_metrics(await asyncio.wait_for(realtime(), timeout))
        except Exception as error:
            log.warning("metrics: no real-time statistics: %r", error)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scraped(scraped))
    return front.metrics.render() + generate_latest(registry)


def metrics_router(
    front: RouterFront,
    connected: Callable[[], Iterable[str]],
    realtime: RealtimeSource | None = None,
    *,
    timeout: float,
) -> APIRouter:
    """``GET /metrics`` over ``front``; ``connected`` lists the sites whose link is open;
    ``realtime``: the control API's statistics, when this process serves the API."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        summary="Prometheus metrics of the router, its links and the live network",
    )
    async def metrics() -> Response:
        """The Prometheus text exposition format; open, like ``/healthz``, for Prometheus on
        the operator's network to scrape (it holds figures, no contact or agent data)."""
        body = await scrape(front, connected(), realtime, timeout=timeout)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    return router
