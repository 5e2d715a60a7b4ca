"""``vcc demo``: the whole system in one process, on loopback, for a minute of simulated calls.

One asyncio process runs what production runs as several: a small local Ray (2 CPUs, no
dashboard; ``RAY_ADDRESS`` joins a cluster instead) hosting the router's shards for the
three-site network; one uvicorn server on loopback serving both the control API (over a SQLite
database migrated at start, its configuration seeded from the scenario) and the sites' WebSocket
links; and three site agents, each with its simulated PBX running ``speed`` times faster than
the wall clock, connecting over loopback with their own generated tokens.  The API's routing
service is :class:`~orchestrator.ray_routing.RayRouting`: contacts created through the API and
agents' state changes go through the same shards, and every contact's history and interval
counters land in the database as it happens.

The run: start-up (timed from the process's start until all three sites are connected and in
step), a few contacts created through ``POST /v1/contacts``, ``minutes`` of simulated traffic
from ``start_hour`` on, then the traffic stops (each PBX is closed, so nothing moves any more
but what the router still does with queued calls), the history catches up, and the KPIs are read
back through the API itself: interval reports for offered, answered, abandoned, service level
and ASA; the contacts list for those still waiting; real-time statistics for agents logged in.
Transfers and local-routing fallbacks come from the routing service's tally (the route
histories hold them per contact).  With ``keep_running`` the traffic is not stopped: the KPIs
are read live, and everything runs until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from orchestrator.api import create_app
from orchestrator.api.live import at_time
from orchestrator.persistence import Database, upgrade
from orchestrator.persistence.intervals import interval_start
from orchestrator.ray_routing import RayRouting
from orchestrator.router_actor import RouterFront, start_ray, start_ray_shards, stop_ray
from orchestrator.settings import ApiKey, ApiRole, Settings
from orchestrator.sharding import plan_shards
from orchestrator.site_link import SiteHub, listening_socket, site_link_router
from routing.config import NetworkConfig
from site_agent.agent import SiteAgent
from site_agent.service import engine_settings, simulated_site_agent
from site_agent.simulated_pbx import SimulatedClock
from site_agent.simulation.loading import load_scenario
from site_agent.simulation.scenario import Scenario, parse_scenario

STARTUP_LIMIT_SECONDS = 30.0
ADMIN_KEY_NAME = "demo-admin"
METRICS_NOTE = (
    "no /metrics endpoint yet (Prometheus metrics come with the monitoring issue); live figures "
    "at GET {url}/v1/stats/realtime, 15-minute reports at GET {url}/v1/reports/intervals"
)


class DemoError(Exception):
    """The demo could not start or run (the message is one line for the command line)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    minutes: float = 1.0
    speed: float = 20.0
    start_hour: float = 10.0
    seed: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    database: Path | None = None
    keep_running: bool = False
    api_contacts: int = 2
    scenario: str = "three-site-demo"
    shards: int = 1
    num_cpus: int = 2


@dataclass(frozen=True, slots=True)
class SiteKpis:
    """One site's contacts (by landing site), or the network's (``site`` = ``network``)."""

    site: str
    agents_logged_in: int
    offered: int
    answered: int
    abandoned: int
    waiting: int
    answered_within_sl: int
    wait_seconds: float
    transfers: int
    local_fallbacks: int

    @property
    def service_level(self) -> float | None:
        return self.answered_within_sl / self.offered if self.offered else None

    @property
    def asa_seconds(self) -> float | None:
        return self.wait_seconds / self.answered if self.answered else None

    @property
    def accounted(self) -> bool:
        """Every contact offered is answered, abandoned or still waiting."""
        return self.offered == self.answered + self.abandoned + self.waiting

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "service_level": self.service_level,
            "asa_seconds": self.asa_seconds,
            "accounted": self.accounted,
        }


