"""Fuzzing the API against its own OpenAPI document (schemathesis, in process over ASGI).

Every operation gets generated requests, valid and invalid, sent with the admin key to the app
over a seeded database and a live in-process router.  No response may be a server error, and
every response must be one the document declares: status, content type, headers and body
schema.  The number of examples per operation is bounded so both backends run in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.persistence import Database
from tests.orchestrator.api.conftest import ADMIN, NETWORK, make_api, seed

EXAMPLES_PER_OPERATION = 20
# The test network plus the site and agent the API document's examples name, so the examples
# reach resources that exist (and contacts that can be routed there).
FUZZED_NETWORK = {
    **NETWORK,
    "sites": [*NETWORK["sites"], {"id": "lisbon", "region": "pt"}],
    "agents": [
        *NETWORK["agents"],
        {"id": "lisbon-007", "site": "lisbon", "skills": {"billing": 7, "spanish": 4}},
    ],
}


@pytest.fixture
def api_schema(db: Database) -> Iterator[schemathesis.BaseSchema]:
    seed(db, FUZZED_NETWORK)
    api = make_api(db)
    # Some agents ready, so generated contacts can be routed, not only queued.
    for agent in ("ana", "bob", "lisbon-007"):
        api.client.post(f"/v1/agents/{agent}/state", json={"state": "ready"}, headers=ADMIN)
    yield schemathesis.openapi.from_asgi("/openapi.json", api.client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_makes_the_api_fail_or_answer_off_its_schema(
    case: schemathesis.Case[Any],
) -> None:
    case.call_and_validate(
        headers=ADMIN,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
