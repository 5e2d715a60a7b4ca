"""The site agent: one process per site, between its PBX and the global router.

It streams what happens at the site to the router and carries out the router's decisions, as
:mod:`site_agent.protocol` lays down: a snapshot on every connection and on request, then deltas
numbered 1, 2, ... on that connection; deliveries rung once whatever is re-sent; confirmations
and rejections naming the reservation they settle.

When no router can be reached it keeps the site working: its own routing engine
(:class:`~site_agent.local_routing.LocalRouter`, always in step with the PBX) routes the calls
queued at the site and every new one, and each call so given to an agent who answered is
reported as ``LocallyRouted`` when a router is back, after the snapshot; each call whose caller
hung up while no router heard it is reported as ``LocallyAbandoned``.  Handing back waits
(briefly) for the calls the site rang on its own to be answered or not, so the snapshot and the
reports agree on every call.

A transfer is a handshake: on ``TransferOut`` the call leaves and the site confirms with
``ContactTransferred`` (or rejects, if the call is gone or not queued); the confirmation is kept
until the router acknowledges it, and every snapshot lists the call as ``transferred`` until
the router says it arrived elsewhere (``TransferSettled``): a confirmation lost with the link
still reaches the router, and a call in transit when the router died is found again by its
successor.  The destination, taking the call in on the router's ``Deliver``, says so
(``ContactTakenIn``, kept and listed in snapshots' ``taken_in`` until acknowledged), and lists
the transfer order as ``received`` in its snapshots for a while longer.

A supervisor's change of an agent's presence comes as ``SetAgentState``: the site carries it out
on its PBX (``force_ready``, ``force_not_ready``, ``force_logout``), whose events go to the
router in the usual deltas, then answers ``AgentStateApplied`` (or ``AgentStateRefused`` with
the PBX's reason).  Commands only come over a link, so routing locally has none to carry out.

Nothing is lost or rung twice across a disconnect because the PBX is the only truth: the
snapshot is read from it, never from what was sent; a reservation is remembered, so a re-sent
``Deliver`` never rings again; and a call is either queued (the router's, or the site's own
while it routes locally), ringing or talking at exactly one agent, or gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, TypeVar

from routing.engine import NO_ANSWER_REASON
from routing.model import Assignment, Contact, Network
from routing.settings import RouterSettings
from site_agent.aio import stop, wait_event
from site_agent.local_routing import LocalRouter
from site_agent.pbx import (
    AgentLogin,
    AgentLogout,
    AgentReadied,
    AgentUnready,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerHungUp,
    CallNotAnswered,
    CallState,
    PbxAdapter,
    PbxCall,
    PbxEvent,
    PbxRefusedError,
    WrapUpOver,
)
from site_agent.protocol import (
    Ack,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentStateApplied,
    AgentStateRefused,
    AgentStatus,
    ContactAbandoned,
    ContactArrived,
    ContactData,
    ContactFinished,
    ContactStatus,
    ContactTakenIn,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    Delta,
    LocallyAbandoned,
    LocallyRouted,
    RouterMessage,
    SetAgentState,
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    TransferSettled,
    Withdraw,
    WrapUpEnded,
)
from site_agent.settings import SiteAgentSettings
from site_agent.transport import LINK_ERRORS, Backoff, RouterLink, open_link, stream_url

log = logging.getLogger(__name__)
_V = TypeVar("_V")

# Reservations remembered to recognise a re-sent Deliver; the oldest are forgotten past this.
REMEMBERED_RESERVATIONS = 100_000


_WIRE_STATE: dict[CallState, Literal["queued", "ringing", "talking"]] = {
    CallState.QUEUED: "queued",
    CallState.RINGING: "ringing",
    CallState.TALKING: "talking",
}


class Mode(StrEnum):
    """Who routes the site's calls now."""

    # Handing back to a router that answered: nobody starts new work (milliseconds, or until
    # the site's own rings are settled).
    HANDOVER = "handover"
    ROUTER = "router"  # the snapshot is sent: the router decides
    LOCAL = "local"  # no router: the site's own engine decides


class ReservationState(StrEnum):
    RINGING = "ringing"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    ABANDONED = "abandoned"
    TRANSFERRED = "transferred"


