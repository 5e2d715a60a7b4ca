"""Real-time statistics, historical interval reports and the audit log (admins, supervisors)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, timedelta
from functools import reduce
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from orchestrator.api.auth import Reader
from orchestrator.api.deps import DatabaseDep, RoutingDep
from orchestrator.api.errors import error_responses, invalid
from orchestrator.api.routing import RealtimeStats
from orchestrator.api.schemas import AuditEntryOut, IntervalOut, IntervalReport, Measures, Page
from orchestrator.persistence import Counters

router = APIRouter(prefix="/v1", tags=["statistics"])

INTERVAL = timedelta(minutes=15)
# The longest report one request may ask for.
MAX_REPORT_SPAN = timedelta(days=31)

Filter = Annotated[str | None, Query(max_length=128)]


@router.get(
    "/stats/realtime",
    responses=error_responses(401, 403, 404, 422, 500),
    summary="Live figures per site, queue and skill",
)
async def realtime_stats(
    _: Reader, routing: RoutingDep, site: Filter = None, queue: Filter = None
) -> RealtimeStats:
    """Every agent counts: there is no cap on how many agents the figures cover."""
    return await routing.realtime_stats(site=site, queue=queue)


def measures(counters: Counters) -> Measures:
    """The report's measures from the additive counters; ratios of nothing are null."""

    def ratio(numerator: float, denominator: float) -> float | None:
        return numerator / denominator if denominator else None

    c = counters
    return Measures(
        offered=c.offered,
        answered=c.answered,
        abandoned=c.abandoned,
        answered_within_sl=c.answered_within_sl,
        service_level=ratio(c.answered_within_sl, c.offered),
        abandon_rate=ratio(c.abandoned, c.offered),
        asa_seconds=ratio(c.wait_seconds, c.answered),
        aht_seconds=ratio(c.handle_seconds, c.answered),
        occupancy=ratio(c.handle_seconds, c.staffed_seconds),
        wait_seconds=c.wait_seconds,
        handle_seconds=c.handle_seconds,
        staffed_seconds=c.staffed_seconds,
        cost=c.cost,
        cost_per_contact=ratio(c.cost, c.answered),
    )


def _total(counters: Iterable[Counters]) -> Counters:
    return reduce(lambda a, b: a + b, counters, Counters())


@router.get(
    "/reports/intervals",
    responses=error_responses(401, 403, 422, 500),
    summary="15-minute intervals: offered, answered, abandoned, SL, ASA, AHT, occupancy, cost",
)
def interval_report(
    db: DatabaseDep,
    _: Reader,
    start: Annotated[AwareDatetime, Query(description="First interval's start (inclusive).")],
    end: Annotated[AwareDatetime, Query(description="Intervals starting before this.")],
    site: Filter = None,
    queue: Filter = None,
) -> IntervalReport:
    """One row per interval, site and queue that has counters, and the total over them."""
    try:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise invalid("start and end must be times within years 1-9999 in UTC") from None
    if end <= start:
        raise invalid("end must be after start", details=[{"loc": ["query", "end"]}])
    if end - start > MAX_REPORT_SPAN:
        raise invalid(
            f"a report spans at most {MAX_REPORT_SPAN.days} days",
            details=[{"loc": ["query", "end"]}],
        )
    records = db.intervals.query(start, end, site=site, queue=queue)
    rows = [
        IntervalOut(
            start=record.start,
            end=record.start + INTERVAL,
            site=record.site,
            queue=record.queue,
            **measures(record.counters).model_dump(),
        )
        for record in records
    ]
    return IntervalReport(
        start=start,
        end=end,
        site=site,
        queue=queue,
        intervals=rows,
        total=measures(_total(record.counters for record in records)),
    )


@router.get(
    "/audit",
    responses=error_responses(401, 403, 422, 500),
    summary="Audit log of operator changes, newest first",
    tags=["audit"],
)
def audit_log(
    *,
    db: DatabaseDep,
    _: Reader,
    resource_type: Annotated[
        str | None, Query(max_length=32, description="site, agent, queue ..., agent_state")
    ] = None,
    resource_id: Filter = None,
    actor: Annotated[str | None, Query(max_length=128, description="API key name.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page."),
    ] = None,
) -> Page[AuditEntryOut]:
    page = db.audit.entries(
        resource_type=resource_type,
        resource_id=resource_id,
        actor=actor,
        limit=limit,
        cursor=cursor,
    )
    return Page[AuditEntryOut](
        items=[AuditEntryOut.of(entry) for entry in page.items], next_cursor=page.next_cursor
    )
