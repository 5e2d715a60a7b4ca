"""The ``vcc`` command line: one entry point for operators, SREs and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from orchestrator.settings import Settings
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
def demo() -> None:
    """Run the shipped three-site demo under every routing policy and print the KPIs.

    Today this is the simulated network on the real routing engine; the runtime issue extends it
    to local Ray, the router, the control API and site agents.
    """
    Console().print(
        f"vcc demo: three simulated sites, one workload, {len(COMPARED)} routing policies"
    )
    simulate(scenario="three-site-demo", compare=True)


def _fail(message: str) -> NoReturn:
    """Bad input ends with one line on stderr and exit code 2, like a usage error."""
    typer.echo(f"vcc: {message}", err=True)
    raise typer.Exit(code=2)
