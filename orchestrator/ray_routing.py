""":class:`RayRouting`: the control API's routing service over the live, sharded router.

:class:`~orchestrator.api.local_routing.LocalRouting` plays every site towards a router of its
own; this service joins the router the sites use (a :class:`RouterFront` over Ray actors, or
over :class:`~orchestrator.router_actor.LocalShard` in tests), so a contact created through the
API and a supervisor's agent state change reach the same shards, and statistics and contact
states are read from them.

**What it sees.**  It watches the front (a :class:`~orchestrator.router_actor.FrontObserver`
for every site message, and the front's sink for every router message) and keeps the history
of every contact in the network, whoever offered it: the sites' reports (arrived, answered,
rejected, finished, abandoned, routed locally, snapshots) and the router's decisions (reserved,
transferred, redirected) are recorded by :class:`~orchestrator.api.live.ContactHistory`, the
same code :class:`LocalRouting` records with, as route events in the ``ContactStore`` and
15-minute counters in the ``IntervalStore``.  Writes go to one worker thread in the order they
happen (the event loop never waits on the database); reads that must see them
(:meth:`RayRouting.contact_state`, :meth:`route_contact`) wait for the writes before them.

**A contact created through the API** is offered as an arrival at its landing site: the front
injects ``ContactArrived`` into that site's stream (:meth:`RouterFront.inject`: the shards take
it as the site's next delta, the site's own numbering untouched), so the router queues and
routes it exactly as a site's own call, against the same agents.  The protocol has no
router-to-site message that puts a new call into a site's PBX, so the call is held at the API
(the network's ingress, like a carrier's pre-routing IVR) until the router reserves an agent:
the ``Deliver`` then goes to the agent's site as a transfer in from :data:`INGRESS`, which the
site agent executes with its PBX adapter's ``transfer_in`` (its way of taking a call it did not
have), and the router's ``TransferOut`` to the landing site, which never had the call, is not
sent.  From then on the call is the serving site's like any other: answered, finished and
abandoned as its PBX reports.  While held it waits for the landing site's link: a contact
landing at a site not connected is refused (409), and held contacts are offered again after
the landing site's snapshot (which, listing only its PBX's calls, ends them in the router).
Held contacts are stored (their ``offered`` event marked :data:`INGRESS_MARK`), so a router
started after this one stopped or died holds again those still queued and never reserved, and
offers them after their landing site's snapshot.  One whose delivery had left the API when the
router died may never have reached its site: the delivery carries a transfer order (stored with
the reservation) that the site lists as received in its snapshots, so the next router finds it
the way it finds a call sites list as sent away: at the site that has it or received it, or,
once every site has sent its snapshot and none does, nowhere, and routes it again from transit
(:meth:`RouterFront.expect_in_transit`).

**An agent state change through the API** is carried out where the agent is, by its site's PBX,
so the site's later reports and snapshots confirm it instead of undoing it: the service sends
the agent's site a :class:`~site_agent.protocol.SetAgentState` command under a fresh request id
(:meth:`RouterFront.command`); the site agent sets the agent ready, not ready or logged out on
its PBX, whose events reach the router as the site's own deltas (``AgentReady``,
``AgentNotReady``, ``AgentLoggedOut``), followed by its answer, ``AgentStateApplied`` or
``AgentStateRefused`` (the PBX's reason: not logged in, on a break, on a call ...).  The
service waits, up to ``agent_command_timeout_seconds`` of the settings, until the router has
applied that answer (:meth:`RayRouting.site_message_applied`), or a snapshot of the site that
shows the agent so (the answer may be lost with a dropped link), and answers with the router's
state of the agent then: a refusal is a :class:`RoutingConflictError` (409) with the site's
reason, no answer in time a :class:`RoutingTimeoutError` (504; the change may still happen),
and a site not connected or resynchronising a :class:`RoutingConflictError` before anything is
sent.  A change to the state the router already has the agent in sends nothing, and logging
out an agent with a contact is refused at once, as :class:`LocalRouting` does.  Unlike
LocalRouting, which plays the sites itself, a site's PBX does not log an agent in: making a
logged-out agent ready or not ready is refused by the site.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from orchestrator.api.live import (
    ContactHistory,
    agent_change_events,
    at_time,
    check_contact,
    contact_data,
    live_agent,
    merged_site_status,
    offer_detail,
    realtime_stats,
    site_of_agent,
)
from orchestrator.api.routing import (
    AgentLiveState,
    ContactRequest,
    LiveContactState,
    LogoutChange,
    NotReadyChange,
    ReadyChange,
    RealtimeStats,
    RouteOutcome,
    RoutingConflictError,
    RoutingTimeoutError,
)
from orchestrator.persistence import ContactDetail, Database, NotFoundError, RouteEventKind
from orchestrator.persistence import ContactStatus as StoredStatus
from orchestrator.router_actor import (
    AgentFigures,
    RouterFront,
    RouterMessage,
    ShardFigures,
    Sink,
    SiteOutOfStepError,
)
from orchestrator.settings import Settings
from orchestrator.sharding import ShardPlan
from routing.engine import SiteLoad
from routing.model import AgentState, Network, Queue
from site_agent.protocol import (
    AgentStateApplied,
    AgentStateRefused,
    AgentStatus,
    ContactAbandoned,
    ContactArrived,
    ContactData,
    ContactFinished,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    Delta,
    LocallyAbandoned,
    LocallyRouted,
    SetAgentState,
    SiteEvent,
    Snapshot,
    TransferOut,
    Withdraw,
)

log = logging.getLogger(__name__)

INGRESS_MARK = "ingress"
"""Marks, in a contact's ``offered`` route event, a contact created through this service: held
at the API until an agent is reserved, so a router started later holds it again."""

INGRESS = "vcc-api"
"""Where a contact created through the API is until the router sends it to a site: the
``from_site`` of its first ``Deliver``."""

_LIVE_STATES: dict[str, LiveContactState] = {
    "queued": "queued",
    "ringing": "ringing",
    "talking": "talking",
}


@dataclass(slots=True, eq=False)
class _Command:
    """A :class:`SetAgentState` sent to a site, waiting for its answer."""

    site_id: str
    message: SetAgentState
    answer: asyncio.Future[None]

    def settle(self, error: Exception | None = None) -> None:
        if self.answer.done():
            return
        if error is None:
            self.answer.set_result(None)
        else:
            self.answer.set_exception(error)


def _already(figures: AgentFigures, change: ReadyChange | NotReadyChange | LogoutChange) -> bool:
    """Whether the router has the agent where ``change`` asks (nothing to send)."""
    logged_in = figures.state is not AgentState.LOGGED_OUT
    match change:
        case ReadyChange():
            # Ready presence (reason None), not in after-contact work, which ready ends.
            return (
                logged_in
                and figures.reason is None
                and figures.state is not AgentState.AFTER_CONTACT_WORK
            )
        case NotReadyChange(reason=reason):
            return logged_in and figures.reason == reason
        case LogoutChange():
            return not logged_in


def _shows(status: AgentStatus, command: SetAgentState) -> bool:
    """Whether a site's snapshot has the agent where ``command`` asked."""
    match command.state:
        case "ready":
            return status.logged_in and status.ready and not status.wrap_up
        case "not_ready":
            return status.logged_in and not status.ready and status.reason == command.reason
        case "logged_out":
            return not status.logged_in


