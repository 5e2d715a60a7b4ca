"""The router on Ray: one actor per shard, and the front that splits site messages among them.

Each shard (:mod:`orchestrator.sharding`) is a Ray actor hosting one
:class:`~orchestrator.global_router.GlobalRouter` over its part of the network.  The actor
holds state and calls the router; it decides nothing itself.  The **front**
(:class:`RouterFront`) is a plain object in the process that serves the sites' WebSockets:

* it splits each site message by shard: an agent's events go to the agent's shard, a
  contact's to its queue's shard (the front remembers which shard each live contact is on, for
  the events that name only the contact): a transfer's confirmation included, since the shard
  that ordered it holds the agent reserved at the destination and sends the delivery there,
  and a report of a call abandoned while the router was away, which only that shard records;
  a snapshot becomes one snapshot per shard (every shard gets one, empty or not: a snapshot is
  the site's whole truth);
* it keeps the link with each site: the site's delta numbers are checked here (a gap asks the
  site for a snapshot), and each shard sees its own consecutive numbering, so a shard's
  :class:`GlobalRouter` detects nothing amiss when a delta has no event for it;
* the site is acknowledged once every shard concerned has applied the delta; a snapshot
  request from any shard asks the site for a full snapshot, after which every shard starts
  over from it;
* it merges the shards' outbound messages (a delivery for one site may come from a message of
  another) and hands them to a sink, the WebSocket hub, which drops a message for a site that
  is not connected and tells the front, so that the site's snapshot on reconnect repairs it;
* it drives the shards' timers: each reply carries the shard's next timer, and a task calls
  ``tick(now)`` on a shard when its timer is due.

Calls to a shard are made in order from this one process, and Ray runs an actor's calls from
one caller in submission order, so a shard sees a site's deltas in the site's order.  The
clock is the front's (Unix time by default): every shard runs on the same ``now``.

Ray is started embedded with small settings (no dashboard, a few CPUs) unless an address is
given (``RAY_ADDRESS``), in which case the shards run on that cluster, whose workers must have
vcc installed (the container image).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray

from orchestrator.global_router import (
    GlobalRouter,
    Outbound,
    RouterCounters,
    UnknownSiteError,
    reservation_origin,
)
from orchestrator.metrics import RouterMetrics
from orchestrator.sharding import ShardPlan
from routing.engine import SiteLoad
from routing.model import AgentState, Network
from routing.settings import RouterSettings
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
    SetAgentState,
    SiteEvent,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    TransferSettled,
    Withdraw,
    WrapUpEnded,
)

log = logging.getLogger(__name__)

RouterMessage = (
    Deliver | TransferOut | Withdraw | Ack | SnapshotRequest | SetAgentState | TransferSettled
)
Sink = Callable[[str, RouterMessage], bool]
"""Sends a message to a site; ``False`` when the site is not connected (the message dropped)."""
Clock = Callable[[], float]


class SiteOutOfStepError(RuntimeError):
    """Events for a site whose link is not in step (not connected, or its snapshot awaited):
    the shards would ignore them."""


class FrontObserver(Protocol):
    """Sees every site message the front takes (the control API's history recorder does):
    before the front applies it, and once the shards have answered (and their messages went
    to the sink)."""

    def site_message(self, site_id: str, message: Delta | Snapshot) -> None: ...
    def site_message_applied(self, site_id: str, message: Delta | Snapshot) -> None: ...


# ------------------------------------------------------------------ one shard


@dataclass(frozen=True, slots=True)
class ShardReply:
    """What a shard answers: messages for sites, and when its next timer is due."""

    out: list[Outbound]
    next_timer: float | None


@dataclass(frozen=True, slots=True)
class ShardFigures:
    """A shard's live figures, for real-time statistics: the state of each of its agents, and
    for each of its queues at each site the load of the queue's first target and the site's
    expected wait; each site's status and opening as this shard's engine sees them, and each
    of its queues' status at each site (``GlobalRouter.queue_status``: ``None`` where the site
    does not work on it), so that a site's status can be merged over the shards."""

    agents: dict[str, AgentState]
    loads: dict[tuple[str, str], SiteLoad]
    waits: dict[tuple[str, str], float | None]
    status: dict[str, str | None]
    open: dict[str, bool | None]
    queue_status: dict[tuple[str, str], str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent as its shard sees it: state, not-ready reason, and when the state changed."""

    state: AgentState
    reason: str | None
    since: float


class RouterShard:
    """One shard's router, as the Ray actor runs it (and as tests run it in process).

    Its reservations are numbered from the wall clock at its start (``first_reservation``
    overrides it): a shard restarted, with nothing stored, never gives a number its predecessor
    gave, so a site's memory of the reservations it has seen stays valid across restarts."""

    def __init__(
        self,
        network: Network,
        settings: RouterSettings | None,
        shard: int,
        shards: int,
        *,
        freeze: bool = True,
        first_reservation: int | None = None,
        transit_timeout: float | None = None,
    ) -> None:
        if first_reservation is None:
            first_reservation = reservation_origin(shard, shards)
        self.router = GlobalRouter(
            network,
            settings,
            shard=shard,
            shards=shards,
            first_reservation=first_reservation,
            transit_timeout=transit_timeout,
        )
        if freeze:
            # The configuration and indices live as long as the process: keep them out of the
            # collector's generations, or each full collection walks them all (a 250 ms pause
            # at 100k agents, benchmarks/RESULTS.md).
            gc.freeze()

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> ShardReply:
        out = self.router.receive(site_id, message, now)
        return ShardReply(out, self.router.next_timer())

    def tick(self, now: float) -> ShardReply:
        out = self.router.tick(now)
        return ShardReply(out, self.router.next_timer())

    def disconnected(self, site_id: str, now: float) -> ShardReply:
        out = self.router.disconnected(site_id, now)
        return ShardReply(out, self.router.next_timer())

    def expect_in_transit(
        self, from_site: str, order: int, to_site: str, data: ContactData, now: float
    ) -> ShardReply:
        out = self.router.expect_in_transit(from_site, order, to_site, data, now)
        return ShardReply(out, self.router.next_timer())

    def next_timer(self) -> float | None:
        return self.router.next_timer()

    def counters(self) -> RouterCounters:
        return self.router.counters

    def contact_state(self, contact_id: str) -> str | None:
        return self.router.contact_state(contact_id)

    def agent_state(self, agent_id: str) -> str:
        return str(self.router.engine.agent_state(agent_id))

    def live_contacts(self) -> list[str]:
        return self.router.live_contacts()

    def agent_figures(self, agent_id: str) -> AgentFigures:
        engine = self.router.engine
        return AgentFigures(
            state=engine.agent_state(agent_id),
            reason=engine.agent_reason(agent_id),
            since=engine.agent_state_since(agent_id),
        )

    def figures(self, now: float) -> ShardFigures:
        router = self.router
        router.pulse(now)  # statuses and waits from figures at most one pulse interval old
        engine, network = router.engine, router.network
        sites = sorted(network.sites)
        return ShardFigures(
            agents={agent_id: engine.agent_state(agent_id) for agent_id in network.agents},
            loads={(q, s): engine.site_load(q, s) for q in network.queues for s in sites},
            waits={
                (queue.id, s): engine.predicted_wait(queue, s, now)
                for queue in network.queues.values()
                for s in sites
            },
            status={s: engine.site_status(s, now) for s in sites},
            open={s: engine.site_open(s) for s in sites},
            queue_status={
                (q, s): router.queue_status(q, s, now) for q in network.queues for s in sites
            },
        )

    def gc_frozen(self) -> int:
        """Objects kept out of the collector's generations (``gc.freeze``)."""
        return gc.get_freeze_count()

    def batch(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        """Several calls in one (:class:`RayShard` batches them), in order; each answers
        ``(True, result)`` or ``(False, the exception)``, so one call's failure is its own."""
        results: list[tuple[bool, Any]] = []
        for method, args in calls:
            try:
                results.append((True, getattr(self, method)(*args)))
            except Exception as error:
                results.append((False, error))
        return results


class ShardClient(Protocol):
    """How the front talks to a shard: a Ray actor, or a :class:`RouterShard` in process."""

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> Awaitable[ShardReply]:
        """Submit now (calls reach the shard in submission order); await the reply later."""
        ...

    def tick(self, now: float) -> Awaitable[ShardReply]: ...
    def disconnected(self, site_id: str, now: float) -> Awaitable[ShardReply]: ...
    def query(self, method: str, *args: Any) -> Awaitable[Any]: ...
    def close(self) -> None: ...


async def _ready(value: Any) -> Any:
    return value


class LocalShard:
    """A shard in the front's own process: no Ray (unit tests, a one-process router)."""

    def __init__(self, shard: RouterShard) -> None:
        self.shard = shard

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> Awaitable[ShardReply]:
        return _ready(self.shard.receive(site_id, message, now))

    def tick(self, now: float) -> Awaitable[ShardReply]:
        return _ready(self.shard.tick(now))

    def disconnected(self, site_id: str, now: float) -> Awaitable[ShardReply]:
        return _ready(self.shard.disconnected(site_id, now))

    def query(self, method: str, *args: Any) -> Awaitable[Any]:
        return _ready(getattr(self.shard, method)(*args))

    def close(self) -> None:
        """Nothing to release."""


class RayShard:
    """A shard hosted by a Ray actor, its calls batched.

    Every call is queued and sent, with the others queued in the same turn of the event loop
    (or while ``in_flight`` batches are already on their way), as one actor call
    (:meth:`RouterShard.batch`): a Ray call costs the front ~0.2-0.3 ms of CPU and ~1 ms of
    round trip whatever it carries, so under load one call per site message caps the router
    at a few hundred messages per second (benchmarks/RESULTS.md), while a batch carries what
    arrived meanwhile.  Queries go through the same queue, so they see every call made before
    them; the queue keeps submission order and Ray runs one caller's calls to an actor in
    order, so the shard sees everything in the order the front called."""

    def __init__(self, actor: Any, *, in_flight: int = 2) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, not {in_flight}")
        self.actor = actor
        self.in_flight = in_flight
        self._queue: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sending = 0  # batches on their way
        self._flush_due = False
        self._tasks: set[asyncio.Task[None]] = set()  # batches awaited
        self.batches = 0
        self.calls = 0

    def receive(self, site_id: str, message: Delta | Snapshot, now: float) -> Awaitable[ShardReply]:
        return self._call("receive", site_id, message, now)

    def tick(self, now: float) -> Awaitable[ShardReply]:
        return self._call("tick", now)

    def disconnected(self, site_id: str, now: float) -> Awaitable[ShardReply]:
        return self._call("disconnected", site_id, now)

    def query(self, method: str, *args: Any) -> Awaitable[Any]:
        return self._call(method, *args)

    def close(self) -> None:
        for _, _, future in self._queue:
            future.cancel()
        self._queue.clear()
        ray.kill(self.actor, no_restart=True)

    def _call(self, method: str, *args: Any) -> Awaitable[Any]:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): one call, sent now
            ref: Awaitable[list[Any]] = self.actor.batch.remote([(method, args)])
            return _first(ref)
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((method, args, future))
        if not self._flush_due and self._sending < self.in_flight:
            self._flush_due = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_due = False
        if not self._queue or self._sending >= self.in_flight:
            return
        batch, self._queue = self._queue, []
        self._sending += 1
        self.batches += 1
        self.calls += len(batch)
        ref = self.actor.batch.remote([(method, args) for method, args, _ in batch])
        futures = [future for _, _, future in batch]
        task = asyncio.get_running_loop().create_task(self._settle(ref, futures))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, ref: Awaitable[list[Any]], futures: list[asyncio.Future[Any]]) -> None:
        try:
            results = await ref
        except BaseException as error:  # the actor died or the batch could not be sent
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        finally:
            self._sending -= 1
            if self._queue and not self._flush_due:
                self._flush_due = True
                asyncio.get_running_loop().call_soon(self._flush)
        for future, (ok, result) in zip(futures, results, strict=True):
            if future.done():
                continue  # cancelled by the caller
            if ok:
                future.set_result(result)
            else:
                future.set_exception(result)


