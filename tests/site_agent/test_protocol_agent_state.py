"""The agent state command on the wire: the router's SetAgentState and the site's answers
(AgentStateApplied, AgentStateRefused) decode to the class they were, and bad ones are refused
with the field at fault."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from site_agent.protocol import (
    ROUTER_MESSAGE,
    SITE_MESSAGE,
    AgentNotReady,
    AgentStateApplied,
    AgentStateRefused,
    Delta,
    SetAgentState,
)


@pytest.mark.parametrize(
    "command",
    [
        SetAgentState(request_id="r1", agent_id="bob", state="ready", at=12.5),
        SetAgentState(request_id="r2", agent_id="bob", state="not_ready", reason="coaching", at=1),
        SetAgentState(request_id="r3", agent_id="bob", state="logged_out", at=0),
    ],
)
def test_a_set_agent_state_command_round_trips_as_a_router_message(command: SetAgentState) -> None:
    text = command.model_dump_json()
    assert '"kind":"set_agent_state"' in text
    decoded = ROUTER_MESSAGE.validate_json(text)
    assert isinstance(decoded, SetAgentState)
    assert decoded == command


def test_the_sites_answers_round_trip_in_a_delta_after_the_events_they_follow() -> None:
    delta = Delta(
        site_id="paris",
        seq=4,
        events=[
            AgentNotReady(agent_id="bob", at=3.0, reason="coaching"),
            AgentStateApplied(request_id="r2", agent_id="bob", at=3.0),
            AgentStateRefused(
                request_id="r3", agent_id="eve", at=3.5, reason="agent eve is on break"
            ),
        ],
    )
    decoded = SITE_MESSAGE.validate_json(delta.model_dump_json())
    assert decoded == delta
    assert isinstance(decoded, Delta)
    assert [type(e) for e in decoded.events] == [
        AgentNotReady,
        AgentStateApplied,
        AgentStateRefused,
    ]
    refused = decoded.events[2]
    assert isinstance(refused, AgentStateRefused) and refused.reason == "agent eve is on break"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"state": "not_ready"}, "reason is given for, and only for, not_ready"),
        ({"state": "ready", "reason": "break"}, "reason is given for, and only for, not_ready"),
        ({"state": "not_ready", "reason": ""}, "reason"),
        ({"state": "on_holiday"}, "state"),
        ({"state": "ready", "request_id": ""}, "request_id"),
        ({"state": "ready", "extra": 1}, "extra"),
    ],
)
def test_a_malformed_command_is_refused_with_the_field_at_fault(
    document: dict[str, object], field: str
) -> None:
    message = {"kind": "set_agent_state", "request_id": "r1", "agent_id": "bob", "at": 0.0}
    with pytest.raises(ValidationError, match=field):
        ROUTER_MESSAGE.validate_python(message | document)


def test_an_answer_without_its_request_id_is_refused() -> None:
    delta = {
        "kind": "delta",
        "site_id": "paris",
        "seq": 1,
        "events": [{"kind": "agent_state_refused", "agent_id": "bob", "at": 0, "reason": "no"}],
    }
    with pytest.raises(ValidationError, match="request_id"):
        SITE_MESSAGE.validate_python(delta)
