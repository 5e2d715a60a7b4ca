"""vcc as a system on one machine: the start-up and shutdown that `vcc up`, `vcc demo` and
`vcc router` share.

:func:`running_system` starts, in order: the control API's database in a thread (migrated by
Alembic, its configuration made the scenario's) while Ray starts (a small local Ray without a
dashboard, or the cluster at ``ray_address``); the router's shards as Ray actors; the router's
front on the network's clock; one uvicorn server on the given socket serving the control API
(when there is one), the sites' WebSocket links, ``GET /healthz`` and ``GET /metrics``; and the
sites simulated in this process, each a site agent with its simulated PBX connecting over
loopback.  It yields
once every simulated site is connected and in step, and on the way out stops all of it in the
reverse order, Ray included, whether the body ended, failed or was cancelled.

**The clock.**  Given a :class:`~site_agent.settings.ClockSettings`, the router's front runs on
the scenario's clock (the engine's ``clock_epoch`` the scenario's, so business hours and
interval reports fall on the scenario's days) at the clock's speed, and every simulated PBX
started here is pinned to the same origin: all read the scenario's start at that wall-clock
instant.  Without an origin, one is picked just before the simulated sites start; `vcc
site-agent` processes given the same origin and speed (``--clock-origin``, ``--speed``, or
``VCC_CLOCK__*``) then read the same time.  Without clock settings the front runs on Unix time
(`vcc router` for real PBXs).

:func:`serve_until_stopped` runs one until SIGINT or SIGTERM, which shut it down cleanly at
any point, start-up included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from orchestrator.api import create_app
from orchestrator.metrics_endpoint import metrics_router
from orchestrator.persistence import Database, upgrade
from orchestrator.ray_routing import RayRouting
from orchestrator.router_actor import RouterFront, start_ray, start_ray_shards, stop_ray
from orchestrator.settings import Settings
from orchestrator.sharding import ShardPlan, plan_shards
from orchestrator.site_link import SiteHub, build_app
from routing.config import NetworkConfig
from routing.settings import RouterSettings
from site_agent.agent import SiteAgent
from site_agent.service import engine_settings, simulated_site_agent
from site_agent.settings import ClockSettings, SiteAgentSettings
from site_agent.simulated_pbx import SimulatedClock
from site_agent.simulation.scenario import Scenario

METRICS_NOTE = (
    "{url}/metrics (Prometheus); live figures also at GET {url}/v1/stats/realtime, 15-minute "
    "reports at GET {url}/v1/reports/intervals"
)


class StartError(Exception):
    """vcc could not start or run (the message is one line for the command line)."""


# ------------------------------------------------------------------ timing


def process_started() -> float:
    """Unix time this process started (Linux ``/proc``; elsewhere: now, which undercounts)."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        started_after_boot = int(stat.rsplit(")", 1)[1].split()[19]) / ticks
        return time.time() - (uptime - started_after_boot)
    except (OSError, ValueError, IndexError):
        return time.time()


