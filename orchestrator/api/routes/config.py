"""Configuration resources: sites, skills, agents, queues (with their routing policies), tariffs.

Admins write, admins and supervisors read.  Every change is checked whole by the routing loader
before it is stored (``ConfigStore``): one the router would refuse is a 422 with the loader's
message, and nothing is written.

Optimistic concurrency: every response carries the configuration version it was read or
written at as its ``ETag``; a write with ``If-Match: "<version>"`` applies only if the
configuration is still at that version, else 412.  The version counts changes to the whole
configuration (a change is checked against all of it), so any change in between refuses the
write: re-read and retry.  Without ``If-Match`` a write applies to the latest configuration.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.openapi.models import Example

from orchestrator.api.auth import Admin, Principal, Reader
from orchestrator.api.deps import DatabaseDep
from orchestrator.api.errors import ApiError, error_responses, not_found
from orchestrator.api.schemas import AgentBody, Items, QueueBody, SiteBody, SkillBody
from orchestrator.persistence import (
    TARIFFS_ID,
    Database,
    SkillConfig,
    VersionConflictError,
)
from orchestrator.persistence.resources import R, kind_of
from routing.config import AgentConfig, QueueConfig, SiteConfig, TariffConfig

router = APIRouter(prefix="/v1", tags=["configuration"])


def _id(kind: str, example: str | None = None) -> Any:
    examples = None if example is None else {example: Example(value=example)}
    return Path(
        min_length=1, max_length=128, description=f"The {kind}'s id.", openapi_examples=examples
    )


SiteId = Annotated[str, _id("site", "lisbon")]
SkillId = Annotated[str, _id("skill", "spanish")]
AgentId = Annotated[str, _id("agent", "lisbon-007")]
QueueId = Annotated[str, _id("queue", "billing")]
ContactId = Annotated[str, _id("contact")]
IfMatch = Annotated[
    str | None,
    Header(description='Configuration version the change was made against: `"<version>"`.'),
]

# A write without If-Match re-reads and retries this often when another writer gets in first.
_ATTEMPTS = 5

_READ = error_responses(401, 403, 422, 500)
_READ_ONE = error_responses(401, 403, 404, 422, 500)
_WRITE = error_responses(400, 401, 403, 404, 409, 412, 422, 500)

M = TypeVar("M", SiteConfig, SkillConfig, AgentConfig, QueueConfig)


# ------------------------------------------------------------------ the shared verbs


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, current: int) -> None:
    """412 unless ``If-Match`` names ``current`` (absent or ``*``: any version will do)."""
    if if_match is None or if_match.strip() == "*":
        return
    versions = set()
    for tag in if_match.split(","):
        value = tag.strip().removeprefix("W/").strip('"')
        if value.isascii() and value.isdigit():
            versions.add(int(value))
    if current not in versions:
        raise ApiError(
            412,
            "precondition_failed",
            f"If-Match {if_match!r} does not name the configuration's version, {current}: "
            "re-read and retry",
            details={"actual": current},
        )


def _label(model: type[R]) -> str:
    return kind_of(model).name


def _list(db: Database, model: type[R], response: Response) -> list[R]:
    version = db.config.version()  # before the read: an ETag may be older, never newer
    response.headers["ETag"] = etag(version)
    return list(db.config.list(model))


def _get(db: Database, model: type[R], resource_id: str, response: Response) -> R:
    version = db.config.version()
    resource = db.config.get(model, resource_id)
    if resource is None:
        raise not_found(f"no {_label(model)} {resource_id!r}")
    response.headers["ETag"] = etag(version)
    return resource


def _put(
    db: Database,
    resource: R,
    resource_id: str,
    *,
    caller: Principal,
    if_match: str | None,
    exists: bool | None,
) -> int:
    """Store ``resource``; ``exists``: it must be there already (True), must not (False), or
    either (None).  The check and the write happen at one configuration version."""
    model = type(resource)
    for _ in range(_ATTEMPTS):
        version = db.config.version()
        check_if_match(if_match, version)
        present = db.config.get(model, resource_id) is not None
        if exists and not present:
            raise not_found(f"no {_label(model)} {resource_id!r}")
        if exists is False and present:
            raise ApiError(409, "conflict", f"{_label(model)} {resource_id!r} exists; PUT replaces")
        try:
            return db.config.put(resource, actor=caller.name, expected_version=version)
        except VersionConflictError:
            if if_match is not None:
                raise
    raise ApiError(409, "conflict", "the configuration kept changing during the write; retry")


def _create(
    db: Database, resource: M, caller: Principal, if_match: str | None, response: Response
) -> M:
    version = _put(db, resource, resource.id, caller=caller, if_match=if_match, exists=False)
    response.headers["ETag"] = etag(version)
    response.headers["Location"] = f"/v1/{_label(type(resource))}s/{resource.id}"
    return resource


def _replace(
    db: Database,
    *,
    resource_id: str,
    resource: M,
    caller: Principal,
    if_match: str | None,
    response: Response,
) -> M:
    if resource.id != resource_id:
        raise ApiError(422, "validation_error", f"body id {resource.id!r} differs from the path's")
    version = _put(db, resource, resource_id, caller=caller, if_match=if_match, exists=True)
    response.headers["ETag"] = etag(version)
    return resource


def _delete(
    db: Database, model: type[R], resource_id: str, caller: Principal, if_match: str | None
) -> Response:
    expected = None
    if if_match is not None and if_match.strip() != "*":
        expected = db.config.version()
        check_if_match(if_match, expected)
    version = db.config.delete(model, resource_id, actor=caller.name, expected_version=expected)
    return Response(status_code=204, headers={"ETag": etag(version)})


def _as(model: type[M], body: M) -> M:
    """The loader's own document for an API body (which only narrows the id)."""
    return model.model_validate(body.model_dump())


