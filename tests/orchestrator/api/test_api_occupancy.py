"""Occupancy in the 15-minute interval reports: agents' staffed time counted by the in-process
router (LocalRouting) from their presence, beside the contacts' handle time; on SQLite and
PostgreSQL (the API conftest runs every test on both)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.persistence import Database
from tests.orchestrator.api.conftest import (
    ADMIN,
    NETWORK,
    SUPERVISOR,
    T0,
    Api,
    Clock,
    make_api,
    seed,
)

TEN = T0 + 3600.0  # 2025-03-14 10:00 UTC
MINUTE = 60.0


@pytest.fixture
def api_at_ten(db: Database) -> Iterator[Api]:
    seed(db)
    made = make_api(db, Clock(TEN))
    with made.client:
        yield made


def at(api: Api, minutes: float) -> None:
    """Set the router's clock to 10:00 plus ``minutes``."""
    api.clock.now = TEN + minutes * MINUTE


def set_state(api: Api, agent: str, state: str, **extra: str) -> None:
    response = api.client.post(
        f"/v1/agents/{agent}/state", json={"state": state, **extra}, headers=ADMIN
    )
    assert response.status_code == 200, response.text


def handle(api: Api, start: float, talk: float, wrap_up: float, site: str = "madrid") -> None:
    """A billing contact landing at ``site`` at 10:00 + ``start`` minutes, answered at once,
    talking ``talk`` minutes, then ``wrap_up`` seconds of after-contact work."""
    at(api, start)
    response = api.client.post(
        "/v1/contacts", json={"queue": "billing", "site": site}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    contact = response.json()
    assert contact["status"] == "reserved", contact
    api.routing.answer(contact["id"])
    at(api, start + talk)
    api.routing.finish(contact["id"], wrap_up=wrap_up)


def report(api: Api, query: str = "") -> dict[str, Any]:
    response = api.client.get(
        "/v1/reports/intervals?start=2025-03-14T10:00:00Z&end=2025-03-14T11:00:00Z" + query,
        headers=SUPERVISOR,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def rows(body: dict[str, Any]) -> list[tuple[str, str, str, float, float, float | None]]:
    return [
        (
            row["start"][11:16],
            row["site"],
            row["queue"],
            row["staffed_seconds"],
            row["handle_seconds"],
            row["occupancy"],
        )
        for row in body["intervals"]
    ]


def test_an_agents_staffed_time_gives_each_interval_its_occupancy(api_at_ten: Api) -> None:
    api = api_at_ten
    at(api, 5)
    set_state(api, "ana", "ready")  # logs in at 10:05
    handle(api, 7, talk=5, wrap_up=0)  # 10:07-10:12: 300 s
    handle(api, 20, talk=10, wrap_up=0)  # 10:20-10:30: 600 s
    handle(api, 40, talk=3, wrap_up=120)  # 10:40-10:43, then 2 min of wrap-up: 300 s
    at(api, 50)
    set_state(api, "ana", "logged_out")  # 10:50: 45 minutes staffed, 20 of them working

    # The intervals that ended are written as the clock passed their end; the running one
    # (10:45) only up to the last checkpoint.
    written = {(r[0], r[3]) for r in rows(report(api))}
    assert {("10:00", 600.0), ("10:15", 900.0), ("10:30", 900.0)} <= written

    at(api, 61)
    api.routing.tick()  # 11:01: the 10:45 interval has ended too
    body = report(api)
    assert rows(body) == [
        ("10:00", "madrid", "billing", 600.0, 300.0, pytest.approx(0.5)),
        ("10:15", "madrid", "billing", 900.0, 600.0, pytest.approx(2 / 3)),
        ("10:30", "madrid", "billing", 900.0, 300.0, pytest.approx(1 / 3)),
        ("10:45", "madrid", "billing", 300.0, 0.0, 0.0),
    ]
    total = body["total"]
    assert (total["staffed_seconds"], total["handle_seconds"]) == (2700.0, 1200.0)
    assert total["occupancy"] == pytest.approx(1200 / 2700)


def test_the_running_interval_is_written_at_checkpoints_and_on_close(api_at_ten: Api) -> None:
    api = api_at_ten
    at(api, 1)
    set_state(api, "ana", "ready")
    set_state(api, "bob", "not_ready", reason="training")  # staffed, if not working
    handle(api, 2, talk=4, wrap_up=0, site="madrid")  # ana, 10:02-10:06
    at(api, 8)
    api.routing.tick()  # more than a minute since the last write: 10:01-10:08 so far
    partial = report(api)
    staffed = {row["site"]: row["staffed_seconds"] for row in partial["intervals"]}
    assert staffed == {"madrid": 7 * MINUTE, "paris": 7 * MINUTE}
    madrid = next(row for row in partial["intervals"] if row["site"] == "madrid")
    assert madrid["occupancy"] == pytest.approx(4 / 7)

    at(api, 8.5)
    api.routing.close()  # shutting down: 10:01-10:08:30, each second once
    body = report(api)
    staffed = {row["site"]: row["staffed_seconds"] for row in body["intervals"]}
    assert staffed == {"madrid": 7.5 * MINUTE, "paris": 7.5 * MINUTE}
    # Per site and for the network, occupancy = handle time / staffed time.
    assert report(api, "&site=madrid")["total"]["occupancy"] == pytest.approx(4 / 7.5)
    assert report(api, "&site=paris")["total"]["occupancy"] == 0.0
    assert body["total"]["occupancy"] == pytest.approx(4 / 15)


def test_an_agent_of_two_queues_has_its_working_time_where_it_worked(db: Database) -> None:
    network: dict[str, Any] = {
        **NETWORK,
        "agents": [
            {"id": "ana", "site": "madrid", "skills": {"billing": 6, "tech": 5}},
            {"id": "bob", "site": "paris", "skills": {"billing": 8}},
            {"id": "eve", "site": "paris", "skills": {"tech": 7}},
        ],
    }
    seed(db, network)
    api = make_api(db, Clock(TEN))
    with api.client:
        set_state(api, "ana", "ready")  # 10:00, billing and tech
        handle(api, 5, talk=10, wrap_up=0)  # billing 10:05-10:15
        at(api, 15)
        set_state(api, "ana", "logged_out")
        api.routing.close()
        body = report(api, "&site=madrid")
    by_queue = {row["queue"]: row for row in body["intervals"]}
    # 10 minutes on billing; the 5 idle minutes shared by the two queues ana serves.
    assert by_queue["billing"]["staffed_seconds"] == pytest.approx(600 + 150)
    assert by_queue["tech"]["staffed_seconds"] == pytest.approx(150)
    assert by_queue["billing"]["occupancy"] == pytest.approx(600 / 750)
    assert body["total"]["staffed_seconds"] == pytest.approx(900)
    assert body["total"]["occupancy"] == pytest.approx(600 / 900)
