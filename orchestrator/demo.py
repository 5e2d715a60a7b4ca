"""``vcc demo``: the whole system in one process, on loopback, for a minute of simulated calls.

One asyncio process runs what production runs as several: a small local Ray (2 CPUs, no
dashboard; ``RAY_ADDRESS`` joins a cluster instead) hosting the router's shards for the
three-site network; one uvicorn server on loopback serving both the control API (over a SQLite
database migrated at start, its configuration seeded from the scenario) and the sites' WebSocket
links; and three site agents, each with its simulated PBX running ``speed`` times faster than
the wall clock, connecting over loopback with their own generated tokens.  The API's routing
service is :class:`~orchestrator.ray_routing.RayRouting`: contacts created through the API and
agents' state changes go through the same shards, and every contact's history and interval
counters land in the database as it happens.  The start-up and shutdown are `vcc up`'s
(:mod:`orchestrator.system`).

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
import secrets
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from orchestrator.api.live import at_time
from orchestrator.persistence.intervals import interval_start
from orchestrator.ray_routing import RayRouting
from orchestrator.settings import ApiKey, ApiRole, Settings
from orchestrator.site_link import listening_socket
from orchestrator.system import (
    METRICS_NOTE,
    ApiSpec,
    Phases,
    StartError,
    SystemSpec,
    endpoint_lines,
    running_system,
    wait_until,
)
from site_agent.agent import SiteAgent
from site_agent.settings import ClockSettings
from site_agent.simulation.loading import load_scenario
from site_agent.simulation.scenario import Scenario, parse_scenario

__all__ = ["METRICS_NOTE", "STARTUP_LIMIT_SECONDS", "DemoError", "DemoOptions", "run_demo"]

STARTUP_LIMIT_SECONDS = 30.0
ADMIN_KEY_NAME = "demo-admin"


class DemoError(StartError):
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
        self.phases = Phases()

    async def run(self, report_ready: Callable[[DemoReport], None]) -> DemoReport:
        options, console = self.options, self.console
        scenario = demo_scenario(options)
        network = scenario.network()
        sites = sorted(network.sites)
        admin_key = f"vcc-demo-{secrets.token_urlsafe(24)}"
        seed = next(
            s for s in (options.seed, scenario.simulation.seed, self.config.seed) if s is not None
        )
        if options.database is not None and options.database.exists():
            raise DemoError(f"{options.database} exists: remove it or give another --database")
        try:
            sock = listening_socket(options.host, options.port)
        except OSError as error:
            raise DemoError(f"cannot listen on {options.host}:{options.port}: {error}") from None
        keys = {
            **self.config.api_keys,
            ADMIN_KEY_NAME: ApiKey(key=SecretStr(admin_key), role=ApiRole.ADMIN),
        }
        temp_dir = None
        if options.database is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="vcc-demo-"))
        db_path = options.database or Path(temp_dir or ".") / "vcc-demo.db"
        spec = SystemSpec(
            scenario=scenario,
            sock=sock,
            tokens={site: secrets.token_urlsafe(24) for site in sites},
            router=self.config.router,
            transit_timeout=self.config.router_transit_timeout_seconds,
            metrics_timeout=self.config.metrics_scrape_timeout_seconds,
            shards=options.shards,
            num_cpus=options.num_cpus,
            ray_address=self.config.ray_address,
            shard_timeout=60.0,
            clock=ClockSettings(speed=options.speed),
            sites=tuple(sites),
            seed=seed,
            site_agent=self.config.site_agent,
            api=ApiSpec(
                settings=self.config.model_copy(update={"api_keys": keys}),
                database_url=f"sqlite:///{db_path}",
                actor="vcc demo",
            ),
            connect_timeout=STARTUP_LIMIT_SECONDS,
        )
        console.print(
            f"vcc demo: {len(sites)} simulated sites ({', '.join(sites)}), "
            f"{len(network.agents)} agents, {options.minutes:g} simulated minute(s) from "
            f"{options.start_hour:g}:00 at {options.speed:g}x, on {spec.where}"
        )
        self.phases("imports+scenario")
        report: DemoReport | None = None
        stopping = time.monotonic()
        try:
            async with running_system(spec, self.phases) as system:
                assert system.routing is not None and system.clock is not None
                routing, url = system.routing, system.url
                startup = self.phases.since_start()
                console.print(
                    f"Start-up: {startup:.1f} s from process start to all {len(sites)} sites "
                    f"connected (limit {STARTUP_LIMIT_SECONDS:g} s; {self.phases.describe()})"
                )
                client = ApiClient(url, admin_key)
                created = await asyncio.to_thread(
                    _create_contacts, client, scenario, options.api_contacts
                )
                start = scenario.simulation.start
                end = start + options.minutes * 60.0
                await asyncio.sleep(system.clock.delay_until(end))
                system.check()
                if not options.keep_running:
                    await self._stop_traffic(system.agents, routing)
                await routing.drain()
                epoch = scenario.simulation.epoch
                report = DemoReport(
                    api_url=url,
                    admin_key=admin_key,
                    database=str(db_path),
                    shards=len(system.plan.networks),
                    ray=spec.where,
                    startup_seconds=startup,
                    phases=dict(self.phases.seconds),
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
        finally:
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
    for line in endpoint_lines(
        report.api_url,
        keys=f"Admin API key (this run only): {report.admin_key}",
        database=f"{report.database} (SQLite; removed at exit unless --database)",
    ):
        console.print(line)
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