# ------------------------------------------------------------------ sites


@router.get("/sites", responses=_READ, summary="List sites")
def list_sites(db: DatabaseDep, _: Reader, response: Response) -> Items[SiteConfig]:
    return Items[SiteConfig](items=_list(db, SiteConfig, response))


@router.post("/sites", status_code=201, responses=_WRITE, summary="Create a site")
def create_site(
    body: SiteBody, db: DatabaseDep, caller: Admin, response: Response, if_match: IfMatch = None
) -> SiteConfig:
    return _create(db, _as(SiteConfig, body), caller, if_match, response)


@router.get("/sites/{site_id}", responses=_READ_ONE, summary="Get a site")
def get_site(site_id: SiteId, db: DatabaseDep, _: Reader, response: Response) -> SiteConfig:
    return _get(db, SiteConfig, site_id, response)


@router.put("/sites/{site_id}", responses=_WRITE, summary="Replace a site")
def replace_site(
    *,
    site_id: SiteId,
    body: SiteBody,
    db: DatabaseDep,
    caller: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> SiteConfig:
    return _replace(
        db,
        resource_id=site_id,
        resource=_as(SiteConfig, body),
        caller=caller,
        if_match=if_match,
        response=response,
    )


@router.delete("/sites/{site_id}", status_code=204, responses=_WRITE, summary="Delete a site")
def delete_site(
    site_id: SiteId, db: DatabaseDep, caller: Admin, if_match: IfMatch = None
) -> Response:
    return _delete(db, SiteConfig, site_id, caller, if_match)


# ------------------------------------------------------------------ skills


@router.get("/skills", responses=_READ, summary="List skills")
def list_skills(db: DatabaseDep, _: Reader, response: Response) -> Items[SkillConfig]:
    return Items[SkillConfig](items=_list(db, SkillConfig, response))


@router.post("/skills", status_code=201, responses=_WRITE, summary="Create a skill")
def create_skill(
    body: SkillBody, db: DatabaseDep, caller: Admin, response: Response, if_match: IfMatch = None
) -> SkillConfig:
    return _create(db, _as(SkillConfig, body), caller, if_match, response)


@router.get("/skills/{skill_id}", responses=_READ_ONE, summary="Get a skill")
def get_skill(skill_id: SkillId, db: DatabaseDep, _: Reader, response: Response) -> SkillConfig:
    return _get(db, SkillConfig, skill_id, response)


@router.delete("/skills/{skill_id}", status_code=204, responses=_WRITE, summary="Delete a skill")
def delete_skill(
    skill_id: SkillId, db: DatabaseDep, caller: Admin, if_match: IfMatch = None
) -> Response:
    return _delete(db, SkillConfig, skill_id, caller, if_match)


# ------------------------------------------------------------------ agents


@router.get("/agents", responses=_READ, summary="List agents, by site or skill level")
def list_agents(
    db: DatabaseDep,
    _: Reader,
    response: Response,
    site: Annotated[str | None, Query(max_length=128, description="Agents of this site.")] = None,
    skill: Annotated[
        str | None, Query(max_length=128, description="Agents with this skill.")
    ] = None,
    min_level: Annotated[int, Query(ge=1, le=10, description="Lowest level of `skill`.")] = 1,
) -> Items[AgentConfig]:
    version = db.config.version()
    response.headers["ETag"] = etag(version)
    agents = db.config.agents(site=site, skill=skill, min_level=min_level)
    return Items[AgentConfig](items=list(agents))


@router.post("/agents", status_code=201, responses=_WRITE, summary="Create an agent")
def create_agent(
    body: AgentBody, db: DatabaseDep, caller: Admin, response: Response, if_match: IfMatch = None
) -> AgentConfig:
    return _create(db, _as(AgentConfig, body), caller, if_match, response)


@router.get("/agents/{agent_id}", responses=_READ_ONE, summary="Get an agent")
def get_agent(agent_id: AgentId, db: DatabaseDep, _: Reader, response: Response) -> AgentConfig:
    return _get(db, AgentConfig, agent_id, response)


@router.put("/agents/{agent_id}", responses=_WRITE, summary="Replace an agent")
def replace_agent(
    *,
    agent_id: AgentId,
    body: AgentBody,
    db: DatabaseDep,
    caller: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> AgentConfig:
    return _replace(
        db,
        resource_id=agent_id,
        resource=_as(AgentConfig, body),
        caller=caller,
        if_match=if_match,
        response=response,
    )


@router.delete("/agents/{agent_id}", status_code=204, responses=_WRITE, summary="Delete an agent")
def delete_agent(
    agent_id: AgentId, db: DatabaseDep, caller: Admin, if_match: IfMatch = None
) -> Response:
    return _delete(db, AgentConfig, agent_id, caller, if_match)


# ------------------------------------------------------------------ queues


@router.get("/queues", responses=_READ, summary="List queues and their routing policies")
def list_queues(db: DatabaseDep, _: Reader, response: Response) -> Items[QueueConfig]:
    return Items[QueueConfig](items=_list(db, QueueConfig, response))


@router.post("/queues", status_code=201, responses=_WRITE, summary="Create a queue")
def create_queue(
    body: QueueBody, db: DatabaseDep, caller: Admin, response: Response, if_match: IfMatch = None
) -> QueueConfig:
    return _create(db, _as(QueueConfig, body), caller, if_match, response)


@router.get("/queues/{queue_id}", responses=_READ_ONE, summary="Get a queue")
def get_queue(queue_id: QueueId, db: DatabaseDep, _: Reader, response: Response) -> QueueConfig:
    return _get(db, QueueConfig, queue_id, response)


@router.put("/queues/{queue_id}", responses=_WRITE, summary="Replace a queue's routing policy")
def replace_queue(
    *,
    queue_id: QueueId,
    body: QueueBody,
    db: DatabaseDep,
    caller: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> QueueConfig:
    return _replace(
        db,
        resource_id=queue_id,
        resource=_as(QueueConfig, body),
        caller=caller,
        if_match=if_match,
        response=response,
    )


@router.delete("/queues/{queue_id}", status_code=204, responses=_WRITE, summary="Delete a queue")
def delete_queue(
    queue_id: QueueId, db: DatabaseDep, caller: Admin, if_match: IfMatch = None
) -> Response:
    return _delete(db, QueueConfig, queue_id, caller, if_match)


# ------------------------------------------------------------------ tariffs


@router.get("/tariffs", responses=_READ, summary="Get the network's tariffs")
def get_tariffs(db: DatabaseDep, _: Reader, response: Response) -> TariffConfig:
    version = db.config.version()
    response.headers["ETag"] = etag(version)
    return db.config.get(TariffConfig, TARIFFS_ID) or TariffConfig()


@router.put("/tariffs", responses=_WRITE, summary="Replace the network's tariffs")
def replace_tariffs(
    body: TariffConfig,
    db: DatabaseDep,
    caller: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> TariffConfig:
    version = _put(db, body, TARIFFS_ID, caller=caller, if_match=if_match, exists=None)
    response.headers["ETag"] = etag(version)
    return body
