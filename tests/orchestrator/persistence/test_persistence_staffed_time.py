"""StaffedTime: agents' staffed seconds per 15-minute interval, site and queue, from the
presence the sites report, written to the IntervalStore (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.api.live import ContactHistory
from orchestrator.persistence import Database
from routing.config import NetworkConfig, compile_network
from routing.model import Network
from site_agent.protocol import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentStatus,
    ContactData,
    ContactStatus,
    Snapshot,
)

TEN = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
T10 = TEN.timestamp()
MINUTE = 60.0

NETWORK: Network = compile_network(
    NetworkConfig.model_validate(
        {
            "skills": ["billing", "tech"],
            "sites": [
                {"id": "madrid", "region": "es"},
                {"id": "paris", "region": "fr"},
            ],
            "agents": [
                {"id": "ana", "site": "madrid", "skills": {"billing": 6}},
                {"id": "abe", "site": "madrid", "skills": {"billing": 3}},
                {"id": "bob", "site": "paris", "skills": {"billing": 8, "tech": 2}},
                {"id": "dan", "site": "paris", "skills": {}},  # no queue can use dan
            ],
            "queues": [
                {"id": "billing", "targets": [{"skills": "billing"}], "wrap_up": 30},
                {"id": "tech", "targets": [{"skills": "tech"}]},
            ],
        }
    )
)


def m(minutes: float) -> float:
    """10:00 plus ``minutes``, on the clock (Unix seconds)."""
    return T10 + minutes * MINUTE


def staffed(db: Database) -> dict[tuple[str, str, str], float]:
    """Staffed seconds by (interval start HH:MM, site, queue)."""
    records = db.intervals.query(TEN, TEN + timedelta(hours=2))
    return {
        (r.start.astimezone(UTC).strftime("%H:%M"), r.site, r.queue): r.counters.staffed_seconds
        for r in records
        if r.counters.staffed_seconds
    }


def history(db: Database, *, checkpoint: float | None = None, epoch: float = 0.0) -> ContactHistory:
    return ContactHistory(NETWORK, db.contacts, db.intervals, epoch=epoch, checkpoint=checkpoint)


def call(contact_id: str, arrival: float, queue: str = "billing") -> ContactData:
    return ContactData(id=contact_id, queue_id=queue, arrival=arrival)


def answered(h: ContactHistory, contact_id: str, agent: str, site: str, at: float) -> None:
    h.offered(call(contact_id, at), site, at)
    h.reserved(contact_id, site, agent, 1, at)
    h.answered(contact_id, at)


def test_logged_in_10_05_to_10_50_is_staffed_600_900_900_300(db: Database) -> None:
    h = history(db)
    h.presence("madrid", AgentLoggedIn(agent_id="ana", at=m(5), ready=True))
    answered(h, "c1", "ana", "madrid", m(7))
    h.finished("c1", m(12), wrap_up=0)
    h.presence("madrid", AgentNotReady(agent_id="ana", at=m(20), reason="break"))
    h.advance(m(46))  # written up to 10:46: the intervals that ended, and 10:45 so far
    assert staffed(db) == {
        ("10:00", "madrid", "billing"): 600.0,
        ("10:15", "madrid", "billing"): 900.0,
        ("10:30", "madrid", "billing"): 900.0,
        ("10:45", "madrid", "billing"): 60.0,
    }
    h.presence("madrid", AgentLoggedOut(agent_id="ana", at=m(50)))
    h.advance(m(55))  # the running interval is written when it ends (no checkpoints here)
    assert staffed(db)[("10:45", "madrid", "billing")] == 60.0
    h.advance(m(61))
    assert staffed(db)[("10:45", "madrid", "billing")] == 300.0
    (ten,) = [r for r in db.intervals.query(TEN, TEN + timedelta(minutes=15))]
    assert ten.counters.handle_seconds == 300.0  # occupancy 0.5 there


def test_work_and_wrap_up_go_to_their_queue_idle_time_to_all_the_agents_queues(
    db: Database,
) -> None:
    h = history(db)
    h.presence("paris", AgentReady(agent_id="bob", at=m(0)))  # present: logged in
    answered(h, "c1", "bob", "paris", m(10))
    h.finished("c1", m(14))  # the queue's 30 s of wrap-up: busy on billing to 10:14:30
    answered(h, "c2", "bob", "paris", m(14.5))
    h.finished("c2", m(16), wrap_up=60)  # across the boundary: to 10:17
    h.presence("paris", AgentLoggedOut(agent_id="bob", at=m(20)))
    h.close(m(30))
    idle_before, idle_after = 10 * MINUTE, 3 * MINUTE
    assert staffed(db) == pytest.approx(
        {
            ("10:00", "paris", "billing"): 5 * MINUTE + idle_before / 2,
            ("10:00", "paris", "tech"): idle_before / 2,
            ("10:15", "paris", "billing"): 2 * MINUTE + idle_after / 2,
            ("10:15", "paris", "tech"): idle_after / 2,
        }
    )
    assert sum(staffed(db).values()) == pytest.approx(20 * MINUTE)


def test_a_snapshot_starts_its_logged_in_agents_and_stops_the_others(db: Database) -> None:
    h = history(db)
    h.presence("madrid", AgentLoggedIn(agent_id="abe", at=m(0)))
    h.presence("madrid", AgentLoggedIn(agent_id="ana", at=m(2)))
    snapshot = Snapshot(
        site_id="madrid",
        at=m(5),
        agents=[
            AgentStatus(agent_id="ana", logged_in=True, ready=True),
            AgentStatus(agent_id="abe", logged_in=False),
        ],
        contacts=[],
    )
    h.reconcile("madrid", snapshot)
    assert h.staffed.counting("ana") and not h.staffed.counting("abe")
    # bob, never heard to log in, is listed with a call: counted (on it) from the snapshot.
    paris = Snapshot(
        site_id="paris",
        at=m(6),
        agents=[AgentStatus(agent_id="bob", logged_in=True)],
        contacts=[
            ContactStatus(contact=call("c9", m(4)), state="talking", agent_id="bob"),
        ],
    )
    h.reconcile("paris", paris)
    h.staffed.site_down("madrid", m(9))  # its link dropped: not known what happens there
    h.close(m(10))
    assert staffed(db) == pytest.approx(
        {
            ("10:00", "madrid", "billing"): 5 * MINUTE + 7 * MINUTE,  # abe 0-5, ana 2-9
            ("10:00", "paris", "billing"): 4 * MINUTE,  # bob 6-10, on c9
        }
    )


def test_an_agent_no_queue_can_use_is_staffed_over_every_queue(db: Database) -> None:
    h = history(db)
    h.presence("paris", AgentLoggedIn(agent_id="dan", at=m(0)))
    h.close(m(10))
    assert staffed(db) == {
        ("10:00", "paris", "billing"): 300.0,
        ("10:00", "paris", "tech"): 300.0,
    }


def test_reports_from_another_site_or_about_unknown_agents_count_nothing(
    db: Database,
) -> None:
    h = history(db)
    h.presence("paris", AgentLoggedIn(agent_id="ana", at=m(0)))  # ana is madrid's
    h.presence("paris", AgentLoggedIn(agent_id="zoe", at=m(0)))
    h.close(m(10))
    assert staffed(db) == {}


def test_checkpoints_write_the_running_interval_and_nothing_twice(db: Database) -> None:
    h = history(db, checkpoint=60.0)
    h.presence("madrid", AgentLoggedIn(agent_id="ana", at=m(0)))
    h.advance(m(0))
    for minute in (0.5, 1, 1.5, 2, 7.25):
        h.advance(m(minute))
        if minute == 1:
            assert staffed(db) == {("10:00", "madrid", "billing"): MINUTE}
    assert staffed(db) == {("10:00", "madrid", "billing"): 7.25 * MINUTE}
    h.presence("madrid", AgentLoggedIn(agent_id="ana", at=m(7)))  # re-sent: counted already
    h.presence("madrid", AgentLoggedOut(agent_id="ana", at=m(7)))  # a clock a little behind
    h.advance(m(20))
    h.close(m(30))
    assert staffed(db) == {("10:00", "madrid", "billing"): 7.25 * MINUTE}


def test_a_simulated_clock_counts_in_its_epochs_intervals(db: Database) -> None:
    epoch = T10 - 36_000.0  # the clock's zero is 00:00, its 36000 s are 10:00
    h = history(db, epoch=epoch)
    h.presence("madrid", AgentLoggedIn(agent_id="ana", at=36_000.0 + 10 * MINUTE))
    h.close(36_000.0 + 20 * MINUTE)
    assert staffed(db) == {
        ("10:00", "madrid", "billing"): 5 * MINUTE,
        ("10:15", "madrid", "billing"): 5 * MINUTE,
    }
