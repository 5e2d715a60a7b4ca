"""The global router's core: deltas and snapshots from sites in, reservations out; no contact
lost or delivered twice whatever order settlements arrive in."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.global_router import GlobalRouter, Outbound, UnknownSiteError
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
    Deliver,
    DeliveryConfirmed,
    DeliveryRejected,
    Delta,
    LocallyRouted,
    Snapshot,
    SnapshotRequest,
    TransferOut,
    WrapUpEnded,
)
from tests.routing.conftest import agent_config, build_network


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


def test_a_call_for_another_site_is_transferred(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    out = paris.send(2.0, ContactArrived(contact=data("c1"), at=2.0))
    ((site, deliver),) = deliveries(out)
    assert (site, deliver.agent_id, deliver.from_site) == ("lyon", "l1", "paris")
    transfers = [(s, m) for s, m in out if isinstance(m, TransferOut)]
    assert transfers == [
        ("paris", TransferOut(reservation=deliver.reservation, contact_id="c1", to_site="lyon"))
    ]
    # The call now lives at Lyon: Lyon's snapshot keeps it, Paris's no longer has to.
    paris.snapshot(3.0)
    assert router.contact_state("c1") == "ringing"


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


def test_a_dropped_link_takes_back_what_rang_there_and_leaves_its_queue_to_the_site(
    router: GlobalRouter, paris: Site, lyon: Site
) -> None:
    paris.send(1.0, AgentLoggedIn(agent_id="p1", at=1.0, ready=True))
    lyon.send(1.0, AgentLoggedIn(agent_id="l1", at=1.0, ready=True))
    lyon.send(1.5, AgentNotReady(agent_id="l1", at=1.5))
    # c1 lands at Lyon and rings p1 at Paris (transfer); c2 waits at Paris.
    ((_, ringing),) = deliveries(lyon.send(2.0, ContactArrived(contact=data("c1"), at=2.0)))
    assert (ringing.agent_id, ringing.from_site) == ("p1", "lyon")
    paris.send(3.0, ContactArrived(contact=data("c2"), at=3.0))
    assert deliveries(router.disconnected("paris", 4.0)) == []  # c1 back in the queue
    assert router.contact_state("c1") == "queued"
    assert router.contact_state("c2") is None  # left to Paris, which routes it locally
    # Lyon's agent takes c1, where the call still is: no transfer; not c2.
    ((site, again),) = deliveries(lyon.send(5.0, AgentReady(agent_id="l1", at=5.0)))
    assert (site, again.contact.id, again.agent_id, again.from_site) == ("lyon", "c1", "l1", None)
    assert router.engine.agent_reason("p1") == "site link down"
    assert router.needs_snapshot("paris")
    # Paris's snapshot on reconnect restores p1 and whatever Paris still has queued.
    paris.snapshot(
        9.0,
        agents=[AgentStatus(agent_id="p1", logged_in=True, ready=False, reason="lunch")],
        contacts=[ContactStatus(contact=data("c3", 8.0), state="queued")],
    )
    assert router.engine.agent_reason("p1") == "lunch"
    assert router.contact_state("c3") == "queued"


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
