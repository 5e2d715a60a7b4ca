"""The ``vcc`` command line: one entry point for operators, SREs and the demo."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from orchestrator.settings import ApiKey, ApiRole, Settings
from site_agent.settings import ClockSettings
from site_agent.simulation.experiment import SimulationResult
from site_agent.simulation.experiment import simulate as run_simulations
from site_agent.simulation.loading import load_scenario
from site_agent.simulation.policies import COMPARED, POLICIES, PolicyKey
from site_agent.simulation.report import (
    comparison_table,
    cost_table,
    routing_table,
    runs_json,
    service_table,
)
from site_agent.simulation.scenario import Scenario, ScenarioError, describe_errors

if TYPE_CHECKING:  # Ray, FastAPI and uvicorn load only for the commands that run them.
    from orchestrator.system import Phases, System, SystemSpec

app = typer.Typer(
    name="vcc",
    help="vcc: many contact-center sites routed as one virtual contact center.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def settings() -> Settings:
    return Settings()


@app.callback()
def main() -> None:
    """vcc command line."""


@app.command()
def simulate(
    *,
    scenario: Annotated[
        str | None,
        typer.Option(help="Shipped scenario name or path to a YAML file [default: settings]."),
    ] = None,
    policy: Annotated[
        PolicyKey, typer.Option(help="Routing policy of a single run.")
    ] = PolicyKey.SKILL,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help=(
                "Run isolated sites and network routing by site (skill and least cost, each "
                "without and with the margin) on the same contacts; --policy is ignored."
            ),
        ),
    ] = False,
    hours: Annotated[
        float | None, typer.Option(help="Simulated hours [default: the scenario's].")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed [default: the scenario's, else settings]."),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write results as JSON to PATH, or '-' for stdout only."),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            help="Write a PNG of each policy's service level and cost per contact per interval."
        ),
    ] = None,
) -> None:
    """Simulate the contact center under routing policies and report service, cost and how
    the network routed (site switches, transfers, expected-wait estimators' errors)."""
    config = _settings()
    try:
        loaded = load_scenario(scenario or config.scenario)
        if hours is not None:
            loaded = loaded.with_hours(hours)
    except ScenarioError as error:
        _fail(str(error))
    chosen = list(COMPARED) if compare else [POLICIES[policy]]
    run_seed = next(s for s in (seed, loaded.simulation.seed, config.seed) if s is not None)
    results = run_simulations(loaded, chosen, seed=run_seed, settings=config.router)
    document = json.dumps(runs_json(results), indent=2)
    if json_out == "-":
        typer.echo(document)
        if plot is not None:
            _write_plot(results, plot)
        return
    console = Console()
    if compare:
        console.print(comparison_table(results))
    else:
        console.print(service_table(results[0]))
        console.print(cost_table(results[0]))
    console.print(routing_table(results))
    if json_out is not None:
        try:
            Path(json_out).write_text(document + "\n", encoding="utf-8")
        except OSError as error:
            _fail(f"{json_out}: cannot write JSON: {error.strerror}")
        console.print(f"JSON written to {json_out}")
    if plot is not None:
        _write_plot(results, plot)
        console.print(f"Plot written to {plot}")


def _write_plot(results: list[SimulationResult], plot: str) -> None:
    """Called after the tables and JSON are out, so an unwritable path costs only the plot."""
    # matplotlib takes about half a second to import; only runs that plot pay for it.
    from site_agent.simulation.plot import save_plot  # noqa: PLC0415

    try:
        save_plot(results, Path(plot))
    except OSError as error:
        _fail(f"{plot}: cannot write plot: {error.strerror or error}")


@app.command()
def demo(
    *,
    minutes: Annotated[
        float, typer.Option(min=0.05, max=600, help="Simulated minutes of calls.")
    ] = 1.0,
    speed: Annotated[
        float,
        typer.Option(min=1, max=600, help="Simulated seconds per wall-clock second."),
    ] = 20.0,
    start_hour: Annotated[
        float,
        typer.Option(min=0, max=23.9, help="Simulated time of day the calls start at (hours)."),
    ] = 10.0,
    seed: Annotated[
        int | None, typer.Option(help="Random seed [default: the scenario's, else settings].")
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Loopback port of the API, 0 for any.")
    ] = 0,
    database: Annotated[
        Path | None,
        typer.Option(help="Keep the SQLite database in this new file [default: a temporary one]."),
    ] = None,
    api_contacts: Annotated[
        int, typer.Option(min=0, max=100, help="Contacts to create through POST /v1/contacts.")
    ] = 2,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="Do not stop the traffic after the minutes: read the KPIs live, then run "
            "until interrupted.",
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON to this file.")
    ] = None,
) -> None:
    """Run vcc as a system on this machine: local Ray with the router's shards, the control
    API and the sites' links on one loopback server, and three simulated sites with their
    agents; then print where the API and the metrics are and a KPI summary, and shut down."""
    # Ray, FastAPI, uvicorn and SQLAlchemy take seconds to import: only `vcc demo` pays.
    from orchestrator.demo import DemoOptions, run_demo  # noqa: PLC0415
    from orchestrator.system import StartError  # noqa: PLC0415

    config = _settings()
    options = DemoOptions(
        minutes=minutes,
        speed=speed,
        start_hour=start_hour,
        seed=seed,
        port=port,
        database=database,
        keep_running=keep_running,
        api_contacts=api_contacts,
        scenario="three-site-demo",
        shards=config.router_shards,
        num_cpus=config.ray_num_cpus or 2,
    )
    console = Console(width=None if sys.stdout.isatty() else 132)
    try:
        report = run_demo(options, console, config=config)
    except (StartError, ScenarioError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        typer.echo("vcc demo: interrupted; everything started was stopped", err=True)
        raise typer.Exit(code=130) from None
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            _fail(f"{json_out}: cannot write JSON: {error.strerror}")
    console.print(f"Stopped cleanly in {report.shutdown_seconds or 0:.1f} s (Ray included).")
    if not report.accounted and not report.live:
        typer.echo("vcc demo: some offered contacts are not accounted for (see above)", err=True)
        raise typer.Exit(code=1)


# The options `vcc up`, `vcc router` and `vcc site-agent` share.
ScenarioOption = Annotated[
    str | None,
    typer.Option(help="Shipped scenario name or path to a YAML file \\[default: settings]."),
]
HostOption = Annotated[
    str | None, typer.Option(help="Address to listen on \\[default: settings, 127.0.0.1].")
]
PortOption = Annotated[
    int | None,
    typer.Option(
        min=0, max=65535, help="Port to listen on, 0 for any \\[default: settings, 8700]."
    ),
]
ShardsOption = Annotated[
    int | None, typer.Option(min=1, help="Most router shards \\[default: settings, 1].")
]
SpeedOption = Annotated[
    float | None,
    typer.Option(
        help="Simulated seconds per wall-clock second of the network's clock "
        "\\[default: settings (VCC_CLOCK__SPEED), 60]."
    ),
]
SeedOption = Annotated[
    int | None, typer.Option(help="Random seed \\[default: the scenario's, else settings].")
]


def _clock_origin_option(unset: str) -> Any:
    return typer.Option(
        "--clock-origin",
        help="Wall-clock instant at which the network's clock reads the scenario's start: "
        "ISO 8601 with its zone (2026-01-05T09:00:00Z), Unix seconds, or 'now'; the same for "
        f"the router and every site agent \\[default: settings (VCC_CLOCK__ORIGIN), else {unset}].",
    )


@app.command()
def up(
    *,
    scenario: ScenarioOption = None,
    host: HostOption = None,
    port: PortOption = None,
    shards: ShardsOption = None,
    sites: Annotated[
        str,
        typer.Option(
            help="Sites simulated in this process: 'all', 'none', or site ids separated by "
            "commas; the others connect as `vcc site-agent`."
        ),
    ] = "all",
    no_sites: Annotated[
        bool, typer.Option("--no-sites", help="Same as --sites none: the router and the API only.")
    ] = False,
    speed: SpeedOption = None,
    clock_origin: Annotated[str | None, _clock_origin_option("when the sites start")] = None,
    seed: SeedOption = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL or SQLite file of the control API's database "
            "\\[default: settings (VCC_DATABASE_URL), sqlite:///vcc.db]."
        ),
    ] = None,
) -> None:
    """Run vcc until interrupted: the router's shards on Ray (local, or the cluster at
    VCC_RAY_ADDRESS / RAY_ADDRESS), one server with the control API, the sites' links and
    /healthz, persistence (migrated at start), and the scenario's sites simulated on the
    network's clock; Ctrl-C or SIGTERM stops all of it."""
    config = _settings()
    network_clock = _clock(config, speed, clock_origin)
    loaded = _scenario(scenario, config)
    network = loaded.network()
    simulated = _simulated_sites(sorted(network.sites), "none" if no_sites else sites)
    tokens, generated = _site_tokens(config, network.sites, generate=True)
    keys = dict(config.api_keys)
    admin_key = None
    if not keys:
        admin_key = f"vcc-{secrets.token_urlsafe(24)}"
        keys["vcc-up-admin"] = ApiKey(key=SecretStr(admin_key), role=ApiRole.ADMIN)
    database_url = database or config.database_url
    if "://" not in database_url:
        database_url = f"sqlite:///{database_url}"
    run_seed = next(s for s in (seed, loaded.simulation.seed, config.seed) if s is not None)
    sock = _listen(host or config.router_host, config.router_port if port is None else port)
    # Ray, FastAPI, uvicorn and SQLAlchemy take seconds to import: only running commands pay.
    from orchestrator.system import (  # noqa: PLC0415
        ApiSpec,
        Phases,
        endpoint_lines,
        shown_url,
    )

    spec = _router_spec(
        config,
        loaded,
        sock,
        tokens,
        shards=shards,
        clock=network_clock,
        sites=simulated,
        seed=run_seed,
        site_agent=config.site_agent,
        api=ApiSpec(
            settings=config.model_copy(update={"api_keys": keys}),
            database_url=database_url,
            actor="vcc up",
        ),
    )
    typer.echo(
        f"vcc up: {loaded.name or 'scenario'}: {len(network.sites)} sites, "
        f"{len(network.queues)} queues, {len(network.agents)} agents, on {spec.where}; "
        f"simulated here: {', '.join(simulated) or 'no site (they connect as vcc site-agent)'}"
    )
    phases = Phases()

    def ready(system: System) -> None:
        url = system.url
        if admin_key is not None:
            key_line = f"Admin API key (this run only): {admin_key}"
        else:
            roles = ", ".join(f"{name} ({key.role})" for name, key in sorted(keys.items()))
            key_line = f"API keys: from VCC_API_KEYS: {roles}"
        lines = endpoint_lines(url, keys=key_line, database=shown_url(database_url))
        lines.append(f"Health: {url}/healthz (the router's shards, each site's link)")
        assert system.clock is not None and system.clock.origin is not None
        origin = datetime.fromtimestamp(system.clock.origin, UTC).isoformat()
        start = datetime.fromtimestamp(loaded.simulation.epoch + loaded.simulation.start, UTC)
        lines.append(
            f"Clock: the scenario's, {start:%Y-%m-%d %H:%M} UTC at {origin}, "
            f"{network_clock.speed:g}x (give site agents --clock-origin {origin} "
            f"--speed {network_clock.speed:g})"
        )
        outside = [site for site in sorted(network.sites) if site not in simulated]
        if outside:
            lines.append(
                f"Site agents for {', '.join(outside)}: VCC_SITE_AGENT__TOKEN=<the site's token> "
                f"vcc site-agent --site SITE --router {system.links_url} --scenario "
                f"{scenario or config.scenario} --speed {network_clock.speed:g} "
                f"--clock-origin {origin}"
            )
            given = [site for site in outside if site not in generated]
            fresh = [f"{site}={tokens[site]}" for site in outside if site in generated]
            if fresh:
                lines.append(f"Site tokens (this run only): {', '.join(fresh)}")
            if given:
                lines.append(f"Site tokens of {', '.join(given)}: from VCC_SITE_TOKENS")
        lines.append(
            f"Ready in {phases.since_start():.1f} s from process start ({phases.describe()}); "
            "running until interrupted (Ctrl-C or SIGTERM)"
        )
        for line in lines:
            typer.echo(line)

    stopping = _serve(spec, ready, phases, "vcc up")
    typer.echo(f"Stopped cleanly in {stopping:.1f} s (Ray included).")


