"""Agents' live state: ready, not ready with a reason, logged out.

An agent key reads and changes only its own agent; supervisors and admins any agent, and their
changes (forcing an agent's state) go to the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool

from orchestrator.api.auth import Caller, Principal, forbidden
from orchestrator.api.deps import DatabaseDep, RoutingDep
from orchestrator.api.errors import error_responses
from orchestrator.api.routes.config import AgentId
from orchestrator.api.routing import AgentLiveState, AgentStateChange
from orchestrator.settings import ApiRole

router = APIRouter(prefix="/v1/agents", tags=["agent state"])


def _may_act_on(caller: Principal, agent_id: str) -> None:
    if caller.operator or (caller.role is ApiRole.AGENT and caller.agent_id == agent_id):
        return
    if caller.role is ApiRole.AGENT:
        raise forbidden(f"the key of agent {caller.agent_id!r} may act only on that agent")
    raise forbidden(f"the {caller.role} key {caller.name!r} may not act on agents")


@router.get(
    "/{agent_id}/state",
    responses=error_responses(401, 403, 404, 422, 500),
    summary="An agent's live state and time in state",
)
async def get_agent_state(agent_id: AgentId, caller: Caller, routing: RoutingDep) -> AgentLiveState:
    _may_act_on(caller, agent_id)
    return await routing.agent_state(agent_id)


@router.post(
    "/{agent_id}/state",
    responses=error_responses(400, 401, 403, 404, 409, 422, 500, 504),
    summary="Make an agent ready, not ready (with a reason) or logged out",
)
async def change_agent_state(
    agent_id: AgentId,
    change: Annotated[
        AgentStateChange,
        Body(
            openapi_examples={
                "ready": {"value": {"state": "ready"}},
                "break": {"value": {"state": "not_ready", "reason": "break"}},
                "logout": {"value": {"state": "logged_out"}},
            }
        ),
    ],
    caller: Caller,
    db: DatabaseDep,
    routing: RoutingDep,
) -> AgentLiveState:
    """Carried out by the agent's site (its PBX), and answered once the router has the change:
    a site refuses (409, its reason) what its PBX will not do, such as making a logged-out agent
    ready (logging in takes the agent at a phone), and one that does not answer in time gives
    504.  Ready during after-contact work ends it.  Logging out is refused (409) while a
    contact rings at the agent or is live.  (The in-process router of tests and of an API
    without sites plays the sites itself, and logs an agent in.)"""
    _may_act_on(caller, agent_id)
    before = await routing.agent_state(agent_id)
    after = await routing.change_agent_state(agent_id, change)
    if caller.operator:
        await run_in_threadpool(
            lambda: db.audit.record(
                actor=caller.name,
                action="set_state",
                resource_type="agent_state",
                resource_id=agent_id,
                before=before.model_dump(mode="json", include={"state", "reason"}),
                after=after.model_dump(mode="json", include={"state", "reason"}),
            )
        )
    return after
