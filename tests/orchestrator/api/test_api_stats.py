"""Real-time statistics from the live router, and 15-minute interval reports from the stored
counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.persistence import Counters
from tests.orchestrator.api.conftest import ADMIN, SUPERVISOR, Api

NINE = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def realtime(api: Api, query: str = "") -> dict[str, Any]:
    response = api.client.get(f"/v1/stats/realtime{query}", headers=SUPERVISOR)
    assert response.status_code == 200, response.text
    return dict(response.json())


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_realtime_statistics_follow_agents_and_contacts(api: Api) -> None:
    client = api.client
    client.post("/v1/agents/ana/state", json={"state": "ready"}, headers=ADMIN)
    client.post(
        "/v1/agents/eve/state", json={"state": "not_ready", "reason": "lunch"}, headers=ADMIN
    )

    before = realtime(api)
    madrid = by(before["sites"], "site")["madrid"]
    assert madrid["agents"] == {
        "staffed": 1,
        "ready": 1,
        "not_ready": 0,
        "busy": 0,
        "reserved": 0,
        "on_contact": 0,
        "after_contact_work": 0,
        "logged_out": 0,
    }
    # The router's last statistics pulse of the site was when it started: nobody staffed.
    assert madrid["status"] == "critical"
    assert madrid["open"] is True
    billing = by(before["queues"], "queue")["billing"]
    assert (billing["staffed"], billing["ready"], billing["waiting"]) == (1, 1, 0)
    assert by(billing["sites"], "site")["madrid"] == {
        "site": "madrid",
        "staffed": 1,
        "ready": 1,
        "waiting": 0,
        "ewt_seconds": None,
    }
    skills = by(before["skills"], "skill")
    assert (skills["spanish"]["agents"]["ready"], skills["tech"]["agents"]["not_ready"]) == (1, 1)

    # One contact rings at ana; the next waits at paris, for 40 s by the time we look.
    client.post("/v1/contacts", json={"queue": "billing", "site": "madrid"}, headers=ADMIN)
    api.clock.advance(20)
    client.post("/v1/contacts", json={"queue": "billing", "site": "paris"}, headers=ADMIN)
    api.clock.advance(40)

    after = realtime(api)
    madrid, paris = by(after["sites"], "site")["madrid"], by(after["sites"], "site")["paris"]
    assert (madrid["agents"]["busy"], madrid["agents"]["reserved"], madrid["waiting"]) == (1, 1, 0)
    assert (paris["waiting"], paris["longest_wait_seconds"]) == (1, 40.0)
    billing = by(after["queues"], "queue")["billing"]
    assert (billing["waiting"], billing["ringing"], billing["talking"]) == (1, 1, 0)
    assert (billing["ready"], billing["longest_wait_seconds"]) == (0, 40.0)
    skills = by(after["skills"], "skill")
    assert (skills["billing"]["waiting"], skills["billing"]["longest_wait_seconds"]) == (1, 40.0)
    assert skills["tech"]["waiting"] == 0
    assert after["at"] == "2025-03-14T09:01:00Z"


def test_realtime_statistics_narrow_to_a_site_or_a_queue(api: Api) -> None:
    api.client.post("/v1/agents/bob/state", json={"state": "ready"}, headers=ADMIN)
    api.client.post("/v1/contacts", json={"queue": "tech", "site": "paris"}, headers=ADMIN)

    paris = realtime(api, "?site=paris")
    assert [s["site"] for s in paris["sites"]] == ["paris"]
    assert by(paris["skills"], "skill")["billing"]["agents"]["ready"] == 1
    assert [s["site"] for s in by(paris["queues"], "queue")["tech"]["sites"]] == ["paris"]

    tech = realtime(api, "?queue=tech")
    assert [q["queue"] for q in tech["queues"]] == ["tech"]
    assert tech["queues"][0]["waiting"] == 1
    assert by(tech["sites"], "site")["paris"]["waiting"] == 1
    billing = realtime(api, "?queue=billing")
    assert by(billing["sites"], "site")["paris"]["waiting"] == 0

    for query in ("?site=rome", "?queue=golf"):
        response = api.client.get(f"/v1/stats/realtime{query}", headers=SUPERVISOR)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def report(api: Api, query: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/reports/intervals?{query}", headers=SUPERVISOR)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_interval_reports_compute_each_measure_from_the_counters(api: Api) -> None:
    intervals = api.db.intervals
    intervals.add(
        NINE,
        "madrid",
        "billing",
        Counters(
            offered=10,
            answered=8,
            abandoned=2,
            answered_within_sl=6,
            wait_seconds=120.0,
            handle_seconds=2400.0,
            staffed_seconds=3600.0,
            cost=40.0,
        ),
    )
    intervals.add(
        NINE + timedelta(minutes=20),
        "madrid",
        "billing",
        Counters(offered=4, answered=4, answered_within_sl=4, handle_seconds=800.0),
    )
    intervals.add(NINE, "paris", "billing", Counters(offered=6, answered=2, abandoned=4, cost=8.0))
    intervals.add(NINE - timedelta(minutes=1), "paris", "billing", Counters(offered=99))

    body = report(api, "start=2025-03-14T09:00:00Z&end=2025-03-14T10:00:00Z")

    rows = [(r["start"], r["end"], r["site"], r["queue"]) for r in body["intervals"]]
    assert rows == [
        ("2025-03-14T09:00:00Z", "2025-03-14T09:15:00Z", "madrid", "billing"),
        ("2025-03-14T09:00:00Z", "2025-03-14T09:15:00Z", "paris", "billing"),
        ("2025-03-14T09:15:00Z", "2025-03-14T09:30:00Z", "madrid", "billing"),
    ]
    first = body["intervals"][0]
    assert first["service_level"] == pytest.approx(0.6)  # 6 of 10 offered within threshold
    assert first["abandon_rate"] == pytest.approx(0.2)
    assert first["asa_seconds"] == pytest.approx(15.0)  # 120 s over 8 answered
    assert first["aht_seconds"] == pytest.approx(300.0)  # 2400 s over 8 answered
    assert first["occupancy"] == pytest.approx(2400 / 3600)
    assert first["cost_per_contact"] == pytest.approx(5.0)
    third = body["intervals"][2]
    assert third["occupancy"] is None  # no staffed time reported: not a division by zero
    assert (third["service_level"], third["cost_per_contact"]) == (1.0, 0.0)

    total = body["total"]
    assert (total["offered"], total["answered"], total["abandoned"]) == (20, 14, 6)
    assert total["service_level"] == pytest.approx(10 / 20)
    assert total["asa_seconds"] == pytest.approx(120 / 14)
    assert total["aht_seconds"] == pytest.approx(3200 / 14)
    assert total["occupancy"] == pytest.approx(3200 / 3600)
    assert (total["cost"], total["cost_per_contact"]) == (48.0, pytest.approx(48 / 14))

    madrid = report(api, "start=2025-03-14T10:00:00%2B01:00&end=2025-03-14T09:15:00Z&site=madrid")
    assert [r["site"] for r in madrid["intervals"]] == ["madrid"]
    assert madrid["total"]["offered"] == 10
    empty = report(api, "start=2025-03-15T00:00:00Z&end=2025-03-16T00:00:00Z&queue=billing")
    assert empty["intervals"] == []
    assert empty["total"]["service_level"] is None


@pytest.mark.parametrize(
    "query",
    [
        "start=2025-03-14T09:00:00&end=2025-03-14T10:00:00Z",  # no time zone
        "start=2025-03-14T10:00:00Z&end=2025-03-14T09:00:00Z",  # backwards
        "start=2025-01-01T00:00:00Z&end=2025-03-01T00:00:00Z",  # longer than 31 days
        "end=2025-03-14T10:00:00Z",
    ],
)
def test_a_report_needs_an_aware_bounded_range(api: Api, query: str) -> None:
    response = api.client.get(f"/v1/reports/intervals?{query}", headers=ADMIN)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
