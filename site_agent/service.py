"""A site agent as a process: built from a scenario's site, run until stopped.

The command line (``vcc site-agent``) and end-to-end tests build a site agent the same way, so
it lives here and not in the CLI: the simulated PBX of one site, the scenario's network for its
fall-back routing, and the engine settings of the scenario's clock (business hours are worked
out from the simulation's first day, as in the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from routing.calendar import ShiftGuard
from routing.settings import RouterSettings
from site_agent.agent import SiteAgent
from site_agent.settings import SiteAgentSettings
from site_agent.simulated_pbx import SimulatedPbx
from site_agent.simulation.scenario import Scenario


def engine_settings(scenario: Scenario, base: RouterSettings) -> RouterSettings:
    """The engine settings of a site's own routing: the scenario's clock and shift guard."""
    simulation = scenario.simulation
    update: dict[str, object] = {"clock_epoch": simulation.epoch}
    if simulation.shift_protection_minutes is not None:
        update["shift_guard"] = ShiftGuard(simulation.shift_protection_minutes)
    return base.model_copy(update=update)


def simulated_site_agent(
    scenario: Scenario,
    site_id: str,
    *,
    router_url: str,
    token: str,
    seed: int,
    settings: SiteAgentSettings | None = None,
    router_settings: RouterSettings | None = None,
    keep_events: bool = False,
    clock_origin: float | None = None,
) -> SiteAgent:
    """The PBX runs at ``settings.speed``, from the scenario's start when it starts, or, given
    ``clock_origin`` (Unix time), on the network's clock that reads the start then (see
    :class:`~site_agent.settings.ClockSettings`).  Raises
    :class:`~site_agent.simulation.scenario.ScenarioError` for a site not in the scenario and
    :class:`~site_agent.transport.TransportError` for an unusable router URL."""
    settings = settings or SiteAgentSettings()
    pbx = SimulatedPbx(
        scenario,
        site_id,
        seed=seed,
        speed=settings.speed,
        keep_events=keep_events,
        origin=clock_origin,
    )
    return SiteAgent(
        pbx,
        scenario.network(),
        router_url=router_url,
        token=token,
        settings=settings,
        router_settings=engine_settings(scenario, router_settings or RouterSettings()),
    )


async def run_until_stopped(agent: SiteAgent) -> None:
    """Run the agent until SIGTERM or SIGINT (or cancellation); it closes its PBX on the way
    out."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, task.cancel)
            installed.append(signum)
    try:
        await agent.run()
    except asyncio.CancelledError:
        pass
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