@dataclass(slots=True)
class DemoReport:
    api_url: str
    admin_key: str
    database: str
    shards: int
    ray: str
    startup_seconds: float
    phases: dict[str, float]
    simulated_from: datetime
    simulated_to: datetime
    speed: float
    live: bool
    sites: list[SiteKpis] = field(default_factory=list)
    network: SiteKpis | None = None
    api_contacts: dict[str, str] = field(default_factory=dict)
    history_write_errors: int = 0
    history_ignored: int = 0
    shutdown_seconds: float | None = None

    @property
    def accounted(self) -> bool:
        return all(k.accounted for k in self.sites) and (
            self.network is not None and self.network.accounted
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "docs_url": f"{self.api_url}/docs",
            "database": self.database,
            "shards": self.shards,
            "ray": self.ray,
            "startup_seconds": round(self.startup_seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "simulated_from": self.simulated_from.isoformat(),
            "simulated_to": self.simulated_to.isoformat(),
            "speed": self.speed,
            "live": self.live,
            "sites": [k.as_json() for k in self.sites],
            "network": self.network.as_json() if self.network else None,
            "accounted": self.accounted,
            "api_contacts": self.api_contacts,
            "history_write_errors": self.history_write_errors,
            "shutdown_seconds": self.shutdown_seconds,
        }


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


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms; :class:`DemoError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ pieces


def demo_scenario(options: DemoOptions) -> Scenario:
    """The scenario from ``start_hour`` to its day's end (at least the demo's minutes), with no
    warm-up: agents of every shift running then log in at the start."""
    scenario = load_scenario(options.scenario)
    data = scenario.model_dump()
    simulation = data["simulation"]
    day_end = simulation["start_hour"] + simulation["hours"]
    simulation["start_hour"] = options.start_hour
    simulation["hours"] = max(day_end - options.start_hour, options.minutes / 60.0 + 0.25)
    simulation["warmup_minutes"] = 0.0
    return parse_scenario(data, scenario.name or options.scenario)


def prepare_database(path: Path, scenario: Scenario) -> Database:
    """A new SQLite database at ``path``, migrated, with the scenario's configuration."""
    url = f"sqlite:///{path}"
    upgrade(url)
    database = Database(url)
    config = NetworkConfig(
        skills=scenario.skills,
        sites=scenario.sites,
        queues=scenario.queues,
        tariffs=scenario.tariffs,
        agents=scenario.agent_configs(),
    )
    database.config.replace(config, actor="vcc demo")
    return database


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo's task is cancelled on Ctrl-C (by
    asyncio) or SIGTERM (by the demo) and shuts everything down itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiClient:
    """The demo's own calls to its API (over loopback, as any client would)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def get(self, path: str, **query: str) -> Any:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._call(
            urllib.request.Request(f"{self.url}{path}{suffix}", headers=self._headers)
        )

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, headers=self._headers, method="POST"
        )
        return self._call(request)

    def _call(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            message = f"{request.get_method()} {request.full_url}: {error.code} {detail}"
            raise DemoError(message) from None

    def all_contacts(self, status: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"status": status, "limit": "500"}
            if cursor:
                query["cursor"] = cursor
            page = self.get("/v1/contacts", **query)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


# ------------------------------------------------------------------ the run


class Demo:
    """One run; :meth:`run` returns the report (printing progress on ``console``)."""

    def __init__(self, options: DemoOptions, console: Console, *, config: Settings) -> None:
        self.options = options
        self.console = console
        self.config = config
        self.phases: dict[str, float] = {}
        self._born = process_started()
        self._mark = self._born

    def _phase(self, name: str) -> None:
        now = time.time()
        self.phases[name] = now - self._mark
        self._mark = now

    async def run(self, report_ready: Callable[[DemoReport], None]) -> DemoReport:
        options, console = self.options, self.console
        scenario = demo_scenario(options)
        network = scenario.network()
        sites = sorted(network.sites)
        router_settings = engine_settings(scenario, self.config.router)
        plan = plan_shards(network, options.shards)
        tokens = {site: secrets.token_urlsafe(24) for site in sites}
        admin_key = f"vcc-demo-{secrets.token_urlsafe(24)}"
        seed = next(
            s for s in (options.seed, scenario.simulation.seed, self.config.seed) if s is not None
        )
        temp_dir = None
        if options.database is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="vcc-demo-"))
            db_path = temp_dir / "vcc-demo.db"
        else:
            db_path = options.database
            if db_path.exists():
                raise DemoError(f"{db_path} exists: remove it or give another --database")
        try:
            sock = listening_socket(options.host, options.port)
        except OSError as error:
            raise DemoError(f"cannot listen on {options.host}:{options.port}: {error}") from None
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        where = f"Ray at {self.config.ray_address}" if self.config.ray_address else "local Ray"
        console.print(
            f"vcc demo: {len(sites)} simulated sites ({', '.join(sites)}), "
            f"{len(network.agents)} agents, {options.minutes:g} simulated minute(s) from "
            f"{options.start_hour:g}:00 at {options.speed:g}x, on {where}"
        )
        self._phase("imports+scenario")
        ray_started = False
        front: RouterFront | None = None
        routing: RayRouting | None = None
        database: Database | None = None
        tasks: list[asyncio.Task[None]] = []
        server_task: asyncio.Task[None] | None = None
        server: _Server | None = None
        report: DemoReport | None = None
        stopping = time.monotonic()
        try:
            # The database is migrated and seeded in a thread while Ray starts.
            db_task = asyncio.create_task(asyncio.to_thread(prepare_database, db_path, scenario))
            try:
                ray_started = start_ray(self.config.ray_address, num_cpus=options.num_cpus)
            except Exception as error:
                raise DemoError(f"cannot start {where}: {error}") from error
            self._phase("ray")
            try:
                clients = start_ray_shards(plan, router_settings, timeout=60.0)
            except Exception as error:
                raise DemoError(f"router shards did not start on {where}: {error}") from error
            self._phase("shards")
            database = await db_task
            self._phase("database")
            agent_settings = self.config.site_agent.model_copy(
                update={"speed": options.speed, "router_url": None, "token": None}
            )
            agents = [
                simulated_site_agent(
                    scenario,
                    site,
                    router_url=url,
                    token=tokens[site],
                    seed=seed,
                    settings=agent_settings,
                    router_settings=self.config.router,
                )
                for site in sites
            ]
            clock = SimulatedClock(scenario.simulation.start, options.speed)
            front = RouterFront(plan, clients, clock=clock.now, speed=options.speed)
            hub = SiteHub(front, tokens)
            routing = RayRouting(
                front, network, database, downstream=hub.send, epoch=scenario.simulation.epoch
            )
            keys = {
                **self.config.api_keys,
                ADMIN_KEY_NAME: ApiKey(key=SecretStr(admin_key), role=ApiRole.ADMIN),
            }
            app = create_app(
                self.config.model_copy(update={"api_keys": keys}),
                database=database,
                routing=routing,
            )
            app.include_router(site_link_router(hub))
            server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
            async with hub.running():
                server_task = asyncio.create_task(server.serve(sockets=[sock]))
                await wait_until(lambda: server.started, 30.0, "the API server")
                self._phase("api")
                clock.restart()
                tasks = [
                    asyncio.create_task(_run_agent(agent), name=f"site-{agent.site_id}")
                    for agent in agents
                ]

                def all_connected() -> bool:
                    _check(tasks)
                    in_step = dict(front.links()) if front else {}
                    return set(hub.connected()) == set(sites) and all(in_step.values())

                await wait_until(all_connected, STARTUP_LIMIT_SECONDS, "the sites' links")
                self._phase("sites")
                startup = time.time() - self._born
                console.print(
                    f"Start-up: {startup:.1f} s from process start to all {len(sites)} sites "
                    f"connected (limit {STARTUP_LIMIT_SECONDS:g} s; "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items())
                    + ")"
                )
                client = ApiClient(url, admin_key)
                created = await asyncio.to_thread(
                    _create_contacts, client, scenario, options.api_contacts
                )
                start = scenario.simulation.start
                end = start + options.minutes * 60.0
                await asyncio.sleep(clock.delay_until(end))
                _check(tasks)
                if not options.keep_running:
                    await self._stop_traffic(agents, routing)
                await routing.drain()
                epoch = scenario.simulation.epoch
                report = DemoReport(
                    api_url=url,
                    admin_key=admin_key,
                    database=str(db_path),
                    shards=len(plan),
                    ray=where,
                    startup_seconds=startup,
                    phases=dict(self.phases),
                    simulated_from=_utc(epoch + start),
                    simulated_to=_utc(epoch + end),
                    speed=options.speed,
                    live=options.keep_running,
                )
                await asyncio.to_thread(self._read_kpis, client, report, routing, created)
                report.history_write_errors = routing.write_errors
                report.history_ignored = routing.history.ignored
                report_ready(report)
                if options.keep_running:
                    console.print(
                        "Running until interrupted (Ctrl-C): the sites keep taking calls; "
                        f"the API is at {url}/docs"
                    )
                    await _until_terminated()
                stopping = time.monotonic()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                server.should_exit = True
                await server_task
        finally:
            for task in tasks:
                task.cancel()
            if server is not None and server_task is not None and not server_task.done():
                server.should_exit = True
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(server_task, 5.0)
            if front is not None:
                front.close()
            if routing is not None:
                routing.close()
            if database is not None:
                database.close()
            sock.close()
            stop_ray(ray_started)
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
        assert report is not None
        report.shutdown_seconds = time.monotonic() - stopping
        return report

    async def _stop_traffic(self, agents: list[SiteAgent], routing: RayRouting) -> None:
        """Close every PBX (no call arrives, is answered or ends any more), then wait until
        the history has every call the PBXs still have, and no other."""
        for agent in agents:
            await agent.pbx.close()

        def settled() -> bool:
            at_sites = {call.contact.id for agent in agents for call in agent.pbx.state().calls}
            known = {c.id for c in routing.history.calls.values() if not c.held}
            return at_sites == known

        await wait_until(settled, 15.0, "the contact history to catch up with the sites")

    def _read_kpis(
        self,
        client: ApiClient,
        report: DemoReport,
        routing: RayRouting,
        created: list[str],
    ) -> None:
        """The KPIs as the API gives them (plus transfers and local fallbacks, tallied)."""
        start = interval_start(report.simulated_from)
        end = interval_start(report.simulated_to + timedelta(minutes=15)) + timedelta(minutes=15)
        intervals = client.get(
            "/v1/reports/intervals", start=start.isoformat(), end=end.isoformat()
        )["intervals"]
        waiting = client.all_contacts("queued") + client.all_contacts("reserved")
        realtime = client.get("/v1/stats/realtime")
        staffed = {row["site"]: row["agents"]["staffed"] for row in realtime["sites"]}
        sites = sorted(routing.network.sites)
        tally = routing.history.tally
        for site in sites:
            rows = [row for row in intervals if row["site"] == site]
            report.sites.append(
                SiteKpis(
                    site=site,
                    agents_logged_in=staffed.get(site, 0),
                    offered=sum(row["offered"] for row in rows),
                    answered=sum(row["answered"] for row in rows),
                    abandoned=sum(row["abandoned"] for row in rows),
                    waiting=sum(c["landing_site"] == site for c in waiting),
                    answered_within_sl=sum(row["answered_within_sl"] for row in rows),
                    wait_seconds=sum(row["wait_seconds"] for row in rows),
                    transfers=tally[site].transfers,
                    local_fallbacks=tally[site].local_fallbacks,
                )
            )
        kpis = report.sites
        report.network = SiteKpis(
            site="network",
            agents_logged_in=sum(k.agents_logged_in for k in kpis),
            offered=sum(k.offered for k in kpis),
            answered=sum(k.answered for k in kpis),
            abandoned=sum(k.abandoned for k in kpis),
            waiting=sum(k.waiting for k in kpis),
            answered_within_sl=sum(k.answered_within_sl for k in kpis),
            wait_seconds=sum(k.wait_seconds for k in kpis),
            transfers=sum(k.transfers for k in kpis),
            local_fallbacks=sum(k.local_fallbacks for k in kpis),
        )
        for contact_id in created:
            report.api_contacts[contact_id] = client.get(f"/v1/contacts/{contact_id}")["status"]


async def _run_agent(agent: SiteAgent) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run()


def _check(tasks: list[asyncio.Task[None]]) -> None:
    """A site agent that stopped on its own failed: say why."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise DemoError(f"{task.get_name()} failed: {task.exception()}")


def _create_contacts(client: ApiClient, scenario: Scenario, count: int) -> list[str]:
    """``count`` contacts offered through the API, landing at each site in turn."""
    sites = scenario.sites
    queue = scenario.queues[0].id
    created = []
    for number in range(count):
        site = sites[number % len(sites)]
        body = {
            "id": f"api-{number + 1}",
            "queue": queue,
            "site": site.id,
            "caller_region": site.region,
        }
        created.append(client.post("/v1/contacts", body)["id"])
    return created


async def _until_terminated() -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM; the demo then shuts down as after a run."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        if signal.SIGINT in installed:  # back to asyncio's own: Ctrl-C cancels the run
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _utc(seconds: float) -> datetime:
    return at_time(seconds)


# ------------------------------------------------------------------ printing


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def kpi_table(report: DemoReport) -> Table:
    when = f"{report.simulated_from:%Y-%m-%d %H:%M}-{report.simulated_to:%H:%M} UTC (simulated)"
    table = Table(title=f"KPIs by landing site, {when}" + (" - live" if report.live else ""))
    for column in (
        "site",
        "agents logged in",
        "offered",
        "answered",
        "abandoned",
        "still waiting",
        "service level",
        "ASA",
        "transfers",
        "local fallbacks",
    ):
        table.add_column(column, justify="left" if column == "site" else "right")
    rows = [*report.sites, *([report.network] if report.network else [])]
    for kpis in rows:
        table.add_row(
            kpis.site,
            str(kpis.agents_logged_in),
            str(kpis.offered),
            str(kpis.answered),
            str(kpis.abandoned),
            str(kpis.waiting),
            _percent(kpis.service_level),
            _seconds(kpis.asa_seconds),
            str(kpis.transfers),
            str(kpis.local_fallbacks),
            end_section=kpis is report.sites[-1],
        )
    return table


def print_report(report: DemoReport, console: Console) -> None:
    url = report.api_url
    console.print(f"API: {url}  (OpenAPI docs: {url}/docs)")
    console.print(f"Admin API key (this run only): {report.admin_key}")
    console.print(f"Site links: ws://{url.removeprefix('http://')}/sites/{{site}}/stream")
    console.print(f"Metrics: {METRICS_NOTE.format(url=url)}")
    console.print(f"Database: {report.database} (SQLite; removed at exit unless --database)")
    console.print(kpi_table(report))
    network = report.network
    if network is not None:
        verdict = "yes" if report.accounted else "NO"
        if report.live:
            verdict += " (read while calls keep coming: figures read apart may differ)"
        console.print(
            f"Accounted: every offered contact is answered, abandoned or still waiting: {verdict} "
            f"(network: {network.offered} = {network.answered} + {network.abandoned} + "
            f"{network.waiting})"
        )
    if report.api_contacts:
        states = ", ".join(f"{c} {s}" for c, s in report.api_contacts.items())
        console.print(f"Contacts created through POST /v1/contacts: {states}")
    if report.history_write_errors:
        console.print(f"History: {report.history_write_errors} write(s) failed (see the log)")


def run_demo(options: DemoOptions, console: Console, *, config: Settings) -> DemoReport:
    """Run the demo; the report is printed as soon as the KPIs are read (before the wait of
    ``keep_running``), and returned once everything is shut down."""
    demo = Demo(options, console, config=config)
    return asyncio.run(demo.run(lambda report: print_report(report, console)))