class Phases:
    """Wall-clock seconds of each start-up phase, the first from the process's start."""

    def __init__(self) -> None:
        self.born = process_started()
        self.seconds: dict[str, float] = {}
        self._mark = self.born

    def __call__(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = now - self._mark
        self._mark = now

    def since_start(self) -> float:
        return time.time() - self.born

    def describe(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms; :class:`StartError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise StartError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ what to start


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """The control API over a database at ``database_url`` (``settings`` give its keys)."""

    settings: Settings
    database_url: str
    actor: str


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """What :func:`running_system` starts (module docstring).  ``sock`` is bound already (a
    busy port fails before Ray starts); ``tokens`` has every site's token; ``sites`` are
    simulated in this process; ``clock`` ``None``: the router runs on Unix time."""

    scenario: Scenario
    sock: socket.socket
    tokens: Mapping[str, str]
    router: RouterSettings
    shards: int = 1
    num_cpus: int | None = None  # default: one per shard, at least 2
    ray_address: str | None = None
    shard_timeout: float = 120.0
    metrics_timeout: float = 5.0  # a scrape's wait for the shards' figures
    transit_timeout: float | None = None  # None: a restarted router waits for every site
    clock: ClockSettings | None = None
    sites: tuple[str, ...] = ()
    seed: int = 7
    site_agent: SiteAgentSettings = field(default_factory=SiteAgentSettings)
    api: ApiSpec | None = None
    log_level: str = "warning"
    connect_timeout: float = 30.0

    @property
    def where(self) -> str:
        return f"Ray at {self.ray_address}" if self.ray_address else "local Ray"


@dataclass(eq=False)
class System:
    """A running system: where it listens and its live parts."""

    spec: SystemSpec
    plan: ShardPlan
    url: str
    front: RouterFront
    hub: SiteHub
    clock: SimulatedClock | None
    routing: RayRouting | None = None
    database: Database | None = None
    agents: list[SiteAgent] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def links_url(self) -> str:
        """The sites' links are at ``{links_url}/sites/{site}/stream``."""
        return "ws://" + self.url.removeprefix("http://")

    def check(self) -> None:
        """A site agent that stopped on its own failed: say why."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise StartError(f"{task.get_name()} failed: {task.exception()}")

    def all_connected(self) -> bool:
        self.check()
        in_step = dict(self.front.links())
        connected = set(self.hub.connected())
        return all(site in connected and in_step.get(site) for site in self.spec.sites)


def endpoint_lines(url: str, *, keys: str, database: str) -> list[str]:
    """Where the API, its docs, the site links and the metrics are, the keys to use and the
    database: what `vcc demo` and `vcc up` print."""
    return [
        f"API: {url}  (OpenAPI docs: {url}/docs)",
        keys,
        f"Site links: ws://{url.removeprefix('http://')}/sites/{{site}}/stream",
        f"Metrics: {METRICS_NOTE.format(url=url)}",
        f"Database: {database}",
    ]


def shown_url(url: str) -> str:
    """A database URL fit to print (no password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable database URL)"


def prepare_database(url: str, scenario: Scenario, *, actor: str) -> Database:
    """The database at ``url``, migrated, with the scenario's configuration (a stored one that
    differs is replaced, each change in the audit log under ``actor``)."""
    upgrade(url)
    database = Database(url)
    try:
        config = NetworkConfig(
            skills=scenario.skills,
            sites=scenario.sites,
            queues=scenario.queues,
            tariffs=scenario.tariffs,
            agents=scenario.agent_configs(),
        )
        database.config.replace(config, actor=actor)
    except BaseException:
        database.close()
        raise
    return database


# ------------------------------------------------------------------ start and stop


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: whoever runs the system stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Interrupts:
    """SIGINT and SIGTERM cancel ``task`` (the first one only: a second SIGINT interrupts the
    shutdown).  Installed again after Ray starts, since ``ray.init`` takes SIGTERM over."""

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.received: int | None = None
        self.at = 0.0  # time.monotonic() when received
        self._installed: list[int] = []

    def install(self) -> None:
        if self.received is not None:
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._stop, signum)
                if signum not in self._installed:
                    self._installed.append(signum)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)
        self._installed.clear()

    def _stop(self, signum: int) -> None:
        self.received, self.at = signum, time.monotonic()
        self.remove()
        self.task.cancel()


@contextlib.asynccontextmanager
async def running_system(
    spec: SystemSpec,
    phase: Callable[[str], None] = lambda _: None,
    *,
    interrupts: Interrupts | None = None,
) -> AsyncIterator[System]:
    """Start what ``spec`` says (module docstring), yield it running, then stop all of it.

    ``phase`` is called after each step (``ray``, ``shards``, ``database``, ``api``,
    ``sites``).  Raises :class:`StartError` when something does not start."""
    scenario, where = spec.scenario, spec.where
    network = scenario.network()
    plan = plan_shards(network, spec.shards)
    host, port = spec.sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    simulated = spec.clock is not None
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(spec.sock.close)
        db_task: asyncio.Task[Database] | None = None
        if spec.api is not None:
            api = spec.api
            try:
                make_url(api.database_url)
            except Exception as error:
                raise StartError(f"invalid database URL {api.database_url!r}: {error}") from None
            # Migrated and seeded in a thread while Ray starts.
            db_task = asyncio.create_task(
                asyncio.to_thread(
                    prepare_database,
                    api.database_url,
                    scenario,
                    actor=api.actor,
                )
            )
            stack.push_async_callback(_close_database, db_task)
        try:
            ray_started = start_ray(
                spec.ray_address, num_cpus=spec.num_cpus or max(2, len(plan.networks))
            )
        except Exception as error:
            raise StartError(f"cannot start {where}: {error}") from error
        stack.callback(stop_ray, ray_started)
        if interrupts is not None:
            interrupts.install()
        phase("ray")
        database = None
        if db_task is not None:
            database = await _opened(db_task, spec.api)
            phase("database")
        router_settings = engine_settings(scenario, spec.router) if simulated else spec.router
        try:
            clients = start_ray_shards(
                plan,
                router_settings,
                timeout=spec.shard_timeout,
                transit_timeout=spec.transit_timeout,
            )
        except Exception as error:
            raise StartError(f"router shards did not start on {where}: {error}") from error
        phase("shards")
        clock = None
        if spec.clock is None:
            front = RouterFront(plan, clients)
        else:
            origin = spec.clock.origin_timestamp
            clock = SimulatedClock(scenario.simulation.start, spec.clock.speed, origin=origin)
            front = RouterFront(plan, clients, clock=clock.now, speed=spec.clock.speed)
        stack.callback(front.close)
        hub = SiteHub(front, spec.tokens)
        system = System(spec, plan, url, front, hub, clock, database=database)
        agent_settings = spec.site_agent.model_copy(
            update={"router_url": None, "token": None}
            | ({"speed": spec.clock.speed} if spec.clock else {})
        )
        system.agents = [
            simulated_site_agent(
                scenario,
                site,
                router_url=url,
                token=spec.tokens[site],
                seed=spec.seed,
                settings=agent_settings,
                router_settings=spec.router,
            )
            for site in spec.sites
        ]
        links = build_app(hub)  # the site links and GET /healthz
        app: FastAPI = links
        if spec.api is not None and database is not None:
            system.routing = RayRouting(
                front,
                network,
                database,
                downstream=hub.send,
                epoch=scenario.simulation.epoch if simulated else 0.0,
                settings=spec.api.settings,
            )
            stack.callback(system.routing.close)
            app = create_app(spec.api.settings, database=database, routing=system.routing)
            app.include_router(links.router)  # its routes, not its docs
        app.include_router(
            metrics_router(
                front,
                hub.connected,
                system.routing.realtime_stats if system.routing is not None else None,
                timeout=spec.metrics_timeout,
            )
        )
        server = _Server(
            uvicorn.Config(
                app, log_level=spec.log_level, lifespan="off", timeout_graceful_shutdown=5
            )
        )
        await stack.enter_async_context(hub.running())
        server_task = asyncio.create_task(server.serve(sockets=[spec.sock]))
        stack.push_async_callback(_stop_server, server, server_task)
        await wait_until(lambda: server.started or server_task.done(), 30.0, "the API server")
        if server_task.done():
            raise StartError(f"the server on {url} stopped: {server_task.exception()}")
        phase("api")
        if clock is not None:
            # One origin for the router and every simulated PBX: the scenario's start now,
            # unless given.
            origin = clock.origin if clock.origin is not None else time.time()
            clock.pin(origin)
            for agent in system.agents:
                if isinstance(agent.pbx.clock, SimulatedClock):
                    agent.pbx.clock.pin(origin)
        system.tasks = [
            asyncio.create_task(_run_agent(agent), name=f"site-{agent.site_id}")
            for agent in system.agents
        ]
        stack.push_async_callback(_stop_tasks, system.tasks)
        if spec.sites:
            await wait_until(system.all_connected, spec.connect_timeout, "the sites' links")
            phase("sites")
        yield system


async def _opened(task: asyncio.Task[Database], api: ApiSpec | None) -> Database:
    try:
        return await task
    except StartError:
        raise
    except Exception as error:
        url = shown_url(api.database_url) if api else "the database"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise StartError(f"cannot prepare {url}: {first}") from error


async def _close_database(task: asyncio.Task[Database]) -> None:
    if task.cancelled():
        return
    try:
        database = await task
    except Exception:
        return  # it failed: nothing to close
    database.close()


async def _run_agent(agent: SiteAgent) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run()


async def _stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _stop_server(server: _Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(Exception, asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, 15.0)


async def serve_until_stopped(
    spec: SystemSpec,
    on_ready: Callable[[System], None],
    phase: Callable[[str], None] = lambda _: None,
) -> float:
    """Run the system until SIGINT or SIGTERM (at any point, start-up included), then stop
    it; ``on_ready`` is called once it runs.  Returns the seconds the shutdown took."""
    task = asyncio.current_task()
    assert task is not None
    interrupts = Interrupts(task)
    interrupts.install()
    try:
        async with running_system(spec, phase, interrupts=interrupts) as system:
            on_ready(system)
            while True:  # until a signal cancels this task
                await asyncio.sleep(1.0)
                system.check()
    except asyncio.CancelledError:
        if interrupts.received is None:
            raise
        task.uncancel()
    finally:
        interrupts.remove()
    return time.monotonic() - interrupts.at