class RayRouting:
    """:class:`~orchestrator.api.routing.RoutingService` over a live :class:`RouterFront`.

    Build it once the front's sink is set (the WebSocket hub sets it) and pass that sink as
    ``downstream``: the service becomes the front's sink and forwards to it.  ``network`` is
    the router's whole configuration; ``epoch`` the Unix time of the front's clock zero (0 for
    Unix time, a scenario's day for a simulated network); ``settings`` the process's (read
    from the environment when not given), for ``agent_command_timeout_seconds``."""

    def __init__(
        self,
        front: RouterFront,
        network: Network,
        database: Database,
        *,
        downstream: Sink,
        epoch: float = 0.0,
        settings: Settings | None = None,
    ) -> None:
        self.front = front
        self.network = network
        self.epoch = epoch
        self.agent_command_timeout = (settings or Settings()).agent_command_timeout_seconds
        self._commands: dict[str, _Command] = {}  # agent state changes sent, by request id
        self.write_errors = 0
        self._contacts = database.contacts
        self._downstream = downstream
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vcc-history")
        self.history = ContactHistory(
            network,
            database.contacts,
            database.intervals,
            epoch=epoch,
            write=self._write,
            counted=front.metrics.count_contacts,
        )
        self._arrivals: set[str] = set()  # site arrivals not yet answered by the router
        # Contacts an earlier router sent from the API to a site, not known to have arrived:
        # (landing site, order, destination, data), for the router once a site reports.
        self._expected: list[tuple[str, int, str, ContactData]] = []
        self.resumed = self._resume_open()
        self._tasks: set[asyncio.Task[None]] = set()
        front.sink = self._sink
        front.observers.append(self)

    # ----------------------------------------------------------------- RoutingService

    async def route_contact(self, request: ContactRequest) -> RouteOutcome:
        check_contact(self.network, request, self.history.calls)
        site = request.landing_site
        if not dict(self.front.links()).get(site):
            raise RoutingConflictError(
                f"site {site!r} is not connected to the router (or is resynchronising): a "
                "contact landing there cannot be routed now"
            )
        now = self.front.clock()
        data = contact_data(request, now)
        detail = {**offer_detail(request), INGRESS_MARK: True}
        create = self._contacts.create
        # Stored first, so that a contact id used before is refused before it is routed.
        await self._run(
            lambda: create(
                contact_id=data.id,
                queue=data.queue_id,
                channel=data.channel,
                caller_region=data.caller_region,
                landing_site=site,
                at=at_time(now, self.epoch),
                detail=detail,
            )
        )
        call = self.history.offered(data, site, now, stored=True, held=True)
        with contextlib.suppress(SiteOutOfStepError):  # held: offered again after the snapshot
            await self.front.inject(site, [ContactArrived(contact=data, at=now)])
        while self._tasks:  # a transfer from the API to the agent's site, answered for it
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if call.state == "queued" and not call.reserved:
            self.history.queued(data.id, now)
        await self.drain()
        return RouteOutcome(
            contact_id=data.id,
            state=call.state,
            agent_id=call.agent,
            site_id=call.site if call.agent is not None else None,
        )

    def _resume_open(self) -> int:
        """The contacts an earlier router left open when it stopped (or died); returns how
        many.  Each is live again as stored, so that its site's snapshot finds it known (not
        offered and counted a second time) or ends it (it ended while no router listened).
        Contacts taken through the API that had not reached a site are the API's to hand on:
        those still held (stored queued, never at any site) are held again and offered after
        their landing site's snapshot, as the earlier router would have; those it had sent to
        a site (reserved, the delivery's arrival unknown: the site may never have had it) are
        in transit, and the router finds them from the sites' snapshots or routes them again
        (:meth:`RouterFront.expect_in_transit`)."""
        statuses = (StoredStatus.QUEUED, StoredStatus.RESERVED, StoredStatus.CONNECTED)
        return sum(self._resume(stored) for stored in self._contacts.details(statuses))

    def _resume(self, stored: ContactDetail) -> bool:
        if (
            stored.id in self.history.calls
            or stored.landing_site not in self.network.sites
            or stored.queue not in self.network.queues
            or not stored.history
        ):
            return False
        history = stored.history
        offered = history[0].detail
        data = ContactData(
            id=stored.id,
            queue_id=stored.queue,
            arrival=stored.created_at.timestamp() - self.epoch,
            channel=stored.channel,
            caller_region=stored.caller_region,
            **{k: v for k, v in offered.items() if k != INGRESS_MARK},
        )
        if offered.get(INGRESS_MARK) and all(
            e.kind in {RouteEventKind.OFFERED, RouteEventKind.QUEUED} for e in history
        ):
            self.history.resume_held(data, stored.landing_site)
            return True
        call = self.history.resume(stored, data)
        if (
            call.in_transit
            and history[-1].detail.get("from_site") == INGRESS
            and call.site in self.network.sites
        ):
            assert call.transit_order is not None
            call.held = True  # its next delivery, if it needs one, takes it in from the API
            self._expected.append((stored.landing_site, call.transit_order, call.site, data))
        return True

    async def change_agent_state(
        self, agent_id: str, change: ReadyChange | NotReadyChange | LogoutChange
    ) -> AgentLiveState:
        """Sent to the agent's site, whose PBX carries it out; the state once the router
        applied the site's answer (module docstring)."""
        site = site_of_agent(self.network, agent_id)
        figures = await self._agent_figures(agent_id)
        now = self.front.clock()
        # Refuses logging out an agent with a contact; no events: logged out already.
        if not agent_change_events(agent_id, figures.state, change, now) or _already(
            figures, change
        ):
            return live_agent(
                agent_id, site, figures.state, figures.reason, figures.since, epoch=self.epoch
            )
        message = SetAgentState(
            request_id=uuid.uuid4().hex,
            agent_id=agent_id,
            state=change.state,
            reason=change.reason if isinstance(change, NotReadyChange) else None,
            at=now,
        )
        command = _Command(site, message, asyncio.get_running_loop().create_future())
        self._commands[message.request_id] = command
        try:
            try:
                sent = self.front.command(site, message)
            except SiteOutOfStepError as error:
                raise RoutingConflictError(
                    f"{error}: agent {agent_id!r} cannot change state through it now"
                ) from None
            if not sent:
                raise RoutingConflictError(
                    f"site {site!r} is not connected to the router: agent {agent_id!r} cannot "
                    "change state through it now"
                )
            timeout = self.agent_command_timeout
            try:
                await asyncio.wait_for(command.answer, timeout)
            except TimeoutError:
                raise RoutingTimeoutError(
                    f"site {site!r} did not confirm agent {agent_id!r} {change.state} within "
                    f"{timeout:g} s; the change may still take effect there: read the agent's "
                    "state again before retrying"
                ) from None
        finally:
            del self._commands[message.request_id]
        return await self.agent_state(agent_id)

    async def agent_state(self, agent_id: str) -> AgentLiveState:
        site = site_of_agent(self.network, agent_id)
        figures = await self._agent_figures(agent_id)
        return live_agent(
            agent_id, site, figures.state, figures.reason, figures.since, epoch=self.epoch
        )

    async def contact_state(self, contact_id: str) -> LiveContactState | None:
        state = await self.front.contact_state(contact_id)
        await self.drain()  # the history holds every event this state came from
        return None if state is None else _LIVE_STATES.get(state)

    async def realtime_stats(
        self, *, site: str | None = None, queue: str | None = None
    ) -> RealtimeStats:
        if site is not None and site not in self.network.sites:
            raise NotFoundError(f"no site {site!r} in the running router")
        if queue is not None and queue not in self.network.queues:
            raise NotFoundError(f"no queue {queue!r} in the running router")
        now = self.front.clock()
        self.history.advance(now)
        shards: list[ShardFigures] = await asyncio.gather(
            *(shard.query("figures", now) for shard in self.front.shards)
        )
        return realtime_stats(
            self.network,
            MergedFigures(self.front.plan, shards),
            self.history.calls.values(),
            now,
            site=site,
            queue=queue,
            epoch=self.epoch,
        )

    # ----------------------------------------------------------------- the history's writes

    async def drain(self) -> None:
        """Wait until every write submitted so far is done."""
        await self._run(lambda: None)

    def close(self) -> None:
        """Stop watching the front and finish the writes (waits for them), the staffed time
        of the running interval up to now included."""
        with contextlib.suppress(ValueError):
            self.front.observers.remove(self)
        for task in self._tasks:
            task.cancel()
        self.history.close(self.front.clock())
        self._writer.shutdown(wait=True)

    def _write(self, operation: Callable[[], object]) -> None:
        self._writer.submit(self._guarded, operation)

    def _guarded(self, operation: Callable[[], object]) -> None:
        try:
            operation()
        except Exception:
            self.write_errors += 1
            log.exception("contact history: a write failed")

    async def _run(self, operation: Callable[[], object]) -> object:
        return await asyncio.wrap_future(self._writer.submit(operation))

    async def _agent_figures(self, agent_id: str) -> AgentFigures:
        index = self.front.plan.shard_of_agent(agent_id)
        if index is None:
            raise NotFoundError(f"no agent {agent_id!r} in the running router")
        figures: AgentFigures = await self.front.shards[index].query("agent_figures", agent_id)
        return figures

    # ----------------------------------------------------------------- watching the front

    def site_message(self, site_id: str, message: Delta | Snapshot) -> None:
        """A site's report, before the router applies it: the site's truth, recorded.  Staffed
        time: what is due by now is written, and the agents of a site whose link is seen out
        of step (dropped, or waiting for its snapshot) stop counting then (its snapshot starts
        them again)."""
        history, now = self.history, self.front.clock()
        history.advance(now)
        history.staffed.links(self.front.links(), now)
        if self._expected:  # the router has started: it can look for them now
            expected, self._expected = self._expected, []
            self._spawn(self._expect_in_transit(expected))
        if isinstance(message, Snapshot):
            history.reconcile(site_id, message)
            return
        for event in message.events:
            self._site_event(site_id, event)

    def _site_event(self, site_id: str, event: SiteEvent) -> None:
        history = self.history
        match event:
            case ContactArrived(contact=data, at=at):
                if data.id in history.calls:
                    history.ignored += 1
                    return
                history.offered(data, site_id, at)
                self._arrivals.add(data.id)
            case DeliveryConfirmed(reservation=reservation, contact_id=contact_id, at=at):
                call = history.calls.get(contact_id)
                if call is None or call.state != "ringing" or call.reservation != reservation:
                    history.ignored += 1
                    return
                history.answered(contact_id, at)
            case DeliveryRejected(
                reservation=reservation, contact_id=contact_id, at=at, reason=reason
            ):
                history.taken_back(contact_id, reservation, at, redirected=False, reason=reason)
            case ContactFinished(contact_id=contact_id, at=at, wrap_up=wrap_up):
                history.finished(contact_id, at, wrap_up=wrap_up)
            case ContactAbandoned(contact_id=contact_id, at=at):
                history.abandoned(contact_id, at)
            case ContactTransferred(
                reservation=reservation, contact_id=contact_id, to_site=to_site, at=at
            ):
                call = history.calls.get(contact_id)
                if call is None or call.site != site_id or call.in_transit:
                    history.ignored += 1
                    return
                detail = {"reservation": reservation, "from_site": site_id}
                history.transferred(contact_id, to_site, at, detail=detail, in_transit=True)
            case LocallyRouted(contact=data, agent_id=agent_id, at=at):
                history.locally_routed(data, site_id, agent_id, at)
            case LocallyAbandoned(contact=data, at=at):
                history.locally_abandoned(data, site_id, at)
            case _:
                history.presence(site_id, event)  # agents' presence: their staffed time

    def site_message_applied(self, site_id: str, message: Delta | Snapshot) -> None:
        """The router answered the message: arrivals it did not give an agent are queued;
        after a snapshot, contacts held at the API for that site are offered again; agent
        state changes the site answered are settled."""
        if self._commands:
            self._settle_commands(site_id, message)
        history = self.history
        if isinstance(message, Snapshot):
            held = [
                c.id
                for c in history.calls.values()
                if c.held and not c.in_transit and c.landing == site_id
            ]
            if held:
                self._spawn(self._offer_again(site_id, held))
            return
        for event in message.events:
            if isinstance(event, ContactArrived) and event.contact.id in self._arrivals:
                self._arrivals.discard(event.contact.id)
                call = history.calls.get(event.contact.id)
                if call is not None and call.state == "queued" and not call.reserved:
                    history.queued(call.id, event.at)

    def _settle_commands(self, site_id: str, message: Delta | Snapshot) -> None:
        """Agent state changes sent to the site that this message settles: its answer, once
        the router applied the delta that carries it (the site's link still in step: a delta
        the front ignored was not applied, and the snapshot asked for will tell); or a
        snapshot that shows the agent where the change asked (the answer may have been lost
        with a dropped link).  A refusal settles the change whatever the link."""
        pending = [c for c in self._commands.values() if c.site_id == site_id]
        if not pending:
            return
        if isinstance(message, Snapshot):
            agents = {c.message.agent_id for c in pending}
            statuses = {s.agent_id: s for s in message.agents if s.agent_id in agents}
            for command in pending:
                status = statuses.get(command.message.agent_id)
                if status is not None and _shows(status, command.message):
                    command.settle()
            return
        in_step: bool | None = None
        for event in message.events:
            if not isinstance(event, AgentStateApplied | AgentStateRefused):
                continue
            answered = self._commands.get(event.request_id)
            if answered is None or answered.site_id != site_id:
                continue  # answered already, or too late (the request timed out)
            if isinstance(event, AgentStateRefused):
                wanted = answered.message.state.replace("_", " ")
                answered.settle(
                    RoutingConflictError(
                        f"site {site_id!r} refused to set agent {event.agent_id!r} {wanted}: "
                        f"{event.reason}"
                    )
                )
                continue
            if in_step is None:
                in_step = bool(dict(self.front.links()).get(site_id))
            if in_step:
                answered.settle()

    async def _offer_again(self, site_id: str, contact_ids: list[str]) -> None:
        now = self.front.clock()
        calls = [self.history.calls.get(contact_id) for contact_id in contact_ids]
        events: list[SiteEvent] = [
            ContactArrived(contact=call.data, at=now)
            for call in calls
            if call is not None and call.held and not call.in_transit and call.state == "queued"
        ]
        if events:
            await self._inject(site_id, events)

    async def _expect_in_transit(self, expected: list[tuple[str, int, str, ContactData]]) -> None:
        for landing, order, to_site, data in expected:
            try:
                await self.front.expect_in_transit(landing, order, to_site, data)
            except Exception:
                log.exception("routing service: contact %s in transit not handed over", data.id)

    async def _inject(self, site_id: str, events: list[SiteEvent]) -> None:
        """Events for a held contact; if the site is out of step they are dropped: its
        snapshot ends the contact in the router, and it is offered again after it."""
        try:
            await self.front.inject(site_id, events)
        except SiteOutOfStepError:
            log.info("site %s out of step: %d event(s) wait for its snapshot", site_id, len(events))
        except Exception:
            log.exception("routing service: events for site %s failed", site_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sink(self, site_id: str, message: RouterMessage) -> bool:
        """The router's message to a site: sent on (a contact held at the API goes to its
        site as a transfer in from :data:`INGRESS`), and recorded once sent."""
        history, now = self.history, self.front.clock()
        match message:
            case Deliver(reservation=reservation, contact=data, agent_id=agent):
                call = history.calls.get(data.id)
                held = call is not None and call.held
                if held:
                    # The site takes the call in from the API, wherever it landed, and lists
                    # the order in its snapshots: a router started later finds it there.
                    order = message.order if message.order is not None else reservation
                    message = message.model_copy(update={"from_site": INGRESS, "order": order})
                if not self._downstream(site_id, message):
                    return False
                if call is not None:
                    call.held = False
                    detail = {"reservation": reservation, "from_site": message.from_site}
                    if message.order is not None:
                        detail["order"] = message.order
                    history.reserved(data.id, site_id, agent, reservation, now, detail=detail)
                return True
            case TransferOut(reservation=reservation, contact_id=contact_id, to_site=to_site):
                call = history.calls.get(contact_id)
                if call is not None and call.held:
                    # The landing site never had the call: nothing to move there.  The API,
                    # which holds it, answers for the site that it left, and the router sends
                    # the destination its delivery.
                    call.reserved = True
                    left = ContactTransferred(
                        reservation=reservation, contact_id=contact_id, to_site=to_site, at=now
                    )
                    self._spawn(self._inject(site_id, [left]))
                    return True
                sent = self._downstream(site_id, message)
                if sent and call is not None:
                    call.reserved = True  # an agent is reserved: it is not (just) queued
                return sent
            case Withdraw(reservation=reservation, contact_id=contact_id):
                sent = self._downstream(site_id, message)
                # Taken back by the router whether or not the site heard of it.
                history.taken_back(
                    contact_id, reservation, now, redirected=True, reason="no answer"
                )
                return sent
            case _:
                return self._downstream(site_id, message)


class MergedFigures:
    """The shards' figures as one engine's (:class:`~orchestrator.api.live.EngineFigures`):
    an agent's from its shard, a queue's from its queue's shard, a site's opening from shard 0
    and its status merged over the shards (each pulses only its own queues:
    :func:`~orchestrator.api.live.merged_site_status`)."""

    def __init__(self, plan: ShardPlan, shards: list[ShardFigures]) -> None:
        self._plan = plan
        self._shards = shards

    def agent_state(self, agent_id: str) -> AgentState:
        index = self._plan.shard_of_agent(agent_id)
        return AgentState.LOGGED_OUT if index is None else self._shards[index].agents[agent_id]

    def site_load(self, queue_id: str, site_id: str) -> SiteLoad:
        return self._shards[self._plan.shard_of_queue(queue_id) or 0].loads[(queue_id, site_id)]

    def predicted_wait(self, queue: Queue, site_id: str, now: float) -> float | None:
        return self._shards[self._plan.shard_of_queue(queue.id) or 0].waits[(queue.id, site_id)]

    def site_status(self, site_id: str, now: float) -> str | None:
        return merged_site_status(
            [shard.status.get(site_id) for shard in self._shards],
            [
                status
                for shard in self._shards
                for (_, site), status in shard.queue_status.items()
                if site == site_id
            ],
        )

    def site_open(self, site_id: str) -> bool | None:
        return self._shards[0].open.get(site_id)