@app.command()
def router(
    *,
    scenario: ScenarioOption = None,
    host: HostOption = None,
    port: PortOption = None,
    shards: ShardsOption = None,
    speed: SpeedOption = None,
    clock_origin: Annotated[str | None, _clock_origin_option("Unix time")] = None,
) -> None:
    """Run the global router: one Ray actor per shard of the scenario's network (local Ray,
    or the cluster at VCC_RAY_ADDRESS / RAY_ADDRESS), and the sites' WebSocket links at
    /sites/{site}/stream, each authenticated by its token from VCC_SITE_TOKENS, with
    /healthz and Prometheus metrics at /metrics.  On Unix time (real PBXs), or, given a clock
    origin, on the network's simulated clock, that of `vcc site-agent` processes given the
    same origin and speed.  (`vcc up --no-sites` is the same router with the control API and
    persistence.)"""
    config = _settings()
    network_clock: ClockSettings | None = _clock(config, speed, clock_origin)
    if network_clock is not None and network_clock.origin is None:
        if speed is not None:
            _fail(
                "--speed is the speed of the network's simulated clock: give --clock-origin "
                "too (an instant, or now), or set VCC_CLOCK__ORIGIN"
            )
        network_clock = None  # Unix time
    loaded = _scenario(scenario, config)
    network = loaded.network()
    tokens, _ = _site_tokens(config, network.sites, generate=False)
    if not tokens:
        example = next(iter(network.sites))
        _fail(
            "no site tokens: no site could connect; set VCC_SITE_TOKENS, e.g. "
            f"""'{{"{example}": "<secret>"}}'"""
        )
    sock = _listen(host or config.router_host, config.router_port if port is None else port)
    spec = _router_spec(
        config, loaded, sock, tokens, shards=shards, clock=network_clock, log_level="info"
    )

    def ready(system: System) -> None:
        plan = system.plan
        typer.echo(
            f"vcc router: {len(plan.networks)} shard(s) on {spec.where} for "
            f"{len(network.sites)} sites, {len(network.queues)} queues, {len(network.agents)} "
            f"agents (largest component {plan.largest_component} agents); site links on "
            f"{system.links_url}/sites/{{site}}/stream; metrics at {system.url}/metrics"
        )
        if system.clock is not None and system.clock.origin is not None:
            origin = datetime.fromtimestamp(system.clock.origin, UTC).isoformat()
            typer.echo(
                f"vcc router: on the scenario's clock, its start at {origin}, "
                f"{system.clock.speed:g}x (site agents: --clock-origin {origin} "
                f"--speed {system.clock.speed:g})"
            )

    _serve(spec, ready, None, "vcc router")


