"""Business hours and end-of-shift protection in the engine: a closed site takes no new
contacts (its agents finish theirs, its queued contacts go elsewhere), an opening site's agents
take waiting work at once, and an agent about to leave gets no new contact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from routing.calendar import ShiftGuard, ShiftGuardRule
from routing.config import ConfigError, network_from_dict
from routing.engine import Router
from routing.model import AgentState
from routing.settings import RouterSettings

Factory = Callable[..., Any]
HOUR = 3600.0
# The engine clock's zero: Monday 23 November 2026, midnight in Paris.
EPOCH = datetime(2026, 11, 23, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
PARIS_HOURS = {"weekly": {"mon": ["08:00-18:00"], "tue": ["08:00-18:00"]}, "closed": ["2026-11-24"]}


def two_sites(
    make_config: Factory, agent: Factory, queue: Factory, **queue_fields: Any
) -> dict[str, Any]:
    sites = [
        {"id": "paris", "region": "eu", "timezone": "Europe/Paris", "hours": PARIS_HOURS},
        {"id": "lyon", "region": "eu", "timezone": "Europe/Paris"},
    ]
    config: dict[str, Any] = make_config(
        sites=sites,
        agents=[agent("p1", "paris"), agent("l1", "lyon")],
        queues=[queue("q", "billing", **queue_fields)],
    )
    return config


def router_for(config: dict[str, Any], **settings: Any) -> Router:
    return Router(network_from_dict(config), RouterSettings(clock_epoch=EPOCH, **settings))


def test_closed_site_takes_nothing_until_it_opens(
    make_config: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = router_for(two_sites(make_config, agent, queue))
    router.login("p1", 7 * HOUR, ready=True)
    assert router.site_open("paris") is False and router.site_open("lyon") is True
    assert router.offer(call("c1", arrival=7 * HOUR), 7 * HOUR) is None  # lyon agent not in
    assert router.next_timer() == 8 * HOUR
    (decision,) = router.advance(8 * HOUR)
    assert (decision.contact_id, decision.agent_id) == ("c1", "p1")
    assert router.site_open("paris") is True


def test_closing_site_finishes_its_contacts_but_takes_no_new_ones(
    make_config: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = router_for(two_sites(make_config, agent, queue))
    router.login("p1", 9 * HOUR, ready=True)
    router.offer(call("c1", arrival=17.9 * HOUR), 17.9 * HOUR)
    router.answer("c1", 17.9 * HOUR)
    router.advance(18 * HOUR)
    assert router.site_open("paris") is False
    assert router.offer(call("c2", arrival=18.1 * HOUR), 18.1 * HOUR) is None
    assert router.finish("c1", 18.2 * HOUR) == []  # free, but at a closed site
    assert router.agent_state("p1") is AgentState.READY
    router.login("l1", 18.3 * HOUR, ready=True)  # lyon (always open) takes the waiting call
    assert router.delivered_to("c2") == "l1"


def test_holiday_keeps_the_site_closed_all_day(
    make_config: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    router = router_for(two_sites(make_config, agent, queue))
    tuesday_noon = 36 * HOUR
    router.login("p1", tuesday_noon, ready=True)
    assert router.site_open("paris") is False
    assert router.offer(call("c1", arrival=tuesday_noon), tuesday_noon) is None


def test_contact_queued_at_a_closing_site_goes_to_another(
    make_config: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    config = two_sites(make_config, agent, queue, site_selection={"margin": 0})
    router = router_for(config)
    router.login("p1", 9 * HOUR, ready=True)
    router.login("l1", 9 * HOUR, ready=True)
    router.set_not_ready("l1", 9 * HOUR)
    router.offer(call("busy", arrival=17 * HOUR, origin_site="paris"), 17 * HOUR)
    router.answer("busy", 17 * HOUR)
    # Lands at Paris, nobody free there, no statistics: it queues at Paris.
    waiting = call("c1", arrival=17.5 * HOUR, origin_site="paris")
    assert router.offer(waiting, 17.5 * HOUR) is None
    router.set_ready("l1", 17.6 * HOUR)
    assert router.delivered_to("c1") is None  # queued at Paris: Lyon does not take it
    (decision,) = router.advance(18 * HOUR)  # Paris closes: released to any site
    assert (decision.contact_id, decision.agent_id, decision.transfer) == ("c1", "l1", True)


def test_shift_guard_window_stops_new_contacts_before_the_end(
    make_network: Factory, agent: Factory, call: Factory
) -> None:
    network = make_network(agents=[agent("a1"), agent("a2")])
    router = Router(network, RouterSettings(shift_guard=ShiftGuard(10)))
    router.login("a1", 0.0, ready=True, shift_end=HOUR)
    router.login("a2", 10.0, ready=True)
    first = router.offer(call("c1", arrival=100.0), 100.0)
    assert first is not None and first.agent_id == "a1"  # longest idle, not yet protected
    router.answer("c1", 100.0)
    router.finish("c1", 200.0)
    router.advance(HOUR - 600.0)  # ten minutes before a1's shift ends
    late = router.offer(call("c2", arrival=HOUR - 500.0), HOUR - 500.0)
    assert late is not None and late.agent_id == "a2"
    router.answer("c2", HOUR - 500.0)
    assert router.offer(call("c3", arrival=HOUR - 400.0), HOUR - 400.0) is None  # a1 protected
    assert router.set_shift_end("a1", 2 * HOUR, HOUR - 300.0)[0].contact_id == "c3"  # overtime


def test_shift_guard_overrun_rule_uses_the_longest_handle_time(
    make_network: Factory, agent: Factory, queue: Factory, call: Factory
) -> None:
    network = make_network(
        agents=[agent("a1")], queues=[queue("q", "billing", expected_handle_time=600.0)]
    )
    guard = ShiftGuard(5, ShiftGuardRule.OVERRUN)  # may run up to 5 min past the end
    router = Router(network, RouterSettings(shift_guard=guard))
    router.login("a1", 0.0, ready=True, shift_end=HOUR)
    router.advance(HOUR - 301.0)
    assert router.offer(call("c1", arrival=HOUR - 301.0), HOUR - 301.0) is not None
    router.answer("c1", HOUR - 301.0)
    router.finish("c1", HOUR - 300.0)  # a 600 s contact now would end 5 min past: no
    assert router.offer(call("c2", arrival=HOUR - 299.0), HOUR - 299.0) is None


def test_bad_business_hours_are_a_clear_config_error(
    make_config: Factory, agent: Factory, queue: Factory
) -> None:
    config = two_sites(make_config, agent, queue)
    config["sites"][0]["hours"] = {"weekly": {"mon": ["08:00-25:00"]}}
    with pytest.raises(ConfigError, match=r"sites\.0\.hours"):
        network_from_dict(config)
    config["sites"][0]["timezone"] = "Mars/Olympus"
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        network_from_dict(config)