async def _first(ref: Awaitable[list[Any]]) -> Any:
    [(ok, result)] = await ref
    if not ok:
        raise result
    return result


def start_ray_shards(
    plan: ShardPlan,
    settings: RouterSettings | None,
    *,
    cpus: float = 1.0,
    timeout: float | None = 120.0,
    in_flight: int = 2,
    transit_timeout: float | None = None,
) -> list[RayShard]:
    """One actor per shard of ``plan``, each reserving ``cpus`` (a router is one busy thread),
    with at most ``in_flight`` batches of calls on their way to each (:class:`RayShard`), and
    ``transit_timeout`` for their routers (:class:`GlobalRouter`); returns once every actor has
    built its router.  Raises :class:`TimeoutError` (the actors
    killed) when they are not all up within ``timeout`` seconds: a cluster without the CPUs
    keeps them pending for ever."""
    actor_class = ray.remote(num_cpus=cpus, max_restarts=0)(RouterShard)
    shards = len(plan.networks)
    actors: list[Any] = [
        actor_class.remote(network, settings, index, shards, transit_timeout=transit_timeout)
        for index, network in enumerate(plan.networks)
    ]
    try:
        ray.get([actor.next_timer.remote() for actor in actors], timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        raise TimeoutError(
            f"{shards} router shard(s) of {cpus:g} CPU each not started within {timeout:g} s "
            "(does the Ray cluster have the CPUs free?)"
        ) from None
    return [RayShard(actor, in_flight=in_flight) for actor in actors]


# ------------------------------------------------------------------ Ray itself


def start_ray(address: str | None, *, num_cpus: int) -> bool:
    """Connect to the Ray cluster at ``address``, or start a small local one without a
    dashboard.  Returns whether this call started or joined Ray (and so must shut it down):
    ``False`` when the process is already connected."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    else:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    return True


def stop_ray(started: bool) -> None:
    if started and ray.is_initialized():
        ray.shutdown()


# ------------------------------------------------------------------ the front


@dataclass(slots=True)
class _SiteLink:
    shards: int
    epoch: int = 0  # changes with every snapshot and drop: late replies are recognised
    synced: bool = False
    asked: bool = False  # a snapshot request is outstanding
    detached: bool = True  # the shards were told the link dropped (or never had it)
    expected: int = 1
    shard_seq: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shard_seq = [0] * self.shards


@dataclass(slots=True)
class FrontCounters:
    deltas: int = 0
    snapshots: int = 0
    gaps: int = 0
    ignored_deltas: int = 0
    snapshot_requests: int = 0
    dropped: int = 0
    ticks: int = 0
    timer_errors: int = 0
    injected: int = 0


class RouterFront:
    """Splits site messages among the shards and merges what they answer (module docstring).

    ``sink`` sends a message to a site (set it before the first message; the WebSocket hub
    does); ``clock`` gives ``now`` for the shards, and runs ``speed`` clock seconds per
    wall-clock second (a simulated network sped up: the timers wait accordingly).
    ``observers`` see every site message (:class:`FrontObserver`); ``metrics`` count and
    time every message and decision (:mod:`orchestrator.metrics`)."""

    def __init__(
        self,
        plan: ShardPlan,
        shards: Sequence[ShardClient],
        *,
        sink: Sink | None = None,
        clock: Clock = time.time,
        speed: float = 1.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed}")
        if len(shards) != len(plan.networks):
            raise ValueError(f"{len(shards)} shard clients for a plan of {len(plan.networks)}")
        self.plan = plan
        self.shards = list(shards)
        self.sink = sink
        self.clock = clock
        self.speed = speed
        self.observers: list[FrontObserver] = []
        self.counters = FrontCounters()
        self.metrics = RouterMetrics()
        sites = plan.networks[0].sites if plan.networks else {}
        self._links = {site_id: _SiteLink(len(shards)) for site_id in sites}
        self._contacts: dict[str, tuple[int, str]] = {}  # live contact -> (shard, its site)
        self._timers: list[float | None] = [None] * len(shards)
        self._submitted = [0] * len(shards)  # calls made to each shard
        self._timer_call = [0] * len(shards)  # the call whose reply set the shard's timer
        self._wake = asyncio.Event()
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()  # link-drop settlements in flight

    @property
    def sites(self) -> list[str]:
        return list(self._links)

    # ----------------------------------------------------------------- site messages

    async def receive(self, site_id: str, message: Delta | Snapshot) -> None:
        """Apply one message of a site; what it causes goes to the sink."""
        link = self._links.get(site_id)
        if link is None or message.site_id != site_id:
            raise UnknownSiteError(f"site {message.site_id!r} on the link of {site_id!r}")
        kind = "snapshot" if isinstance(message, Snapshot) else "delta"
        self.metrics.received(site_id, kind)
        started = time.perf_counter()
        for observer in self.observers:
            observer.site_message(site_id, message)
        if isinstance(message, Snapshot):
            await self._snapshot(site_id, link, message)
        else:
            await self._delta(site_id, link, message)
        self.metrics.decided(kind, time.perf_counter() - started)
        for observer in self.observers:
            observer.site_message_applied(site_id, message)

    async def inject(self, site_id: str, events: Sequence[SiteEvent]) -> None:
        """Apply events on a site's behalf that did not come over its link (the control API:
        a contact offered there, an agent's state set by a supervisor).  Each shard concerned
        takes them as its next delta of the site, so the site's own numbering is untouched,
        and what they cause goes to the sink as usual.  Raises :class:`SiteOutOfStepError`
        when the site's link is not in step (the shards would ignore them)."""
        link = self._links.get(site_id)
        if link is None:
            raise UnknownSiteError(f"unknown site {site_id!r}")
        if not link.synced:
            raise SiteOutOfStepError(
                f"site {site_id!r} is not connected to the router, or is resynchronising"
            )
        self.counters.injected += 1
        started = time.perf_counter()
        await self._apply_events(site_id, link, events)
        self.metrics.decided("injected", time.perf_counter() - started)

    async def expect_in_transit(
        self, from_site: str, order: int, to_site: str, data: ContactData
    ) -> None:
        """A call the control API sent to ``to_site`` on transfer order ``order`` before this
        router started (:meth:`GlobalRouter.expect_in_transit`): its queue's shard finds it
        from the sites' snapshots, or routes it again; what that causes goes to the sink."""
        index = self.plan.shard_of_queue(data.queue_id) or 0
        self._contacts[data.id] = (index, to_site)
        number = self._submit(index)
        reply: ShardReply = await self.shards[index].query(
            "expect_in_transit", from_site, order, to_site, data, self.clock()
        )
        self._set_timer(index, number, reply.next_timer)
        for site_id, message in reply.out:
            self._route(site_id, message)

    def command(self, site_id: str, message: SetAgentState) -> bool:
        """Send a site a command of the control API (an agent's state set by a supervisor),
        which the site carries out on its PBX and answers in its deltas.  Raises
        :class:`SiteOutOfStepError` when the site's link is not in step; ``False`` when the
        site is not connected after all (the message dropped, the link marked down)."""
        link = self._links.get(site_id)
        if link is None:
            raise UnknownSiteError(f"unknown site {site_id!r}")
        if not link.synced:
            raise SiteOutOfStepError(
                f"site {site_id!r} is not connected to the router, or is resynchronising"
            )
        self._send(site_id, message)
        return link.synced  # a message the sink could not send marks the link down

    def resync(self, site_id: str, reason: str) -> None:
        """Ask the site for a snapshot, even if one was asked for already, and ignore its
        deltas until then: a frame that could not be read may have been a delta, so the stream
        has a hole, and the reason tells the site what was wrong with it."""
        link = self._links[site_id]
        link.synced = link.asked = False
        self._ask(site_id, link, reason)

    def disconnected(self, site_id: str) -> None:
        """The site's link dropped (or a message for it could not be sent): every shard waits
        for its snapshot."""
        link = self._links.get(site_id)
        if link is None:
            return
        link.epoch += 1
        link.synced = link.asked = False
        if not link.detached:
            link.detached = True
            now = self.clock()
            calls = [
                (i, self._submit(i), s.disconnected(site_id, now))
                for i, s in enumerate(self.shards)
            ]
            try:
                task = asyncio.get_running_loop().create_task(self._settle(calls))
            except RuntimeError:  # no event loop (a synchronous caller): nothing to send on
                for _, _, call in calls:
                    if inspect.iscoroutine(call):
                        call.close()
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _settle(self, calls: list[tuple[int, int, Awaitable[ShardReply]]]) -> None:
        """The shards' answers to a dropped link: calls that rang there, routed again."""
        replies = await asyncio.gather(*(call for _, _, call in calls))
        for (index, number, _), reply in zip(calls, replies, strict=True):
            self._set_timer(index, number, reply.next_timer)
            for to_site, message in reply.out:
                self._route(to_site, message)

    async def _snapshot(self, site_id: str, link: _SiteLink, snapshot: Snapshot) -> None:
        self.counters.snapshots += 1
        link.epoch += 1
        link.synced, link.asked, link.detached = True, False, False
        link.expected = 1
        link.shard_seq = [0] * len(self.shards)
        epoch = link.epoch
        agents: list[list[AgentStatus]] = [[] for _ in self.shards]
        contacts: list[list[ContactStatus]] = [[] for _ in self.shards]
        for status in snapshot.agents:
            agents[self.plan.shard_of_agent(status.agent_id) or 0].append(status)
        on_site = set()
        for contact_status in snapshot.contacts:
            shard = self.plan.shard_of_queue(contact_status.contact.queue_id) or 0
            contacts[shard].append(contact_status)
            on_site.add(contact_status.contact.id)
            self._contacts[contact_status.contact.id] = (shard, site_id)
        for contact_id, (_, where) in list(self._contacts.items()):
            if where == site_id and contact_id not in on_site:
                del self._contacts[contact_id]  # ended by the snapshot, as the shards do
        taken_in: list[list[int]] = [[] for _ in self.shards]
        for reservation in snapshot.taken_in:  # made by the shard of its residue class
            taken_in[reservation % len(self.shards)].append(reservation)
        parts = {
            index: Snapshot(
                site_id=site_id,
                at=snapshot.at,
                agents=agents[index],
                contacts=contacts[index],
                taken_in=taken_in[index],
                received=snapshot.received,  # orders only: each shard looks for its own
            )
            for index in range(len(self.shards))
        }
        replies = await self._call_all(site_id, parts)
        self._merge(site_id, epoch, replies)

    async def _delta(self, site_id: str, link: _SiteLink, delta: Delta) -> None:
        self.counters.deltas += 1
        if not link.synced:
            self.counters.ignored_deltas += 1
            self._ask(site_id, link, "a snapshot is needed first")
            return
        if delta.seq != link.expected:
            self.counters.gaps += 1
            link.synced = False
            self._ask(site_id, link, f"expected delta {link.expected}, got {delta.seq}")
            return
        link.expected += 1
        if await self._apply_events(site_id, link, delta.events):
            self._send(site_id, Ack(seq=delta.seq))

    async def _apply_events(
        self, site_id: str, link: _SiteLink, site_events: Sequence[SiteEvent]
    ) -> bool:
        """Each shard concerned takes its share of the events as its next delta of the site;
        ``True`` when every one of them applied its part (the site may be acknowledged)."""
        events: dict[int, list[SiteEvent]] = {}
        for event in site_events:
            events.setdefault(self._shard_of_event(site_id, event), []).append(event)
        parts: dict[int, Delta | Snapshot] = {}
        for index, shard_events in sorted(events.items()):
            link.shard_seq[index] += 1
            parts[index] = Delta(site_id=site_id, seq=link.shard_seq[index], events=shard_events)
        epoch = link.epoch
        replies = await self._call_all(site_id, parts)
        acked = all(
            any(isinstance(message, Ack) for _, message in reply.out) for reply in replies.values()
        )
        if self._merge(site_id, epoch, replies) or link.epoch != epoch:
            return False
        if not acked:  # a shard ignored its part: it is out of step with the front
            link.synced = False
            self._ask(site_id, link, "a router shard is out of step")
        return acked

    def _shard_of_event(self, site_id: str, event: SiteEvent) -> int:
        """Agents' events to the agent's shard, contacts' to their queue's; what the plan does
        not know goes to shard 0, which refuses it as one router would."""
        plan = self.plan
        match event:
            case (
                AgentLoggedIn(agent_id=agent_id)
                | AgentReady(agent_id=agent_id)
                | AgentNotReady(agent_id=agent_id)
                | AgentLoggedOut(agent_id=agent_id)
                | WrapUpEnded(agent_id=agent_id)
                | AgentStateApplied(agent_id=agent_id)
                | AgentStateRefused(agent_id=agent_id)
            ):
                return plan.shard_of_agent(agent_id) or 0
            case ContactArrived(contact=data) | LocallyRouted(contact=data):
                shard = plan.shard_of_queue(data.queue_id) or 0
                self._contacts[data.id] = (shard, site_id)
                return shard
            case (
                DeliveryConfirmed(contact_id=contact_id, reservation=reservation)
                | DeliveryRejected(contact_id=contact_id, reservation=reservation)
                | ContactTransferred(contact_id=contact_id, reservation=reservation)
                | ContactTakenIn(contact_id=contact_id, reservation=reservation)
            ):
                # A transfer's confirmation goes where its order came from: the contact's shard,
                # which holds the agent reserved at the destination and sends the delivery.
                known = self._contacts.get(contact_id)
                # A shard numbers its reservations in its residue class.
                return known[0] if known else reservation % len(self.shards)
            case ContactFinished(contact_id=contact_id) | ContactAbandoned(contact_id=contact_id):
                known = self._contacts.pop(contact_id, None)
                return known[0] if known else 0
            case LocallyAbandoned(contact=data):
                self._contacts.pop(data.id, None)  # gone: only its queue's shard records it
                return plan.shard_of_queue(data.queue_id) or 0
        raise AssertionError(f"unhandled event {event.kind}")  # pragma: no cover

    async def _call_all(
        self, site_id: str, parts: Mapping[int, Delta | Snapshot]
    ) -> dict[int, ShardReply]:
        now = self.clock()
        pending = {
            index: (self._submit(index), self.shards[index].receive(site_id, part, now))
            for index, part in parts.items()
        }
        results = await asyncio.gather(*(call for _, call in pending.values()))
        replies = dict(zip(pending, results, strict=True))
        for index, (number, _) in pending.items():
            self._set_timer(index, number, replies[index].next_timer)
        return replies

    def _merge(self, site_id: str, epoch: int, replies: dict[int, ShardReply]) -> bool:
        """Send the shards' messages on; ``True`` when a shard asked the site for a snapshot."""
        link = self._links[site_id]
        asked = False
        for index in sorted(replies):
            for to_site, message in replies[index].out:
                if isinstance(message, Ack):
                    continue  # the shard's own numbering; the site is acked by the front
                if isinstance(message, SnapshotRequest):
                    asked = True
                    if link.epoch == epoch:  # not overtaken by a snapshot or a drop
                        link.synced = False
                        self._ask(to_site, link, message.reason)
                    continue
                self._route(to_site, message)
        return asked

    def _route(self, site_id: str, message: RouterMessage) -> None:
        if isinstance(message, SnapshotRequest):  # from a timer or a dropped link's settlement
            link = self._links[site_id]
            link.synced = False
            self._ask(site_id, link, message.reason)
            return
        if isinstance(message, Deliver):
            known = self._contacts.get(message.contact.id)
            shard = known[0] if known else (self.plan.shard_of_queue(message.contact.queue_id) or 0)
            self._contacts[message.contact.id] = (shard, site_id)
        self._send(site_id, message)

    def _ask(self, site_id: str, link: _SiteLink, reason: str) -> None:
        if link.asked:
            return
        link.asked = True
        self.counters.snapshot_requests += 1
        self._send(site_id, SnapshotRequest(reason=reason))

    def _send(self, site_id: str, message: RouterMessage) -> None:
        if self.sink is not None and self.sink(site_id, message):
            self.metrics.sent_to(site_id, message.kind)
            return
        self.counters.dropped += 1
        self.metrics.dropped_for(site_id)
        self.disconnected(site_id)

    # ----------------------------------------------------------------- timers

    def _submit(self, index: int) -> int:
        self._submitted[index] += 1
        return self._submitted[index]

    def _set_timer(self, index: int, call: int, when: float | None) -> None:
        """Take a shard's next timer from the reply to its latest call only (replies to calls
        made concurrently may be awaited out of order)."""
        if call < self._timer_call[index]:
            return
        self._timer_call[index] = call
        earlier = when is not None and all(t is None or when < t for t in self._timers)
        self._timers[index] = when
        if earlier:
            self._wake.set()

    def next_timer(self) -> float | None:
        return min((t for t in self._timers if t is not None), default=None)

    async def tick_due(self) -> None:
        """Fire the timers of every shard whose next timer is due by now."""
        now = self.clock()
        due = [i for i, t in enumerate(self._timers) if t is not None and t <= now]
        if not due:
            return
        calls = [(i, self._submit(i), self.shards[i].tick(now)) for i in due]
        replies = await asyncio.gather(*(call for _, _, call in calls))
        self.counters.ticks += len(due)
        for (index, number, _), reply in zip(calls, replies, strict=True):
            self._set_timer(index, number, reply.next_timer)
            for to_site, message in reply.out:
                self._route(to_site, message)

    async def run_timers(self) -> None:
        """Until :meth:`close`: sleep until the earliest shard timer (or until a reply brings
        an earlier one), then tick the shards that are due."""
        while not self._stopped:
            self._wake.clear()
            when = self.next_timer()
            delay = None if when is None else max(0.0, (when - self.clock()) / self.speed)
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            try:
                await self.tick_due()
            except Exception:
                # A shard that cannot tick (its actor died) must not stop the others' timers.
                self.counters.timer_errors += 1
                log.exception("router shard timers failed")
                await asyncio.sleep(1.0)

    # ----------------------------------------------------------------- queries

    def _shard_of_contact(self, contact_id: str) -> int | None:
        known = self._contacts.get(contact_id)
        return None if known is None else known[0]

    async def contact_state(self, contact_id: str) -> str | None:
        """``queued``, ``ringing``, ``talking``, or ``None`` (unknown or ended)."""
        index = self._shard_of_contact(contact_id)
        if index is None:
            return None
        state: str | None = await self.shards[index].query("contact_state", contact_id)
        return state

    async def agent_state(self, agent_id: str) -> str | None:
        index = self.plan.shard_of_agent(agent_id)
        if index is None:
            return None
        state: str = await self.shards[index].query("agent_state", agent_id)
        return state

    async def shard_counters(self) -> list[RouterCounters]:
        counters: list[RouterCounters] = await asyncio.gather(
            *(shard.query("counters") for shard in self.shards)
        )
        return counters

    def links(self) -> Iterator[tuple[str, bool]]:
        """Each site and whether its link is in step (a snapshot applied, no gap since)."""
        for site_id, link in self._links.items():
            yield site_id, link.synced

    def stop_timers(self) -> None:
        """End :meth:`run_timers` (the shards keep their state)."""
        self._stopped = True
        self._wake.set()

    def close(self) -> None:
        """Stop the timers and release the shards (Ray actors are killed)."""
        self.stop_timers()
        for shard in self.shards:
            shard.close()
