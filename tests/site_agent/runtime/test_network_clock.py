"""The network's clock: simulated clocks pinned to one origin read the same time in any
process, a simulated PBX started late on it does not replay the calls it missed, and the
settings give one speed to the router and the sites."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest
from fake_router import eventually, run, two_sites
from pydantic import ValidationError

from orchestrator.settings import Settings
from site_agent.pbx import AgentLogin, CallArrived, PbxEvent
from site_agent.service import simulated_site_agent
from site_agent.settings import ClockSettings
from site_agent.simulated_pbx import SimulatedClock, SimulatedPbx, run_tag


def test_clocks_pinned_to_one_origin_read_the_same_time_and_restart_no_more() -> None:
    origin = time.time() - 10.0
    first = SimulatedClock(3600.0, 60.0, origin=origin)
    second = SimulatedClock(3600.0, 60.0)
    second.pin(origin)
    before = time.time()
    readings = [first.now(), second.now()]
    after = time.time()
    for reading in readings:
        # The scenario's start (3600) at the origin, then 60 clock seconds per second.
        assert 3600.0 + (before - origin) * 60 <= reading <= 3600.0 + (after - origin) * 60
    first.restart()
    assert first.now() >= readings[0]  # still on the origin, not back at the start
    assert first.delay_until(first.now() + 60.0) == pytest.approx(1.0, abs=0.05)


def test_an_origin_still_to_come_reads_before_the_start() -> None:
    clock = SimulatedClock(3600.0, 10.0, origin=time.time() + 5.0)
    assert clock.now() == pytest.approx(3550.0, abs=1.0)
    assert clock.delay_until(3600.0) == pytest.approx(5.0, abs=0.1)


def test_a_pbx_started_late_on_the_network_clock_skips_the_calls_it_missed() -> None:
    speed = 600.0
    scenario = two_sites(calls_per_hour=600.0)
    start = scenario.simulation.start
    # The network's clock has been running for an hour of the scenario.
    origin = time.time() - 3600.0 / speed
    pbx = SimulatedPbx(scenario, "north", seed=3, speed=speed, origin=origin)
    missed = [c for c in pbx.contacts if c.contact.arrival < start + 3600.0]
    assert missed  # about 100 calls came before this site started

    async def body() -> list[PbxEvent]:
        seen: list[PbxEvent] = []
        pbx.subscribe(seen.append)
        await pbx.start()
        try:
            await eventually(lambda: any(isinstance(e, CallArrived) for e in seen), "a call")
        finally:
            await pbx.close()
        return seen

    seen = run(body())
    arrivals = [e for e in seen if isinstance(e, CallArrived)]
    assert min(e.at for e in arrivals) >= start + 3600.0
    assert not {e.contact.id for e in arrivals} & {c.contact.id for c in missed}
    # On a network's clock the calls carry the run's tag: a database keeps every run's calls,
    # and each run numbers them c1, c2, ... afresh.
    assert {e.contact.id.rsplit("-", 1)[0] for e in arrivals} == {run_tag(origin)}
    assert run_tag(origin) != run_tag(origin + 1.0)
    # Its agents' shifts began at the start: they log in at once, as planned.
    logins = [e for e in seen if isinstance(e, AgentLogin)]
    assert len(logins) == 3 and all(e.at == start for e in logins)
    assert pbx.now() >= start + 3600.0


def test_a_site_agent_given_an_origin_runs_its_pbx_on_it() -> None:
    origin = time.time()
    agent = simulated_site_agent(
        two_sites(), "north", router_url="ws://127.0.0.1:1", token="t", seed=1, clock_origin=origin
    )
    assert isinstance(agent.pbx.clock, SimulatedClock)
    assert agent.pbx.clock.origin == origin
    unpinned = simulated_site_agent(
        two_sites(), "north", router_url="ws://127.0.0.1:1", token="t", seed=1
    )
    assert isinstance(unpinned.pbx.clock, SimulatedClock)
    assert unpinned.pbx.clock.origin is None


def test_the_clock_settings_take_an_instant_with_its_zone_or_unix_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VCC_CLOCK__ORIGIN", "2026-01-05T09:00:00Z")
    monkeypatch.setenv("VCC_CLOCK__SPEED", "20")
    config = Settings()
    assert config.clock.origin == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert config.clock.speed == 20.0 == config.site_agent.speed  # one speed for both
    assert ClockSettings(origin=1_767_603_600).origin_timestamp == 1_767_603_600.0
    assert ClockSettings().origin_timestamp is None
    with pytest.raises(ValidationError, match="timezone"):
        ClockSettings.model_validate({"origin": "2026-01-05T09:00:00"})
    with pytest.raises(ValidationError):
        ClockSettings(speed=math.inf)


def test_the_older_site_agent_speed_setting_is_the_clocks_unless_they_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VCC_SITE_AGENT__SPEED", "30")
    config = Settings()
    assert config.clock.speed == 30.0 == config.site_agent.speed
    monkeypatch.setenv("VCC_CLOCK__SPEED", "20")
    with pytest.raises(ValidationError, match="set only VCC_CLOCK__SPEED"):
        Settings()
    monkeypatch.setenv("VCC_CLOCK__SPEED", "30")
    assert Settings().clock.speed == 30.0
