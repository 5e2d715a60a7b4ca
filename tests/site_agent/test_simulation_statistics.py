"""The measures of a hand-made trace, worked out by hand: service level, ASA, AHT, occupancy,
and the cost split, attributed to the landing site (contacts) and the agent's site (time)."""

from __future__ import annotations

import pytest

from routing.model import Contact
from site_agent.simulation.scenario import Scenario
from site_agent.simulation.shifts import AgentShift
from site_agent.simulation.statistics import summarize
from site_agent.simulation.trace import AgentRecord, BreakRecord, ContactOutcome, Trace
from site_agent.simulation.traffic import ScheduledContact

HOUR = 3600.0


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "skills": ["general"],
            "sites": [
                {"id": "x", "region": "r", "agent_cost_per_hour": 36},
                {"id": "y", "region": "s", "agent_cost_per_hour": 18},
            ],
            "queues": [
                {"id": "q", "targets": [{"skills": "general"}], "sl_threshold": 20, "wrap_up": 30}
            ],
            "tariffs": {
                "per_minute": {"r": {"x": 0.06}},
                "default_per_minute": 0.01,
                "transfer_fee": 0.5,
                "transfer_per_minute": 0.1,
            },
            "staffing": [
                {"site": "x", "count": 1, "skills": {"general": 5}},
                {"site": "y", "count": 1, "skills": {"general": 5}},
            ],
            "traffic": [
                {
                    "site": "x",
                    "queue": "q",
                    "calls_per_hour": 1,
                    "handle_time": {"distribution": "exponential", "mean": 300},
                }
            ],
            "simulation": {"hours": 1, "warmup_minutes": 0, "interval_minutes": 30},
        }
    )


def _contact(
    number: int, site: str, region: str, arrival: float, handle: float
) -> ScheduledContact:
    return ScheduledContact(
        contact=Contact(
            id=f"c{number}", queue_id="q", arrival=arrival, caller_region=region, origin_site=site
        ),
        site=site,
        stream=f"{site}/q",
        handle_time=handle,
    )


def _trace() -> Trace:
    contacts = (
        _contact(1, "x", "r", 100, 300),  # answered at x after 10 s
        _contact(2, "x", "r", 200, 600),  # answered at y after 40 s: a transfer
        _contact(3, "x", "r", 1900, 300),  # hangs up after 60 s, in the second interval
        _contact(4, "y", "s", 3500, 300),  # still waiting at the end
    )
    outcomes = (
        ContactOutcome(agent_id="x.agents.001", serving_site="x", reserved_at=110, answered_at=110),
        ContactOutcome(
            agent_id="y.agents.001",
            serving_site="y",
            transfer=True,
            reserved_at=240,
            answered_at=240,
        ),
        ContactOutcome(abandoned_at=1960),
        ContactOutcome(),
    )
    agents = (
        AgentRecord(
            shift=AgentShift("x.agents.001", "x", 0, HOUR, ()),
            login_at=0,
            breaks=[BreakRecord(requested_at=1000, started_at=1000, ended_at=1300)],
        ),
        AgentRecord(shift=AgentShift("y.agents.001", "y", 0, HOUR, ()), login_at=0),
    )
    return Trace(
        start=0,
        end=HOUR,
        contacts=contacts,
        outcomes=outcomes,
        agents=agents,
        engine_waiting=frozenset({"c4"}),
    )


def test_contact_measures_belong_to_the_landing_site() -> None:
    scenario = _scenario()
    stats = summarize(_trace(), scenario.network(), scenario.simulation)
    x = stats.sites["x"].total

    assert (x.offered, x.answered, x.abandoned, x.waiting_at_end) == (3, 2, 1, 0)
    assert x.transferred == 1
    assert x.service_level == pytest.approx(1 / 3)  # only c1 within 20 s; c3's abandon counts
    assert x.asa == pytest.approx((10 + 40) / 2)
    assert x.aht == pytest.approx((300 + 30 + 600 + 30) / 2)  # talk + wrap-up
    # Trunk: landing to hang-up at x's tariff for region r; c2's leg to y: fee + its minutes.
    assert x.trunk_cost == pytest.approx((310 + 640 + 60) / 60 * 0.06)
    assert x.transfer_cost == pytest.approx(0.5 + 0.1 * 600 / 60)
    # Labour at the serving agent's rate: c1 at 36/h, c2 at 18/h, talk + wrap-up.
    assert x.labour_cost == pytest.approx(36 * 330 / HOUR + 18 * 630 / HOUR)
    assert x.cost_per_contact == pytest.approx(x.contact_cost / 2)

    y = stats.sites["y"].total
    assert (y.offered, y.waiting_at_end, y.service_level, y.asa) == (1, 1, 0.0, None)
    assert y.trunk_cost == pytest.approx(100 / 60 * 0.01)  # the default tariff, until the end


def test_agent_time_belongs_to_the_agents_site() -> None:
    scenario = _scenario()
    stats = summarize(_trace(), scenario.network(), scenario.simulation)
    x, y = stats.sites["x"].total, stats.sites["y"].total

    # x: 330 s handling, 300 s on break, the rest ready: the break is neither.
    assert x.occupancy == pytest.approx(330 / (HOUR - 300))
    assert y.occupancy == pytest.approx(630 / HOUR)
    assert (x.staffed_cost, y.staffed_cost) == (pytest.approx(36.0), pytest.approx(18.0))
    network = stats.network.total
    assert network.occupancy == pytest.approx(960 / (2 * HOUR - 300))
    assert network.offered == 4 and network.service_level == pytest.approx(1 / 4)


def test_intervals_split_contacts_by_arrival_and_time_by_clock() -> None:
    scenario = _scenario()
    stats = summarize(_trace(), scenario.network(), scenario.simulation)
    first, second = stats.sites["x"].intervals

    assert stats.interval_starts == (0.0, 1800.0)
    assert (first.offered, second.offered) == (2, 1)
    assert (first.abandoned, second.abandoned) == (0, 1)
    assert first.occupancy == pytest.approx(330 / (1800 - 300))
    assert second.occupancy == 0.0
    assert first.staffed_seconds == second.staffed_seconds == 1800
    assert stats.sites["x"].queues["q"].offered == 3
