"""Contacts and shifts drawn from the seed: the right rates and distributions, and common random
numbers (one stream's draws do not depend on the others)."""

from __future__ import annotations

import math
import statistics
from typing import Any

from site_agent.simulation.scenario import Scenario
from site_agent.simulation.shifts import plan_shifts
from site_agent.simulation.traffic import generate_traffic

# Poisson counts and sample means are checked to within this many standard deviations.
Z = 4.0


def _scenario(streams: list[dict[str, Any]], **simulation: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "skills": ["general"],
            "sites": [{"id": "a", "region": "north"}, {"id": "b", "region": "south"}],
            "queues": [{"id": "q", "targets": [{"skills": "general"}]}],
            "staffing": [{"site": "a", "count": 1, "skills": {"general": 5}}],
            "traffic": streams,
            "simulation": {"hours": 48, "warmup_minutes": 0, **simulation},
        }
    )


def _stream(**fields: Any) -> dict[str, Any]:
    return {
        "site": "a",
        "queue": "q",
        "calls_per_hour": 400,
        "handle_time": {"distribution": "lognormal", "mean": 240, "cv": 0.8},
        **fields,
    }


def test_arrivals_follow_the_time_of_day_profile() -> None:
    # A two-hour profile repeats all day: 200 calls in even hours, 600 in odd ones.
    contacts = generate_traffic(_scenario([_stream(profile=[0.5, 1.5])]), seed=1)
    even = sum(1 for c in contacts if int(c.contact.arrival // 3600) % 2 == 0)
    odd = len(contacts) - even
    for observed, expected in ((even, 24 * 200), (odd, 24 * 600)):
        assert abs(observed - expected) <= Z * math.sqrt(expected)


def test_a_zero_multiplier_means_no_arrivals_in_that_hour() -> None:
    profile = [1.0] * 12 + [0.0] * 12
    contacts = generate_traffic(_scenario([_stream(profile=profile)]), seed=2)
    assert contacts
    assert all(int(c.contact.arrival // 3600) % 24 < 12 for c in contacts)


def test_lognormal_handle_times_have_the_requested_mean_and_cv() -> None:
    contacts = generate_traffic(_scenario([_stream()]), seed=3)
    times = [c.handle_time for c in contacts]
    mean = statistics.fmean(times)
    cv = statistics.stdev(times) / mean
    assert abs(mean - 240) <= Z * 240 * 0.8 / math.sqrt(len(times))
    assert abs(cv - 0.8) <= 0.05  # the sample cv of a log-normal converges slowly
    assert min(times) > 0


def test_patience_is_exponential_with_the_requested_mean_or_infinite() -> None:
    contacts = generate_traffic(_scenario([_stream(mean_patience=90), _stream(site="b")]), seed=4)
    patient = [c.contact.patience for c in contacts if c.site == "a"]
    assert abs(statistics.fmean(patient) - 90) <= Z * 90 / math.sqrt(len(patient))
    assert all(math.isinf(c.contact.patience) for c in contacts if c.site == "b")


def test_contacts_carry_their_landing_site_and_caller_region() -> None:
    contacts = generate_traffic(
        _scenario([_stream(), _stream(site="b", caller_region="abroad", calls_per_hour=10)]),
        seed=5,
    )
    regions = {(c.site, c.contact.origin_site, c.contact.caller_region) for c in contacts}
    assert regions == {("a", "a", "north"), ("b", "b", "abroad")}
    arrivals = [c.contact.arrival for c in contacts]
    assert arrivals == sorted(arrivals)
    assert len({c.contact.id for c in contacts}) == len(contacts)


def test_one_streams_draws_do_not_depend_on_the_others() -> None:
    alone = generate_traffic(_scenario([_stream()]), seed=6)
    with_more = generate_traffic(
        _scenario([_stream(), _stream(site="b", mean_patience=60)]), seed=6
    )
    with_patience = generate_traffic(_scenario([_stream(mean_patience=60)]), seed=6)

    def draws(contacts: tuple[Any, ...]) -> list[tuple[float, float]]:
        return [(c.contact.arrival, c.handle_time) for c in contacts if c.site == "a"]

    assert draws(alone) == draws(with_more) == draws(with_patience)
    assert draws(generate_traffic(_scenario([_stream()]), seed=7)) != draws(alone)


def _shifted(breaks: dict[str, Any]) -> Scenario:
    data = _scenario([_stream()], hours=10, start_hour=7).model_dump()
    data["staffing"] = [
        {
            "site": "a",
            "count": 20,
            "skills": {"general": 5},
            "shift": {"start": 8, "end": 16},
            "breaks": breaks,
        }
    ]
    return Scenario.model_validate(data)


def test_breaks_are_spread_over_the_shift_with_bounded_jitter() -> None:
    scenario = _shifted({"count": 3, "minutes": 15, "jitter_minutes": 10})
    shifts = plan_shifts(scenario, seed=1)
    assert len(shifts) == 20
    for shift in shifts:
        assert (shift.start, shift.end) == (8 * 3600, 16 * 3600)
        assert len(shift.breaks) == 3
        for number, pause in enumerate(shift.breaks, start=1):
            centre = shift.start + number * 2 * 3600  # 8 h shift, 3 breaks: every 2 h
            assert abs(pause.start + pause.length / 2 - centre) <= 10 * 60
            assert pause.length == 15 * 60
    starts = {shift.breaks[0].start for shift in shifts}
    assert len(starts) > 1, "jitter staggers the group"
    assert plan_shifts(scenario, seed=1) == shifts
    assert plan_shifts(scenario, seed=2) != shifts
