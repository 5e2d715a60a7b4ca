"""Configuration over HTTP: resources round-trip, the loader's refusals are 422s that store
nothing, and If-Match guards read-modify-write cycles with the configuration version."""

from __future__ import annotations

from typing import Any

import pytest

from tests.orchestrator.api.conftest import ADMIN, SUPERVISOR, Api

SITE = {
    "id": "lisbon",
    "region": "pt",
    "timezone": "Europe/Lisbon",
    "trunk_capacity": 200,
    "agent_cost_per_hour": 22.0,
    "remote": False,
    "hours": {
        "timezone": "Europe/Lisbon",
        "weekly": {"mon": ["08:00-20:00"], "sat": ["09:00-13:00"]},
        "closed": ["2025-12-25"],
        "special_hours": {},
    },
}
AGENT = {"id": "rui", "site": "lisbon", "skills": {"billing": 4, "spanish": 2}}
QUEUE = {
    "id": "vip",
    "targets": [
        {"skills": "billing>=7", "sites": ["madrid"], "timeout": 10},
        {"skills": "billing | spanish", "min_proficiency": 3},
    ],
    "strategy": "most_skilled",
    "sl_threshold": 15,
    "priority": 5,
    "site_selection": {"margin": 10},
}


def etag(response: Any) -> int:
    return int(response.headers["ETag"].strip('"'))


