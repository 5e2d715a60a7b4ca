"""Simulation results for people (rich tables) and for programs (JSON).

JSON document (``vcc.simulation.v1``), stable: keys are only ever added, never renamed::

    {"schema": "vcc.simulation.v1", "scenario": str, "seed": int,
     "window": {"start": s, "measured_from": s, "end": s, "interval_seconds": s},
     "runs": [{"policy": {"key": str, "title": str},
               "routing": {"site_switches": int,
                           "ewt_error": {estimator: {"n": int, "mae_seconds": float | null,
                                                    "bias_seconds": float | null}}},
               "network": SCOPE, "sites": {site_id: SCOPE}}]}
    SCOPE    = {"total": MEASURES, "queues": {queue_id: MEASURES},
                "intervals": [{"start": s, **MEASURES}]}
    MEASURES = {"offered", "answered", "abandoned", "waiting_at_end",
                "answered_within_threshold", "transferred": int,
                "service_level", "abandon_rate", "occupancy": fraction | null,
                "asa_seconds", "aht_seconds": float | null,
                "cost": {"trunk", "transfer", "labour", "total": float,
                         "per_contact": float | null, "staffed": float}}

Times are seconds on the simulation clock (0 = midnight of the first day).  Queue entries have no
agent time (agents serve several queues), so their ``occupancy`` is null and ``staffed`` 0.  The
definitions of every measure are in :mod:`site_agent.simulation.statistics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.table import Table

from site_agent.simulation.ewt_accuracy import ewt_errors
from site_agent.simulation.experiment import SimulationResult
from site_agent.simulation.practice import practice_figures
from site_agent.simulation.statistics import Measures, ScopeStatistics

SCHEMA = "vcc.simulation.v1"
DECIMALS = 6
NETWORK = "network"


def runs_json(results: Sequence[SimulationResult]) -> dict[str, Any]:
    """One document for one or several policies run on the same workload."""
    first = results[0]
    stats, config = first.statistics, first.scenario.simulation
    return {
        "schema": SCHEMA,
        "scenario": first.scenario.name,
        "seed": first.seed,
        "window": {
            "start": config.start,
            "measured_from": stats.measured_from,
            "end": stats.end,
            "interval_seconds": config.interval,
        },
        "runs": [
            {
                "policy": {"key": r.policy.key, "title": r.policy.title},
                "routing": _routing_json(r),
                "network": _scope_json(r.statistics.network, r.statistics.interval_starts),
                "sites": {
                    site: _scope_json(scope, r.statistics.interval_starts)
                    for site, scope in r.statistics.sites.items()
                },
            }
            for r in results
        ],
    }


def _routing_json(result: SimulationResult) -> dict[str, Any]:
    errors = ewt_errors(result.trace, result.statistics.measured_from)
    return {
        "site_switches": result.trace.site_switches,
        "ewt_error": {
            name: {"n": e.n, "mae_seconds": _round(e.mae), "bias_seconds": _round(e.bias)}
            for name, e in errors.items()
        },
        "practice": dataclasses.asdict(practice_figures(result.trace)),
    }


def _scope_json(scope: ScopeStatistics, starts: Sequence[float]) -> dict[str, Any]:
    return {
        "total": measures_json(scope.total),
        "queues": {queue: measures_json(m) for queue, m in scope.queues.items()},
        "intervals": [
            {"start": start, **measures_json(m)}
            for start, m in zip(starts, scope.intervals, strict=True)
        ],
    }


def measures_json(m: Measures) -> dict[str, Any]:
    return {
        "offered": m.offered,
        "answered": m.answered,
        "abandoned": m.abandoned,
        "waiting_at_end": m.waiting_at_end,
        "answered_within_threshold": m.answered_within,
        "transferred": m.transferred,
        "service_level": _round(m.service_level),
        "abandon_rate": _round(m.abandon_rate),
        "asa_seconds": _round(m.asa),
        "aht_seconds": _round(m.aht),
        "occupancy": _round(m.occupancy),
        "cost": {
            "trunk": _round(m.trunk_cost),
            "transfer": _round(m.transfer_cost),
            "labour": _round(m.labour_cost),
            "total": _round(m.contact_cost),
            "per_contact": _round(m.cost_per_contact),
            "staffed": _round(m.staffed_cost),
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DECIMALS)


# --------------------------------------------------------------------------- tables


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _scopes(result: SimulationResult) -> list[tuple[str, ScopeStatistics]]:
    stats = result.statistics
    return [*stats.sites.items(), (NETWORK, stats.network)]


def _title(result: SimulationResult, what: str) -> str:
    hours = result.scenario.simulation.hours
    return f"{result.scenario.name}: {what} (seed {result.seed}, {hours:g} h)"


def _table(title: str, first: str = "Site / queue") -> Table:
    """Compact enough for an 80-column pipe: rules between rows only, first column whole."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(first, no_wrap=True)
    return table


