#!/usr/bin/env python
"""Runtime benchmark (issue 3): route requests through the real router path, end to end.

Run from the repository root::

    python benchmarks/runtime_bench.py                  # 20,000 agents / 20 sites, ~3 minutes
    python benchmarks/runtime_bench.py --quick          # shorter phases, Ray router only
    python benchmarks/runtime_bench.py --json out.json

The router is what ``vcc router`` runs, in its own process: the network's shards as Ray actors
on a local Ray (:mod:`orchestrator.router_actor`), the front that splits site messages among
them, and the sites' authenticated WebSocket endpoint on uvicorn (:mod:`orchestrator.site_link`).
Only the network differs: the routing benchmark's generator (``routing_bench.network_document``:
50 skills, 2-5 per agent, one queue per skill, half SERVICE and half LEAST_COST).  For the
ratio, the same router runs a second time with the shards in the front's own process
(``LocalShard``, no Ray).

The sites are lightweight scripted clients in this process (one real WebSocket each, speaking
:mod:`site_agent.protocol` in JSON, batching events 5 ms like the site agent), not simulated
PBXs, so that what is measured is the router path.  Each sends a snapshot (its 1,000 agents
logged in and ready, half of them talking), then:

1. **low load**: one route request at a time: ``ContactArrived`` -> the router decides ->
   ``Deliver`` to the chosen agent's site (and ``TransferOut`` to the landing site when it is
   another one) -> that site confirms (``DeliveryConfirmed``, with one random talking call of
   the site ending, so occupancy stays put) -> the router acknowledges the delta.  "Route" is
   arrival sent to ``Deliver`` received; "cycle" is arrival sent to the confirmation's ``Ack``;
2. **saturation**: closed loop, ``--window`` requests in flight per site: the most the router
   completes per second, and the latencies at that load;
3. **Cisco's rate**: an open loop of Poisson arrivals at 400 calls/s over the 20 sites (the
   reference figure of a 48,000-agent Cisco contact centre at peak);
4. **state updates**: the sites toggle free agents not ready / ready, one event per delta and
   then 100 per delta: agent events the router ingests per second (acknowledged).

Baselines measured in the same run: a trivial Ray actor call round trip (the shard actor's
``next_timer``, from the router process, awaited as the front awaits its calls), and a bare
WebSocket echo on the same uvicorn server (sequential round trips, and throughput with the
same connections and window).  CPU time of the router process, its shard actor and the client
process is read from /proc for each phase, so the bottleneck is named, not guessed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import itertools
import json
import os
import platform
import pstats
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from fastapi import WebSocket  # noqa: E402
from routing_bench import network_document  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from routing.config import network_from_dict  # noqa: E402

SEED = 20240602
TOKEN = "bench-token"
CISCO_RATE = 400.0  # calls/s, the 48k-agent reference
FILL = 0.5  # share of each site's agents talking from the snapshot on
BATCH_SECONDS = 0.005  # as the site agent (SiteAgentSettings.batch_seconds)
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the router process


def serve_router(args: argparse.Namespace) -> None:
    """The router as ``vcc router`` builds it, on the generated network; prints one ``READY``
    line (port, pids, Ray baseline) and serves until SIGINT/SIGTERM."""
    from orchestrator.router_actor import (  # noqa: PLC0415
        LocalShard,
        RayShard,
        RouterFront,
        RouterShard,
        ShardClient,
        start_ray,
        start_ray_shards,
        stop_ray,
    )
    from orchestrator.sharding import plan_shards  # noqa: PLC0415
    from orchestrator.site_link import SiteHub, build_app, listening_socket, serve  # noqa: PLC0415

    t0 = time.perf_counter()
    network = network_from_dict(network_document(args.sites, args.agents, args.seed))
    plan = plan_shards(network, args.shards)
    started = False
    baseline: dict[str, Any] = {}
    actor_pids: list[int] = []
    clients: list[ShardClient]
    if args.local_shards:
        clients = [
            LocalShard(RouterShard(net, None, i, len(plan))) for i, net in enumerate(plan.networks)
        ]
    else:
        started = start_ray(None, num_cpus=max(2, len(plan)))
        ray_clients = start_ray_shards(plan, None)
        clients = list(ray_clients)
        import ray  # noqa: PLC0415

        actor_pids = ray.get([c.actor.__ray_call__.remote(_pid) for c in ray_clients])
        baseline = asyncio.run(_ray_round_trips(ray_clients[0].actor, args.baseline_calls))
    build_seconds = time.perf_counter() - t0
    front = RouterFront(plan, clients)
    hub = SiteHub(front, {site: TOKEN for site in network.sites})
    app = build_app(hub)

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.send_text(await websocket.receive_text())

    profiler = cProfile.Profile()

    @app.post("/bench/profile/start")
    async def profile_start() -> dict[str, bool]:
        profiler.enable()
        return {"profiling": True}

    @app.post("/bench/profile/stop")
    async def profile_stop() -> dict[str, str]:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        return {"tottime": out.getvalue()}

    @app.get("/bench/counters")
    async def counters() -> dict[str, Any]:
        shards = await front.shard_counters()
        batched = [(c.calls, c.batches) for c in clients if isinstance(c, RayShard)]
        return {
            "front": dataclasses.asdict(front.counters),
            "shards": [dataclasses.asdict(c) for c in shards],
            "actor_calls": sum(calls for calls, _ in batched),
            "actor_batches": sum(batches for _, batches in batched),
        }

    sock = listening_socket("127.0.0.1", 0)
    ready = {
        "port": sock.getsockname()[1],
        "pid": os.getpid(),
        "actor_pids": actor_pids,
        "shards": len(plan),
        "build_seconds": build_seconds,
        "ray": baseline,
    }
    print("READY " + json.dumps(ready), flush=True)
    try:
        serve(app, sock, log_level="warning")
    finally:
        front.close()
        sock.close()
        stop_ray(started)


def _pid(_: Any) -> int:
    return os.getpid()


async def _ray_round_trips(actor: Any, calls: int) -> dict[str, Any]:
    """A trivial call on the shard actor (``next_timer``: no argument, a float back), awaited
    one after the other from an event loop, as the front awaits its calls; and the throughput
    with 64 in flight."""
    for _ in range(200):  # warm up
        await actor.next_timer.remote()
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        await actor.next_timer.remote()
        samples.append(time.perf_counter() - t)
    t = time.perf_counter()
    done = 0
    while done < calls * 2:
        await asyncio.gather(*(actor.next_timer.remote() for _ in range(64)))
        done += 64
    rate = done / (time.perf_counter() - t)
    return {"round_trip": stats(samples), "calls_per_s_64_in_flight": rate}


# --------------------------------------------------------------------------- measurement helpers


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 0.50) * 1e3,
        "p99_ms": percentile(ordered, 0.99) * 1e3,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1e3,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


class CpuWatch:
    """CPU used by each named process, and by the whole machine, over a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.busy0, self.total0 = machine_busy()
        self.t0 = time.perf_counter()

    def shares(self) -> dict[str, float]:
        """Each process's CPU in cores (1.0: one core busy the whole phase)."""
        wall = time.perf_counter() - self.t0
        shares = {
            name: (cpu_seconds(pid) - self.start[name]) / wall for name, pid in self.pids.items()
        }
        busy, total = machine_busy()
        cores = os.cpu_count() or 1
        shares["machine"] = (busy - self.busy0) / max(total - self.total0, 1e-9) * cores
        return shares