@app.command("site-agent")
def site_agent(
    *,
    site: Annotated[str, typer.Option(help="Site id, as the scenario names it.")],
    router: Annotated[
        str | None,
        typer.Option(
            help="Router base URL, ws:// or http:// (the agent connects to "
            "ROUTER/sites/SITE/stream) [default: settings, else the router's host and port]."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="This site's bearer token [default: VCC_SITE_AGENT__TOKEN, else the site's "
            "entry in VCC_SITE_TOKENS]."
        ),
    ] = None,
    scenario: ScenarioOption = None,
    speed: SpeedOption = None,
    clock_origin: Annotated[str | None, _clock_origin_option("when this site agent starts")] = None,
    seed: SeedOption = None,
) -> None:
    """Run one site: its simulated PBX in real time, streaming to the router and carrying out
    its decisions, routing locally while no router answers; until interrupted."""
    # The site agent's modules (websockets) load only for this command.
    import logging  # noqa: PLC0415

    from site_agent.service import run_until_stopped, simulated_site_agent  # noqa: PLC0415
    from site_agent.transport import TransportError  # noqa: PLC0415

    config = _settings()
    network_clock = _clock(config, speed, clock_origin)
    agent_settings = config.site_agent.model_copy(update={"speed": network_clock.speed})
    router_url = (
        router or agent_settings.router_url or f"ws://{config.router_host}:{config.router_port}"
    )
    secret = agent_settings.token or config.site_tokens.get(site)
    site_token = token if token is not None else secret.get_secret_value() if secret else None
    if not site_token:
        _fail(f"no token for site {site!r}: give --token or set VCC_SITE_AGENT__TOKEN")
    try:
        loaded = load_scenario(scenario or config.scenario)
        run_seed = next(s for s in (seed, loaded.simulation.seed, config.seed) if s is not None)
        agent = simulated_site_agent(
            loaded,
            site,
            router_url=router_url,
            token=site_token,
            seed=run_seed,
            settings=agent_settings,
            router_settings=config.router,
            clock_origin=network_clock.origin_timestamp,
        )
    except (ScenarioError, TransportError) as error:
        _fail(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    origin = network_clock.origin
    typer.echo(
        f"vcc site-agent: site {site} of {loaded.name or 'scenario'} (seed {run_seed}, speed "
        f"{network_clock.speed:g}x"
        + (f", clock origin {origin.isoformat()}" if origin else "")
        + f"), router {agent.url}; Ctrl-C stops it",
        err=True,
    )
    asyncio.run(run_until_stopped(agent))
    typer.echo(f"vcc site-agent: site {site} stopped", err=True)


# ------------------------------------------------------------------ shared checks


def _fail(message: str) -> NoReturn:
    """Bad input ends with one line on stderr and exit code 2, like a usage error."""
    typer.echo(f"vcc: {message}", err=True)
    raise typer.Exit(code=2)


def _settings() -> Settings:
    try:
        return settings()
    except ValidationError as error:
        _fail(f"invalid VCC_* settings: {describe_errors(error)}")
    except SettingsError as error:  # a value that is not even JSON
        _fail(f"invalid VCC_* settings: {error}")


def _scenario(name: str | None, config: Settings) -> Scenario:
    try:
        return load_scenario(name or config.scenario)
    except ScenarioError as error:
        _fail(str(error))


def _clock(config: Settings, speed: float | None, origin: str | None) -> ClockSettings:
    """The network's clock: the settings', with --speed and --clock-origin over them."""
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        _fail(f"--speed must be a positive number, not {speed}")
    values: dict[str, object] = {
        "speed": config.clock.speed if speed is None else speed,
        "origin": config.clock.origin,
    }
    if origin is not None:
        values["origin"] = time.time() if origin.strip().lower() == "now" else origin.strip()
    try:
        return ClockSettings.model_validate(values)
    except ValidationError as error:
        _fail(
            f"--clock-origin {origin!r}: {describe_errors(error)} (give an instant with its "
            "time zone, e.g. 2026-01-05T09:00:00Z, Unix seconds, or now)"
        )


def _simulated_sites(all_sites: list[str], chosen: str) -> tuple[str, ...]:
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    if names == ["all"]:
        return tuple(all_sites)
    if names in ([], ["none"]):
        return ()
    unknown = [name for name in names if name not in all_sites]
    if unknown:
        _fail(
            f"--sites: the scenario has no site {', '.join(map(repr, unknown))} "
            f"(sites: {', '.join(all_sites)}; or all, none)"
        )
    return tuple(dict.fromkeys(names))


def _site_tokens(
    config: Settings, sites: Collection[str], *, generate: bool
) -> tuple[dict[str, str], list[str]]:
    """Each site's link token from VCC_SITE_TOKENS, and (``generate``) a new one for this run
    for the sites without; and which were generated."""
    tokens = {site: token.get_secret_value() for site, token in config.site_tokens.items()}
    strangers = sorted(set(tokens) - set(sites))
    if strangers:
        _fail(f"VCC_SITE_TOKENS names sites the scenario does not have: {', '.join(strangers)}")
    generated = sorted(set(sites) - set(tokens)) if generate else []
    tokens.update({site: secrets.token_urlsafe(24) for site in generated})
    return tokens, generated


def _router_spec(
    config: Settings,
    scenario: Scenario,
    sock: socket.socket,
    tokens: dict[str, str],
    *,
    shards: int | None,
    clock: ClockSettings | None,
    **rest: Any,
) -> SystemSpec:
    """What `vcc up` and `vcc router` start alike: the router, from the settings; ``rest``:
    what only one of them starts (simulated sites, the API)."""
    from orchestrator.system import SystemSpec  # noqa: PLC0415

    return SystemSpec(
        scenario=scenario,
        sock=sock,
        tokens=tokens,
        router=config.router,
        transit_timeout=config.router_transit_timeout_seconds,
        metrics_timeout=config.metrics_scrape_timeout_seconds,
        shards=shards or config.router_shards,
        num_cpus=config.ray_num_cpus,
        ray_address=config.ray_address,
        clock=clock,
        **rest,
    )


def _listen(host: str, port: int) -> socket.socket:
    """Bound before Ray starts, so that a busy port fails in a second, not after Ray."""
    from orchestrator.site_link import listening_socket  # noqa: PLC0415

    try:
        return listening_socket(host, port)
    except OSError as error:
        _fail(f"cannot listen on {host}:{port}: {error.strerror or error}")


def _serve(
    spec: SystemSpec, ready: Callable[[System], None], phases: Phases | None, name: str
) -> float:
    """Run until SIGINT or SIGTERM; the seconds the shutdown took."""
    from orchestrator.system import StartError, serve_until_stopped  # noqa: PLC0415

    try:
        stopping = asyncio.run(serve_until_stopped(spec, ready, phases or (lambda _: None)))
    except StartError as error:
        _fail(str(error))
    except KeyboardInterrupt:  # a second Ctrl-C, during the shutdown
        typer.echo(f"{name}: interrupted during the shutdown", err=True)
        raise typer.Exit(code=130) from None
    except SystemExit as error:
        # While `ray.init` runs, Ray's own SIGTERM handler exits (code 15); what had started
        # is stopped on the way out, as for a SIGTERM at any other time.
        if error.code != signal.SIGTERM:
            raise
        typer.echo(f"{name}: stopped by SIGTERM while Ray was starting", err=True)
        raise typer.Exit(code=128 + signal.SIGTERM) from None
    return stopping
