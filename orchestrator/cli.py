"""The ``vcc`` command line: one entry point for operators, SREs and the demo."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from orchestrator.settings import Settings
from routing.model import Network
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
from site_agent.simulation.scenario import ScenarioError, describe_errors

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
    try:
        config = settings()
    except ValidationError as error:
        _fail(f"invalid VCC_* settings: {describe_errors(error)}")
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
    from orchestrator.demo import DemoError, DemoOptions, run_demo  # noqa: PLC0415

    try:
        config = settings()
    except ValidationError as error:
        _fail(f"invalid VCC_* settings: {describe_errors(error)}")
    except SettingsError as error:
        _fail(f"invalid VCC_* settings: {error}")
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
    except (DemoError, ScenarioError) as error:
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


@app.command()
def router(
    *,
    scenario: Annotated[
        str | None,
        typer.Option(help="Shipped scenario name or path to a YAML file \\[default: settings]."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on \\[default: settings, 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port to listen on, 0 for any \\[default: settings, 8700]."
        ),
    ] = None,
    shards: Annotated[
        int | None, typer.Option(min=1, help="Most router shards \\[default: settings, 1].")
    ] = None,
) -> None:
    """Run the global router: one Ray actor per shard of the scenario's network (local Ray,
    or the cluster at VCC_RAY_ADDRESS / RAY_ADDRESS), and the sites' WebSocket links at
    /sites/{site}/stream, each authenticated by its token from VCC_SITE_TOKENS."""
    try:
        config = settings()
    except ValidationError as error:
        _fail(f"invalid VCC_* settings: {describe_errors(error)}")
    except SettingsError as error:  # a value that is not even JSON
        _fail(f"invalid VCC_* settings: {error}")
    try:
        network = load_scenario(scenario or config.scenario).network()
    except ScenarioError as error:
        _fail(str(error))
    tokens = {site: token.get_secret_value() for site, token in config.site_tokens.items()}
    strangers = sorted(set(tokens) - set(network.sites))
    if strangers:
        _fail(f"VCC_SITE_TOKENS names sites the scenario does not have: {', '.join(strangers)}")
    if not tokens:
        example = next(iter(network.sites))
        _fail(
            "no site tokens: no site could connect; set VCC_SITE_TOKENS, e.g. "
            f"""'{{"{example}": "<secret>"}}'"""
        )
    listen_host = host or config.router_host
    listen_port = config.router_port if port is None else port
    # Bound before Ray starts, so that a busy port fails in a second, not after Ray.
    from orchestrator.site_link import listening_socket  # noqa: PLC0415

    try:
        sock = listening_socket(listen_host, listen_port)
    except OSError as error:
        _fail(f"cannot listen on {listen_host}:{listen_port}: {error.strerror or error}")
    _run_router(config, network, tokens, sock, shards or config.router_shards)


def _run_router(
    config: Settings, network: Network, tokens: dict[str, str], sock: socket.socket, shards: int
) -> None:
    # Ray, FastAPI and uvicorn take seconds to import: only `vcc router` pays for them.
    from orchestrator.router_actor import (  # noqa: PLC0415
        RouterFront,
        start_ray,
        start_ray_shards,
        stop_ray,
    )
    from orchestrator.sharding import plan_shards  # noqa: PLC0415
    from orchestrator.site_link import SiteHub, build_app, serve  # noqa: PLC0415

    plan = plan_shards(network, shards)
    where = f"Ray at {config.ray_address}" if config.ray_address else "local Ray"
    try:
        started = start_ray(config.ray_address, num_cpus=config.ray_num_cpus or max(2, len(plan)))
    except Exception as error:
        sock.close()
        _fail(f"cannot start {where}: {error}")
    front = None
    try:
        try:
            clients = start_ray_shards(plan, config.router)
        except Exception as error:
            _fail(f"router shards did not start on {where}: {error}")
        front = RouterFront(plan, clients)
        app = build_app(SiteHub(front, tokens))
        bound_host, bound_port = sock.getsockname()[:2]
        typer.echo(
            f"vcc router: {len(plan)} shard(s) on {where} for {len(network.sites)} sites, "
            f"{len(network.queues)} queues, {len(network.agents)} agents (largest component "
            f"{plan.largest_component} agents); site links on "
            f"ws://{bound_host}:{bound_port}/sites/{{site}}/stream"
        )
        serve(app, sock)
    finally:
        if front is not None:
            front.close()
        sock.close()
        stop_ray(started)


def _fail(message: str) -> NoReturn:
    """Bad input ends with one line on stderr and exit code 2, like a usage error."""
    typer.echo(f"vcc: {message}", err=True)
    raise typer.Exit(code=2)


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
    scenario: Annotated[
        str | None,
        typer.Option(help="Shipped scenario name or path to a YAML file [default: settings]."),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="Simulated seconds per wall-clock second [default: settings, 60]."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed [default: the scenario's, else settings]."),
    ] = None,
) -> None:
    """Run one site: its simulated PBX in real time, streaming to the router and carrying out
    its decisions, routing locally while no router answers; until interrupted."""
    # The site agent's modules (websockets) load only for this command.
    import logging  # noqa: PLC0415

    from site_agent.service import run_until_stopped, simulated_site_agent  # noqa: PLC0415
    from site_agent.transport import TransportError  # noqa: PLC0415

    try:
        config = settings()
    except ValidationError as error:
        _fail(f"invalid VCC_* settings: {describe_errors(error)}")
    agent_settings = config.site_agent
    if speed is not None:
        if not speed > 0:
            _fail(f"--speed must be a positive number, not {speed}")
        agent_settings = agent_settings.model_copy(update={"speed": speed})
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
        )
    except (ScenarioError, TransportError) as error:
        _fail(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    typer.echo(
        f"vcc site-agent: site {site} of {loaded.name or 'scenario'} (seed {run_seed}, speed "
        f"{agent_settings.speed:g}x), router {agent.url}; Ctrl-C stops it",
        err=True,
    )
    asyncio.run(run_until_stopped(agent))
    typer.echo(f"vcc site-agent: site {site} stopped", err=True)