def service_table(result: SimulationResult) -> Table:
    """Per site and queue: traffic and service measures of one policy."""
    table = _table(_title(result, result.policy.title))
    for header in ("Offered", "Ans.", "Aband.", "SL", "ASA s", "AHT s", "Occ.", "Xfer"):
        table.add_column(header, justify="right")
    for name, scope in _scopes(result):
        rows = [(name, scope.total, "bold"), *((f"  {q}", m, "") for q, m in scope.queues.items())]
        for label, m, style in rows:
            table.add_row(
                label,
                str(m.offered),
                str(m.answered),
                str(m.abandoned),
                _percent(m.service_level),
                _seconds(m.asa),
                _seconds(m.aht),
                _percent(m.occupancy),
                str(m.transferred),
                style=style,
            )
        table.add_section()
    return table


def cost_table(result: SimulationResult) -> Table:
    """Per site and queue: what the contacts cost, and the paid staffed hours beside it."""
    table = _table(_title(result, f"{result.policy.title}, costs"))
    for header in ("Trunk", "Transfer", "Labour", "Total", "Per contact", "Paid labour"):
        table.add_column(header, justify="right")
    for name, scope in _scopes(result):
        rows = [(name, scope.total, "bold"), *((f"  {q}", m, "") for q, m in scope.queues.items())]
        for label, m, style in rows:
            table.add_row(
                label,
                _money(m.trunk_cost),
                _money(m.transfer_cost),
                _money(m.labour_cost),
                _money(m.contact_cost),
                _money(m.cost_per_contact),
                _money(m.staffed_cost) if m.staffed_seconds else "—",
                style=style,
            )
        table.add_section()
    return table


_COMPARED: tuple[tuple[str, Callable[[Measures], str]], ...] = (
    ("Offered", lambda m: str(m.offered)),
    ("Service level", lambda m: _percent(m.service_level)),
    ("ASA s", lambda m: _seconds(m.asa)),
    ("Abandoned", lambda m: _percent(m.abandon_rate)),
    ("Occupancy", lambda m: _percent(m.occupancy)),
    ("Transfers", lambda m: str(m.transferred)),
    ("Cost/contact", lambda m: _money(m.cost_per_contact)),
    ("Contact cost", lambda m: _money(m.contact_cost)),
    ("Paid labour", lambda m: _money(m.staffed_cost)),
)


def comparison_table(results: Sequence[SimulationResult]) -> Table:
    """The policies side by side, per site and for the network; columns are headed by the
    policies' short names (``--policy`` spells them so), explained under the table."""
    table = _table(_title(results[0], "policies compared"), first="Scope")
    table.add_column("Measure", no_wrap=True)
    for result in results:
        table.add_column(result.policy.key, justify="right")
    table.caption = "; ".join(f"{r.policy.key}: {r.policy.summary}" for r in results)
    scopes = [[scope.total for _, scope in _scopes(r)] for r in results]
    names = [name for name, _ in _scopes(results[0])]
    for index, name in enumerate(names):
        for row, (measure, show) in enumerate(_COMPARED):
            table.add_row(
                name if row == 0 else "",
                measure,
                *(show(per_result[index]) for per_result in scopes),
                style="bold" if name == NETWORK else "",
            )
        table.add_section()
    return table


def routing_table(results: Sequence[SimulationResult]) -> Table:
    """How the network routed: site switches (flapping), transfers, and how far each
    expected-wait estimator was from the waits contacts had (see :mod:`ewt_accuracy`)."""
    table = _table(_title(results[0], "network routing"), first="Measure")
    for result in results:
        table.add_column(result.policy.key, justify="right")
    network = [r.statistics.network.total for r in results]
    table.add_row("Site switches", *(str(r.trace.site_switches) for r in results))
    table.add_row("Transfers", *(str(m.transferred) for m in network))
    table.add_row("Transfer cost", *(_money(m.transfer_cost) for m in network))
    errors = [ewt_errors(r.trace, r.statistics.measured_from) for r in results]
    for name in errors[0]:
        table.add_row(f"EWT {name} MAE s", *(_seconds(e[name].mae) for e in errors))
        table.add_row(f"EWT {name} bias s", *(_seconds(e[name].bias) for e in errors))
    table.add_row("EWT compared", *(str(next(iter(e.values())).n) for e in errors))
    practice = [practice_figures(r.trace) for r in results]
    table.add_row("Redirects (no answer)", *(str(p.redirects) for p in practice))
    table.add_row("Callbacks taken", *(str(p.callbacks) for p in practice))
    table.add_row("Returning, same agent", *(_percent(p.last_agent_share) for p in practice))
    table.add_row("Overtime min/agent", *(_number(p.overtime_minutes) for p in practice))
    return table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
