#!/usr/bin/env python
"""Metrics benchmark: what ``GET /metrics`` costs the router at scale, and what the
instruments add to each site message.

Run from the repository root::

    python benchmarks/metrics_bench.py                       # 20,000 agents / 20 sites
    python benchmarks/metrics_bench.py --agents 2000 --sites 5 --scrapes 5 --messages 1000

The router is the one ``vcc up`` runs behind the control API (``RayRouting`` over a
``RouterFront``) on ``routing_bench.network_document`` (50 skills, one queue each), with its
shard in process (``LocalShard``): the scrape's work on the router's event loop is what is
measured (over Ray, reading the shards' figures costs one actor call per shard on top, as for
``GET /v1/stats/realtime``).  The database is a migrated SQLite file in a temporary directory.
Each scripted site snapshots its agents logged in, half ready and half not ready, with
``--queued`` contacts spread over the queues and sites.

1. **scrape**: ``scrape()``, the whole exposition (the instruments, the links, the shards'
   counters and the real-time statistics over every agent), ``--scrapes`` times: time p50 and
   max, size, series.  Baseline in the same run: ``realtime_stats()`` alone (the work of
   ``GET /v1/stats/realtime``, which the scrape includes).
2. **per message**: ``--messages`` deltas of one agent event each (not ready / ready toggles)
   through ``front.receive``, the router's whole path, ``--rounds`` times with the instruments
   and as many with them replaced by no-ops, alternating (the A/B ratio); and the instruments'
   own work for one message alone (the message counter, the decision timer, the
   acknowledgement's counter), as a share of the path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from routing_bench import network_document  # noqa: E402

from orchestrator.metrics_endpoint import scrape  # noqa: E402
from orchestrator.persistence import Database, upgrade  # noqa: E402
from orchestrator.ray_routing import RayRouting  # noqa: E402
from orchestrator.router_actor import LocalShard, RouterFront, RouterShard  # noqa: E402
from orchestrator.sharding import plan_shards  # noqa: E402
from routing.config import network_from_dict  # noqa: E402
from routing.model import Network  # noqa: E402
from site_agent.protocol import (  # noqa: E402
    AgentNotReady,
    AgentReady,
    AgentStatus,
    ContactData,
    ContactStatus,
    Delta,
    Snapshot,
)

SEED = 20240602


class Router:
    """The API's router over an in-process shard, with every site connected."""

    def __init__(self, network: Network, database: Database) -> None:
        plan = plan_shards(network, 1)
        shards = [
            LocalShard(RouterShard(net, None, i, len(plan))) for i, net in enumerate(plan.networks)
        ]
        self.network = network
        self.front = RouterFront(plan, shards, clock=lambda: 0.0)
        self.routing = RayRouting(self.front, network, database, downstream=lambda _s, _m: True)
        self.seq = dict.fromkeys(network.sites, 0)

    async def snapshots(self, queued: int) -> None:
        queues = sorted(self.network.queues)
        sites = sorted(self.network.sites)
        contacts: dict[str, list[ContactStatus]] = {site: [] for site in sites}
        for n in range(queued):
            data = ContactData(
                id=f"q{n}", queue_id=queues[n % len(queues)], arrival=-float(n), caller_region="r0"
            )
            contacts[sites[n % len(sites)]].append(ContactStatus(contact=data, state="queued"))
        for site in sites:
            here = [a for a in self.network.agents.values() if a.site_id == site]
            agents = [
                AgentStatus(
                    agent_id=a.id,
                    logged_in=True,
                    ready=n % 2 == 0,
                    reason="break" if n % 2 else None,
                )
                for n, a in enumerate(here)
            ]
            snapshot = Snapshot(site_id=site, at=0.0, agents=agents, contacts=contacts[site])
            await self.front.receive(site, snapshot)

    async def toggle(self, messages: int) -> float:
        """Seconds for ``messages`` one-event deltas (an agent not ready, then ready again)."""
        agents = list(self.network.agents.values())[:messages]
        deltas = []
        for n in range(messages):
            agent = agents[(n // 2) % len(agents)]
            event = (
                AgentNotReady(agent_id=agent.id, at=0.0)
                if n % 2 == 0
                else AgentReady(agent_id=agent.id, at=0.0)
            )
            self.seq[agent.site_id] += 1
            deltas.append(Delta(site_id=agent.site_id, seq=self.seq[agent.site_id], events=[event]))
        started = time.perf_counter()
        for delta in deltas:
            await self.front.receive(delta.site_id, delta)
        return time.perf_counter() - started


def instruments_seconds(front: RouterFront, messages: int) -> float:
    """The instruments' own work for ``messages`` messages, as ``RouterFront`` does it."""
    metrics = front.metrics
    started = time.perf_counter()
    for n in range(messages):
        site = f"site{n % 20:03d}"
        metrics.received(site, "delta")
        begun = time.perf_counter()
        metrics.decided("delta", time.perf_counter() - begun)
        metrics.sent_to(site, "ack")
    return time.perf_counter() - started


async def measure(args: argparse.Namespace, database: Database) -> dict[str, Any]:
    t0 = time.perf_counter()
    network = network_from_dict(network_document(args.sites, args.agents, args.seed))
    router = Router(network, database)
    await router.snapshots(args.queued)
    setup = time.perf_counter() - t0

    realtime, scrapes = [], []
    body = b""
    for _ in range(args.scrapes):
        started = time.perf_counter()
        await router.routing.realtime_stats()
        realtime.append(time.perf_counter() - started)
        started = time.perf_counter()
        body = await scrape(
            router.front, network.sites, router.routing.realtime_stats, timeout=60.0
        )
        scrapes.append(time.perf_counter() - started)
    series = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))

    # A/B in one run: the path with the instruments, and with them replaced by no-ops,
    # alternating rounds so that the machine's drift hits both alike.
    metrics = router.front.metrics
    silent = {name: (lambda *_: None) for name in ("received", "decided", "sent_to")}
    on: list[float] = []
    off: list[float] = []
    for _ in range(args.rounds):
        on.append(await router.toggle(args.messages))
        vars(metrics).update(silent)
        off.append(await router.toggle(args.messages))
        for name in silent:
            del vars(metrics)[name]
    path, bare = statistics.median(on), statistics.median(off)
    own = instruments_seconds(router.front, args.messages)
    router.routing.close()
    return {
        "setup_seconds": setup,
        "queues": len(network.queues),
        "realtime_p50": statistics.median(realtime),
        "realtime_max": max(realtime),
        "scrape_p50": statistics.median(scrapes),
        "scrape_max": max(scrapes),
        "bytes": len(body),
        "series": series,
        "per_message_us": path / args.messages * 1e6,
        "bare_us": bare / args.messages * 1e6,
        "instruments_us": own / args.messages * 1e6,
    }