def test_a_site_agent_and_queue_round_trip_with_the_version_as_etag(api: Api) -> None:
    client = api.client
    version = etag(client.get("/v1/sites", headers=ADMIN))

    created = client.post("/v1/sites", json=SITE, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/v1/sites/lisbon"
    assert etag(created) == version + 1
    assert client.get("/v1/sites/lisbon", headers=SUPERVISOR).json() == created.json()
    assert created.json()["hours"]["weekly"] == {"mon": ["08:00-20:00"], "sat": ["09:00-13:00"]}

    agent = client.post("/v1/agents", json=AGENT, headers=ADMIN)
    assert (agent.status_code, etag(agent)) == (201, version + 2)
    queue = client.post("/v1/queues", json=QUEUE, headers=ADMIN)
    assert (queue.status_code, etag(queue)) == (201, version + 3)
    got = client.get("/v1/queues/vip", headers=ADMIN).json()
    assert got["targets"][1] == {
        "skills": "billing | spanish",
        "min_proficiency": 3,
        "sites": None,
        "timeout": None,
        "condition": None,
    }
    assert got["site_selection"] == {"margin": 10.0, "post_route_after": None}

    ids = [a["id"] for a in client.get("/v1/agents", headers=ADMIN).json()["items"]]
    assert ids == ["ana", "bob", "eve", "rui"]
    by_skill = client.get("/v1/agents?skill=billing&min_level=5", headers=ADMIN).json()
    assert [a["id"] for a in by_skill["items"]] == ["ana", "bob"]
    at_site = client.get("/v1/agents?site=lisbon", headers=ADMIN).json()
    assert at_site["items"] == [{**AGENT, "capacity": {"voice": 1, "callback": 1}}]

    # Replace, then delete in dependency order.
    moved = client.put("/v1/agents/rui", json={**AGENT, "site": "madrid"}, headers=ADMIN)
    assert (moved.status_code, moved.json()["site"]) == (200, "madrid")
    assert client.delete("/v1/queues/vip", headers=ADMIN).status_code == 204
    assert client.delete("/v1/agents/rui", headers=ADMIN).status_code == 204
    deleted = client.delete("/v1/sites/lisbon", headers=ADMIN)
    assert (deleted.status_code, etag(deleted)) == (204, version + 7)
    assert client.get("/v1/sites/lisbon", headers=ADMIN).status_code == 404


def test_skills_and_tariffs_round_trip(api: Api) -> None:
    client = api.client
    assert client.post("/v1/skills", json={"id": "french"}, headers=ADMIN).status_code == 201
    skills = client.get("/v1/skills", headers=ADMIN).json()["items"]
    assert [s["id"] for s in skills] == ["billing", "french", "spanish", "tech"]
    assert client.get("/v1/skills/french", headers=ADMIN).json() == {"id": "french"}
    assert client.delete("/v1/skills/french", headers=ADMIN).status_code == 204

    tariffs = {
        "per_minute": {"es": {"madrid": 0.01, "paris": 0.05}, "fr": {"paris": 0.02}},
        "default_per_minute": 0.08,
        "transfer_per_minute": 0.025,
        "transfer_fee": 0.04,
    }
    put = client.put("/v1/tariffs", json=tariffs, headers=ADMIN)
    assert put.status_code == 200, put.text
    assert client.get("/v1/tariffs", headers=SUPERVISOR).json() == tariffs


def test_creating_what_exists_conflicts_and_replacing_what_does_not_is_not_found(
    api: Api,
) -> None:
    client = api.client
    before = api.stored()

    exists = client.post("/v1/sites", json={"id": "paris", "region": "fr"}, headers=ADMIN)
    missing = client.put("/v1/queues/nope", json={**QUEUE, "id": "nope"}, headers=ADMIN)
    gone = client.delete("/v1/agents/nobody", headers=ADMIN)

    assert (exists.status_code, exists.json()["error"]["code"]) == (409, "conflict")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "not_found")
    assert api.stored() == before


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("post", "/v1/agents", {**AGENT, "site": "nowhere"}, "unknown site 'nowhere'"),
        ("post", "/v1/agents", {**AGENT, "site": "madrid", "skills": {"golf": 3}}, "golf"),
        (
            "put",
            "/v1/queues/billing",
            {"id": "billing", "targets": [{"skills": "billing"}], "overflow_to": "billing"},
            "overflow",
        ),
        ("post", "/v1/queues", {**QUEUE, "targets": [{"skills": "billing & & tech"}]}, "column"),
        ("delete", "/v1/sites/paris", None, "unknown site 'paris'"),
        ("delete", "/v1/skills/tech", None, "unknown skill"),
        ("put", "/v1/tariffs", {"per_minute": {"es": {"rome": 0.01}}}, "unknown site 'rome'"),
    ],
)
def test_a_change_the_router_would_refuse_is_a_422_with_its_message_and_stores_nothing(
    api: Api, method: str, path: str, body: dict[str, Any] | None, message: str
) -> None:
    before = api.stored()

    response = api.client.request(method, path, json=body, headers=ADMIN)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_configuration"
    assert message in error["message"]
    assert error["details"] and all(isinstance(line, str) for line in error["details"])
    assert api.stored() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sites", {"id": "a/b", "region": "x"}),  # not addressable in a URL
        ("/v1/sites", {"id": "x" * 129, "region": "x"}),  # longer than a key column
        ("/v1/skills", {"id": "not"}),  # an operator of skill expressions
        ("/v1/skills", {"id": "9lives"}),  # not a word of skill expressions
        ("/v1/agents", {**AGENT, "skills": {"billing": 11}}),
        ("/v1/sites", {"id": "x", "region": "x", "agent_cost_per_hour": -1}),
        ("/v1/sites", {"id": "x", "region": "x", "colour": "red"}),
    ],
)
def test_malformed_bodies_are_refused_before_the_store(
    api: Api, path: str, body: dict[str, Any]
) -> None:
    before = api.stored()
    response = api.client.post(path, json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert api.stored() == before


def test_a_body_must_name_the_resource_of_its_path(api: Api) -> None:
    response = api.client.put(
        "/v1/sites/paris", json={"id": "madrid", "region": "x"}, headers=ADMIN
    )
    assert response.status_code == 422
    assert "differs" in response.json()["error"]["message"]


def test_if_match_applies_a_change_only_to_the_version_it_was_made_against(api: Api) -> None:
    client = api.client
    read = client.get("/v1/sites/paris", headers=ADMIN)
    seen = read.headers["ETag"]
    # Someone else changes another resource meanwhile: the whole configuration moved on.
    client.post("/v1/skills", json={"id": "french"}, headers=ADMIN)
    before = api.stored()

    stale = client.put(
        "/v1/sites/paris",
        json={**read.json(), "region": "fr-2"},
        headers={**ADMIN, "If-Match": seen},
    )

    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    assert stale.json()["error"]["details"] == {"actual": int(seen.strip('"')) + 1}
    assert api.stored() == before

    fresh = client.get("/v1/sites/paris", headers=ADMIN)
    applied = client.put(
        "/v1/sites/paris",
        json={**fresh.json(), "region": "fr-2"},
        headers={**ADMIN, "If-Match": fresh.headers["ETag"]},
    )
    assert applied.status_code == 200
    assert etag(applied) == etag(fresh) + 1
    assert client.get("/v1/sites/paris", headers=ADMIN).json()["region"] == "fr-2"


@pytest.mark.parametrize("if_match", ['"0"', 'W/"1"', "garbage", '"0", "1"'])
def test_a_delete_or_create_with_a_stale_or_unreadable_if_match_is_refused(
    api: Api, if_match: str
) -> None:
    client = api.client
    client.post("/v1/skills", json={"id": "french"}, headers=ADMIN)  # version 2 now
    before = api.stored()

    delete = client.delete("/v1/skills/french", headers={**ADMIN, "If-Match": if_match})
    create = client.post("/v1/skills", json={"id": "golf"}, headers={**ADMIN, "If-Match": if_match})

    assert (delete.status_code, create.status_code) == (412, 412)
    assert api.stored() == before
    matching = client.delete("/v1/skills/french", headers={**ADMIN, "If-Match": '"1", "2"'})
    assert matching.status_code == 204


def test_every_configuration_change_is_in_the_audit_log_with_the_keys_name(api: Api) -> None:
    client = api.client
    client.post("/v1/skills", json={"id": "french"}, headers=ADMIN)
    client.put(
        "/v1/agents/bob",
        json={"id": "bob", "site": "paris", "skills": {"french": 5}},
        headers=ADMIN,
    )

    page = client.get("/v1/audit?limit=2", headers=SUPERVISOR).json()

    assert [
        (e["actor"], e["action"], e["resource_type"], e["resource_id"]) for e in page["items"]
    ] == [
        ("root", "update", "agent", "bob"),
        ("root", "create", "skill", "french"),
    ]
    assert page["items"][0]["before"]["skills"] == {"billing": 8}
    assert page["items"][0]["after"]["skills"] == {"french": 5}
    assert page["items"][0]["config_version"] == 3
    rest = client.get(f"/v1/audit?cursor={page['next_cursor']}", headers=SUPERVISOR).json()
    assert {e["actor"] for e in rest["items"]} == {"seed"}
    assert rest["next_cursor"] is None
    only_bob = client.get("/v1/audit?resource_type=agent&resource_id=bob", headers=ADMIN).json()
    assert [e["action"] for e in only_bob["items"]] == ["update", "create"]
