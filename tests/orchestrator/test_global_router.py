"""The global router's core: deltas and snapshots from sites in, reservations out; no contact
lost or delivered twice whatever order settlements arrive in."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator.global_router import (
    IN_WRAP_UP,
    GlobalRouter,
    Outbound,
    UnknownSiteError,
    reservation_origin,
)
from orchestrator.router_actor import RouterShard
from routing.model import AgentState
from site_agent.protocol import (
    Ack,
    AgentLoggedIn,
    AgentNotReady,
    AgentReady,
    AgentStatus,
    ContactAbandoned,
    ContactArrived,
    ContactData,
    ContactFinished,
    ContactStatus,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    Delta,
    LocallyAbandoned,
    LocallyRouted,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    TransferSettled,
    WrapUpEnded,
)
from tests.routing.conftest import agent_config, build_network, queue_config


class Site:
    """A site's side of the link: numbers its deltas like a site agent does."""

    def __init__(self, router: GlobalRouter, site_id: str) -> None:
        self.router, self.site_id, self.seq = router, site_id, 0

    def snapshot(
        self, now: float, agents: list[AgentStatus] = (), contacts: list[ContactStatus] = ()
    ) -> list[Outbound]:  # type: ignore[assignment]
        self.seq = 0
        message = Snapshot(
            site_id=self.site_id, at=now, agents=list(agents), contacts=list(contacts)
        )
        return self.router.receive(self.site_id, message, now)

    def send(self, now: float, *events: Any) -> list[Outbound]:
        self.seq += 1
        delta = Delta(site_id=self.site_id, seq=self.seq, events=list(events))
        return self.router.receive(self.site_id, delta, now)


def deliveries(out: list[Outbound]) -> list[tuple[str, Deliver]]:
    return [(site, m) for site, m in out if isinstance(m, Deliver)]


def data(contact_id: str, arrival: float = 0.0) -> ContactData:
    return ContactData(id=contact_id, queue_id="q", arrival=arrival, caller_region="eu")


@pytest.fixture
def router() -> GlobalRouter:
    agents = [agent_config("p1", "paris"), agent_config("p2", "paris"), agent_config("l1", "lyon")]
    return GlobalRouter(build_network(agents=agents))


@pytest.fixture
def paris(router: GlobalRouter) -> Site:
    site = Site(router, "paris")
    site.snapshot(0.0)
    return site


@pytest.fixture
def lyon(router: GlobalRouter) -> Site:
    site = Site(router, "lyon")
    site.snapshot(0.0)
    return site


def test_a_call_is_reserved_confirmed_and_finished(router: GlobalRouter, paris: Site) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    out = paris.send(2.0, ContactArrived(contact=data("c1", 2.0), at=2.0))
    ((site, deliver),) = deliveries(out)
    assert (site, deliver.agent_id, deliver.from_site) == ("paris", "p1", None)
    assert out[-1] == ("paris", Ack(seq=2))
    assert router.contact_state("c1") == "ringing"
    paris.send(3.0, DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=3.0))
    assert router.contact_state("c1") == "talking"
    paris.send(60.0, ContactFinished(contact_id="c1", at=60.0))
    assert router.contact_state("c1") is None
    assert router.engine.agent_state("p1") is AgentState.READY


