"""RayRouting: the control API's routing service over the live sharded router.

Most tests run the front over in-process shards (LocalShard: no Ray) with scripted sites, and
check what reaches the sites, what the router decides and what the database records (route
history, interval counters); the last one runs the same service over Ray actors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import ray

from orchestrator.api.routing import (
    ContactRequest,
    LogoutChange,
    NotReadyChange,
    ReadyChange,
    RoutingConflictError,
    RoutingRefusedError,
)
from orchestrator.persistence import Database, DuplicateContactError, NotFoundError
from orchestrator.ray_routing import INGRESS, RayRouting
from orchestrator.router_actor import (
    LocalShard,
    RouterFront,
    RouterMessage,
    RouterShard,
    ShardClient,
    start_ray_shards,
)
from orchestrator.sharding import plan_shards
from routing.config import NetworkConfig, compile_network
from routing.model import AgentState, Network
from site_agent.protocol import (
    AgentLoggedIn,
    AgentNotReady,
    AgentReady,
    AgentStateApplied,
    AgentStatus,
    ContactAbandoned,
    ContactArrived,
    ContactData,
    ContactFinished,
    ContactStatus,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    LocallyAbandoned,
    LocallyRouted,
    SetAgentState,
    TransferOut,
)
from tests.orchestrator.api.conftest import NETWORK, T0
from tests.orchestrator.runtime.conftest import SiteScript

# madrid: ana (billing 6, spanish 9); paris: bob (billing 8), eve (tech 7).  Queues: billing
# (10 s wrap-up), tech (15 s answer time-out), chat.  Billing and tech are two components.
CONFIG = NetworkConfig.model_validate(NETWORK)
TARIFFS = compile_network(CONFIG).tariffs


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A front, the service over it, and scripted sites (connected unless taken off)."""

    front: RouterFront
    routing: RayRouting
    db: Database
    clock: Clock
    sent: list[tuple[str, RouterMessage]] = field(default_factory=list)
    connected: set[str] = field(default_factory=set)
    scripts: dict[str, SiteScript] = field(default_factory=dict)

    async def snapshot(
        self,
        site: str,
        agents: list[AgentStatus] | None = None,
        contacts: list[ContactStatus] | None = None,
        received: list[int] | None = None,
        reported: list[str] | None = None,
    ) -> None:
        self.connected.add(site)
        snapshot = self.scripts[site].snapshot(agents, contacts, received)
        if reported:
            snapshot = snapshot.model_copy(update={"reported": reported})
        await self.front.receive(site, snapshot)

    async def report(self, site: str, *events: Any) -> None:
        await self.front.receive(site, self.scripts[site].delta(*events))

    def to(self, site: str, kind: type[Any]) -> list[Any]:
        return [m for s, m in self.sent if s == site and isinstance(m, kind)]


def ready(agent_id: str) -> AgentStatus:
    return AgentStatus(agent_id=agent_id, logged_in=True, ready=True)


def call(contact_id: str, queue: str = "billing", region: str = "fr") -> ContactData:
    return ContactData(id=contact_id, queue_id=queue, arrival=T0, caller_region=region)


def request(contact_id: str, site: str = "paris", queue: str = "billing") -> ContactRequest:
    return ContactRequest(id=contact_id, queue=queue, landing_site=site, caller_region="fr")


@pytest.fixture
def database(empty_database: Database) -> Database:
    empty_database.config.replace(CONFIG, actor="test")
    return empty_database


def build(
    database: Database,
    shards: int = 1,
    clients: Callable[[Network], list[ShardClient]] | None = None,
    config: NetworkConfig = CONFIG,
) -> Harness:
    network = compile_network(config)
    plan = plan_shards(network, shards)
    clock = Clock()
    made = (
        clients(network)
        if clients is not None
        else [
            LocalShard(RouterShard(net, None, index, len(plan), freeze=False))
            for index, net in enumerate(plan.networks)
        ]
    )
    front = RouterFront(plan, made, clock=clock)
    harness: Harness

    def hub(site: str, message: RouterMessage) -> bool:
        if site not in harness.connected:
            return False
        harness.sent.append((site, message))
        return True

    routing = RayRouting(front, network, database, downstream=hub)
    harness = Harness(front, routing, database, clock)
    harness.scripts = {site: SiteScript(site) for site in network.sites}
    return harness


