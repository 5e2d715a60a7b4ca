"""The shipped ``national`` scenario: six sites in two time zones with languages, the test bed for
network routing.  Its structure is checked on the data; a short run of the Eastern hand-over
(clock 16:30-18:30) shows what it is for: isolated sites are short at some sites and idle at
others at the same time, and network skill routing does better; a six-hour morning run shows the
network effects the issue asks for (margin against flapping, least-cost routing)."""

from __future__ import annotations

import datetime
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from routing.settings import RouterSettings
from site_agent.simulation.experiment import SimulationResult, simulate
from site_agent.simulation.loading import load_scenario, shipped_scenarios
from site_agent.simulation.policies import (
    ISOLATED,
    NETWORK_LEAST_COST,
    NETWORK_LEAST_COST_MARGIN,
    NETWORK_SKILL,
    NETWORK_SKILL_MARGIN,
    Policy,
)
from site_agent.simulation.scenario import (
    HOURS_PER_DAY,
    Scenario,
    ScenarioError,
    parse_scenario,
)
from site_agent.simulation.trace import Trace

GENERAL_SERVICE = "general"
LANGUAGES = frozenset({"english", "french", "mandarin", "punjabi", "spanish"})
# Offsets are compared on a winter and a summer weekday: the zones must differ all year.
DAYS = (datetime.datetime(2025, 1, 15, 12), datetime.datetime(2025, 7, 15, 12))
HOUR = datetime.timedelta(hours=1)
SEED = 7


@pytest.fixture(scope="module")
def national() -> Scenario:
    return load_scenario("national")


def _offset(scenario: Scenario, site_id: str, day: datetime.datetime) -> datetime.timedelta:
    timezone = next(s.timezone for s in scenario.sites if s.id == site_id)
    offset = ZoneInfo(timezone).utcoffset(day)
    assert offset is not None
    return offset


def _full_day(profile: Sequence[float]) -> list[float]:
    return [profile[hour % len(profile)] for hour in range(HOURS_PER_DAY)]


def _regional_sites(scenario: Scenario) -> set[str]:
    """Sites where general-service calls land, each from its own region's callers only."""
    regions = {s.id: s.region for s in scenario.sites}
    general = [t for t in scenario.traffic if t.queue == GENERAL_SERVICE]
    for stream in general:
        assert scenario.caller_region(stream) == regions[stream.site], stream.key
    return {stream.site for stream in general}


# --------------------------------------------------------------------------- structure


def test_is_shipped_and_loads_by_name(national: Scenario) -> None:
    assert "national" in shipped_scenarios()
    assert national.name == "national"
    assert national.description


def test_three_regional_and_three_specialised_sites(national: Scenario) -> None:
    sites = {s.id for s in national.sites}
    regional = _regional_sites(national)
    specialised = sites - regional
    assert len(sites) == 6
    assert len(regional) == 3
    assert len(specialised) == 3
    # A specialised site runs national lines: callers from several regions, no general service,
    # and each site its own speciality (the queues landing there do not overlap).
    specialities: list[set[str]] = []
    for site in specialised:
        streams = [t for t in national.traffic if t.site == site]
        assert streams, site
        assert len({national.caller_region(t) for t in streams}) >= 2, site
        specialities.append({t.queue for t in streams})
        assert GENERAL_SERVICE not in specialities[-1], site
    for i, queues in enumerate(specialities):
        for other in specialities[i + 1 :]:
            assert not queues & other


def test_about_twelve_hundred_agents_at_six_costs(national: Scenario) -> None:
    network = national.network()
    assert 1150 <= len(network.agents) <= 1250
    assert {a.site_id for a in network.agents.values()} == set(network.sites)
    costs = {s.id: s.agent_cost_per_hour for s in national.sites}
    assert len(set(costs.values())) == len(costs)
    # Calls move between sites at a price: a transfer fee and tariffs by region x site.
    assert national.tariffs.transfer_fee > 0
    assert all(len(row) == len(costs) for row in national.tariffs.per_minute.values())