def test_a_rejected_delivery_goes_to_another_agent_and_the_stale_answer_is_ignored(
    router: GlobalRouter, paris: Site
) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    paris.send(1.5, AgentLoggedIn(agent_id="p2", at=1.5, ready=True))
    ((_, first),) = deliveries(paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    out = paris.send(3.0, DeliveryRejected(reservation=first.reservation, contact_id="c1", at=3.0))
    ((_, second),) = deliveries(out)
    assert (first.agent_id, second.agent_id) == ("p1", "p2")
    assert second.reservation != first.reservation
    assert router.engine.agent_reason("p1") == "no answer"
    # A confirmation of the first reservation (re-sent, late) changes nothing.
    paris.send(4.0, DeliveryConfirmed(reservation=first.reservation, contact_id="c1", at=4.0))
    assert router.contact_state("c1") == "ringing"
    assert router.counters.stale_settlements == 1
    paris.send(5.0, DeliveryConfirmed(reservation=second.reservation, contact_id="c1", at=5.0))
    assert router.contact_state("c1") == "talking"
    assert router.engine.delivered_to("c1") == "p2"


def transfers(out: list[Outbound]) -> list[tuple[str, TransferOut]]:
    return [(site, m) for site, m in out if isinstance(m, TransferOut)]


def kinds(out: list[Outbound]) -> list[tuple[str, str]]:
    return [(site, m.kind) for site, m in out]


def test_a_call_for_another_site_is_transferred_by_handshake(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    out = paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0))
    # First only the order to the site where the call is; l1 stays reserved meanwhile.
    ((site, order),) = transfers(out)
    assert (site, order.contact_id, order.to_site) == ("paris", "c1", "lyon")
    assert deliveries(out) == []
    assert router.engine.agent_state("l1") is AgentState.RESERVED
    assert router.contact_state("c1") == "ringing"
    # Paris sends the call on and confirms: only now is Lyon told to take it in and ring.
    out = paris.send(
        3.0,
        ContactTransferred(reservation=order.reservation, contact_id="c1", to_site="lyon", at=3.0),
    )
    ((site, deliver),) = deliveries(out)
    assert (site, deliver.agent_id, deliver.from_site) == ("lyon", "l1", "paris")
    assert deliver.reservation == order.reservation
    assert router.counters.transfers == 1
    # The call now lives at Lyon: Paris's snapshot no longer has to list it.
    paris.snapshot(4.0)
    assert router.contact_state("c1") == "ringing"
    lyon.send(5.0, DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=5.0))
    assert router.contact_state("c1") == "talking"