@dataclass(slots=True)
class Reservation:
    """A router decision the site carried out (or refused): ``Deliver`` or ``TransferOut``."""

    number: int
    contact_id: str
    state: ReservationState
    agent_id: str | None = None
    to_site: str | None = None


@dataclass(slots=True)
class LocalDecision:
    """A call the site gave one of its agents while it routed alone; ``answered`` is known
    once the ring ended."""

    contact: ContactData
    agent_id: str
    at: float
    answered: bool | None = None
    ended_at: float | None = None

    def report(self) -> list[SiteEvent]:
        """``LocallyRouted``, and the call's end if it came before the report could: a router
        adopts the call at the agent, so it must also learn that it ended (the agent's
        wrap-up, if any, is in the snapshot)."""
        events: list[SiteEvent] = [
            LocallyRouted(contact=self.contact, agent_id=self.agent_id, at=self.at)
        ]
        if self.ended_at is not None:
            events.append(ContactFinished(contact_id=self.contact.id, at=self.ended_at, wrap_up=0))
        return events


@dataclass(slots=True)
class LocalAbandon:
    """A caller who hung up while no router heard of it (the site routed alone, or was handing
    back): the router's contact history would not have the call otherwise."""

    contact: ContactData
    at: float

    def report(self) -> list[SiteEvent]:
        return [LocallyAbandoned(contact=self.contact, at=self.at)]


@dataclass(slots=True)
class TransferReport:
    """A call that left on the router's transfer order: confirmed until acknowledged, and
    listed in every snapshot meanwhile."""

    contact: ContactData
    event: ContactTransferred

    def report(self) -> list[SiteEvent]:
        return [self.event]

    def status(self) -> ContactStatus:
        return ContactStatus(
            contact=self.contact,
            state="transferred",
            reservation=self.event.reservation,
            to_site=self.event.to_site,
        )


@dataclass(slots=True)
class IntakeReport:
    """A call taken in from transit (a ``Deliver`` with ``from_site``): said at once, and
    listed in every snapshot's ``taken_in`` until acknowledged, so a router whose delivery
    crossed a dropped link knows the call arrived (even if it ended since)."""

    event: ContactTakenIn

    def report(self) -> list[SiteEvent]:
        return [self.event]


Report = LocalDecision | LocalAbandon | TransferReport | IntakeReport
# Reports a snapshot carries (kept until a delta after it is acknowledged), not re-sent after it.
_IN_SNAPSHOTS = (TransferReport, IntakeReport)


@dataclass(slots=True, eq=False)
class _Connection:
    """One connection's numbering and what waits to go out on it."""

    link: RouterLink
    outbox: list[SiteEvent] = field(default_factory=list)
    # Local-decision reports in the outbox, and in each sent delta (until acknowledged).
    outbox_reports: list[int] = field(default_factory=list)
    sent_reports: dict[int, list[int]] = field(default_factory=dict)
    seq: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: asyncio.Event = field(default_factory=asyncio.Event)


def contact_data(contact: Contact) -> ContactData:
    """A contact as the wire carries it (the caller's patience is not the router's to know)."""
    return ContactData(
        id=contact.id,
        queue_id=contact.queue_id,
        arrival=contact.arrival,
        channel=contact.channel,
        caller_region=contact.caller_region,
        priority=contact.priority,
        required_skills=dict(contact.required_skills),
        customer_id=contact.customer_id,
        attributes=dict(contact.attributes),
        preferred_site=contact.preferred_site,
    )


