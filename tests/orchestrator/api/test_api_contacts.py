"""Contacts over HTTP: creating one asks the router for a route; the route history is recorded
as the router's reservations come back, and agents' state changes move contacts along."""

from __future__ import annotations

from typing import Any

import pytest

from site_agent.protocol import Delta
from tests.orchestrator.api.conftest import ADMIN, SUPERVISOR, T0, Api, auth

MADRID, ANA, BOB = auth("madrid"), auth("ana"), auth("bob")


def kinds(contact: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in contact["history"]]


def ready(api: Api, agent: str) -> dict[str, Any]:
    response = api.client.post(f"/v1/agents/{agent}/state", json={"state": "ready"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


def offer(api: Api, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    response = api.client.post(
        "/v1/contacts", json={"queue": "billing", **body}, headers=headers or ADMIN
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v1/contacts/{response.json()['id']}"
    return dict(response.json())


def get(api: Api, contact_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/contacts/{contact_id}", headers=SUPERVISOR)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_contact_offered_while_an_agent_is_ready_rings_there_and_its_history_follows_it(
    api: Api,
) -> None:
    api.client.post("/v1/agents/ana/state", json={"state": "ready"}, headers=ANA)

    created = offer(api, MADRID, id="call-1", caller_region="es", required_skills={"spanish": 5})

    assert created["id"] == "call-1"
    assert created["landing_site"] == "madrid"  # the site key's own site
    assert (created["status"], created["live_state"]) == ("reserved", "ringing")
    assert (created["serving_site"], created["serving_agent"]) == ("madrid", "ana")
    assert kinds(created) == ["offered", "reserved"]
    assert created["history"][0]["detail"] == {"required_skills": {"spanish": 5}}
    assert created["history"][1]["detail"]["from_site"] is None

    listed = api.client.get("/v1/contacts", headers=SUPERVISOR).json()
    assert [(c["id"], c["status"], c["serving_agent"]) for c in listed["items"]] == [
        ("call-1", "reserved", "ana")
    ]

    api.clock.advance(4)
    api.routing.answer("call-1")
    api.clock.advance(60)
    api.routing.finish("call-1")

    done = get(api, "call-1")
    assert kinds(done) == ["offered", "reserved", "confirmed", "finished"]
    assert (done["status"], done["live_state"]) == ("finished", None)
    assert done["answered_at"].startswith("2025-03-14T09:00:04")
    assert done["ended_at"].startswith("2025-03-14T09:01:04")


def test_a_contact_waits_in_queue_until_an_agent_becomes_ready(api: Api) -> None:
    queued = offer(api, site="paris", caller_region="fr")
    assert (queued["status"], queued["live_state"]) == ("queued", "queued")
    assert kinds(queued) == ["offered", "queued"]

    api.clock.advance(12)
    api.client.post("/v1/agents/bob/state", json={"state": "ready"}, headers=BOB)

    served = get(api, queued["id"])
    assert kinds(served) == ["offered", "queued", "reserved"]
    assert (served["serving_site"], served["serving_agent"]) == ("paris", "bob")
    assert served["reserved_at"].startswith("2025-03-14T09:00:12")


def test_a_contact_served_at_another_site_is_transferred_there(api: Api) -> None:
    ready(api, "ana")

    contact = offer(api, site="paris", caller_region="fr")

    assert kinds(contact) == ["offered", "reserved", "transferred"]
    reserved, transferred = contact["history"][1:]
    assert (reserved["site"], reserved["agent"]) == ("madrid", "ana")
    assert reserved["detail"]["from_site"] == "paris"
    assert transferred["site"] == "madrid"
    assert transferred["detail"]["from_site"] == "paris"
    assert (contact["landing_site"], contact["serving_site"]) == ("paris", "madrid")


def test_an_offer_nobody_answers_in_time_is_redirected_and_the_agent_made_not_ready(
    api: Api,
) -> None:
    ready(api, "eve")
    contact = offer(api, queue="tech", site="paris")
    assert contact["serving_agent"] == "eve"

    api.clock.advance(16)  # the tech queue's answer time-out is 15 s

    redirected = get(api, contact["id"])
    assert kinds(redirected) == ["offered", "reserved", "redirected"]
    assert (redirected["status"], redirected["live_state"]) == ("queued", "queued")
    eve = api.client.get("/v1/agents/eve/state", headers=SUPERVISOR).json()
    assert (eve["state"], eve["reason"]) == ("not_ready", "no answer")


def test_contacts_are_listed_oldest_first_by_status_and_queue_in_pages(api: Api) -> None:
    ready(api, "eve")
    ids = []
    for queue in ("billing", "tech", "billing"):
        api.clock.advance(1)
        ids.append(offer(api, queue=queue, site="paris")["id"])
    client = api.client

    first = client.get("/v1/contacts?limit=2", headers=SUPERVISOR).json()
    second = client.get(f"/v1/contacts?limit=2&cursor={first['next_cursor']}", headers=SUPERVISOR)

    assert [c["id"] for c in first["items"]] == ids[:2]
    assert [c["id"] for c in second.json()["items"]] == ids[2:]
    assert second.json()["next_cursor"] is None
    queued = client.get("/v1/contacts?status=queued", headers=SUPERVISOR).json()
    assert [c["id"] for c in queued["items"]] == [ids[0], ids[2]]
    tech = client.get("/v1/contacts?queue=tech", headers=SUPERVISOR).json()
    assert [(c["id"], c["status"]) for c in tech["items"]] == [(ids[1], "reserved")]
    malformed = client.get("/v1/contacts?cursor=bm90IGpzb24", headers=SUPERVISOR)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (422, "validation_error")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"queue": "nope", "site": "paris"}, "unknown queue 'nope'"),
        ({"queue": "chat", "site": "paris"}, "takes chat contacts, not voice"),
        ({"site": "rome"}, "unknown landing site 'rome'"),
        ({"site": "paris", "preferred_site": "rome"}, "unknown preferred site 'rome'"),
        ({"site": "paris", "required_skills": {"golf": 2}}, "unknown required skill"),
    ],
)
def test_a_contact_the_router_cannot_route_is_refused_and_not_recorded(
    api: Api, body: dict[str, Any], message: str
) -> None:
    before = api.stored()

    response = api.client.post("/v1/contacts", json={"queue": "billing", **body}, headers=ADMIN)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "routing_refused"
    assert message in response.json()["error"]["message"]
    assert api.stored() == before


