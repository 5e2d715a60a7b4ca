"""The routing rules operators switch on, simulated with fixed seeds, each asserted by its
effect: redirect on no answer, last-agent routing, end-of-shift protection, callbacks,
business hours and deferrable e-mail."""

from __future__ import annotations

import re
from typing import Any

import pytest

from site_agent.simulation.experiment import SimulationResult, simulate
from site_agent.simulation.policies import ISOLATED, NETWORK_SKILL, Policy
from site_agent.simulation.practice import practice_figures
from site_agent.simulation.scenario import Scenario, ScenarioError, parse_scenario
from tests.site_agent.conftest import one_queue_scenario

SEED = 11


def edited(scenario: Scenario, **changes: Any) -> Scenario:
    """The scenario with top-level parts replaced (``queues=...``) and ``simulation`` keys
    merged; validated again like a file would be."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    data["simulation"].update(changes.pop("simulation", {}))
    data.update(changes)
    return Scenario.model_validate(data)


def run(scenario: Scenario, policy: Policy = ISOLATED) -> SimulationResult:
    (result,) = simulate(scenario, [policy], seed=SEED)
    return result


def base(**kwargs: Any) -> Scenario:
    defaults: dict[str, Any] = {"agents": 10, "calls_per_hour": 160.0, "hours": 6.0}
    return one_queue_scenario(**{**defaults, **kwargs})


def with_queue(scenario: Scenario, **fields: Any) -> Scenario:
    queues = [{**q.model_dump(mode="json", exclude_none=True), **fields} for q in scenario.queues]
    return edited(scenario, queues=queues)


def with_traffic(scenario: Scenario, **fields: Any) -> Scenario:
    traffic = [{**t.model_dump(mode="json", exclude_none=True), **fields} for t in scenario.traffic]
    return edited(scenario, traffic=traffic)


def test_offers_that_ring_out_are_redirected_and_still_answered_once() -> None:
    scenario = with_queue(base(), answer_timeout=15.0)
    clean = run(scenario)
    ringing = run(edited(scenario, simulation={"no_answer_share": 0.1}))
    outcomes = ringing.trace.outcomes
    redirects = practice_figures(ringing.trace).redirects
    answered = sum(o.answered_at is not None for o in outcomes)
    assert 0.07 * (answered + redirects) < redirects < 0.13 * (answered + redirects)
    # Each redirected contact waits again at the head of the queue and is answered once.
    redirected = [o for o in outcomes if o.redirects]
    assert sum(o.answered_at is not None for o in redirected) >= 0.95 * len(redirected)
    # Agents lost to ringing (15 s each, then 60 s not ready) lengthen the waits.
    asa = [r.statistics.network.total.asa for r in (clean, ringing)]
    assert asa[0] is not None and asa[1] is not None and asa[1] > asa[0] + 5.0


def test_returning_customers_reach_their_last_agent() -> None:
    scenario = with_traffic(base(), customers=300)

    def sticky(wait: float) -> SimulationResult:
        return run(with_queue(scenario, sticky={"remember": 86400.0, "wait": wait}))

    results = {"plain": run(scenario), "if free": sticky(0.0), "wait 60 s": sticky(60.0)}
    share = {k: practice_figures(r.trace).last_agent_share for k, r in results.items()}
    sl = {k: r.statistics.network.total.service_level for k, r in results.items()}
    assert practice_figures(results["plain"].trace).returning > 500
    assert share["plain"] is not None and share["plain"] < 0.15  # one agent in ten by chance
    # Taking the last agent only when free doubles the share, at no cost in service level...
    assert share["if free"] is not None and share["if free"] > 1.7 * share["plain"]
    assert sl["if free"] == sl["plain"]
    # ...waiting for them does better still, and costs service level (a wait past the
    # threshold misses it): the trade-off operators set with the sticky wait.
    assert share["wait 60 s"] is not None and share["wait 60 s"] > 3 * share["plain"]
    assert sl["wait 60 s"] is not None and sl["plain"] is not None
    assert sl["wait 60 s"] < sl["plain"]


def test_shift_guard_sends_agents_home_on_time() -> None:
    """Ten agents work 0-4 h beside twelve who stay all run; calls last three minutes."""
    scenario = base(calls_per_hour=190.0)
    early = scenario.staffing[0].model_dump(mode="json", exclude_none=True)
    staffing = [
        {**early, "shift": {"start": 0, "end": 4}},
        {**early, "name": "late", "count": 12},
    ]
    scenario = edited(scenario, staffing=staffing)
    unguarded = practice_figures(run(scenario).trace).overtime_minutes
    guarded = practice_figures(
        run(edited(scenario, simulation={"shift_protection_minutes": 10})).trace
    ).overtime_minutes
    assert unguarded is not None and guarded is not None
    assert unguarded > 1.0  # the early shift's last calls run past 4 h
    assert guarded < 0.25 * unguarded


def test_callbacks_keep_callers_and_a_chosen_time_moves_load_off_the_peak() -> None:
    """Two hours of overload, then a lull; callers still waiting after 45 s are offered a
    callback and six in ten take it."""
    data = base(calls_per_hour=220.0, mean_patience=120.0).model_dump(
        mode="json", exclude_none=True
    )
    data["traffic"][0]["profile"] = [1.3, 1.3, 0.5, 0.5, 0.5, 0.5] * 4
    scenario = Scenario.model_validate(data)
    offer = {"callback_after": 45.0, "callback_acceptance": 0.6}
    hang_ups = run(scenario)
    in_place = run(with_traffic(scenario, **offer))
    later = run(with_traffic(scenario, **offer, callback_delay=7200.0))
    # Keeping their place, callers who took the offer never abandon and are all called back;
    # the capacity of the peak is what it is, so overall abandonment does not fall.
    taken = [o for o in in_place.trace.outcomes if o.callback_at is not None]
    assert len(taken) > 100
    assert all(o.abandoned_at is None and o.answered_at is not None for o in taken)
    # Called back two hours later, in the lull, they free the peak: fewer hang-ups.
    rates = [r.statistics.network.total.abandon_rate for r in (hang_ups, later)]
    assert rates[0] is not None and rates[1] is not None
    assert rates[1] < 0.85 * rates[0]
    assert practice_figures(later.trace).callbacks > 50


def test_a_closed_site_takes_no_new_contacts_and_the_network_covers_it() -> None:
    scenario = base(sites=(("east", 0.0), ("west", 0.0)), agents=8, calls_per_hour=80.0)
    sites = [s.model_dump(mode="json", exclude_none=True) for s in scenario.sites]
    sites[0]["hours"] = {"weekly": {"mon": ["00:00-03:00"]}}  # east closes at 03:00 UTC
    closing = edited(scenario, sites=sites)
    result = run(closing, NETWORK_SKILL)
    close = 3 * 3600.0
    for scheduled, outcome in zip(result.trace.contacts, result.trace.outcomes, strict=True):
        if outcome.reserved_at is not None and outcome.reserved_at >= close:
            assert outcome.serving_site == "west", scheduled.contact.id
    after = [
        o
        for s, o in zip(result.trace.contacts, result.trace.outcomes, strict=True)
        if s.site == "east" and s.contact.arrival >= close
    ]
    assert len(after) > 100
    assert sum(o.answered_at is not None for o in after) >= 0.95 * len(after)
    # Isolated, the closed site's callers wait for nobody.
    alone = run(closing, ISOLATED)
    unanswered = [
        o
        for s, o in zip(alone.trace.contacts, alone.trace.outcomes, strict=True)
        if s.site == "east" and s.contact.arrival >= close + 600.0
    ]
    assert unanswered and all(o.answered_at is None for o in unanswered)


def test_deferrable_email_does_not_take_agents_from_waiting_calls() -> None:
    scenario = base(calls_per_hour=150.0)
    data = scenario.model_dump(mode="json", exclude_none=True)
    data["queues"].append(
        {"id": "mail", "channel": "email", "targets": [{"skills": "general"}],
         "sl_threshold": 14400.0, "expected_handle_time": 400.0}
    )  # fmt: skip
    data["staffing"][0]["capacity"] = {"voice": 1, "email": 1}
    data["traffic"].append(
        {"site": "solo", "queue": "mail", "calls_per_hour": 25.0,
         "handle_time": {"distribution": "exponential", "mean": 400.0}}
    )  # fmt: skip
    first_come = Scenario.model_validate(data)
    data["queues"][1]["deferrable"] = True
    deferred = Scenario.model_validate(data)

    def voice_and_mail(result: SimulationResult) -> tuple[float, int]:
        queues = result.statistics.network.queues
        sl = queues["q"].service_level
        assert sl is not None
        return sl, queues["mail"].answered

    sl_first, mail_first = voice_and_mail(run(first_come))
    sl_deferred, mail_deferred = voice_and_mail(run(deferred))
    assert sl_deferred > sl_first + 0.05
    # The e-mails are done in the gaps between calls: most of them within the run.
    assert mail_deferred >= 0.7 * mail_first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"simulation": {"no_answer_share": 0.1}},
            "queues (q): no_answer_share needs an answer_timeout here",
        ),
        (
            {"simulation": {"ring_seconds": 20.0}, "answer_timeout": 15.0},
            "answer_timeout 15.0 s is not longer than simulation.ring_seconds 20.0 s",
        ),
        ({"simulation": {"timezone": "Europe/Nowhere"}}, "unknown time zone 'Europe/Nowhere'"),
    ],
)
def test_rule_settings_are_checked_with_clear_errors(change: dict[str, Any], message: str) -> None:
    data = base().model_dump(mode="json", exclude_none=True)
    data["simulation"].update(change.get("simulation", {}))
    if "answer_timeout" in change:
        data["queues"][0]["answer_timeout"] = change["answer_timeout"]
    with pytest.raises(ScenarioError, match=re.escape(message)):
        parse_scenario(data, "rules.yaml")
