"""API keys and roles: admins configure, supervisors read and steer agents, an agent changes
only its own state, a site offers contacts at its own site."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.api.auth import KeyRing
from orchestrator.settings import ApiKey, ApiRole, Settings
from tests.orchestrator.api.conftest import ADMIN, KEYS, Api, auth

READY = {"state": "ready"}
CONTACT = {"queue": "billing", "site": "madrid"}


def test_a_request_without_a_known_key_is_unauthorised(api: Api) -> None:
    client = api.client
    for headers in (
        {},
        {"Authorization": "Bearer not-a-key-0000000000"},
        {"Authorization": "Basic " + KEYS["root"].key.get_secret_value()},
        {"X-API-Key": "not-a-key-0000000000"},
    ):
        response = client.get("/v1/sites", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_key_works_as_a_bearer_token_or_an_x_api_key_header(api: Api) -> None:
    key = KEYS["sue"].key.get_secret_value()
    assert api.client.get("/v1/sites", headers={"Authorization": f"Bearer {key}"}).is_success
    assert api.client.get("/v1/sites", headers={"X-API-Key": key}).is_success


@pytest.mark.parametrize(
    ("key", "method", "path", "body", "status"),
    [
        # Configuration: admins write, supervisors read, agents and sites neither.
        ("root", "post", "/v1/skills", {"id": "french"}, 201),
        ("sue", "post", "/v1/skills", {"id": "french"}, 403),
        ("sue", "get", "/v1/queues", None, 200),
        ("sue", "put", "/v1/tariffs", {}, 403),
        ("ana", "get", "/v1/agents/ana", None, 403),
        ("madrid", "get", "/v1/sites", None, 403),
        ("ana", "delete", "/v1/agents/ana", None, 403),
        # Agents' state: an agent only its own, supervisors and admins any.
        ("ana", "post", "/v1/agents/ana/state", READY, 200),
        ("ana", "post", "/v1/agents/bob/state", READY, 403),
        ("ana", "get", "/v1/agents/bob/state", None, 403),
        ("bob", "get", "/v1/agents/bob/state", None, 200),
        ("sue", "post", "/v1/agents/bob/state", READY, 200),
        ("root", "post", "/v1/agents/eve/state", READY, 200),
        ("madrid", "post", "/v1/agents/ana/state", READY, 403),
        # Contacts: sites offer at their own site, admins anywhere; supervisors read.
        ("madrid", "post", "/v1/contacts", CONTACT, 201),
        ("madrid", "post", "/v1/contacts", {**CONTACT, "site": "paris"}, 403),
        ("root", "post", "/v1/contacts", CONTACT, 201),
        ("sue", "post", "/v1/contacts", CONTACT, 403),
        ("ana", "post", "/v1/contacts", CONTACT, 403),
        ("sue", "get", "/v1/contacts", None, 200),
        ("madrid", "get", "/v1/contacts", None, 403),
        # Statistics, reports, audit: supervisors and admins.
        ("sue", "get", "/v1/stats/realtime", None, 200),
        ("ana", "get", "/v1/stats/realtime", None, 403),
        ("madrid", "get", "/v1/audit", None, 403),
        ("sue", "get", "/v1/audit", None, 200),
        (
            "bob",
            "get",
            "/v1/reports/intervals?start=2025-03-14T00:00Z&end=2025-03-15T00:00Z",
            None,
            403,
        ),
    ],
)
def test_what_each_role_may_do(
    api: Api, key: str, method: str, path: str, body: dict[str, Any] | None, status: int
) -> None:
    response = api.client.request(method, path, json=body, headers=auth(key))
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"


def test_an_agent_changing_another_agent_changes_nothing(api: Api) -> None:
    response = api.client.post("/v1/agents/bob/state", json=READY, headers=auth("ana"))

    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "the key of agent 'ana' may act only on that agent"
    )
    bob = api.client.get("/v1/agents/bob/state", headers=ADMIN).json()
    assert bob["state"] == "logged_out"


def test_a_site_reads_the_contacts_that_landed_there_and_no_others(api: Api) -> None:
    site = auth("madrid")
    mine = api.client.post("/v1/contacts", json={"queue": "billing"}, headers=site).json()
    other = api.client.post(
        "/v1/contacts", json={"queue": "billing", "site": "paris"}, headers=ADMIN
    ).json()

    assert api.client.get(f"/v1/contacts/{mine['id']}", headers=site).status_code == 200
    refused = api.client.get(f"/v1/contacts/{other['id']}", headers=site)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


def test_keys_must_be_long_distinct_and_scoped_to_their_role() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        ApiKey.model_validate({"key": "short", "role": "admin"})
    with pytest.raises(ValueError, match="agent_id"):
        ApiKey.model_validate({"key": "k" * 16, "role": "agent"})
    with pytest.raises(ValueError, match="site_id"):
        ApiKey.model_validate({"key": "k" * 16, "role": "site"})
    with pytest.raises(ValueError, match="agent_id"):
        ApiKey.model_validate({"key": "k" * 16, "role": "admin", "agent_id": "ana"})
    same = ApiKey.model_validate({"key": "k" * 16, "role": "admin"})
    with pytest.raises(ValueError, match="'a' and 'b' are equal"):
        KeyRing({"a": same, "b": same})


def test_keys_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VCC_API_KEYS",
        '{"ops": {"key": "0123456789abcdef", "role": "admin"},'
        ' "ana": {"key": "fedcba9876543210", "role": "agent", "agent_id": "ana"}}',
    )
    keys = KeyRing(Settings().api_keys)

    ops, ana = keys.principal("0123456789abcdef"), keys.principal("fedcba9876543210")
    assert ops is not None and (ops.name, ops.role) == ("ops", ApiRole.ADMIN)
    assert ana is not None and (ana.role, ana.agent_id) == (ApiRole.AGENT, "ana")
    assert keys.principal("0123456789abcdeF") is None
    assert "0123456789abcdef" not in repr(Settings().api_keys)