def test_a_retried_create_does_not_make_a_second_contact(api: Api) -> None:
    offer(api, id="call-7", site="paris")
    before = api.stored()

    again = api.client.post(
        "/v1/contacts", json={"id": "call-7", "queue": "billing", "site": "paris"}, headers=ADMIN
    )

    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    assert api.stored() == before


def test_an_admin_must_name_the_landing_site(api: Api) -> None:
    response = api.client.post("/v1/contacts", json={"queue": "billing"}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [{"loc": ["body", "site"]}]


def test_agent_states_and_time_in_state(api: Api) -> None:
    client = api.client
    never = client.get("/v1/agents/ana/state", headers=ANA).json()
    assert never == {
        "agent_id": "ana",
        "site_id": "madrid",
        "state": "logged_out",
        "reason": None,
        "since": None,
    }

    api.clock.advance(30)
    on_break = client.post(
        "/v1/agents/ana/state", json={"state": "not_ready", "reason": "break"}, headers=ANA
    ).json()
    assert (on_break["state"], on_break["reason"]) == ("not_ready", "break")
    assert on_break["since"] == "2025-03-14T09:00:30Z"

    api.clock.advance(900)
    back = client.post("/v1/agents/ana/state", json={"state": "ready"}, headers=ANA).json()
    assert (back["state"], back["reason"], back["since"]) == ("ready", None, "2025-03-14T09:15:30Z")
    gone = client.post("/v1/agents/ana/state", json={"state": "logged_out"}, headers=ANA).json()
    assert gone["state"] == "logged_out"
    again = client.post("/v1/agents/ana/state", json={"state": "logged_out"}, headers=ANA)
    assert (again.status_code, again.json()["state"]) == (200, "logged_out")


def test_ready_during_wrap_up_ends_it(api: Api) -> None:
    ready(api, "bob")
    contact = offer(api, site="paris")
    api.routing.answer(contact["id"])
    api.routing.finish(contact["id"])  # the billing queue has 10 s of wrap-up

    wrapping = api.client.get("/v1/agents/bob/state", headers=BOB).json()
    assert wrapping["state"] == "after_contact_work"
    assert ready(api, "bob")["state"] == "ready"


def test_an_agent_with_a_contact_ringing_cannot_log_out(api: Api) -> None:
    ready(api, "bob")
    offer(api, site="paris")
    before = api.stored()

    response = api.client.post("/v1/agents/bob/state", json={"state": "logged_out"}, headers=BOB)

    assert (response.status_code, response.json()["error"]["code"]) == (409, "conflict")
    assert "reserved" in response.json()["error"]["message"]
    assert api.stored() == before
    state = api.client.get("/v1/agents/bob/state", headers=BOB).json()
    assert state["state"] == "reserved"


@pytest.mark.parametrize(
    "body",
    [{"state": "not_ready"}, {"state": "away"}, {"state": "ready", "reason": "x"}, {}],
)
def test_a_malformed_state_change_is_refused(api: Api, body: dict[str, Any]) -> None:
    response = api.client.post("/v1/agents/ana/state", json=body, headers=ANA)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


def test_an_agent_the_router_does_not_know_is_not_found(api: Api) -> None:
    response = api.client.post("/v1/agents/zoe/state", json={"state": "ready"}, headers=ADMIN)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_a_supervisor_forcing_a_state_is_audited_an_agents_own_change_is_not(api: Api) -> None:
    api.client.post("/v1/agents/ana/state", json={"state": "ready"}, headers=ANA)
    api.client.post(
        "/v1/agents/ana/state",
        json={"state": "not_ready", "reason": "coaching"},
        headers=SUPERVISOR,
    )

    entries = api.client.get("/v1/audit?resource_type=agent_state", headers=ADMIN).json()["items"]

    assert [(e["actor"], e["action"], e["resource_id"]) for e in entries] == [
        ("sue", "set_state", "ana")
    ]
    assert entries[0]["before"] == {"state": "ready", "reason": None}
    assert entries[0]["after"] == {"state": "not_ready", "reason": "coaching"}


def test_a_link_the_router_stopped_trusting_is_resynchronised_before_the_next_event(
    api: Api,
) -> None:
    ready(api, "bob")
    ringing = offer(api, site="paris")
    # A delta out of sequence (as if one was lost): the router ignores paris's deltas until a
    # snapshot comes, and its request for one is lost too.
    gap = Delta(site_id="paris", seq=99, events=[])
    assert api.routing.router.receive("paris", gap, api.clock.now)[0][1].kind == "snapshot_request"

    api.clock.advance(5)
    ready(api, "eve")  # applied after the snapshot LocalRouting sends first

    assert api.client.get("/v1/agents/eve/state", headers=SUPERVISOR).json()["state"] == "ready"
    assert get(api, ringing["id"])["live_state"] == "ringing"
    api.routing.answer(ringing["id"])
    assert get(api, ringing["id"])["status"] == "connected"
    tech = offer(api, queue="tech", site="paris")
    assert tech["serving_agent"] == "eve"


def test_the_router_clock_dates_the_history(api: Api) -> None:
    contact = offer(api, site="madrid")
    assert contact["created_at"] == "2025-03-14T09:00:00Z"
    assert T0 == 1_741_942_800.0
