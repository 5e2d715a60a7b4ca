"""Run-level invariants: determinism, conservation of contacts, and agents who only work when
they are on shift and not on a break."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping

import pytest

from site_agent.simulation.experiment import SimulationResult, simulate
from site_agent.simulation.loading import load_scenario
from site_agent.simulation.policies import NETWORK_SKILL, POLICIES
from site_agent.simulation.report import runs_json
from site_agent.simulation.scenario import Scenario
from site_agent.simulation.statistics import Measures
from site_agent.simulation.trace import Trace

ALL_POLICIES = list(POLICIES.values())
EPSILON = 1e-9
Span = tuple[float, float]


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return load_scenario("three-site-demo").with_hours(3.0)


@pytest.fixture(scope="module")
def demo_results(demo: Scenario) -> list[SimulationResult]:
    return simulate(demo, ALL_POLICIES, seed=3)


def _busy_scenario() -> Scenario:
    """Agents busy almost all the time, with ring time and wrap-up: breaks and shift ends nearly
    always find the agent on a contact, so they must wait for it."""
    return Scenario.model_validate(
        {
            "name": "busy",
            "skills": ["general"],
            "sites": [{"id": "a", "region": "r"}, {"id": "b", "region": "r"}],
            "queues": [{"id": "q", "targets": [{"skills": "general"}], "wrap_up": 20}],
            "staffing": [
                {
                    "site": site,
                    "name": name,
                    "count": 6,
                    "skills": {"general": 5},
                    "shift": shift,
                    "breaks": {"count": 3, "minutes": 10, "jitter_minutes": 20},
                }
                for site in ("a", "b")
                for name, shift in (
                    ("early", {"start": 0, "end": 3}),
                    ("late", {"start": 1, "end": 4}),
                )
            ],
            "traffic": [
                {
                    "site": site,
                    "queue": "q",
                    "calls_per_hour": 130,
                    "handle_time": {"distribution": "lognormal", "mean": 200, "cv": 1.0},
                    "mean_patience": 300,
                }
                for site in ("a", "b")
            ],
            "simulation": {"hours": 4, "warmup_minutes": 0, "ring_seconds": 3},
        }
    )


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_json_and_another_seed_does_not(demo: Scenario) -> None:
    def document(seed: int) -> str:
        return json.dumps(runs_json(simulate(demo, ALL_POLICIES, seed=seed)), sort_keys=True)

    first = document(3)
    assert document(3) == first
    assert document(4) != first


def test_policies_see_the_same_contacts_and_shifts(demo_results: list[SimulationResult]) -> None:
    reference = demo_results[0].trace
    for result in demo_results[1:]:
        assert result.trace.contacts == reference.contacts
        assert [a.shift for a in result.trace.agents] == [a.shift for a in reference.agents]


# --------------------------------------------------------------------------- conservation


def _check_conservation(trace: Trace) -> None:
    ringing: set[str] = set()
    waiting: set[str] = set()
    for scheduled, outcome in zip(trace.contacts, trace.outcomes, strict=True):
        contact = scheduled.contact
        answered, abandoned = outcome.answered_at is not None, outcome.abandoned_at is not None
        assert not (answered and abandoned), contact.id
        if outcome.answered_at is not None:
            assert outcome.reserved_at is not None
            assert contact.arrival <= outcome.reserved_at <= outcome.answered_at < trace.end
            assert outcome.answered_at - contact.arrival <= contact.patience
        elif outcome.abandoned_at is not None:
            assert outcome.abandoned_at == pytest.approx(contact.arrival + contact.patience)
        elif outcome.reserved_at is not None:
            ringing.add(contact.id)
        else:
            waiting.add(contact.id)
    # What the simulation thinks is still queued is exactly what the engine still holds.
    assert waiting == trace.engine_waiting
    assert not ringing & trace.engine_waiting


def _check_totals(measures: Measures) -> None:
    assert measures.waiting_at_end >= 0
    assert measures.offered == measures.answered + measures.abandoned + measures.waiting_at_end
    assert measures.answered_within <= measures.answered


@pytest.mark.parametrize("index", range(len(ALL_POLICIES)), ids=[p.key for p in ALL_POLICIES])
def test_every_contact_ends_once_answered_abandoned_or_still_waiting(
    demo_results: list[SimulationResult], index: int
) -> None:
    result = demo_results[index]
    _check_conservation(result.trace)
    stats = result.statistics
    scopes = [stats.network, *stats.sites.values()]
    for scope in scopes:
        _check_totals(scope.total)
        for measures in (*scope.queues.values(), *scope.intervals):
            _check_totals(measures)
        assert sum(m.offered for m in scope.queues.values()) == scope.total.offered
        assert sum(m.offered for m in scope.intervals) == scope.total.offered
    assert sum(s.total.offered for s in stats.sites.values()) == stats.network.total.offered
    measured = sum(1 for c in result.trace.contacts if c.contact.arrival >= stats.measured_from)
    assert stats.network.total.offered == measured


# --------------------------------------------------------------------------- shifts and breaks


def _busy_spans(trace: Trace, wrap_up: Mapping[str, float]) -> dict[str, list[Span]]:
    """Each agent's contacts from reservation to the end of wrap-up (or the caller's hang-up)."""
    spans: defaultdict[str, list[Span]] = defaultdict(list)
    for scheduled, outcome in zip(trace.contacts, trace.outcomes, strict=True):
        if outcome.agent_id is None or outcome.reserved_at is None:
            continue
        if outcome.answered_at is not None:
            handled = scheduled.handle_time + wrap_up[scheduled.contact.queue_id]
            end = outcome.answered_at + handled
        else:
            end = trace.end if outcome.abandoned_at is None else outcome.abandoned_at
        spans[outcome.agent_id].append((outcome.reserved_at, end))
    return {agent: sorted(s) for agent, s in spans.items()}


def _check_agents_work_only_on_shift_and_off_break(result: SimulationResult) -> tuple[int, int]:
    """Asserts the rules; returns (breaks taken, breaks that waited for a contact to end)."""
    trace = result.trace
    spans = _busy_spans(trace, {q.id: q.wrap_up for q in result.scenario.queues})
    taken = delayed = 0
    for record in trace.agents:
        agent_spans = spans.get(record.shift.agent_id, [])
        shift_end = record.logout_requested_at or math.inf
        for start, end in agent_spans:
            # A contact is only ever given to a logged-in agent before the end of the shift ...
            assert record.login_at is not None and record.login_at <= start < shift_end
            # ... who finishes it, wrap-up included, before logging out.
            assert record.logout_at is None or end <= record.logout_at + EPSILON
        for earlier, later in itertools.pairwise(agent_spans):
            assert later[0] >= earlier[1] - EPSILON, "one voice contact at a time"
        for pause in record.breaks:
            back = trace.end if pause.ended_at is None else pause.ended_at
            for start, end in agent_spans:
                # Nothing new once the break is asked for, and nothing at all during it.
                assert not pause.requested_at <= start < back
                if pause.started_at is not None:
                    assert end <= pause.started_at + EPSILON or start >= back
            if pause.started_at is None:
                # A break never taken: the contact in progress outlasted the shift or the run.
                until = record.logout_requested_at or trace.end
                assert any(s <= pause.requested_at and e >= until for s, e in agent_spans)
            else:
                taken += 1
                delayed += pause.started_at > pause.requested_at
    return taken, delayed


def test_agents_never_get_work_outside_their_shift_or_on_a_break() -> None:
    for result in simulate(_busy_scenario(), ALL_POLICIES, seed=2):
        taken, delayed = _check_agents_work_only_on_shift_and_off_break(result)
        # The scenario really exercised the waiting: most breaks began after a contact ended.
        assert taken >= 30
        assert delayed >= taken // 2
        early = [a for a in result.trace.agents if ".early." in a.shift.agent_id]
        assert all(a.logout_at is not None and a.logout_at >= 3 * 3600 for a in early)
        assert any(a.logout_at is not None and a.logout_at > 3 * 3600 for a in early)


def test_demo_agents_work_only_on_shift_and_off_break(
    demo_results: list[SimulationResult],
) -> None:
    for result in demo_results:
        taken, _ = _check_agents_work_only_on_shift_and_off_break(result)
        assert taken > 0


def test_a_group_whose_shift_misses_the_run_never_logs_in(demo: Scenario) -> None:
    data = demo.model_dump()
    data["staffing"][0]["shift"] = {"start": 20, "end": 23}
    scenario = Scenario.model_validate(data)
    [result] = simulate(scenario, [NETWORK_SKILL], seed=1)
    absent = set(scenario.staffing[0].agent_ids())
    assert not absent & {a.shift.agent_id for a in result.trace.agents}
    assert not absent & {o.agent_id for o in result.trace.outcomes}


def test_results_do_not_depend_on_the_process_hash_seed() -> None:
    """String hashing differs per process; nothing the simulator decides may depend on it."""
    command = [sys.executable, "-c", "from orchestrator.cli import app; app()"]
    arguments = ["simulate", "--compare", "--hours", "1", "--seed", "5", "--json", "-"]
    outputs = {
        subprocess.run(
            [*command, *arguments],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1
