"""Every error comes in one JSON shape, with a clear message and never a traceback; the OpenAPI
document declares that shape for every error each operation can return."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.api.routing import (
    AgentLiveState,
    ContactRequest,
    LogoutChange,
    NotReadyChange,
    ReadyChange,
    RealtimeStats,
    RouteOutcome,
)
from orchestrator.persistence import Database
from orchestrator.settings import Settings
from tests.orchestrator.api.conftest import ADMIN, KEYS, Api, auth, seed


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def test_each_kind_of_error_has_the_one_shape(api: Api) -> None:
    client = api.client
    error_of(client.get("/v1/queues"), 401, "unauthorized")
    error_of(client.post("/v1/queues", json={}, headers=auth("sue")), 403, "forbidden")
    error_of(client.get("/v1/queues/nope", headers=ADMIN), 404, "not_found")
    error_of(client.get("/v1/nothing-here", headers=ADMIN), 404, "not_found")
    error_of(client.patch("/v1/sites/paris", headers=ADMIN), 405, "method_not_allowed")
    error_of(client.post("/v1/skills", json={"id": "tech"}, headers=ADMIN), 409, "conflict")
    stale = client.delete("/v1/skills/tech", headers={**ADMIN, "If-Match": '"0"'})
    error_of(stale, 412, "precondition_failed")
    refused = client.delete("/v1/skills/tech", headers=ADMIN)
    assert "unknown skill" in error_of(refused, 422, "invalid_configuration")["message"]
    routing = client.post("/v1/contacts", json={"queue": "x", "site": "paris"}, headers=ADMIN)
    error_of(routing, 422, "routing_refused")


def test_a_validation_error_says_which_fields_are_wrong(api: Api) -> None:
    response = api.client.post(
        "/v1/agents",
        json={"id": "", "site": "paris", "skills": {"billing": 0}, "extra": 1},
        headers=ADMIN,
    )

    error = error_of(response, 422, "validation_error")
    locations = {tuple(detail["loc"]) for detail in error["details"]}
    assert locations == {
        ("body", "id"),
        ("body", "skills"),
        ("body", "extra"),
    }
    assert "body.id" in error["message"]
    assert all(set(d) == {"loc", "msg", "type"} for d in error["details"])


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("post", "/v1/skills", b'{"id": "ab\\u0000c"}'),  # PostgreSQL cannot store NUL
        ("post", "/v1/sites", b'{"id": "x", "region": "\\ud800"}'),  # nor a lone surrogate
        ("post", "/v1/sites", b'{"id": "x", "region": "x", "agent_cost_per_hour": NaN}'),
        ("put", "/v1/tariffs", b'{"per_minute": {"es\\u0000": {"paris": 1}}}'),
        ("get", "/v1/contacts?queue=a%00b", None),
        ("get", "/v1/sites/a%00b", None),
        ("post", "/v1/skills", b'{"id": '),  # not JSON at all
    ],
)
def test_input_no_database_could_store_is_a_validation_error(
    api: Api, method: str, path: str, content: bytes | None
) -> None:
    before = api.stored()
    headers = {**ADMIN, "Content-Type": "application/json"}

    response = api.client.request(method, path, content=content, headers=headers)

    error_of(response, 422, "validation_error")
    assert api.stored() == before


class _BrokenRouting:
    """A router that fails in a way nobody planned for."""

    async def route_contact(self, request: ContactRequest) -> RouteOutcome:
        raise RuntimeError("secret internal detail")

    async def change_agent_state(
        self, agent_id: str, change: ReadyChange | NotReadyChange | LogoutChange
    ) -> AgentLiveState:
        raise RuntimeError("secret internal detail")

    async def agent_state(self, agent_id: str) -> AgentLiveState:
        raise RuntimeError("secret internal detail")

    async def contact_state(self, contact_id: str) -> None:
        raise RuntimeError("secret internal detail")

    async def realtime_stats(
        self, *, site: str | None = None, queue: str | None = None
    ) -> RealtimeStats:
        raise RuntimeError("secret internal detail")


def test_an_unexpected_failure_is_a_500_in_the_same_shape_without_its_traceback(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    seed(db)
    app = create_app(Settings(api_keys=KEYS), database=db, routing=_BrokenRouting())
    client = TestClient(app, raise_server_exceptions=False)

    response = client.get("/v1/stats/realtime", headers=ADMIN)

    error = error_of(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    incident = error["message"].removeprefix("internal error (incident ").removesuffix(")")
    assert any(incident in record.getMessage() for record in caplog.records)
    assert "secret internal detail" in caplog.text  # the log has it all


def test_the_openapi_document_declares_every_operation_its_errors_and_security(
    api: Api,
) -> None:
    schema = api.client.get("/openapi.json").json()

    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]
    assert {path for path, _, _ in operations} == {
        "/v1/sites",
        "/v1/sites/{site_id}",
        "/v1/skills",
        "/v1/skills/{skill_id}",
        "/v1/agents",
        "/v1/agents/{agent_id}",
        "/v1/queues",
        "/v1/queues/{queue_id}",
        "/v1/tariffs",
        "/v1/agents/{agent_id}/state",
        "/v1/contacts",
        "/v1/contacts/{contact_id}",
        "/v1/stats/realtime",
        "/v1/reports/intervals",
        "/v1/audit",
    }
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, method, operation in operations:
        responses = operation["responses"]
        for status in ("401", "403", "422", "500"):
            content = responses[status]["content"]["application/json"]["schema"]
            assert content == error_schema, (path, method, status)
        assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}], path
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
