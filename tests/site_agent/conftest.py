"""Scenario builders shared by the simulator tests: small networks whose theory is known."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from site_agent.simulation.scenario import Scenario

ScenarioBuilder = Callable[..., Scenario]


def one_queue_scenario(
    *,
    sites: Sequence[tuple[str, float]] = (("solo", 0.0),),
    agents: int | dict[str, int] = 10,
    calls_per_hour: float = 160.0,
    mean_handle: float = 180.0,
    handle_cv: float | None = None,
    mean_patience: float | None = None,
    hours: float = 24.0,
    warmup_minutes: float = 30.0,
    sl_threshold: float = 20.0,
    wrap_up: float = 0.0,
    transfer_fee: float = 0.0,
    transfer_per_minute: float = 0.0,
    per_minute: float = 0.0,
) -> Scenario:
    """Sites (id, labour cost per hour), each with ``agents`` agents of one skill (or as many as
    ``agents[site]``) and its own Poisson stream of ``calls_per_hour`` for the single queue."""
    staff = agents if isinstance(agents, dict) else {site: agents for site, _ in sites}
    handle: dict[str, Any] = (
        {"distribution": "exponential", "mean": mean_handle}
        if handle_cv is None
        else {"distribution": "lognormal", "mean": mean_handle, "cv": handle_cv}
    )
    return Scenario.model_validate(
        {
            "name": "one-queue",
            "skills": ["general"],
            "sites": [
                {"id": site, "region": f"{site}-region", "agent_cost_per_hour": cost}
                for site, cost in sites
            ],
            "queues": [
                {
                    "id": "q",
                    "targets": [{"skills": "general"}],
                    "sl_threshold": sl_threshold,
                    "expected_handle_time": mean_handle,
                    "wrap_up": wrap_up,
                }
            ],
            "tariffs": {
                "default_per_minute": per_minute,
                "transfer_fee": transfer_fee,
                "transfer_per_minute": transfer_per_minute,
            },
            "staffing": [
                {"site": site, "count": staff[site], "skills": {"general": 5}} for site, _ in sites
            ],
            "traffic": [
                {
                    "site": site,
                    "queue": "q",
                    "calls_per_hour": calls_per_hour,
                    "handle_time": handle,
                    "mean_patience": mean_patience,
                }
                for site, _ in sites
            ],
            "simulation": {"hours": hours, "warmup_minutes": warmup_minutes},
        }
    )


@pytest.fixture
def one_queue() -> ScenarioBuilder:
    return one_queue_scenario
