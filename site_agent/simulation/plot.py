"""How service level and cost per contact moved through the day under each policy, as a PNG.

The plotted figures are the statistics module's own per-interval measures of the network (the
``runs[].network.intervals`` of ``--json``), read and never recomputed, so the picture cannot
disagree with the tables.  Drawing goes through matplotlib's Agg canvas directly instead of
pyplot: it needs no display, and no figure outlives the call in pyplot's global registry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from site_agent.simulation.experiment import SimulationResult
from site_agent.simulation.scenario import MINUTES_PER_HOUR, SECONDS_PER_HOUR

PERCENT = 100.0


@dataclass(frozen=True, slots=True)
class PolicySeries:
    """One policy's network measures per interval.  NaN where a measure is undefined (nothing
    offered; for cost, nothing answered) so that the plot leaves a gap instead of a false zero."""

    title: str
    service_level: tuple[float, ...]
    cost_per_contact: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class IntervalSeries:
    """Everything the figure shows.  Times are hours on the simulation clock; the policies of one
    run share the interval grid because they ran on the same workload and window."""

    scenario: str
    seed: int
    interval_minutes: float
    starts: tuple[float, ...]
    end: float
    sl_target: float | None
    policies: tuple[PolicySeries, ...]


def interval_series(results: Sequence[SimulationResult]) -> IntervalSeries:
    """The series of the policies in ``results`` (one :func:`simulate` call), in their order."""
    first = results[0]
    scenario, stats = first.scenario, first.statistics
    targets = {queue.sl_target for queue in scenario.queues}
    return IntervalSeries(
        scenario=scenario.name,
        seed=first.seed,
        interval_minutes=scenario.simulation.interval_minutes,
        starts=tuple(start / SECONDS_PER_HOUR for start in stats.interval_starts),
        end=stats.end / SECONDS_PER_HOUR,
        sl_target=targets.pop() if len(targets) == 1 else None,
        policies=tuple(
            PolicySeries(
                title=result.policy.title,
                service_level=tuple(
                    _or_nan(m.service_level) for m in result.statistics.network.intervals
                ),
                cost_per_contact=tuple(
                    _or_nan(m.cost_per_contact) for m in result.statistics.network.intervals
                ),
            )
            for result in results
        ),
    )


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def save_plot(results: Sequence[SimulationResult], path: Path) -> None:
    """Write the PNG to ``path`` whatever its suffix; an unwritable path raises ``OSError``."""
    data = interval_series(results)
    figure = Figure(figsize=(10, 7), layout="constrained")
    FigureCanvasAgg(figure)
    sl_axes, cost_axes = figure.subplots(2, 1, sharex=True)
    # Each value holds for its whole interval: a step from its start to the next one, the last
    # repeated at the end of the run so that the final (maybe shorter) interval is drawn too.
    edges = [*data.starts, data.end]
    for policy in data.policies:
        sl = [PERCENT * value for value in policy.service_level]
        cost = list(policy.cost_per_contact)
        sl_axes.plot(edges, [*sl, sl[-1]], drawstyle="steps-post", label=policy.title)
        cost_axes.plot(edges, [*cost, cost[-1]], drawstyle="steps-post", label=policy.title)
    if data.sl_target is not None:
        sl_axes.axhline(
            PERCENT * data.sl_target,
            color="grey",
            linestyle="--",
            label=f"Service-level target {PERCENT * data.sl_target:g}%",
        )
    sl_axes.set_ylim(0, PERCENT * 1.05)
    sl_axes.yaxis.set_major_formatter(PercentFormatter())
    sl_axes.set_ylabel("Service level")
    sl_axes.legend(loc="lower left", fontsize="small")
    cost_axes.set_ylim(bottom=0)
    cost_axes.set_ylabel("Cost per contact")
    cost_axes.set_xlabel("Time of day (simulation clock)")
    cost_axes.xaxis.set_major_formatter(FuncFormatter(_clock))
    for axes in (sl_axes, cost_axes):
        axes.grid(alpha=0.3)
    figure.suptitle(
        f"{data.scenario} (seed {data.seed}): network service level and cost per contact, "
        f"per {data.interval_minutes:g}-minute interval"
    )
    figure.savefig(path, format="png", dpi=100)


def _clock(hours: float, _position: int | None) -> str:
    """Hours as HH:MM; past midnight of the first day the clock goes on (25:00), as shifts do."""
    minutes = round(hours * MINUTES_PER_HOUR)
    return f"{minutes // MINUTES_PER_HOUR:02d}:{minutes % MINUTES_PER_HOUR:02d}"