# --------------------------------------------------------------------------- the scripted sites


@dataclass
class Contact:
    """A route request in flight.  ``decided``: when the router's first order for it (a
    ``TransferOut`` to its site, or its ``Deliver``) arrived; ``held``: the router's answer to
    the delta that carried it (the ``Ack``) came first, so the engine queued it (no free agent
    that qualifies) or held it for a cheaper site: it waits, by policy, for an agent to free."""

    origin: str
    queue_id: str
    sent: float
    decided: float | None = None
    held: bool = False


@dataclass
class Phase:
    name: str
    route: list[float] = field(default_factory=list)  # decided at once: arrival -> Deliver
    cycle: list[float] = field(default_factory=list)  # decided at once: arrival -> confirm Ack
    held_wait: list[float] = field(default_factory=list)  # held: arrival -> Deliver
    completed: int = 0
    held: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    events_acked: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started


class Site:
    """One scripted site agent: a WebSocket, numbered deltas, and its agents' calls."""

    def __init__(self, bench: Bench, site_id: str, agents: list[str], region: str) -> None:
        self.bench = bench
        self.site_id = site_id
        self.agents = agents
        self.region = region
        self.ws: Any = None
        self.seq = 0
        self.outbox: list[str] = []
        self.completions: list[str] = []  # contacts confirmed in the outbox
        self.arrivals: list[str] = []  # contacts arriving in the outbox
        self.on_ack: dict[int, tuple[list[str], list[str], int]] = {}
        self.pending = asyncio.Event()
        self.talking: list[str] = []  # contacts talking here (random ones end)
        self.agent_of: dict[str, str] = {}
        self.busy: set[str] = set()
        self.window = asyncio.Semaphore(1)
        self.acked = 0
        self.ack_changed = asyncio.Event()
        self.sent = asyncio.Event()  # set after each delta goes out
        self.batch_seconds = BATCH_SECONDS
        self.transfers_out = 0
        self.transfers_settled = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, url: str) -> None:
        from websockets.asyncio.client import connect  # noqa: PLC0415

        self.ws = await connect(
            f"{url}/sites/{self.site_id}/stream",
            additional_headers={"Authorization": f"Bearer {TOKEN}"},
            max_size=None,
            compression=None,
        )
        self.tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._receive_loop()),
        ]

    async def snapshot(self, rng: random.Random, skills: dict[str, list[str]]) -> None:
        """All agents logged in and ready, ``FILL`` of them talking; then an empty delta whose
        acknowledgement says the snapshot is applied."""
        now = time.time()
        talking = rng.sample(self.agents, round(FILL * len(self.agents)))
        contacts = []
        for agent_id in talking:
            contact_id = self.bench.new_id()
            queue_id = "q" + rng.choice(skills[agent_id])[1:]
            contacts.append(
                {
                    "contact": self.contact(contact_id, queue_id, now),
                    "state": "talking",
                    "agent_id": agent_id,
                }
            )
            self.started_talking(contact_id, agent_id)
        agents = [{"agent_id": a, "logged_in": True, "ready": True} for a in self.agents]
        snapshot = {
            "kind": "snapshot",
            "site_id": self.site_id,
            "at": now,
            "agents": agents,
            "contacts": contacts,
        }
        self.seq = 0
        await self.ws.send(json.dumps(snapshot))
        await self.bench.wait_acked(self, self.enqueue([]))

    def contact(self, contact_id: str, queue_id: str, now: float) -> dict[str, Any]:
        return {
            "id": contact_id,
            "queue_id": queue_id,
            "arrival": now,
            "caller_region": self.region,
        }

    def started_talking(self, contact_id: str, agent_id: str) -> None:
        self.talking.append(contact_id)
        self.agent_of[contact_id] = agent_id
        self.busy.add(agent_id)

    def end_random_call(self, rng: random.Random) -> str | None:
        if not self.talking:
            return None
        i = rng.randrange(len(self.talking))
        self.talking[i], self.talking[-1] = self.talking[-1], self.talking[i]
        contact_id = self.talking.pop()
        self.busy.discard(self.agent_of.pop(contact_id))
        return contact_id

    def enqueue(self, events: list[str], completes: list[str] | None = None) -> int:
        """Queue events for the next delta; returns the seq it will go out with."""
        self.outbox.extend(events)
        if completes:
            self.completions.extend(completes)
        self.pending.set()
        return self.seq + 1

    async def _send_loop(self) -> None:
        while True:
            await self.pending.wait()
            if self.batch_seconds:
                await asyncio.sleep(self.batch_seconds)
            self.pending.clear()
            events, self.outbox = self.outbox, []
            completes, self.completions = self.completions, []
            arrivals, self.arrivals = self.arrivals, []
            self.seq += 1
            self.on_ack[self.seq] = (completes, arrivals, len(events))
            await self.ws.send(
                f'{{"kind":"delta","site_id":"{self.site_id}","seq":{self.seq},'
                f'"events":[{",".join(events)}]}}'
            )
            self.sent.set()

    async def _receive_loop(self) -> None:
        async for text in self.ws:
            message = json.loads(text)
            kind = message["kind"]
            if kind == "ack":
                self.acked = message["seq"]
                self.ack_changed.set()
                completes, arrivals, events = self.on_ack.pop(message["seq"], ([], [], 0))
                self.bench.acked(self, completes, arrivals, events)
            elif kind == "deliver":
                self.bench.delivered(self, message)
            elif kind == "transfer_out":  # the call leaves at once: confirm it
                self.transfers_out += 1
                self.bench.decided(message["contact_id"])
                self.enqueue(
                    [
                        json.dumps(
                            {
                                "kind": "contact_transferred",
                                "reservation": message["reservation"],
                                "contact_id": message["contact_id"],
                                "to_site": message["to_site"],
                                "at": time.time(),
                            }
                        )
                    ]
                )
            elif kind == "transfer_settled":
                self.transfers_settled += 1  # a scripted site keeps no list of calls sent away
            elif kind == "snapshot_request":
                raise RuntimeError(f"{self.site_id}: router asked for a snapshot: {message}")
            else:
                raise RuntimeError(f"{self.site_id}: unexpected {kind}: {message}")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.ws.close()