def machine() -> str:
    cpu = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--queued", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=11)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7, help="A/B rounds of --messages.")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vcc-metrics-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'vcc.db'}"
        upgrade(url)
        database = Database(url)
        try:
            r = asyncio.run(measure(args, database))
        finally:
            database.close()
    print(f"# metrics_bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"# load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.agents:,} agents / {args.sites} sites / {r['queues']} queues, "
        f"{args.queued} contacts queued (set-up {r['setup_seconds']:.1f} s)"
    )
    print(
        f"baseline realtime_stats(): p50 {r['realtime_p50'] * 1e3:.1f} ms, "
        f"max {r['realtime_max'] * 1e3:.1f} ms"
    )
    print(
        f"GET /metrics scrape():     p50 {r['scrape_p50'] * 1e3:.1f} ms, "
        f"max {r['scrape_max'] * 1e3:.1f} ms ({r['scrape_p50'] / r['realtime_p50']:.2f}x the "
        f"baseline); {r['bytes'] / 1024:.0f} KiB, {r['series']:,} series"
    )
    share = r["instruments_us"] / r["per_message_us"]
    print(
        f"per site message: router path {r['per_message_us']:.1f} µs, of which the "
        f"instruments {r['instruments_us']:.2f} µs ({share:.1%})"
    )
    print(
        f"A/B, median of {args.rounds} rounds of {args.messages:,} messages: with the "
        f"instruments {r['per_message_us']:.1f} µs, without {r['bare_us']:.1f} µs "
        f"({r['per_message_us'] / r['bare_us'] - 1:+.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