def test_two_time_zones_and_profiles_and_shifts_follow_them(national: Scenario) -> None:
    for day in DAYS:
        offsets = {_offset(national, s.id, day) for s in national.sites}
        assert len(offsets) == 2, day
    winter = DAYS[0]
    east = max(_offset(national, s.id, winter) for s in national.sites)
    west = min(_offset(national, s.id, winter) for s in national.sites)
    lag = (east - west) // HOUR
    assert lag == 3
    western_sites = {s.id for s in national.sites if _offset(national, s.id, winter) == west}
    western_regions = {s.region for s in national.sites if s.id in western_sites}
    assert 0 < len(western_sites) < len(national.sites)

    # The clock is Eastern time: a western caller's profile is an eastern one, `lag` hours late.
    eastern: defaultdict[str, set[tuple[float, ...]]] = defaultdict(set)
    western = []
    for stream in national.traffic:
        profile = _full_day(stream.profile)
        if national.caller_region(stream) in western_regions:
            western.append((stream.key, stream.queue, profile))
        else:
            eastern[stream.queue].add(tuple(profile))
    assert western
    for key, queue, profile in western:
        assert tuple(profile[lag:] + profile[:lag]) in eastern[queue], key

    # Shifts too: the western regional site works its own local day, later on the clock (the
    # western national desks start at dawn for the eastern callers, so they are left out).
    def mean_midpoint(sites: set[str]) -> float:
        groups = [g for g in national.staffing if g.site in sites]
        shifts = [(g.count, g.shift) for g in groups if g.shift is not None]
        assert len(shifts) == len(groups)
        agents = sum(count for count, _ in shifts)
        return sum(count * (shift.start + shift.end) / 2 for count, shift in shifts) / agents

    regional = _regional_sites(national)
    late = mean_midpoint(regional & western_sites) - mean_midpoint(regional - western_sites)
    assert late == pytest.approx(lag, abs=1.0)


def test_languages_are_skills_with_levels_that_callers_require(national: Scenario) -> None:
    assert len(LANGUAGES & set(national.skills)) >= 3
    required: defaultdict[str, set[int]] = defaultdict(set)
    for stream in national.traffic:
        for skill, level in stream.required_skills.items():
            if skill in LANGUAGES:
                required[skill].add(level)
    assert len(required) >= 3
    agents = national.agent_configs()
    for language, levels in required.items():
        # Every language asked for is spoken well enough somewhere...
        assert any(a.skills.get(language, 0) >= max(levels) for a in agents), language
    # ...and levels matter: some agents speak a required language below the level asked.
    assert any(
        0 < a.skills.get(language, 0) < min(levels)
        for language, levels in required.items()
        for a in agents
    )


def test_queues_have_objectives_overflow_and_impatient_callers(national: Scenario) -> None:
    assert all(q.sl_threshold > 0 and 0 < q.sl_target <= 1 for q in national.queues)
    assert any(len(q.targets) >= 2 and q.targets[0].timeout for q in national.queues)
    assert any(q.overflow_to for q in national.queues)
    assert all(t.mean_patience for t in national.traffic)
    assert all(g.breaks for g in national.staffing)
    assert len({(g.shift.start, g.shift.end) for g in national.staffing if g.shift}) >= 5