class Bench:
    """The twenty sites, the contacts in flight, and the figures of the current phase."""

    def __init__(self, network: Any, rng: random.Random) -> None:
        self.rng = rng
        self.network = network
        by_site: dict[str, list[str]] = {s: [] for s in network.sites}
        self.skills: dict[str, list[str]] = {}
        for agent in network.agents.values():
            by_site[agent.site_id].append(agent.id)
            self.skills[agent.id] = sorted(agent.skills)
        self.sites = {
            s: Site(self, s, agents, network.sites[s].region) for s, agents in by_site.items()
        }
        supply = dict.fromkeys(network.queues, 0)
        for skills in self.skills.values():
            for skill in skills:
                supply["q" + skill[1:]] += 1
        self.queue_ids = sorted(network.queues)
        weights = [supply[q] * rng.lognormvariate(0.0, 0.5) for q in self.queue_ids]
        self.cum_weights = list(itertools.accumulate(weights))
        self.contacts: dict[str, Contact] = {}
        self.ids = itertools.count(1)
        self.phase = Phase("setup")
        self.progress = asyncio.Event()  # set whenever a contact completes

    def new_id(self) -> str:
        return f"b{next(self.ids)}"

    # ------------------------------------------------------------------ traffic

    def arrive(self, site: Site) -> str:
        contact_id = self.new_id()
        queue_id = self.rng.choices(self.queue_ids, cum_weights=self.cum_weights)[0]
        now = time.perf_counter()
        contact = site.contact(contact_id, queue_id, time.time())
        self.contacts[contact_id] = Contact(site.site_id, queue_id, now)
        site.arrivals.append(contact_id)
        site.enqueue(
            [json.dumps({"kind": "contact_arrived", "contact": contact, "at": time.time()})]
        )
        return contact_id

    def decided(self, contact_id: str) -> None:
        contact = self.contacts.get(contact_id)
        if contact is not None and contact.decided is None:
            contact.decided = time.perf_counter()

    def delivered(self, site: Site, message: dict[str, Any]) -> None:
        """The agent answers at once; one random call of the site ends with it."""
        contact_id = message["contact"]["id"]
        now = time.perf_counter()
        self.decided(contact_id)
        contact = self.contacts.get(contact_id)
        if contact is not None:
            (self.phase.held_wait if contact.held else self.phase.route).append(now - contact.sent)
        at = time.time()
        events = []
        if message.get("from_site") is not None:  # taken in from transit first
            events.append(
                json.dumps(
                    {
                        "kind": "contact_taken_in",
                        "reservation": message["reservation"],
                        "contact_id": contact_id,
                        "at": at,
                    }
                )
            )
        events.append(
            json.dumps(
                {
                    "kind": "delivery_confirmed",
                    "reservation": message["reservation"],
                    "contact_id": contact_id,
                    "at": at,
                }
            )
        )
        ended = site.end_random_call(self.rng)
        if ended is not None:
            events.append(
                json.dumps(
                    {"kind": "contact_finished", "contact_id": ended, "at": at, "wrap_up": 0}
                )
            )
        site.started_talking(contact_id, message["agent_id"])
        site.enqueue(events, [contact_id])

    def acked(self, site: Site, completes: list[str], arrivals: list[str], events: int) -> None:
        now = time.perf_counter()
        self.phase.events_acked += events
        for contact_id in arrivals:
            contact = self.contacts.get(contact_id)
            if contact is not None and contact.decided is None:
                contact.held = True
                self.phase.held += 1
        for contact_id in completes:
            contact = self.contacts.pop(contact_id, None)
            if contact is None:
                continue
            if not contact.held:
                self.phase.cycle.append(now - contact.sent)
            self.phase.completed += 1
            self.sites[contact.origin].window.release()
        if completes or arrivals:
            self.progress.set()

    @staticmethod
    async def wait_acked(site: Site, seq: int, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while site.acked < seq:
            site.ack_changed.clear()
            await asyncio.wait_for(site.ack_changed.wait(), deadline - time.perf_counter())

    async def wait_progress(self, timeout: float) -> bool:
        self.progress.clear()
        try:
            await asyncio.wait_for(self.progress.wait(), timeout)
        except TimeoutError:
            self.check_sites()
            return False
        return True

    def check_sites(self) -> None:
        """A site's loop that failed (an unexpected message) fails the run, not stalls it."""
        for site in self.sites.values():
            for task in site.tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise RuntimeError(f"site {site.site_id} failed") from task.exception()

    async def drain(self, timeout: float = 60.0) -> None:
        """Until every contact sent is confirmed and acknowledged.  Contacts still queued
        for want of a free agent are helped along by ending a few calls (unmeasured)."""
        deadline = time.perf_counter() + timeout
        while self.contacts and time.perf_counter() < deadline:
            if await self.wait_progress(0.5):
                continue
            for site in self.sites.values():
                at = time.time()
                ended = [site.end_random_call(self.rng) for _ in range(10)]
                site.enqueue(
                    [
                        f'{{"kind":"contact_finished","contact_id":"{c}","at":{at},"wrap_up":0}}'
                        for c in ended
                        if c is not None
                    ]
                )

    # ------------------------------------------------------------------ phases

    def begin(self, name: str, pids: dict[str, int]) -> CpuWatch:
        self.phase = Phase(name)
        return CpuWatch(pids)

    def end(self, watch: CpuWatch) -> Phase:
        phase = self.phase
        phase.ended = time.perf_counter()
        phase.cpu = watch.shares()
        return phase

    async def one_at_a_time(self, requests: int, batch_seconds: float = BATCH_SECONDS) -> None:
        sites = list(self.sites.values())
        for site in sites:
            site.batch_seconds = batch_seconds
        for n in range(requests):
            contact_id = self.arrive(sites[n % len(sites)])
            deadline = time.perf_counter() + 30
            # Until it is confirmed, or known to be held (it is not waited for then).
            while contact_id in self.contacts and not self.contacts[contact_id].held:
                if not await self.wait_progress(deadline - time.perf_counter()):
                    raise TimeoutError(f"request {n} not completed within 30 s")
        for site in sites:
            site.batch_seconds = BATCH_SECONDS

    async def closed_loop(self, seconds: float, window: int) -> None:
        for site in self.sites.values():
            site.window = asyncio.Semaphore(window)
        stop_at = time.perf_counter() + seconds

        async def feed(site: Site) -> None:
            while time.perf_counter() < stop_at:
                await site.window.acquire()
                self.arrive(site)

        await asyncio.gather(*(feed(s) for s in self.sites.values()))

    async def open_loop(self, seconds: float, rate: float) -> None:
        """Poisson arrivals at ``rate`` per second in all, each landing at a random site."""
        for site in self.sites.values():
            site.window = asyncio.Semaphore(1 << 30)
        loop = asyncio.get_running_loop()
        sites = list(self.sites.values())
        start = loop.time()
        at = start
        while at - start < seconds:
            at += self.rng.expovariate(rate)
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.arrive(self.rng.choice(sites))

    async def agent_events(self, seconds: float, per_delta: int, window: int) -> None:
        """Free agents toggled not ready / ready: ``per_delta`` events a delta, ``window``
        deltas unacknowledged per site."""
        stop_at = time.perf_counter() + seconds
        for site in self.sites.values():
            site.batch_seconds = 0.0  # one delta per ``per_delta`` events

        async def toggle(site: Site) -> None:
            free = [a for a in site.agents if a not in site.busy]
            cursor = 0
            not_ready: list[str] = []
            while time.perf_counter() < stop_at:
                events = []
                for _ in range(per_delta):
                    at = time.time()
                    if not_ready and (len(not_ready) >= 50 or cursor % 2):
                        agent_id = not_ready.pop()
                        events.append(f'{{"kind":"agent_ready","agent_id":"{agent_id}","at":{at}}}')
                    else:
                        agent_id = free[cursor % len(free)]
                        not_ready.append(agent_id)
                        events.append(
                            f'{{"kind":"agent_not_ready","agent_id":"{agent_id}","at":{at},'
                            '"reason":"break"}'
                        )
                    cursor += 1
                site.sent.clear()
                site.enqueue(events)
                await site.sent.wait()
                # At most ``window`` deltas unacknowledged.
                await self.wait_acked(site, site.seq - window + 1)
            if not_ready:
                ready = [
                    f'{{"kind":"agent_ready","agent_id":"{a}","at":{time.time()}}}'
                    for a in not_ready
                ]
                await self.wait_acked(site, site.enqueue(ready))
            site.batch_seconds = BATCH_SECONDS

        await asyncio.gather(*(toggle(s) for s in self.sites.values()))


# --------------------------------------------------------------------------- echo baseline


async def echo_baseline(url: str, sites: int, window: int, calls: int, seconds: float) -> dict:
    """A bare WebSocket echo on the same server: sequential round trips of a delta-sized frame,
    then ``sites`` connections with ``window`` frames in flight each."""
    from websockets.asyncio.client import connect  # noqa: PLC0415

    frame = json.dumps(
        {
            "kind": "delta",
            "site_id": "site000",
            "seq": 1,
            "events": [
                {
                    "kind": "contact_arrived",
                    "contact": {"id": "b1", "queue_id": "q01", "arrival": 0.0},
                    "at": 0.0,
                }
            ],
        }
    )
    async with connect(f"{url}/echo", compression=None) as ws:
        for _ in range(200):
            await ws.send(frame)
            await ws.recv()
        samples = []
        for _ in range(calls):
            t = time.perf_counter()
            await ws.send(frame)
            await ws.recv()
            samples.append(time.perf_counter() - t)
    stop_at = time.perf_counter() + seconds
    counts = [0] * sites

    async def pump(i: int) -> None:
        async with connect(f"{url}/echo", compression=None) as ws:
            for _ in range(window):
                await ws.send(frame)
            while time.perf_counter() < stop_at:
                await ws.recv()
                counts[i] += 1
                await ws.send(frame)
            for _ in range(window):
                await ws.recv()

    t = time.perf_counter()
    await asyncio.gather(*(pump(i) for i in range(sites)))
    return {
        "round_trip": stats(samples),
        "frames_per_s": sum(counts) / (time.perf_counter() - t),
    }


# --------------------------------------------------------------------------- one router run


async def measure(args: argparse.Namespace, ready: dict[str, Any]) -> dict[str, Any]:
    import httpx  # noqa: PLC0415

    url = f"ws://127.0.0.1:{ready['port']}"
    http = url.replace("ws://", "http://")
    network = network_from_dict(network_document(args.sites, args.agents, args.seed))
    bench = Bench(network, random.Random(args.seed + 1))
    pids = {"router": ready["pid"], "clients": os.getpid()}
    pids |= {f"shard{i}": pid for i, pid in enumerate(ready["actor_pids"])}
    result: dict[str, Any] = {"ready": ready}

    echo = await echo_baseline(url, args.sites, args.window, args.baseline_calls, 3.0)
    result["echo"] = echo
    print(f"  echo baseline: {echo}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    await asyncio.gather(*(site.connect(url) for site in bench.sites.values()))
    await asyncio.gather(*(site.snapshot(bench.rng, bench.skills) for site in bench.sites.values()))
    result["snapshots_seconds"] = time.perf_counter() - t
    print(f"  snapshots applied in {result['snapshots_seconds']:.1f} s", file=sys.stderr)

    phases: list[Phase] = []

    async def run(name: str, body: Callable[[], Any]) -> Phase:
        watch = bench.begin(name, pids)
        await body()
        await bench.drain()
        phase = bench.end(watch)
        phases.append(phase)
        print(f"  {describe(phase)}", file=sys.stderr, flush=True)
        return phase

    await run("warm-up", lambda: bench.closed_loop(2.0, args.window))
    await run(
        "low load (1 in flight), 5 ms batching",
        lambda: bench.one_at_a_time(args.low_load_requests),
    )
    await run(
        "low load (1 in flight), no batching",
        lambda: bench.one_at_a_time(args.low_load_requests, batch_seconds=0.0),
    )
    await run(
        f"saturation ({args.window} in flight per site)",
        lambda: bench.closed_loop(args.seconds, args.window),
    )
    if args.profile:  # the router's event loop thread under cProfile, a second saturation run
        async with httpx.AsyncClient(base_url=http, timeout=60) as client:
            await client.post("/bench/profile/start")
            await run("saturation, profiled", lambda: bench.closed_loop(args.seconds, args.window))
            result["profile"] = (await client.post("/bench/profile/stop")).json()["tottime"]
    await run(
        f"open loop at {CISCO_RATE:g} calls/s",
        lambda: bench.open_loop(args.seconds, CISCO_RATE),
    )
    await run("agent events, 1 per delta", lambda: bench.agent_events(args.seconds / 2, 1, 8))
    await run("agent events, 100 per delta", lambda: bench.agent_events(args.seconds / 2, 100, 4))
    async with httpx.AsyncClient(base_url=http) as client:
        result["counters"] = (await client.get("/bench/counters")).json()
    result["transfers_out"] = sum(s.transfers_out for s in bench.sites.values())
    result["undelivered"] = len(bench.contacts)
    await asyncio.gather(*(site.close() for site in bench.sites.values()))
    result["phases"] = [
        {
            "name": p.name,
            "seconds": p.seconds(),
            "completed": p.completed,
            "cycles_per_s": p.completed / p.seconds(),
            "events_acked": p.events_acked,
            "events_per_s": p.events_acked / p.seconds(),
            "route": stats(p.route),
            "cycle": stats(p.cycle),
            "held": p.held,
            "held_wait": stats(p.held_wait),
            "cpu_cores": p.cpu,
        }
        for p in phases
    ]
    return result


def describe(p: Phase) -> str:
    route, cycle = stats(p.route), stats(p.cycle)
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in p.cpu.items())
    return (
        f"{p.name}: {p.completed / p.seconds():,.0f} cycles/s, {p.events_acked / p.seconds():,.0f}"
        f" events/s acked; route p50 {route['p50_ms']:.2f} p99 {route['p99_ms']:.2f} ms, cycle "
        f"p50 {cycle['p50_ms']:.2f} p99 {cycle['p99_ms']:.2f} ms; held {p.held}; CPU cores: {cpu}"
    )


def run_router(args: argparse.Namespace, local: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-router",
        "--sites",
        str(args.sites),
        "--agents",
        str(args.agents),
        "--seed",
        str(args.seed),
        "--shards",
        str(args.shards),
        "--baseline-calls",
        str(args.baseline_calls),
        *(["--local-shards"] if local else []),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = ""
        for line in process.stdout:
            if line.startswith("READY "):
                break
        else:
            raise SystemExit(f"the router process ended ({process.wait()}) before it was ready")
        ready = json.loads(line.removeprefix("READY "))
        try:
            import uvloop  # noqa: PLC0415

            runner: Callable[..., Any] = uvloop.run
        except ImportError:
            runner = asyncio.run
        result: dict[str, Any] = runner(measure(args, ready))
        result["mode"] = "in-process shards (no Ray)" if local else "Ray actors"
        return result
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores (nproc), {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.platform()}"
    )


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def report(runs: list[dict[str, Any]], header: dict[str, str]) -> str:
    lines = [f"{k}: {v}" for k, v in header.items()]
    for run in runs:
        ready = run["ready"]
        lines += [
            "",
            f"== router with {run['mode']}: {ready['shards']} shard(s), built in "
            f"{ready['build_seconds']:.1f} s; 20 snapshots applied in "
            f"{run['snapshots_seconds']:.1f} s",
        ]
        if ready["ray"]:
            ray_rt = ready["ray"]["round_trip"]
            lines.append(
                f"baseline Ray actor call (awaited, from the router process): p50 "
                f"{ray_rt['p50_ms']:.3f} ms, p99 {ray_rt['p99_ms']:.3f} ms; "
                f"{ready['ray']['calls_per_s_64_in_flight']:,.0f} calls/s with 64 in flight"
            )
        echo = run["echo"]
        lines.append(
            f"baseline WebSocket echo (same server): p50 {echo['round_trip']['p50_ms']:.3f} ms, "
            f"p99 {echo['round_trip']['p99_ms']:.3f} ms; {echo['frames_per_s']:,.0f} frames/s "
            "with the sites' connections and window"
        )
        lines.append(
            "| phase | cycles/s | events/s | route p50 / p99 ms | cycle p50 / p99 ms | held "
            "(wait p50 ms) | CPU cores: router / shard / clients / other / machine |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---|")
        for p in run["phases"]:
            cpu = p["cpu_cores"]
            shard = sum(v for k, v in cpu.items() if k.startswith("shard"))
            other = cpu["machine"] - cpu["router"] - shard - cpu["clients"]
            held = f"{p['held']} ({p['held_wait']['p50_ms']:.0f})" if p["held"] else "0"
            lines.append(
                f"| {p['name']} | {p['cycles_per_s']:,.0f} | {p['events_per_s']:,.0f} | "
                f"{p['route']['p50_ms']:.2f} / {p['route']['p99_ms']:.2f} | "
                f"{p['cycle']['p50_ms']:.2f} / {p['cycle']['p99_ms']:.2f} | {held} | "
                f"{cpu['router']:.2f} / {shard:.2f} / {cpu['clients']:.2f} / {other:.2f} / "
                f"{cpu['machine']:.2f} |"
            )
        front = run["counters"]["front"]
        shards = run["counters"]["shards"]
        lines.append(
            f"router counters: {front['deltas']:,} deltas, {front['gaps']} gaps, "
            f"{front['snapshot_requests']} snapshot requests; deliveries "
            f"{sum(s['deliveries'] for s in shards):,}, transfers ordered "
            f"{run['transfers_out']:,}, refused events {sum(s['refused_events'] for s in shards)}"
            f", contacts left undelivered {run['undelivered']}"
        )
        counters = run["counters"]
        if counters["actor_batches"]:
            lines.append(
                f"shard calls: {counters['actor_calls']:,} in {counters['actor_batches']:,} Ray "
                f"actor calls ({counters['actor_calls'] / counters['actor_batches']:.1f} a batch)"
            )
        if "profile" in run:
            lines += ["router process, event loop thread, by own time:", run["profile"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of a phase.")
    parser.add_argument("--window", type=int, default=8, help="Requests in flight per site.")
    parser.add_argument("--low-load-requests", type=int, default=500)
    parser.add_argument("--baseline-calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="Short phases, Ray router only.")
    parser.add_argument(
        "--modes",
        default="ray,local",
        help="Router runs, in order: ray (shards as Ray actors), local (shards in process).",
    )
    parser.add_argument("--json", help="Write every figure as JSON to this path.")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the router's event loop (one more phase)."
    )
    parser.add_argument("--serve-router", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--local-shards", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_router:
        serve_router(args)
        return 0
    if args.quick:
        args.seconds, args.low_load_requests, args.baseline_calls = 4.0, 300, 500
        args.modes = "ray"
    header = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "command": shlex.join(["python", "benchmarks/runtime_bench.py", *(argv or sys.argv[1:])]),
        "load average at start": load_average(),
        "network": f"{args.agents:,} agents over {args.sites} sites (routing_bench generator, "
        f"seed {args.seed})",
    }
    print(f"runtime bench: {header['network']}", file=sys.stderr, flush=True)
    runs = []
    for mode in args.modes.split(","):
        if mode not in ("ray", "local"):
            parser.error(f"unknown mode {mode!r} in --modes")
        local = mode == "local"
        print(f"router with {'in-process shards' if local else 'Ray'}:", file=sys.stderr)
        runs.append(run_router(args, local))
    header["load average at end"] = load_average()
    text = report(runs, header)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