def run(
    database: Database,
    scenario: Callable[[Harness], Coroutine[Any, Any, None]],
    config: NetworkConfig = CONFIG,
) -> None:
    harness = build(database, config=config)

    async def main() -> None:
        try:
            await scenario(harness)
        finally:
            await harness.routing.drain()

    try:
        asyncio.run(main())
    finally:
        harness.routing.close()


async def until(condition: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    """Let the event loop run until ``condition`` holds (spawned work), failing after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def counters(db: Database, site: str, queue: str = "billing") -> dict[str, float]:
    start = datetime(2025, 3, 14, tzinfo=UTC)
    rows = db.intervals.query(start, datetime(2025, 3, 15, tzinfo=UTC), site=site, queue=queue)
    assert len(rows) <= 1
    return {} if not rows else vars_of(rows[0].counters)


def vars_of(counters: Any) -> dict[str, float]:
    return {name: getattr(counters, name) for name in counters.__slots__}


# ------------------------------------------------------------------ a site's own calls


def test_a_sites_call_is_recorded_from_arrival_to_wrap_up_with_its_interval_counters(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [ready("bob")])
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
        [deliver] = h.to("paris", Deliver)
        assert (deliver.agent_id, deliver.from_site) == ("bob", None)
        await h.report(
            "paris",
            DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=T0 + 4),
        )
        assert await h.routing.contact_state("c1") == "talking"
        await h.report("paris", ContactFinished(contact_id="c1", at=T0 + 124, wrap_up=6))
        assert await h.routing.contact_state("c1") is None

    run(database, scenario)
    detail = database.contacts.get("c1")
    assert [str(e.kind) for e in detail.history] == ["offered", "reserved", "confirmed", "finished"]
    assert (detail.serving_site, detail.serving_agent) == ("paris", "bob")
    figures = counters(database, "paris")
    assert (figures["offered"], figures["answered"], figures["answered_within_sl"]) == (1, 1, 1)
    assert figures["wait_seconds"] == pytest.approx(4.0)
    assert figures["handle_seconds"] == pytest.approx(126.0)  # 120 s talk + 6 s wrap-up
    trunk = TARIFFS.trunk("fr", "paris") * 124 / 60
    labour = 30.0 * 126 / 3600
    assert figures["cost"] == pytest.approx(trunk + labour)


def test_a_call_moved_to_another_site_records_the_transfer_and_its_cost(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [])
        await h.snapshot("madrid", [ready("ana")])
        await h.report("paris", ContactArrived(contact=call("c1", region="es"), at=T0))
        [order] = h.to("paris", TransferOut)
        assert order.to_site == "madrid" and not h.to("madrid", Deliver)
        left = ContactTransferred(
            reservation=order.reservation, contact_id="c1", to_site="madrid", at=T0 + 1
        )
        await h.report("paris", left)
        [deliver] = h.to("madrid", Deliver)
        assert (deliver.agent_id, deliver.from_site) == ("ana", "paris")
        confirm = DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=T0 + 3)
        await h.report("madrid", confirm)
        await h.report("madrid", ContactFinished(contact_id="c1", at=T0 + 63, wrap_up=0))

    run(database, scenario)
    detail = database.contacts.get("c1")
    assert [str(e.kind) for e in detail.history] == [
        "offered",
        "transferred",
        "reserved",
        "confirmed",
        "finished",
    ]
    assert (detail.landing_site, detail.serving_site) == ("paris", "madrid")
    assert database.contacts.get("c1").history[1].detail["from_site"] == "paris"
    figures = counters(database, "paris")  # counted where it landed
    trunk = TARIFFS.trunk("es", "paris") * 63 / 60  # paid where it landed
    transfer = TARIFFS.transfer_fee + TARIFFS.transfer_per_minute * 62 / 60
    assert figures["cost"] == pytest.approx(trunk + transfer + 20.0 * 60 / 3600)
    # At madrid only ana's staffed time (63 s, 60 of them on the call): no contact counters.
    madrid = {name: value for name, value in counters(database, "madrid").items() if value}
    assert madrid == {"staffed_seconds": pytest.approx(63.0)}


def test_abandons_local_reports_and_snapshots_all_end_up_in_the_history(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [])
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
        await h.report("paris", ContactAbandoned(contact_id="c1", at=T0 + 30))
        # Back from an outage: bob talks to a call the site gave him alone; another caller
        # hung up meanwhile; c3 still waits.
        talking = ContactStatus(contact=call("c2"), state="talking", agent_id="bob")
        queued = ContactStatus(contact=call("c3"), state="queued")
        await h.snapshot("paris", [ready("bob")], [talking, queued])
        await h.report(
            "paris",
            LocallyRouted(contact=call("c2"), agent_id="bob", at=T0 + 40),
            LocallyAbandoned(contact=call("c4"), at=T0 + 41),
        )

    run(database, scenario)
    kinds = {c: [str(e.kind) for e in database.contacts.get(c).history] for c in ("c1", "c2", "c4")}
    assert kinds == {
        "c1": ["offered", "queued", "abandoned"],
        "c2": ["offered", "reserved", "confirmed"],
        "c4": ["offered", "abandoned"],
    }
    assert str(database.contacts.get("c3").status) == "queued"
    figures = counters(database, "paris")
    assert (figures["offered"], figures["answered"], figures["abandoned"]) == (4, 1, 2)


def test_a_call_the_site_routed_alone_and_ended_while_the_link_was_down_is_recorded_once(
    database: Database,
) -> None:
    """c1 waits at paris; the link drops, paris gives c1 to bob itself, the call ends, the
    link comes back: the snapshot no longer has c1 but names it as reported, and delta 1 says
    how it went.  The history follows the report (not an abandon at the snapshot), and c1
    is counted offered and answered once."""

    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [])
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
        h.front.disconnected("paris")
        await h.snapshot("paris", [ready("bob")], reported=["c1"])
        await h.report(
            "paris",
            LocallyRouted(contact=call("c1"), agent_id="bob", at=T0 + 5),
            ContactFinished(contact_id="c1", at=T0 + 50, wrap_up=0),
        )
        await h.routing.drain()
        assert h.routing.write_errors == 0

    run(database, scenario)
    history = database.contacts.get("c1").history
    assert [str(e.kind) for e in history] == [
        "offered",
        "queued",
        "reserved",
        "confirmed",
        "finished",
    ]
    assert history[2].detail == {"local": True}
    figures = counters(database, "paris")
    assert (figures["offered"], figures["answered"], figures["abandoned"]) == (1, 1, 0)


async def _bob_answers_c2(h: Harness) -> None:
    """c2 lands at paris at T0 and bob answers it 2 s later."""
    await h.snapshot("paris", [ready("bob")])
    await h.report("paris", ContactArrived(contact=call("c2"), at=T0))
    [deliver] = h.to("paris", Deliver)
    confirm = DeliveryConfirmed(reservation=deliver.reservation, contact_id="c2", at=T0 + 2)
    await h.report("paris", confirm)


def test_a_new_router_takes_up_the_contacts_its_predecessor_left_open(
    database: Database,
) -> None:
    """The router dies with c1 waiting at paris, c2 talking to bob and c3 ringing at ana.
    The next one knows them from the database: paris' snapshot still has c1 (known, not
    offered a second time), c2 ended while no router listened (finished), madrid's has c3
    answered since; nothing is written twice."""

    async def first(h: Harness) -> None:
        await _bob_answers_c2(h)
        await h.snapshot("madrid", [ready("ana")])
        await h.report("madrid", ContactArrived(contact=call("c3", region="es"), at=T0 + 3))
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0 + 4))

    run(database, first)
    assert database.contacts.get("c3").status == "reserved"
    reservation = database.contacts.get("c3").history[-1].detail["reservation"]

    async def second(h: Harness) -> None:
        assert h.routing.resumed == 3
        busy_bob = AgentStatus(agent_id="bob", logged_in=True, ready=False, reason="coffee")
        await h.snapshot("paris", [busy_bob], [ContactStatus(contact=call("c1"), state="queued")])
        assert await h.routing.contact_state("c1") == "queued"
        talking = ContactStatus(contact=call("c3", region="es"), state="talking", agent_id="ana")
        await h.snapshot("madrid", [ready("ana")], [talking])
        assert await h.routing.contact_state("c3") == "talking"
        await h.report("madrid", ContactFinished(contact_id="c3", at=T0 + 90, wrap_up=0))
        await h.routing.drain()
        assert h.routing.write_errors == 0

    run(database, second)
    kinds = {c: [str(e.kind) for e in database.contacts.get(c).history] for c in ("c1", "c2", "c3")}
    assert kinds == {
        "c1": ["offered", "queued"],
        "c2": ["offered", "reserved", "confirmed", "finished"],
        "c3": ["offered", "reserved", "confirmed", "finished"],
    }
    assert database.contacts.get("c3").history[1].detail["reservation"] == reservation
    paris, madrid = counters(database, "paris"), counters(database, "madrid")
    assert (paris["offered"], paris["answered"], paris["abandoned"]) == (2, 1, 0)
    assert (madrid["offered"], madrid["answered"], madrid["abandoned"]) == (1, 1, 0)


def test_a_call_taken_up_talking_keeps_its_agents_time_on_its_queue(
    database: Database,
) -> None:
    """Bob (billing and tech here) is on billing call c2 when the router dies.  The next
    router takes c2 up talking: from paris' snapshot on, bob's staffed time goes to billing,
    the queue he works on, as it did before the restart, not half of it to tech as if he were
    idle."""
    document = CONFIG.model_dump(mode="json")
    [bob_config] = [a for a in document["agents"] if a["id"] == "bob"]
    bob_config["skills"]["tech"] = 5
    config = NetworkConfig.model_validate(document)
    database.config.replace(config, actor="test")

    async def first(h: Harness) -> None:
        await _bob_answers_c2(h)

    run(database, first, config)
    before = {queue: counters(database, "paris", queue) for queue in ("billing", "tech")}

    async def second(h: Harness) -> None:
        assert h.routing.resumed == 1
        h.clock.now = T0 + 100
        bob = AgentStatus(agent_id="bob", logged_in=True, ready=False)
        talking = ContactStatus(contact=call("c2"), state="talking", agent_id="bob")
        h.connected.add("paris")
        snapshot = h.scripts["paris"].snapshot([bob], [talking])
        await h.front.receive("paris", snapshot.model_copy(update={"at": T0 + 100}))
        assert await h.routing.contact_state("c2") == "talking"
        h.clock.now = T0 + 160
        await h.report("paris", ContactFinished(contact_id="c2", at=T0 + 160, wrap_up=0))

    run(database, second, config)
    after = {queue: counters(database, "paris", queue) for queue in ("billing", "tech")}

    def staffed(figures: dict[str, float]) -> float:
        return figures.get("staffed_seconds", 0.0)

    assert staffed(after["billing"]) - staffed(before["billing"]) == pytest.approx(60.0)
    assert staffed(after["tech"]) == pytest.approx(staffed(before["tech"]))


async def _moving_to_ana_when_the_router_died(h: Harness) -> None:
    """c1 lands at paris and leaves for ana at madrid; the router dies with the delivery on
    its way."""
    await h.snapshot("paris", [])
    await h.snapshot("madrid", [ready("ana")])
    await h.report("paris", ContactArrived(contact=call("c1", region="es"), at=T0))
    [order] = h.to("paris", TransferOut)
    left = ContactTransferred(
        reservation=order.reservation, contact_id="c1", to_site="madrid", at=T0 + 1
    )
    await h.report("paris", left)
    assert h.to("madrid", Deliver)


def test_a_call_in_transit_that_both_sites_lost_is_ended_by_the_next_router(
    database: Database,
) -> None:
    """As below, but both sites restarted with the router: paris no longer lists c1 as
    sent away and madrid neither has it nor lists its order.  It is nowhere: ended."""
    run(database, _moving_to_ana_when_the_router_died)

    async def second(h: Harness) -> None:
        await h.snapshot("madrid", [ready("ana")])
        assert "c1" in h.routing.history.calls  # madrid alone cannot tell
        await h.snapshot("paris", [])
        assert "c1" not in h.routing.history.calls
        await h.routing.drain()
        assert not h.to("madrid", Deliver) and h.routing.write_errors == 0

    run(database, second)
    history = database.contacts.get("c1").history
    assert [str(e.kind) for e in history][-1] == "abandoned"


def test_a_call_in_transit_when_the_router_died_is_neither_ended_nor_offered_twice(
    database: Database,
) -> None:
    """c1 left paris for ana at madrid; the router died with the delivery on its way.  The
    next router knows it in transit: madrid's snapshot, which does not have it, does not end
    it; paris' lists it as sent away (not settled), and once every site has spoken the router
    routes it again from transit.  Nothing is created or recorded twice."""
    run(database, _moving_to_ana_when_the_router_died)
    order = database.contacts.get("c1").history[1].detail["reservation"]

    async def second(h: Harness) -> None:
        await h.snapshot("madrid", [ready("ana")])  # no c1: it never got there
        await h.routing.drain()
        assert "c1" in h.routing.history.calls  # in transit, not ended
        sent_away = ContactStatus(
            contact=call("c1", region="es"),
            state="transferred",
            reservation=order,
            to_site="madrid",
        )
        await h.snapshot("paris", [], [sent_away])
        await until(lambda: h.to("madrid", Deliver), "c1 delivered again")
        [deliver] = h.to("madrid", Deliver)
        assert (deliver.contact.id, deliver.from_site, deliver.order) == ("c1", "paris", order)
        confirm = DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=T0 + 9)
        await h.report("madrid", confirm)
        await h.routing.drain()
        assert h.routing.write_errors == 0

    run(database, second)
    assert [str(e.kind) for e in database.contacts.get("c1").history] == [
        "offered",
        "transferred",
        "reserved",
        "rejected",  # the first delivery, superseded
        "reserved",
        "confirmed",
    ]
    assert counters(database, "paris")["offered"] == 1


# ------------------------------------------------------------------ contacts from the API


def test_an_api_contact_is_routed_by_the_shards_and_taken_in_by_the_agents_site(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [ready("bob")])
        outcome = await h.routing.route_contact(request("a1"))
        assert (outcome.state, outcome.agent_id, outcome.site_id) == ("ringing", "bob", "paris")
        [deliver] = h.to("paris", Deliver)
        # The call is at the API, not in the site's PBX: the site takes it in, then rings,
        # and lists the order in its snapshots (a router started later looks for it there).
        assert (deliver.agent_id, deliver.from_site) == ("bob", INGRESS)
        assert deliver.order == deliver.reservation
        assert await h.routing.contact_state("a1") == "ringing"
        confirm = DeliveryConfirmed(reservation=deliver.reservation, contact_id="a1", at=T0 + 2)
        await h.report("paris", confirm)
        assert await h.routing.contact_state("a1") == "talking"

    run(database, scenario)
    detail = database.contacts.get("a1")
    assert [str(e.kind) for e in detail.history] == ["offered", "reserved", "confirmed"]
    assert detail.history[1].detail["from_site"] == INGRESS


def test_an_api_contact_served_elsewhere_never_reaches_its_landing_site(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [])
        await h.snapshot("madrid", [ready("ana")])
        outcome = await h.routing.route_contact(request("a1", site="paris"))
        assert (outcome.state, outcome.agent_id, outcome.site_id) == ("ringing", "ana", "madrid")
        [deliver] = h.to("madrid", Deliver)
        assert (deliver.agent_id, deliver.from_site) == ("ana", INGRESS)
        assert not h.to("paris", TransferOut)  # paris never had the call
        assert await h.routing.contact_state("a1") == "ringing"

    run(database, scenario)
    assert [str(e.kind) for e in database.contacts.get("a1").history] == ["offered", "reserved"]


def test_an_api_contact_waits_like_a_sites_and_survives_its_landing_sites_snapshot(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [])
        outcome = await h.routing.route_contact(request("a1"))
        assert (outcome.state, outcome.agent_id) == ("queued", None)
        stats = await h.routing.realtime_stats(site="paris")
        assert stats.sites[0].waiting == 1
        # The site's snapshot lists only its PBX's calls: the router ends a1, the service
        # offers it again.
        await h.snapshot("paris", [])
        await until(lambda: h.front.counters.injected >= 2, "the contact offered again")
        assert await h.routing.contact_state("a1") == "queued"
        # bob logs in at his site.
        await h.report("paris", AgentLoggedIn(agent_id="bob", at=T0 + 1, ready=True))
        [deliver] = h.to("paris", Deliver)
        assert (deliver.contact.id, deliver.from_site) == ("a1", INGRESS)

    run(database, scenario)
    assert [str(e.kind) for e in database.contacts.get("a1").history] == [
        "offered",
        "queued",
        "reserved",
    ]


def test_an_api_contact_held_when_the_router_stopped_is_held_again_by_the_next_one(
    database: Database,
) -> None:
    """A contact created through the API lives at no site until an agent is reserved: a
    router started after its predecessor stopped (or died) finds it in the database, holds it
    again and offers it after its landing site's snapshot; site contacts stored queued, and
    API contacts that reached a site, are the sites' to report (c1, which paris no longer has,
    ended there while no router listened)."""

    async def first(h: Harness) -> None:
        await h.snapshot("paris", [])
        outcome = await h.routing.route_contact(request("a1", queue="tech"))
        assert outcome.state == "queued"  # nobody at paris, and only eve there has tech
        await h.snapshot("madrid", [ready("ana")])  # ana takes a2 at once: it left the API
        await h.routing.route_contact(request("a2", site="madrid"))
        await h.report("paris", ContactArrived(contact=call("c1", queue="tech"), at=T0))

    run(database, first)
    assert database.contacts.get("a1").status == "queued"

    async def second(h: Harness) -> None:
        # a1 held, a2 sent to madrid (in transit until the sites say), c1 queued at paris.
        assert h.routing.resumed == 3
        assert await h.routing.contact_state("a1") is None  # held: not offered yet
        await h.snapshot("paris", [ready("eve")])
        await until(lambda: h.to("paris", Deliver), "a1 offered and delivered")
        [deliver] = h.to("paris", Deliver)
        assert (deliver.contact.id, deliver.agent_id, deliver.from_site) == ("a1", "eve", INGRESS)
        assert deliver.contact.arrival == pytest.approx(T0)  # its wait counts from its creation

    run(database, second)
    detail = database.contacts.get("a1")
    assert [str(e.kind) for e in detail.history] == ["offered", "queued", "reserved"]
    assert str(database.contacts.get("c1").status) == "abandoned"
    figures = counters(database, "paris", "tech")
    assert (figures["offered"], figures["abandoned"]) == (2, 1)  # a1 and c1, each once


def _sent_to_ana_when_the_router_died(
    contact_id: str,
) -> Callable[[Harness], Coroutine[Any, Any, None]]:
    """The contact lands at paris, where nobody is; ana at madrid is reserved: the delivery
    leaves the API for madrid, and the router dies before madrid says anything."""

    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [])
        await h.snapshot("madrid", [ready("ana")])
        outcome = await h.routing.route_contact(request(contact_id, site="paris"))
        assert (outcome.state, outcome.agent_id, outcome.site_id) == ("ringing", "ana", "madrid")

    return scenario


def _first_delivery(db: Database, contact_id: str = "a1") -> tuple[int, int]:
    reserved = db.contacts.get(contact_id).history[-1]
    assert (str(reserved.kind), reserved.site, reserved.detail["from_site"]) == (
        "reserved",
        "madrid",
        INGRESS,
    )
    return reserved.detail["reservation"], reserved.detail["order"]


def test_an_api_contact_sent_to_a_site_that_never_got_it_is_delivered_again_by_the_next_router(
    database: Database,
) -> None:
    """The delivery was lost with the router: madrid neither has the call nor lists its order.
    The next router waits for every site's snapshot (paris could have it), then routes it
    again from transit: delivered again from the API, under the same order, counted once."""
    run(database, _sent_to_ana_when_the_router_died("a1"))
    reservation, order = _first_delivery(database)

    async def second(h: Harness) -> None:
        assert h.routing.resumed == 1
        assert await h.routing.contact_state("a1") is None  # the router learns from the sites
        assert h.routing.history.calls["a1"].state == "ringing"  # as stored, until then
        await h.snapshot("madrid", [ready("ana")])
        await h.routing.drain()
        assert not h.to("madrid", Deliver)  # paris has not said yet
        await h.snapshot("paris", [])
        await until(lambda: h.to("madrid", Deliver), "a1 delivered again")
        [deliver] = h.to("madrid", Deliver)
        assert (deliver.contact.id, deliver.agent_id, deliver.from_site) == ("a1", "ana", INGRESS)
        assert deliver.order == order and deliver.reservation != reservation
        assert deliver.contact.arrival == pytest.approx(T0)
        confirm = DeliveryConfirmed(reservation=deliver.reservation, contact_id="a1", at=T0 + 5)
        await h.report("madrid", confirm)
        assert await h.routing.contact_state("a1") == "talking"

    run(database, second)
    history = database.contacts.get("a1").history
    assert [str(e.kind) for e in history] == [
        "offered",
        "reserved",
        "rejected",  # the first delivery, superseded
        "reserved",
        "confirmed",
    ]
    assert history[2].detail["reason"] == "superseded"
    assert counters(database, "paris")["offered"] == 1


def test_an_api_contact_a_site_took_in_is_found_there_by_the_next_router(
    database: Database,
) -> None:
    """madrid got the delivery: its snapshot lists the call ringing at ana under the first
    reservation, or (the call over by then) the order as received.  Either way nothing is
    delivered again; the ringing call goes on, the one that ended is ended."""
    run(database, _sent_to_ana_when_the_router_died("a1"))
    reservation, order = _first_delivery(database)

    async def ringing(h: Harness) -> None:
        status = ContactStatus(
            contact=call("a1"), state="ringing", agent_id="ana", reservation=reservation
        )
        await h.snapshot("madrid", [ready("ana")], [status], received=[order])
        await h.snapshot("paris", [])
        await h.routing.drain()
        assert await h.routing.contact_state("a1") == "ringing"
        confirm = DeliveryConfirmed(reservation=reservation, contact_id="a1", at=T0 + 5)
        await h.report("madrid", confirm)
        assert await h.routing.contact_state("a1") == "talking"
        await h.report("madrid", ContactFinished(contact_id="a1", at=T0 + 65, wrap_up=0))
        assert not h.to("madrid", Deliver)

    run(database, ringing)
    kinds = [str(e.kind) for e in database.contacts.get("a1").history]
    assert kinds == ["offered", "reserved", "confirmed", "finished"]

    # A second call sent the same way, which ended at madrid while no router listened.
    run(database, _sent_to_ana_when_the_router_died("a2"))
    _, order = _first_delivery(database, "a2")

    async def ended(h: Harness) -> None:
        await h.snapshot("paris", [])
        await h.snapshot("madrid", [ready("ana")], [], received=[order])
        await h.routing.drain()
        assert await h.routing.contact_state("a2") is None
        assert not h.to("madrid", Deliver)

    run(database, ended)
    kinds = [str(e.kind) for e in database.contacts.get("a2").history]
    assert kinds == ["offered", "reserved", "abandoned"]


def test_an_api_contact_is_refused_before_anything_is_stored(database: Database) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(RoutingConflictError, match="not connected"):
            await h.routing.route_contact(request("a1"))
        await h.snapshot("paris", [])
        with pytest.raises(RoutingRefusedError, match="unknown queue 'golf'"):
            await h.routing.route_contact(request("a2", queue="golf"))
        await h.routing.route_contact(request("a3"))
        with pytest.raises(DuplicateContactError):
            await h.routing.route_contact(request("a3"))

    run(database, scenario)
    for contact_id in ("a1", "a2"):
        with pytest.raises(NotFoundError):
            database.contacts.get(contact_id)


# ------------------------------------------------------------------ agents and statistics


def test_an_agent_state_change_is_carried_out_by_the_agents_site_and_its_reports_follow(
    database: Database,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [ready("bob")])
        change = asyncio.create_task(
            h.routing.change_agent_state(
                "bob", NotReadyChange(state="not_ready", reason="coaching")
            )
        )
        await until(lambda: h.to("paris", SetAgentState), "the command to paris")
        [command] = h.to("paris", SetAgentState)
        assert (command.agent_id, command.state, command.reason) == ("bob", "not_ready", "coaching")
        # The site's PBX carries it out and says so, in its own stream.
        await h.report(
            "paris",
            AgentNotReady(agent_id="bob", at=T0 + 1, reason="coaching"),
            AgentStateApplied(request_id=command.request_id, agent_id="bob", at=T0 + 1),
        )
        changed = await change
        assert (changed.state, changed.reason, changed.site_id) == (
            AgentState.NOT_READY,
            "coaching",
            "paris",
        )
        await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
        assert not h.to("paris", Deliver)  # the router holds bob out of new work
        await h.report("paris", AgentReady(agent_id="bob", at=T0 + 2))
        [deliver] = h.to("paris", Deliver)
        assert deliver.contact.id == "c1"
        with pytest.raises(RoutingConflictError, match="set not ready"):
            await h.routing.change_agent_state("bob", LogoutChange(state="logged_out"))
        with pytest.raises(NotFoundError):
            await h.routing.agent_state("nobody")
        with pytest.raises(RoutingConflictError, match="not connected"):
            await h.routing.change_agent_state("ana", ReadyChange(state="ready"))
        assert len(h.to("paris", SetAgentState)) == 1

    run(database, scenario)


def test_realtime_statistics_merge_the_shards_and_the_live_contacts(database: Database) -> None:
    harness = build(database, shards=2)
    assert len(harness.front.shards) == 2

    async def scenario(h: Harness) -> None:
        await h.snapshot("paris", [ready("eve")])
        await h.snapshot("madrid", [ready("ana")])
        await h.report("paris", ContactArrived(contact=call("c1", "tech"), at=T0))
        await h.report("paris", ContactArrived(contact=call("c2", "tech"), at=T0))
        h.clock.now = T0 + 9
        stats = await h.routing.realtime_stats()
        sites = {row.site: row for row in stats.sites}
        assert (sites["paris"].agents.staffed, sites["paris"].agents.reserved) == (1, 1)
        assert (sites["madrid"].agents.ready, sites["paris"].waiting) == (1, 1)
        tech = next(row for row in stats.queues if row.queue == "tech")
        assert (tech.waiting, tech.ringing, tech.longest_wait_seconds) == (1, 1, 9.0)
        with pytest.raises(NotFoundError):
            await h.routing.realtime_stats(site="rome")

    try:
        asyncio.run(scenario(harness))
    finally:
        harness.routing.close()


# ------------------------------------------------------------------ on Ray


def test_the_service_over_ray_actors_routes_api_and_site_contacts(database: Database) -> None:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:

        def actors(network: Network) -> list[ShardClient]:
            return list(start_ray_shards(plan_shards(network, 2), None))

        harness = build(database, shards=2, clients=actors)

        async def scenario(h: Harness) -> None:
            await h.snapshot("paris", [ready("bob"), ready("eve")])
            await h.snapshot("madrid", [])
            outcome = await h.routing.route_contact(request("a1", queue="tech"))
            assert (outcome.state, outcome.agent_id) == ("ringing", "eve")
            await h.report("paris", ContactArrived(contact=call("c1"), at=T0))
            assert [d.contact.id for d in h.to("paris", Deliver)] == ["a1", "c1"]
            stats = await h.routing.realtime_stats()
            assert {row.site: row.agents.reserved for row in stats.sites} == {
                "madrid": 0,
                "paris": 2,
            }
            state = await h.routing.agent_state("bob")
            assert state.state is AgentState.RESERVED
            await h.routing.drain()

        try:
            asyncio.run(scenario(harness))
        finally:
            harness.routing.close()
            harness.front.close()
    finally:
        ray.shutdown()
    assert [str(e.kind) for e in database.contacts.get("a1").history] == ["offered", "reserved"]
