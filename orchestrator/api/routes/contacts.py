"""Contacts: creating one asks the router for a route; listing and reading show their history.

A site key creates contacts landing at its own site (and reads them back); admins create them
for any site; admins and supervisors read them all.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import StatementError

from orchestrator.api.auth import Principal, Reader, allow, forbidden
from orchestrator.api.deps import DatabaseDep, RoutingDep
from orchestrator.api.errors import error_responses, invalid
from orchestrator.api.routes.config import ContactId
from orchestrator.api.routing import ContactRequest
from orchestrator.api.schemas import ContactCreate, ContactDetailOut, ContactOut, Page
from orchestrator.persistence import ContactStatus
from orchestrator.settings import ApiRole

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])

SiteOrAdmin = Annotated[Principal, Depends(allow(ApiRole.SITE))]
SiteOrReader = Annotated[Principal, Depends(allow(ApiRole.SUPERVISOR, ApiRole.SITE))]


@router.post(
    "",
    status_code=201,
    responses=error_responses(400, 401, 403, 409, 422, 500),
    summary="Offer a contact to the network: ask for its route",
)
async def create_contact(
    body: ContactCreate,
    caller: SiteOrAdmin,
    db: DatabaseDep,
    routing: RoutingDep,
    response: Response,
) -> ContactDetailOut:
    """The contact is recorded (``offered``) and routed at once: the answer shows it
    ``reserved`` for an agent (``ringing``), or ``queued`` until one frees up."""
    site = body.site
    if caller.role is ApiRole.SITE:
        site = site or caller.site_id
        if site != caller.site_id:
            raise forbidden(
                f"the key of site {caller.site_id!r} may not offer contacts at {site!r}"
            )
    if site is None:
        raise invalid("site: the landing site is required", details=[{"loc": ["body", "site"]}])
    request = ContactRequest(
        id=body.id or uuid.uuid4().hex,
        queue=body.queue,
        landing_site=site,
        channel=body.channel,
        caller_region=body.caller_region,
        priority=body.priority,
        required_skills=body.required_skills,
        customer_id=body.customer_id,
        attributes=body.attributes,
        preferred_site=body.preferred_site,
    )
    outcome = await routing.route_contact(request)
    # Live state first: history read after it holds every event that state came from.
    live_state = await routing.contact_state(outcome.contact_id)
    detail = await run_in_threadpool(db.contacts.get, outcome.contact_id)
    response.headers["Location"] = f"/v1/contacts/{outcome.contact_id}"
    return ContactDetailOut.of_detail(detail, live_state)


@router.get(
    "", responses=error_responses(401, 403, 422, 500), summary="List contacts, oldest first"
)
def list_contacts(
    db: DatabaseDep,
    _: Reader,
    status: Annotated[ContactStatus | None, Query()] = None,
    queue: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")
    ] = None,
) -> Page[ContactOut]:
    try:
        page = db.contacts.list(status=status, queue=queue, limit=limit, cursor=cursor)
    except (ValueError, StatementError) as error:
        # A cursor that decodes but holds a value the query cannot bind (a naive time) fails
        # in SQLAlchemy's parameter processing, wrapped: still the cursor's fault.
        if isinstance(error, StatementError) and not isinstance(error.orig, ValueError):
            raise
        raise invalid(
            f"malformed cursor {cursor!r}", details=[{"loc": ["query", "cursor"]}]
        ) from None
    return Page[ContactOut](
        items=[ContactOut.of(record) for record in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{contact_id}",
    responses=error_responses(401, 403, 404, 422, 500),
    summary="Get a contact with its route history and live state",
)
async def get_contact(
    contact_id: ContactId, caller: SiteOrReader, db: DatabaseDep, routing: RoutingDep
) -> ContactDetailOut:
    live_state = await routing.contact_state(contact_id)
    detail = await run_in_threadpool(db.contacts.get, contact_id)
    if caller.role is ApiRole.SITE and detail.landing_site != caller.site_id:
        raise forbidden(f"contact {contact_id!r} did not land at site {caller.site_id!r}")
    return ContactDetailOut.of_detail(detail, live_state)