def test_a_caller_who_hangs_up_before_the_transfer_is_never_rung_elsewhere(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    ((_, order),) = transfers(paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    # The caller hangs up at Paris before the order gets there; Paris refuses it.
    out = paris.send(2.5, ContactAbandoned(contact_id="c1", at=2.5))
    out += paris.send(
        3.0, DeliveryRejected(reservation=order.reservation, contact_id="c1", at=3.0,
                              reason="call c1 is not at site paris")
    )  # fmt: skip
    assert deliveries(out) == [] and transfers(out) == []
    assert kinds(out) == [("paris", "ack"), ("paris", "ack")]  # no resync: nothing wrong
    assert router.contact_state("c1") is None
    assert router.engine.agent_state("l1") is AgentState.READY  # never rang, no fault of l1


def test_a_refused_transfer_frees_the_agent_and_the_landing_sites_snapshot_decides(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    ((_, order),) = transfers(paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    out = paris.send(
        3.0, DeliveryRejected(reservation=order.reservation, contact_id="c1", at=3.0,
                              reason="call c1 is ringing, not queued")
    )  # fmt: skip
    assert deliveries(out) == [] and transfers(out) == []
    assert [type(m) for _, m in out] == [SnapshotRequest]
    assert router.counters.transfer_refusals == 1
    assert router.engine.agent_state("l1") is AgentState.READY
    # The call is still at Paris, queued: routed again, under a new number.
    out = paris.snapshot(4.0, contacts=[ContactStatus(contact=data("c1"), state="queued")])
    ((_, again),) = transfers(out)
    assert again.reservation != order.reservation and again.to_site == "lyon"


def test_a_transfer_confirmed_after_its_answer_timeout_is_delivered_from_transit() -> None:
    agents = [agent_config("p1", "paris"), agent_config("l1", "lyon")]
    router = GlobalRouter(build_network(agents=agents, queues=[queue_config(answer_timeout=10)]))
    paris, lyon = Site(router, "paris"), Site(router, "lyon")
    paris.snapshot(0.0)
    lyon.snapshot(0.0, agents=[AgentStatus(agent_id="l1", logged_in=True, ready=True)])
    ((_, order),) = transfers(paris.send(1.0, ContactArrived(contact=data("c1", 1.0), at=1.0)))
    # Paris is slow to answer: the engine's answer time-out takes l1's reservation back.  l1
    # never rang, so no Withdraw; Lyon is asked for its snapshot to put l1's presence right.
    out = router.tick(12.0)
    assert kinds(out) == [("lyon", "snapshot_request")]
    assert router.contact_state("c1") == "queued"
    # The call left Paris all the same: it is in transit, and whoever takes it, takes it in.
    out = paris.send(
        13.0,
        ContactTransferred(reservation=order.reservation, contact_id="c1", to_site="lyon", at=13),
    )
    assert deliveries(out) == []
    assert router.counters.stale_settlements == 0 and router.counters.transfers == 1
    out = lyon.snapshot(14.0, agents=[AgentStatus(agent_id="l1", logged_in=True, ready=True)])
    ((site, deliver),) = deliveries(out)
    assert (site, deliver.agent_id, deliver.from_site) == ("lyon", "l1", "paris")
    assert deliver.reservation != order.reservation
    # Paris's agent, ready later, is not offered a call Paris no longer has.
    assert transfers(paris.send(15.0, AgentLoggedIn(agent_id="p1", at=15.0, ready=True))) == []


def test_an_answer_that_beat_its_withdrawal_asks_for_the_sites_truth() -> None:
    agents = [agent_config("p1", "paris"), agent_config("p2", "paris")]
    router = GlobalRouter(build_network(agents=agents, queues=[queue_config(answer_timeout=10)]))
    paris = Site(router, "paris")
    ready = [AgentStatus(agent_id=a, logged_in=True, ready=True) for a in ("p1", "p2")]
    paris.snapshot(0.0, agents=ready)
    ((_, first),) = deliveries(paris.send(1.0, ContactArrived(contact=data("c1", 1.0), at=1.0)))
    out = router.tick(12.0)  # no answer in time: withdrawn, and rung elsewhere
    assert [m.kind for _, m in out] == ["withdraw", "deliver"]
    # The agent answered just before the Withdraw got there: the call talks at Paris.
    out = paris.send(12.5, DeliveryConfirmed(reservation=first.reservation, contact_id="c1",
                                             at=12.0))  # fmt: skip
    assert [m.kind for _, m in out] == ["snapshot_request"]
    paris.snapshot(13.0, agents=ready, contacts=[
        ContactStatus(contact=data("c1", 1.0), state="talking", agent_id=first.agent_id)
    ])  # fmt: skip
    assert router.contact_state("c1") == "talking"
    assert router.engine.delivered_to("c1") == first.agent_id


def test_a_transfer_confirmation_lost_with_the_link_comes_in_the_snapshot(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    ((_, order),) = transfers(paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    # Paris's link drops before its answer arrives: l1 is free meanwhile, the order parked.
    assert router.disconnected("paris", 3.0) == []
    assert router.contact_state("c1") is None
    assert router.engine.agent_state("l1") is AgentState.READY
    # Paris had sent the call on: its snapshot lists it, and Lyon takes it in.
    transferred = ContactStatus(
        contact=data("c1"), state="transferred", reservation=order.reservation, to_site="lyon"
    )
    ((site, deliver),) = deliveries(paris.snapshot(4.0, contacts=[transferred]))
    assert (site, deliver.agent_id, deliver.from_site) == ("lyon", "l1", "paris")
    # Listed again (the acknowledgement lost too), it changes nothing.
    assert deliveries(paris.snapshot(5.0, contacts=[transferred])) == []
    assert router.contact_state("c1") == "ringing"


def test_a_transfer_order_lost_with_the_link_leaves_the_call_where_it_is(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0))
    paris.send(2.5, ContactArrived(contact=data("c2"), at=2.5))  # waits: l1 is reserved
    router.disconnected("paris", 3.0)
    assert router.live_contacts() == []  # both left to Paris
    # c1 never left (queued, re-offered); c2 was answered at Paris meanwhile; nothing else.
    out = paris.snapshot(
        4.0,
        agents=[AgentStatus(agent_id="p1", logged_in=True, ready=False, reason="lunch")],
        contacts=[
            ContactStatus(contact=data("c1"), state="queued"),
            ContactStatus(contact=data("c2"), state="talking", agent_id="p1"),
        ],
    )
    ((_, order),) = transfers(out)
    assert order.contact_id == "c1"
    assert router.contact_state("c2") == "talking"


def test_a_transfer_to_a_site_whose_link_dropped_is_routed_again_from_transit(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=False))
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    ((_, order),) = transfers(paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    router.disconnected("lyon", 3.0)
    out = paris.send(
        4.0,
        ContactTransferred(reservation=order.reservation, contact_id="c1", to_site="lyon", at=4),
    )
    assert deliveries(out) == []  # not to Lyon, whose link is down: it would be lost there
    assert router.contact_state("c1") == "queued"
    # Paris's agent takes it: the delivery carries the call back in.
    ((site, deliver),) = deliveries(paris.send(5.0, AgentReady(agent_id="p1", at=5.0)))
    assert (site, deliver.agent_id, deliver.from_site) == ("paris", "p1", "paris")


def test_a_gap_asks_for_a_snapshot_and_deltas_wait_for_it(
    router: GlobalRouter, paris: Site
) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    paris.seq += 1  # delta 2 lost on the way
    out = paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0))
    assert [type(m) for _, m in out] == [SnapshotRequest]
    assert router.needs_snapshot("paris")
    assert paris.send(3.0, ContactArrived(contact=data("c2"), at=3.0)) == []
    assert router.contact_state("c2") is None
    # The snapshot brings both calls the site has, and the agent.
    out = paris.snapshot(
        4.0,
        agents=[AgentStatus(agent_id="p1", logged_in=True, ready=True)],
        contacts=[
            ContactStatus(contact=data("c1", 2.0), state="queued"),
            ContactStatus(contact=data("c2", 3.0), state="queued"),
        ],
    )
    ((_, deliver),) = deliveries(out)
    assert deliver.contact.id == "c1"  # the older call first
    assert router.contact_state("c2") == "queued"


def test_snapshot_reconciles_calls_the_router_had_wrong(router: GlobalRouter, paris: Site) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    paris.send(1.0, AgentLoggedIn(agent_id="p2", at=1.0, ready=False))
    ((_, ringing),) = deliveries(paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    paris.send(3.0, ContactArrived(contact=data("c2"), at=3.0))  # queued: nobody free
    paris.send(3.5, ContactArrived(contact=data("c3"), at=3.5))
    # The site restarted: c1 is still queued there (the delivery never arrived), c2 is gone,
    # c3 is talking with p2 (routed locally), and a call the router never heard of rings p1.
    out = paris.snapshot(
        10.0,
        agents=[
            AgentStatus(agent_id="p1", logged_in=True, ready=True),
            AgentStatus(agent_id="p2", logged_in=True, ready=True),
        ],
        contacts=[
            ContactStatus(contact=data("c1", 2.0), state="queued"),
            ContactStatus(contact=data("c3", 3.5), state="talking", agent_id="p2"),
            ContactStatus(contact=data("c9", 9.0), state="ringing", agent_id="p1", reservation=77),
        ],
    )
    assert deliveries(out) == []  # both agents busy with what the site says
    assert router.contact_state("c1") == "queued"
    assert router.contact_state("c2") is None and not router.engine.is_waiting("c2")
    assert router.contact_state("c3") == "talking" and router.engine.delivered_to("c3") == "p2"
    assert router.contact_state("c9") == "ringing"
    # The site's own reservation settles as any other; the next one is numbered above it.
    paris.send(11.0, DeliveryConfirmed(reservation=77, contact_id="c9", at=11.0))
    ((_, next_one),) = deliveries(paris.send(12.0, ContactFinished(contact_id="c3", at=12.0)))
    assert (next_one.contact.id, next_one.agent_id) == ("c1", "p2")
    assert next_one.reservation > 77 and next_one.reservation != ringing.reservation


def test_locally_routed_calls_are_adopted(router: GlobalRouter, paris: Site) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    paris.send(1.0, AgentNotReady(agent_id="p1", at=1.0))
    paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0))
    paris.send(5.0, LocallyRouted(contact=data("c1"), agent_id="p1", at=5.0))
    assert router.contact_state("c1") == "talking"
    assert not router.engine.is_waiting("c1")
    paris.send(9.0, ContactAbandoned(contact_id="c1", at=9.0))  # ended at the site
    assert router.live_contacts() == []


def test_foreign_sites_and_agents_are_refused(router: GlobalRouter, paris: Site) -> None:
    with pytest.raises(UnknownSiteError):
        router.receive("rome", Snapshot(site_id="rome", at=0.0, agents=[], contacts=[]), 0.0)
    out = paris.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))  # a Lyon agent
    assert [type(m) for _, m in out] == [SnapshotRequest]
    assert router.engine.agent_state("l1") is AgentState.LOGGED_OUT