class SiteAgent:
    """Runs one site: its PBX adapter, its link to the router, its fall-back routing."""

    def __init__(
        self,
        pbx: PbxAdapter,
        network: Network,
        *,
        router_url: str,
        token: str,
        settings: SiteAgentSettings | None = None,
        router_settings: RouterSettings | None = None,
    ) -> None:
        self.site_id = pbx.site_id
        self.pbx = pbx
        self.settings = settings or SiteAgentSettings()
        self.url = stream_url(router_url, self.site_id)
        self._token = token
        self.local = LocalRouter(network, self.site_id, router_settings or RouterSettings())
        self.mode = Mode.HANDOVER
        self._connection: _Connection | None = None
        # By number: routers number from the wall clock, so a restarted one does not reuse a
        # number; one reused all the same (a clock stepped back) for another call or agent is
        # still obeyed as a new decision (see _remember).
        self._reservations: OrderedDict[int, Reservation] = OrderedDict()
        self._ringing: dict[str, Reservation] = {}  # contact -> router reservation ringing
        self._talking: dict[str, int] = {}  # contact -> reservation it was answered under
        self._local_ringing: dict[str, LocalDecision] = {}
        # What a router must be told and has not acknowledged (answered local decisions,
        # local abandons, transfer confirmations, intakes), and local decisions still talking.
        self._reports: dict[int, Report] = {}
        # Calls sent away, by transfer order, until the router says they arrived; the transfer
        # orders of calls taken in from transit.  The oldest are forgotten past a bound.
        self._away: OrderedDict[int, TransferReport] = OrderedDict()
        self._received: OrderedDict[int, None] = OrderedDict()
        self._answered_locally: dict[str, LocalDecision] = {}
        self._report_number = 0
        self._engine_changed = asyncio.Event()
        self._settled = asyncio.Event()
        self._rng = random.Random(f"backoff:{self.site_id}")
        # What happened, for logs and tests.
        self.connections = 0
        self.local_decisions = 0
        self.duplicate_deliveries = 0
        self.link_faults = 0
        self.presence_reports = 0  # agents' presence events told the router

    @property
    def sent_away(self) -> list[str]:
        """Calls this site sent away by transfer that no router has said arrived yet (listed
        as ``transferred`` in its snapshots): at the end of a run, calls still in transit."""
        return [report.contact.id for report in self._away.values()]

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        """Run until cancelled: the PBX, the engine's timers and the link (re-opened with
        backoff, routing locally in between)."""
        self.pbx.subscribe(self._on_pbx)
        self.local.load(self.pbx.state())
        await self.pbx.start()
        # The site works from the first call, router or not: the first connection hands over.
        self._route_locally(announce=False)
        timers = asyncio.create_task(self._timers(), name=f"site-agent-timers-{self.site_id}")
        try:
            await self._keep_connected()
        finally:
            await stop(timers)
            await self.pbx.close()

    async def _keep_connected(self) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_initial_seconds, s.reconnect_max_seconds, self._rng)
        while True:
            try:
                async with open_link(self.url, self._token, s) as link:
                    backoff.reset()
                    await self._serve(link)
            except LINK_ERRORS as error:
                reason = str(error) or type(error).__name__
                log.warning("site %s: no router at %s (%s)", self.site_id, self.url, reason)
            except Exception:
                # A fault handling one connection must not stop the site: log it, drop the
                # link, route locally and reconnect (the snapshot puts the router right).
                self.link_faults += 1
                log.exception("site %s: dropped the link after an error", self.site_id)
            finally:
                self._connection = None
            self._route_locally()
            await asyncio.sleep(backoff.next())

    async def _serve(self, link: RouterLink) -> None:
        """One connection: hand over, snapshot, then deltas out and decisions in until the
        link fails (which raises)."""
        self._hand_over()
        await self._settle_local_rings()
        connection = _Connection(link)
        self._connection = connection
        self.connections += 1
        async with connection.lock:
            await self._send_snapshot(connection)
        log.info("site %s: connected to %s", self.site_id, self.url)
        tasks = {
            asyncio.create_task(self._send_deltas(connection)),
            asyncio.create_task(self._receive(connection)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raises the link error that ended it
        finally:
            for task in tasks:
                await stop(task)

    async def _receive(self, connection: _Connection) -> None:
        while True:
            message = await connection.link.receive()
            if message is not None:
                await self._on_router(connection, message)

    async def _send_deltas(self, connection: _Connection) -> None:
        while True:
            await connection.pending.wait()
            if self.settings.batch_seconds:
                await asyncio.sleep(self.settings.batch_seconds)
            async with connection.lock:
                connection.pending.clear()
                await self._flush(connection)

    async def _flush(self, connection: _Connection) -> None:
        """Send what waits as the next delta (the connection's lock is held)."""
        if not connection.outbox:
            return
        events, connection.outbox = connection.outbox, []
        reports, connection.outbox_reports = connection.outbox_reports, []
        connection.seq += 1
        if reports:
            connection.sent_reports[connection.seq] = reports
        await connection.link.send(Delta(site_id=self.site_id, seq=connection.seq, events=events))

    async def _send_snapshot(self, connection: _Connection) -> None:
        """Whatever waits goes out first under the old numbering; then the snapshot (seq 0),
        read at this instant, and the numbering starts again.  Transfers and intakes not yet
        acknowledged are in the snapshot (kept until a delta after it is acknowledged); local
        decisions and abandons not yet acknowledged follow it in delta 1."""
        await self._flush(connection)
        self.mode = Mode.ROUTER
        connection.seq = 0
        connection.sent_reports.clear()
        listed = [n for n, r in self._reports.items() if isinstance(r, _IN_SNAPSHOTS)]
        if listed:
            connection.sent_reports[0] = listed
        connection.outbox_reports = [n for n in self._reports if n not in set(listed)]
        local = [self._reports[number] for number in connection.outbox_reports]
        connection.outbox = [event for report in local for event in report.report()]
        reported = [r.contact.id for r in local if isinstance(r, LocalDecision | LocalAbandon)]
        snapshot = self._snapshot().model_copy(update={"reported": reported})
        await connection.link.send(snapshot)
        if connection.outbox:
            connection.pending.set()

    def _snapshot(self) -> Snapshot:
        state = self.pbx.state()
        here = {call.contact.id for call in state.calls}
        transferred = [
            report.status() for report in self._away.values() if report.contact.id not in here
        ]
        return Snapshot(
            site_id=self.site_id,
            at=state.at,
            taken_in=[
                r.event.reservation for r in self._reports.values() if isinstance(r, IntakeReport)
            ],
            received=list(self._received),
            agents=[
                AgentStatus(
                    agent_id=a.agent_id,
                    logged_in=a.logged_in,
                    ready=a.ready,
                    reason=a.reason if a.logged_in and not a.ready else None,
                    wrap_up=a.wrap_up,
                    shift_end=a.shift_end,
                )
                for a in state.agents
            ],
            contacts=[
                ContactStatus(
                    contact=contact_data(call.contact),
                    state=_WIRE_STATE[call.state],
                    agent_id=call.agent_id,
                    reservation=self._reservation_of(call),
                )
                for call in state.calls
            ]
            + transferred,
        )

    def _reservation_of(self, call: PbxCall) -> int | None:
        if call.state is CallState.RINGING:
            ringing = self._ringing.get(call.contact.id)
            return ringing.number if ringing else None
        if call.state is CallState.TALKING:
            return self._talking.get(call.contact.id)
        return None

    def _report(self, event: SiteEvent) -> None:
        """Queue an event for the router; with no router it is not kept: the next snapshot
        carries the state it led to."""
        connection = self._connection
        if self.mode is Mode.ROUTER and connection is not None:
            connection.outbox.append(event)
            connection.pending.set()

    # ----------------------------------------------------------------- who routes

    def _route_locally(self, *, announce: bool = True) -> None:
        if self.mode is Mode.LOCAL:
            return
        if announce:
            log.warning("site %s: routing locally until a router is back", self.site_id)
        self.mode = Mode.LOCAL
        queued = [c.contact for c in self.pbx.state().calls if c.state is CallState.QUEUED]
        self._execute(self.local.start_routing(queued, self.pbx.now()))
        self._engine_changed.set()

    def _hand_over(self) -> None:
        """A router answered: start no new local work; calls waiting are the router's."""
        self.mode = Mode.HANDOVER
        self.local.stop_routing(self.pbx.now())
        self._engine_changed.set()

    async def _settle_local_rings(self) -> None:
        """Wait for the site's own rings to end, so each is reported answered or not; those
        still ringing after ``handover_seconds`` go back to the queue (for the router)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.handover_seconds
        while self._local_ringing and loop.time() < deadline:
            self._settled.clear()
            await wait_event(self._settled, deadline - loop.time())
        for contact_id in list(self._local_ringing):
            with contextlib.suppress(PbxRefusedError):
                self.pbx.stop_ringing(contact_id, agent_reason=None)
            self._settle_local(contact_id, answered=False)

    def _execute(self, assignments: list[Assignment]) -> None:
        """Ring the agents the site's own engine chose."""
        pending = list(assignments)
        while pending:
            assignment = pending.pop(0)
            contact_id, agent_id = assignment.contact_id, assignment.agent_id
            call = self.pbx.call(contact_id)
            try:
                if call is None:
                    raise PbxRefusedError(f"call {contact_id} is gone")
                self.pbx.ring(contact_id, agent_id)
            except PbxRefusedError as error:
                log.warning("site %s: local ring refused: %s", self.site_id, error)
                pending += self.local.refused(contact_id, self.pbx.now(), str(error))
                continue
            self.local.reserved(contact_id)
            self.local_decisions += 1
            self._local_ringing[contact_id] = LocalDecision(
                contact_data(call.contact), agent_id, at=self.pbx.now()
            )

    def _settle_local(self, contact_id: str, *, answered: bool) -> None:
        decision = self._local_ringing.pop(contact_id, None)
        if decision is None:
            return
        decision.answered = answered
        self._settled.set()
        if not answered:
            return  # an offer let ring out (or hung up on) never left the site: not reported
        self._answered_locally[contact_id] = decision
        self._add_report(decision)  # sent now only if handed over already (not expected)

    def _add_report(self, report: Report) -> None:
        """Keep a report until a router acknowledges it: sent now if a router routes, else
        after the next connection's snapshot."""
        self._report_number += 1
        self._reports[self._report_number] = report
        connection = self._connection
        if self.mode is Mode.ROUTER and connection is not None:
            connection.outbox_reports.append(self._report_number)
            for event in report.report():
                self._report(event)

    async def _timers(self) -> None:
        """Fire the local engine's timers on the PBX's clock (target and answer time-outs).

        One instant at a time, each carried out at the PBX before the next: a late loop must
        not let the engine ring a call at an agent and take it back in one go, since the PBX
        would then hear of a ring it never made."""
        while True:
            self._engine_changed.clear()
            when = self.local.next_timer()
            delay = None if when is None else self.pbx.clock.delay_until(when)
            if delay is None or delay > 0:
                await wait_event(self._engine_changed, delay)
                continue
            assert when is not None
            redirects, assignments = self.local.advance(when)
            for redirect in redirects:
                with contextlib.suppress(PbxRefusedError):
                    self.pbx.stop_ringing(redirect.contact_id, agent_reason=NO_ANSWER_REASON)
            self._execute(assignments)
            await asyncio.sleep(0)

    # ----------------------------------------------------------------- the PBX

    def _on_pbx(self, event: PbxEvent) -> None:
        """Every PBX event: settle rings, tell the router, then keep the engine in step (which,
        routing locally, may ring the call again: its new ring is a new decision)."""
        self._on_pbx_event(event)
        self._execute(self.local.observe(event))
        self._engine_changed.set()

    def _on_pbx_event(self, event: PbxEvent) -> None:
        match event:
            case AgentLogin(agent_id, at, ready, shift_end):
                self.presence_reports += 1
                self._report(
                    AgentLoggedIn(agent_id=agent_id, at=at, ready=ready, shift_end=shift_end)
                )
            case AgentReadied(agent_id, at):
                self.presence_reports += 1
                self._report(AgentReady(agent_id=agent_id, at=at))
            case AgentUnready(agent_id, at, reason):
                self.presence_reports += 1
                self._report(AgentNotReady(agent_id=agent_id, at=at, reason=reason))
            case AgentLogout(agent_id, at):
                self.presence_reports += 1
                self._report(AgentLoggedOut(agent_id=agent_id, at=at))
            case WrapUpOver(agent_id, at):
                self._report(WrapUpEnded(agent_id=agent_id, at=at))
            case CallArrived(contact, at):
                self._report(ContactArrived(contact=contact_data(contact), at=at))
            case CallAnswered(contact_id, _, at):
                self._settle_local(contact_id, answered=True)
                ringing = self._ringing.pop(contact_id, None)
                if ringing is not None:
                    ringing.state = ReservationState.CONFIRMED
                    self._talking[contact_id] = ringing.number
                    self._report(
                        DeliveryConfirmed(reservation=ringing.number, contact_id=contact_id, at=at)
                    )
            case CallNotAnswered(contact_id, _, at, reason):
                self._settle_local(contact_id, answered=False)
                ringing = self._ringing.pop(contact_id, None)
                if ringing is not None and ringing.state is ReservationState.RINGING:
                    ringing.state = ReservationState.REJECTED
                    self._report(
                        DeliveryRejected(
                            reservation=ringing.number, contact_id=contact_id, at=at, reason=reason
                        )
                    )
            case CallEnded(contact_id, _, at, wrap_up):
                self._talking.pop(contact_id, None)
                decision = self._answered_locally.pop(contact_id, None)
                if decision is not None:
                    decision.ended_at = at
                self._report(ContactFinished(contact_id=contact_id, at=at, wrap_up=wrap_up))
            case CallerHungUp(contact_id, at):
                self._settle_local(contact_id, answered=False)
                ringing = self._ringing.pop(contact_id, None)
                if ringing is not None:
                    ringing.state = ReservationState.ABANDONED
                if self.mode is Mode.ROUTER:
                    self._report(ContactAbandoned(contact_id=contact_id, at=at))
                else:
                    # No router hears it now, and the next snapshot cannot show a call that
                    # is gone: report it after that snapshot.
                    known = self.local.contact(contact_id)
                    if known is not None:
                        self._add_report(LocalAbandon(contact_data(known), at))
            case _:
                pass  # a transfer out: the router ordered it, and knows

    # ----------------------------------------------------------------- the router

    async def _on_router(self, connection: _Connection, message: RouterMessage) -> None:
        match message:
            case Deliver():
                self._deliver(message)
            case TransferOut():
                self._transfer_out(message)
            case Withdraw():
                self._withdraw(message)
            case SetAgentState():
                self._set_agent_state(message)
            case TransferSettled(reservation=order):
                self._away.pop(order, None)
            case Ack(seq=seq):
                for number in [n for n in connection.sent_reports if n <= seq]:
                    for report in connection.sent_reports.pop(number):
                        self._reports.pop(report, None)
            case SnapshotRequest(reason=reason):
                log.info("site %s: router asked for a snapshot (%s)", self.site_id, reason)
                async with connection.lock:
                    await self._send_snapshot(connection)
        self._engine_changed.set()

    def _remember(self, reservation: Reservation) -> bool:
        """Record a decision; False if this very decision was seen before (re-sent).

        Routers number from the wall clock, so a number names one decision even across router
        restarts.  As a safeguard (a router whose clock stepped back) a number seen before for
        another call, agent or destination is obeyed as the new decision it is."""
        number = reservation.number
        seen = self._reservations.pop(number, None)
        if seen is not None:
            if (seen.contact_id, seen.agent_id, seen.to_site) == (
                reservation.contact_id,
                reservation.agent_id,
                reservation.to_site,
            ):
                self._reservations[number] = seen
                self.duplicate_deliveries += 1
                log.info("site %s: reservation %d seen before", self.site_id, number)
                return False
            log.warning("site %s: reservation %d reused for a new decision", self.site_id, number)
        self._reservations[number] = reservation
        while len(self._reservations) > REMEMBERED_RESERVATIONS:
            self._reservations.popitem(last=False)
        return True

    def _reject(self, reservation: Reservation, reason: str) -> None:
        reservation.state = ReservationState.REJECTED
        self._report(
            DeliveryRejected(
                reservation=reservation.number,
                contact_id=reservation.contact_id,
                at=self.pbx.now(),
                reason=reason,
            )
        )

    def _deliver(self, message: Deliver) -> None:
        contact_id = message.contact.id
        reservation = Reservation(
            message.reservation, contact_id, ReservationState.RINGING, agent_id=message.agent_id
        )
        if not self._remember(reservation):
            return
        try:
            if message.from_site is not None and self.pbx.call(contact_id) is None:
                contact = message.contact.to_contact(self.site_id)
                self.pbx.transfer_in(contact, message.from_site)
                self.local.taken_in(contact)
                if message.order is not None:
                    _bounded_add(self._received, message.order, None)
                intake = ContactTakenIn(
                    reservation=message.reservation, contact_id=contact_id, at=self.pbx.now()
                )
                self._add_report(IntakeReport(intake))
            self.pbx.ring(contact_id, message.agent_id)
        except PbxRefusedError as error:
            self._reject(reservation, str(error))
            return
        self._ringing[contact_id] = reservation
        call = self.pbx.call(contact_id)
        if call is not None:
            self.local.ringing(call.contact, message.agent_id, self.pbx.now())

    def _transfer_out(self, message: TransferOut) -> None:
        reservation = Reservation(
            message.reservation,
            message.contact_id,
            ReservationState.TRANSFERRED,
            to_site=message.to_site,
        )
        if not self._remember(reservation):
            return
        call = self.pbx.call(message.contact_id)
        try:
            if call is None:
                raise PbxRefusedError(f"call {message.contact_id} is not at site {self.site_id}")
            self.pbx.transfer_out(message.contact_id, message.to_site)
        except PbxRefusedError as error:
            self._reject(reservation, str(error))
            return
        confirmation = ContactTransferred(
            reservation=message.reservation,
            contact_id=message.contact_id,
            to_site=message.to_site,
            at=self.pbx.now(),
        )
        report = TransferReport(contact_data(call.contact), confirmation)
        _bounded_add(self._away, message.reservation, report)
        self._add_report(report)

    def _withdraw(self, message: Withdraw) -> None:
        reservation = self._reservations.get(message.reservation)
        if (
            reservation is None
            or reservation.contact_id != message.contact_id
            or reservation.state is not ReservationState.RINGING
            or reservation.agent_id != message.agent_id
        ):
            log.info("site %s: nothing to withdraw for %d", self.site_id, message.reservation)
            return
        reservation.state = ReservationState.WITHDRAWN
        self._ringing.pop(reservation.contact_id, None)
        with contextlib.suppress(PbxRefusedError):
            self.pbx.stop_ringing(reservation.contact_id, agent_reason=NO_ANSWER_REASON)

    def _set_agent_state(self, message: SetAgentState) -> None:
        """Carry out a supervisor's change of an agent's presence on the PBX, then answer it.

        The PBX reports what the command changed synchronously, before it returns (the
        adapter's rule), so the presence events told the router meanwhile are the command's,
        and the answer follows them.  A PBX that had the agent so already reports nothing; the
        router, which asks only for a change it believes needed, then has the agent otherwise,
        so its presence is restated (from the PBX's state) before the answer."""
        agent_id = message.agent_id
        reported = self.presence_reports
        try:
            match message.state:
                case "ready":
                    self.pbx.force_ready(agent_id)
                case "not_ready":
                    self.pbx.force_not_ready(agent_id, message.reason or "not ready")
                case "logged_out":
                    self.pbx.force_logout(agent_id)
        except PbxRefusedError as error:
            log.info("site %s: agent state change refused: %s", self.site_id, error)
            self._report(
                AgentStateRefused(
                    request_id=message.request_id,
                    agent_id=agent_id,
                    at=self.pbx.now(),
                    reason=str(error),
                )
            )
            return
        now = self.pbx.now()
        if self.presence_reports == reported:
            restated = self._presence_of(agent_id, now)
            if restated is not None:
                self._report(restated)
        self._report(AgentStateApplied(request_id=message.request_id, agent_id=agent_id, at=now))

    def _presence_of(self, agent_id: str, now: float) -> SiteEvent | None:
        """The agent's presence at the PBX now, as the event that sets it."""
        agent = next((a for a in self.pbx.state().agents if a.agent_id == agent_id), None)
        if agent is None:
            return None
        if not agent.logged_in:
            return AgentLoggedOut(agent_id=agent_id, at=now)
        if agent.ready:
            return AgentReady(agent_id=agent_id, at=now)
        return AgentNotReady(agent_id=agent_id, at=now, reason=agent.reason or "not ready")


def _bounded_add(memory: OrderedDict[int, _V], key: int, value: _V) -> None:
    memory[key] = value
    while len(memory) > REMEMBERED_RESERVATIONS:
        memory.popitem(last=False)
