"""Site statuses and expected waits in the API's real-time statistics, from the statistics
pulses the in-process router makes of its own view (every 2 s by default)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.persistence import Database
from tests.orchestrator.api.conftest import ADMIN, NETWORK, SUPERVISOR, Api, Clock, make_api, seed

# Billing: a 20 s service-level threshold and 40 s handle time, so one busy agent means an
# expected wait of 40 s (congested: over 20 s) and one caller waiting 80 s (critical: over 60).
FAST_BILLING: dict[str, Any] = {
    **NETWORK,
    "queues": [
        {
            "id": "billing",
            "targets": [{"skills": "billing"}],
            "sl_threshold": 20,
            "expected_handle_time": 40,
        },
        *NETWORK["queues"][1:],
    ],
}


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    seed(db, FAST_BILLING)
    made = make_api(db, Clock())
    with made.client:
        yield made


def status_and_wait(api: Api, site: str) -> tuple[str, float | None]:
    response = api.client.get("/v1/stats/realtime", headers=SUPERVISOR)
    assert response.status_code == 200, response.text
    body = response.json()
    status = next(row["status"] for row in body["sites"] if row["site"] == site)
    billing = next(row for row in body["queues"] if row["queue"] == "billing")
    ewt = next(row["ewt_seconds"] for row in billing["sites"] if row["site"] == site)
    return status, ewt


def offer(api: Api) -> None:
    created = api.client.post(
        "/v1/contacts", json={"queue": "billing", "site": "madrid"}, headers=ADMIN
    )
    assert created.status_code == 201, created.text


def test_a_site_turns_congested_then_critical_as_its_expected_wait_grows(api: Api) -> None:
    response = api.client.post("/v1/agents/ana/state", json={"state": "ready"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    api.clock.advance(2)  # the next pulse sees ana
    assert status_and_wait(api, "madrid") == ("operational", 0.0)
    assert status_and_wait(api, "paris") == ("critical", None)  # nobody staffed: no finite wait

    offer(api)  # rings ana
    api.clock.advance(2)
    assert status_and_wait(api, "madrid") == ("congested", 40.0)
    offer(api)  # waits behind it
    api.clock.advance(2)
    assert status_and_wait(api, "madrid") == ("critical", 80.0)