def test_shards_number_reservations_apart() -> None:
    agents = [agent_config("p1", "paris"), agent_config("p2", "paris")]
    network = build_network(agents=agents)
    numbers = []
    for shard in (0, 1, 2):
        router = GlobalRouter(network, shard=shard, shards=3)
        site = Site(router, "paris")
        site.snapshot(0.0)
        site.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
        site.send(1.0, AgentLoggedIn(agent_id="p2", at=1.0, ready=True))
        site.snapshot(
            2.0,
            agents=[AgentStatus(agent_id="p1", logged_in=True, ready=True),
                    AgentStatus(agent_id="p2", logged_in=True, ready=True)],
            contacts=[ContactStatus(contact=data("x"), state="ringing", agent_id="p1",
                                    reservation=10)],
        )  # fmt: skip
        ((_, deliver),) = deliveries(site.send(3.0, ContactArrived(contact=data("c1"), at=3.0)))
        numbers.append(deliver.reservation)
    assert [n % 3 for n in numbers] == [0, 1, 2]
    assert all(n > 10 for n in numbers)
    with pytest.raises(ValueError, match="shard 3 is not one of 3"):
        GlobalRouter(network, shard=3, shards=3)


def test_a_dropped_link_leaves_the_calls_at_the_site_to_it(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    lyon.send(1.5, AgentNotReady(agent_id="l1", at=1.5))
    # c1 lands at Lyon and is transferred to ring p1 at Paris; c2 waits at Paris.
    ((_, order),) = transfers(lyon.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    transferred = ContactTransferred(
        reservation=order.reservation, contact_id="c1", to_site="paris", at=2.5
    )
    ((_, ringing),) = deliveries(lyon.send(2.5, transferred))
    assert (ringing.agent_id, ringing.from_site) == ("p1", "lyon")
    paris.send(3.0, ContactArrived(contact=data("c2"), at=3.0))
    # Paris drops: both calls are Paris's now (c1 left Lyon), left to it until its snapshot.
    assert router.disconnected("paris", 4.0) == []
    assert router.contact_state("c1") is None and router.contact_state("c2") is None
    assert deliveries(lyon.send(5.0, AgentReady(agent_id="l1", at=5.0))) == []
    assert router.engine.agent_reason("p1") == "site link down"
    assert router.needs_snapshot("paris")
    # Paris's snapshot on reconnect: p1 answered c1 meanwhile, c2 went, c3 came.
    paris.snapshot(
        9.0,
        agents=[AgentStatus(agent_id="p1", logged_in=True, ready=False, reason="lunch")],
        contacts=[
            ContactStatus(contact=data("c1"), state="talking", agent_id="p1"),
            ContactStatus(contact=data("c3", 8.0), state="queued"),
        ],
    )
    assert router.engine.agent_reason("p1") == "lunch"
    assert router.contact_state("c1") == "talking"
    assert router.contact_state("c3") == "ringing"  # l1 at Lyon: a transfer order
    assert router.contact_state("c2") is None


def test_calls_abandoned_while_the_router_was_away_are_recorded(
    router: GlobalRouter, paris: Site
) -> None:
    paris.send(1.0, ContactArrived(contact=data("c1"), at=1.0))  # waits: nobody logged in
    # Reported after a snapshot the router never saw the drop before: it ends c1 ...
    out = paris.send(5.0, LocallyAbandoned(contact=data("c1", 1.0), at=4.0))
    assert kinds(out) == [("paris", "ack")]
    assert router.contact_state("c1") is None and not router.engine.is_waiting("c1")
    # ... and a call it never heard of (arrived and gone during the outage) is only counted,
    # as is the same report re-sent.
    out = paris.send(6.0, LocallyAbandoned(contact=data("c9", 2.0), at=3.0))
    out += paris.send(6.0, LocallyAbandoned(contact=data("c9", 2.0), at=3.0))
    assert kinds(out) == [("paris", "ack"), ("paris", "ack")]
    assert router.counters.locally_abandoned == 3
    assert router.live_contacts() == []


def test_an_agent_the_site_reports_in_wrap_up_takes_no_work_until_it_ends(
    router: GlobalRouter, paris: Site
) -> None:
    # A restarted router: the call p1 wrapped up ended before it knew of p1.
    out = paris.snapshot(
        1.0,
        agents=[AgentStatus(agent_id="p1", logged_in=True, ready=True, wrap_up=True)],
        contacts=[ContactStatus(contact=data("c1"), state="queued")],
    )
    assert deliveries(out) == []
    assert router.engine.agent_reason("p1") == IN_WRAP_UP
    # Presence changes during the wrap-up are kept for its end, not acted on.
    assert deliveries(paris.send(2.0, AgentNotReady(agent_id="p1", at=2.0, reason="coffee"))) == []
    assert router.engine.agent_reason("p1") == "coffee"
    assert deliveries(paris.send(3.0, AgentReady(agent_id="p1", at=3.0))) == []
    ((_, deliver),) = deliveries(paris.send(4.0, WrapUpEnded(agent_id="p1", at=4.0)))
    assert (deliver.contact.id, deliver.agent_id) == ("c1", "p1")
    # A later snapshot without wrap-up releases a held agent at once.
    out = paris.snapshot(
        5.0,
        agents=[AgentStatus(agent_id="p2", logged_in=True, ready=True, wrap_up=True)],
        contacts=[ContactStatus(contact=data("c2"), state="queued")],
    )
    assert deliveries(out) == []
    out = paris.snapshot(6.0, agents=[AgentStatus(agent_id="p2", logged_in=True, ready=True)],
                         contacts=[ContactStatus(contact=data("c2"), state="queued")])  # fmt: skip
    ((_, deliver),) = deliveries(out)
    assert deliver.agent_id == "p2"


def test_reservation_numbers_survive_a_restart_without_being_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shard restarted a second later numbers above everything its predecessor gave, in its
    residue class: no site can mistake a new decision for a re-sent one."""
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    network = build_network(agents=[agent_config("p1", "paris")])

    def reservations(shard: RouterShard, count: int) -> list[int]:
        numbers = []
        site = Site(shard.router, "paris")
        site.snapshot(clock[0], agents=[AgentStatus(agent_id="p1", logged_in=True, ready=True)])
        for n in range(count):
            out = site.send(clock[0], ContactArrived(contact=data(f"c{n}"), at=clock[0]))
            ((_, deliver),) = deliveries(out)
            numbers.append(deliver.reservation)
            site.send(clock[0], DeliveryRejected(reservation=deliver.reservation,
                                                 contact_id=f"c{n}", at=clock[0]))  # fmt: skip
            site.send(clock[0], AgentReady(agent_id="p1", at=clock[0]))
            site.send(clock[0], ContactAbandoned(contact_id=f"c{n}", at=clock[0]))
        return numbers

    first = reservations(RouterShard(network, None, 1, 3, freeze=False), 50)
    clock[0] += 1.0
    second = reservations(RouterShard(network, None, 1, 3, freeze=False), 50)
    assert all(n % 3 == 1 for n in first + second)
    assert min(second) > max(first)
    assert reservation_origin(2, 3, now=1.5) == 1_500_002
    with pytest.raises(ValueError, match="not shard 0's"):
        GlobalRouter(network, shard=0, shards=3, first_reservation=7)


def test_repeated_reports_and_late_wrap_up_ends_change_nothing(
    router: GlobalRouter, paris: Site
) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    paris.send(2.0, LocallyRouted(contact=data("c1"), agent_id="p1", at=2.0))
    out = paris.send(3.0, LocallyRouted(contact=data("c1"), agent_id="p1", at=2.0))
    assert [type(m) for _, m in out] == [Ack]  # no resync for a re-sent report
    paris.send(4.0, ContactFinished(contact_id="c1", at=4.0, wrap_up=0.0))
    out = paris.send(5.0, WrapUpEnded(agent_id="p1", at=5.0))  # the router ended it already
    assert [type(m) for _, m in out] == [Ack]
    assert router.engine.agent_state("p1") is AgentState.READY


def test_an_agent_reserved_for_a_transfer_who_logs_out_is_released(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    out = paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0))
    assert [type(m) for _, m in out if not isinstance(m, Ack)] == [TransferOut]
    # Lyon restarts: l1's shift ended, it is logged out there.
    lyon.snapshot(3.0, agents=[AgentStatus(agent_id="l1", logged_in=False)])
    assert router.engine.agent_state("l1") is AgentState.LOGGED_OUT
    assert router.contact_state("c1") == "queued"


# ------------------------------------------------------------------ a router restarted


def _sent_away(order: int) -> ContactStatus:
    """Paris's snapshot entry for c1, sent to lyon on ``order`` and not settled."""
    return ContactStatus(contact=data("c1"), state="transferred", reservation=order, to_site="lyon")


def test_a_new_router_finds_a_call_its_predecessor_left_in_transit(router: GlobalRouter) -> None:
    """The site it left lists it until settled; once every site has sent its snapshot and
    none has it nor received it, it is routed again from transit and settled when it lands."""
    paris, lyon = Site(router, "paris"), Site(router, "lyon")
    out = paris.snapshot(0.0, [AgentStatus(agent_id="p1", logged_in=True, ready=True)],
                         [_sent_away(7)])  # fmt: skip
    assert not deliveries(out)  # lyon has not spoken: it may have the call
    out = lyon.snapshot(1.0, [])
    [(site, deliver)] = deliveries(out)
    assert (site, deliver.agent_id, deliver.from_site, deliver.order) == ("paris", "p1", "paris", 7)
    out = paris.send(2.0, DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=2))
    assert [m for _, m in out if isinstance(m, TransferSettled)] == [
        TransferSettled(reservation=7, contact_id="c1")
    ]


def test_a_call_its_predecessor_delivered_is_settled_not_routed_again(
    router: GlobalRouter,
) -> None:
    paris = Site(router, "paris")
    paris.snapshot(0.0, [AgentStatus(agent_id="p1", logged_in=True, ready=True)], [_sent_away(7)])
    # Lyon took it in (and the call has ended since): the order is in its ``received``.
    message = Snapshot(site_id="lyon", at=1.0, agents=[], contacts=[], received=[7])
    out = router.receive("lyon", message, 1.0)
    assert not deliveries(out)
    assert ("paris", TransferSettled(reservation=7, contact_id="c1")) in out


def test_a_silent_destination_holds_its_transit_calls_only_until_the_timeout() -> None:
    agents = [agent_config("p1", "paris"), agent_config("l1", "lyon")]
    router = GlobalRouter(build_network(agents=agents), transit_timeout=300.0)
    paris = Site(router, "paris")
    paris.snapshot(0.0, [AgentStatus(agent_id="p1", logged_in=True, ready=True)], [_sent_away(7)])
    assert router.next_timer() == pytest.approx(300.0)  # lyon silent: wait for it, not for ever
    assert not deliveries(router.tick(299.5))
    [(site, deliver)] = deliveries(router.tick(300.0))
    assert (site, deliver.contact.id, deliver.from_site) == ("paris", "c1", "paris")