def test_network_routing_settings_are_realistic_and_trusted_by_the_router(
    national: Scenario,
) -> None:
    simulation = national.simulation
    # ACDs pulse site statistics every 5-15 s; the margin is tens of seconds; contacts queued
    # at a site may be post-routed after a while.
    assert 5 <= simulation.pulse_seconds <= 15
    assert 10 <= simulation.margin_seconds <= 60
    assert simulation.post_route_after is not None
    # The router (with the settings `vcc simulate` uses by default) must still trust a site's
    # statistics when its next pulse is due: otherwise site selection silently routes on no
    # statistics for part of every pulse interval and the network comparison means nothing.
    status = RouterSettings().site_status
    assert simulation.pulse_seconds <= status.stale_after
    assert simulation.pulse_seconds <= status.watchdog_timeout


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["traffic"][0].update(queue="sales"),
            "traffic[0] (toronto/sales).queue: unknown queue 'sales'",
        ),
        (
            lambda d: d["staffing"][3].update(site="calgary"),
            "staffing[3] (calgary/en-peak).site: unknown site 'calgary'",
        ),
        (
            lambda d: d["traffic"][1]["required_skills"].update(cantonese=7),
            "traffic[1] (toronto/general-fr).required_skills: unknown skill 'cantonese'",
        ),
        (lambda d: d["simulation"].update(margin_seconds=-5), "simulation.margin_seconds"),
    ],
    ids=["queue", "site", "skill", "margin"],
)
def test_a_broken_copy_is_rejected_naming_the_field(
    national: Scenario, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = national.model_dump()
    edit(data)
    with pytest.raises(ScenarioError, match=re.escape(message)):
        parse_scenario(data, "national, edited")


# --------------------------------------------------------------------------- a short run


@pytest.fixture(scope="module")
def hand_over(national: Scenario) -> list[SimulationResult]:
    """Clock 16:30-18:30, measured from 16:45: the Eastern day shifts hand over to thin late
    shifts while the Pacific sites are in their early afternoon."""
    data = national.model_dump()
    data["simulation"].update(start_hour=16.5, hours=2.0, warmup_minutes=15.0)
    window = parse_scenario(data, "national, hand-over")
    return simulate(window, [ISOLATED, NETWORK_SKILL], seed=SEED)


def _check_conservation(trace: Trace) -> None:
    waiting: set[str] = set()
    for scheduled, outcome in zip(trace.contacts, trace.outcomes, strict=True):
        contact = scheduled.contact
        answered, abandoned = outcome.answered_at is not None, outcome.abandoned_at is not None
        assert not (answered and abandoned), contact.id
        if answered:
            assert outcome.reserved_at is not None, contact.id
            assert outcome.answered_at is not None
            assert contact.arrival <= outcome.answered_at < trace.end, contact.id
        elif abandoned:
            assert outcome.abandoned_at == pytest.approx(contact.arrival + contact.patience)
        elif outcome.reserved_at is None:
            waiting.add(contact.id)
    # What the simulation still has queued is exactly what the routers still hold.
    assert waiting == trace.engine_waiting


def test_every_offered_contact_ends_answered_abandoned_or_still_waiting(
    hand_over: list[SimulationResult],
) -> None:
    for result in hand_over:
        assert result.trace.contacts
        _check_conservation(result.trace)
        for scope in (result.statistics.network, *result.statistics.sites.values()):
            total = scope.total
            assert total.waiting_at_end >= 0
            assert total.offered == total.answered + total.abandoned + total.waiting_at_end
        offered = sum(s.total.offered for s in result.statistics.sites.values())
        assert offered == result.statistics.network.total.offered > 1000


def test_isolated_sites_are_short_and_idle_at_once(hand_over: list[SimulationResult]) -> None:
    isolated = next(r for r in hand_over if r.policy is ISOLATED).statistics
    totals = {site: scope.total for site, scope in isolated.sites.items()}
    # Some site misses the service level with its agents flat out...
    short = {
        site
        for site, m in totals.items()
        if (m.service_level or 0) < 0.7 and (m.occupancy or 0) > 0.85
    }
    # ...while another has agents waiting for calls.
    idle = {site for site, m in totals.items() if (m.occupancy or 1) < 0.7}
    assert short
    assert idle


def test_network_skill_routing_serves_at_least_as_well_as_isolated_sites(
    hand_over: list[SimulationResult],
) -> None:
    by_policy = {r.policy.key: r.statistics.network.total for r in hand_over}
    isolated, skill = by_policy[ISOLATED.key], by_policy[NETWORK_SKILL.key]
    assert (skill.service_level or 0) >= (isolated.service_level or 0)


# --------------------------------------------------------------------------- the network effects

# Clock 08:00-14:00, measured from 08:15: the Pacific dawn shortage, the Eastern morning peak and
# the Pacific morning peak, six of the day's seventeen hours (about 30 s for five policies on
# one core; the whole day takes about 60 s).
MORNING = {"start_hour": 8.0, "hours": 6.0}
COMPARED = (
    ISOLATED,
    NETWORK_SKILL,
    NETWORK_SKILL_MARGIN,
    NETWORK_LEAST_COST,
    NETWORK_LEAST_COST_MARGIN,
)
# Measured in this window on seeds 1, 2, 3 and 7 (same contacts for every policy of a seed):
#   network skill routing beats isolated sites by 7.7 to 10.1 service-level points;
#   the margin keeps 41-48% of the no-margin site switches (1693-1961 of them in six hours),
#   and moves the service level by 0.0 to +0.8 points (skill and least cost alike);
#   least cost is 0.3-0.4% cheaper per contact than skill routing, at 82.4-84.9% service level.
# The margin's service level may fall short of the no-margin one by at most the spread of those
# paired differences (0.8 points, rounded down to 0.5: a real loss would be far larger, e.g.
# -0.6 to -2.0 points at a 30 s margin without post-routing), and must cut switches below 0.6x.
SL_TOLERANCE = 0.005
SWITCH_RATIO = 0.6


@pytest.fixture(scope="module")
def morning(national: Scenario) -> dict[str, SimulationResult]:
    data = national.model_dump()
    data["simulation"].update(MORNING)
    window = parse_scenario(data, "national, morning")
    started = time.perf_counter()
    results = simulate(window, COMPARED, seed=SEED)
    assert time.perf_counter() - started < 120, "the national scenario got much slower"
    return {r.policy.key: r for r in results}


def _sl(result: SimulationResult) -> float:
    sl = result.statistics.network.total.service_level
    assert sl is not None
    return sl


def _cost(result: SimulationResult) -> float:
    cost = result.statistics.network.total.cost_per_contact
    assert cost is not None
    return cost


@pytest.mark.slow
def test_network_routing_beats_isolated_sites(morning: dict[str, SimulationResult]) -> None:
    isolated = morning[ISOLATED.key]
    assert isolated.trace.site_switches == 0
    for policy in COMPARED[1:]:
        assert _sl(morning[policy.key]) > _sl(isolated) + 0.05, policy.key
        total = morning[policy.key].statistics.network.total
        assert (total.abandon_rate or 0) < (isolated.statistics.network.total.abandon_rate or 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("zero", "margin"),
    [(NETWORK_SKILL, NETWORK_SKILL_MARGIN), (NETWORK_LEAST_COST, NETWORK_LEAST_COST_MARGIN)],
    ids=["skill", "least-cost"],
)
def test_a_margin_stops_load_flapping_at_no_worse_service_level(
    morning: dict[str, SimulationResult], zero: Policy, margin: Policy
) -> None:
    flapping, steady = morning[zero.key], morning[margin.key]
    # Without a margin, load flaps: site selection changes its choice over a thousand times.
    assert flapping.trace.site_switches > 1000
    assert steady.trace.site_switches < SWITCH_RATIO * flapping.trace.site_switches
    # Fewer contacts leave their site...
    transfers = {r.policy.key: r.statistics.network.total.transferred for r in (flapping, steady)}
    assert transfers[margin.key] < transfers[zero.key]
    # ...and the callers are not worse served for it.
    assert _sl(steady) >= _sl(flapping) - SL_TOLERANCE


@pytest.mark.slow
def test_least_cost_routing_is_cheaper_at_the_service_level_target(
    national: Scenario, morning: dict[str, SimulationResult]
) -> None:
    target = min(q.sl_target for q in national.queues)
    for skill, least_cost in (
        (NETWORK_SKILL, NETWORK_LEAST_COST),
        (NETWORK_SKILL_MARGIN, NETWORK_LEAST_COST_MARGIN),
    ):
        cheap = morning[least_cost.key]
        assert _sl(cheap) >= target
        assert _cost(cheap) < 0.999 * _cost(morning[skill.key]), least_cost.key
