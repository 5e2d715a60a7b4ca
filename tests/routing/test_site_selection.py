"""Site selection: preferred site first, another site only when it is predicted better by more
than the margin, from the sites' statistics pulses; post-routing after a time-out."""

from __future__ import annotations

from typing import Any

import pytest

from routing.config import network_from_dict
from routing.engine import Router
from routing.model import Contact, Network
from routing.settings import RouterSettings
from routing.site_stats import QueueStats, SitePulse, SiteStatusPolicy

SKILLS = ["billing"]

SITES = (
    {"id": "paris", "region": "north", "agent_cost_per_hour": 40},
    {"id": "lyon", "region": "south", "agent_cost_per_hour": 30},
    {"id": "nice", "region": "south", "agent_cost_per_hour": 20},
)
POLICY = SiteStatusPolicy(pulse_interval=5.0, stale_after_pulses=2, watchdog_timeout=30.0)


def agent_config(agent_id: str, site: str) -> dict[str, Any]:
    return {"id": agent_id, "site": site, "skills": {"billing": 5}}


def network_doc(queue: dict[str, Any], **extra: Any) -> dict[str, Any]:
    agents = [agent_config("p1", "paris"), agent_config("l1", "lyon"), agent_config("n1", "nice")]
    return {"skills": SKILLS, "sites": list(SITES), "agents": agents, "queues": [queue], **extra}


def contact(contact_id: str, **fields: Any) -> Contact:
    return Contact(id=contact_id, queue_id="q", arrival=fields.pop("arrival", 1.0), **fields)


def network(
    *, margin: float = 10.0, post_route_after: float | None = None, **fields: Any
) -> Network:
    selection: dict[str, Any] = {"margin": margin}
    if post_route_after is not None:
        selection["post_route_after"] = post_route_after
    queue = {"id": "q", "targets": [{"skills": "billing"}], "site_selection": selection, **fields}
    return network_from_dict(network_doc(queue, tariffs={"transfer_fee": 0.5}))


def router_with(net: Network, *ready: str) -> Router:
    """All agents logged in; the ones named are ready, the others not ready."""
    router = Router(net, RouterSettings(site_status=POLICY))
    for agent_id in net.agents:
        router.login(agent_id, 0.0, ready=agent_id in ready)
    return router


def pulse(router: Router, now: float, **ewt: float) -> None:
    """Each named site reports queue q with that expected wait."""
    for site, wait in ewt.items():
        stats = QueueStats(
            waiting=0, ready=0, staffed=1, busy=1, sl_in_interval=None, occupancy=1.0, ewt=wait
        )
        router.receive_pulse(SitePulse(site, int(now) + 1, now, {"q": stats}), now)


def test_a_free_agent_at_the_preferred_site_takes_the_contact() -> None:
    router = router_with(network(), "l1", "p1")
    pulse(router, 0.0, paris=100.0, lyon=0.0)
    decision = router.offer(contact("c1", origin_site="paris"), 1.0)
    assert decision is not None and decision.agent_id == "p1" and not decision.transfer


def test_contact_waits_at_its_preferred_site_while_it_is_predicted_within_the_service_level() -> (
    None
):
    router = router_with(network(), "l1")  # an agent is free at lyon, none at paris
    pulse(router, 0.0, paris=15.0, lyon=0.0)  # paris predicted inside the 20 s threshold
    assert router.offer(contact("c1", origin_site="paris"), 1.0) is None
    assert router.site_load("q", "paris").waiting == 1
    assert router.site_load("q", "lyon").waiting == 0
    # The lyon agent stays free for lyon's own contacts; paris's agent takes c1 when ready.
    assignments = router.set_ready("p1", 5.0)
    assert [a.agent_id for a in assignments] == ["p1"]


def test_another_site_better_by_more_than_the_margin_takes_the_contact() -> None:
    router = router_with(network(margin=10.0), "l1")
    pulse(router, 0.0, paris=60.0, lyon=5.0)  # 55 s better: beyond the 10 s margin
    decision = router.offer(contact("c1", origin_site="paris"), 1.0)
    assert decision is not None and decision.site_id == "lyon" and decision.transfer


def test_another_site_better_by_less_than_the_margin_does_not() -> None:
    router = router_with(network(margin=30.0), "l1")
    pulse(router, 0.0, paris=40.0, lyon=15.0)  # 25 s better: inside the 30 s margin
    assert router.offer(contact("c1", origin_site="paris"), 1.0) is None
    assert router.site_load("q", "paris").waiting == 1
    # A zero margin would have moved it.
    zero = router_with(network(margin=0.0), "l1")
    pulse(zero, 0.0, paris=40.0, lyon=15.0)
    decision = zero.offer(contact("c1", origin_site="paris"), 1.0)
    assert decision is not None and decision.site_id == "lyon"


def test_the_contact_queues_at_the_chosen_site_when_nobody_is_free_there() -> None:
    router = router_with(network(margin=0.0))
    pulse(router, 0.0, paris=90.0, lyon=30.0, nice=50.0)
    assert router.offer(contact("c1", origin_site="paris"), 1.0) is None
    assert router.site_load("q", "lyon").waiting == 1
    # A paris agent freeing up does not take it: it is lyon's now (no post-routing).
    assert router.set_ready("p1", 2.0) == []
    decision = router.set_ready("l1", 3.0)
    assert [a.site_id for a in decision] == ["lyon"] and decision[0].transfer


def test_stale_or_missing_statistics_are_not_trusted() -> None:
    router = router_with(network(margin=0.0), "l1")
    pulse(router, 0.0, paris=90.0, lyon=0.0)
    # 11 s later lyon's pulse is older than 2 intervals of 5 s: only paris's fresh figure counts.
    pulse(router, 11.0, paris=90.0)
    assert router.offer(contact("c1", origin_site="paris"), 11.0) is None
    assert router.site_load("q", "paris").waiting == 1
    # Nothing known of the preferred site: a fresh better site is taken.
    fresh = router_with(network(margin=0.0), "l1")
    pulse(fresh, 0.0, lyon=0.0)
    decision = fresh.offer(contact("c2", origin_site="paris"), 1.0)
    assert decision is not None and decision.site_id == "lyon"


def test_site_switches_count_changes_of_choice_for_a_preferred_site() -> None:
    router = router_with(network(margin=0.0))
    pulse(router, 0.0, paris=90.0, lyon=30.0, nice=50.0)
    router.offer(contact("c1", origin_site="paris"), 1.0)  # lyon
    router.offer(contact("c2", origin_site="paris"), 1.5)  # lyon again
    assert router.site_switches("q") == 0
    pulse(router, 5.0, paris=90.0, lyon=80.0, nice=50.0)
    router.offer(contact("c3", origin_site="paris"), 6.0)  # nice
    pulse(router, 10.0, paris=90.0, lyon=30.0, nice=95.0)
    router.offer(contact("c4", origin_site="paris"), 11.0)  # lyon
    # Another preferred site's choices are kept apart: lyon (30 s, nobody better) stays lyon.
    router.offer(contact("c5", origin_site="lyon"), 11.0)
    assert router.site_switches("q") == 2
    waiting = [router.site_load("q", site).waiting for site in ("paris", "lyon", "nice")]
    assert waiting == [0, 4, 1]


def test_post_routing_lets_any_site_take_a_contact_queued_past_the_time_out() -> None:
    router = router_with(network(margin=0.0, post_route_after=30.0))
    pulse(router, 0.0, paris=40.0, lyon=100.0)
    assert router.offer(contact("c1", origin_site="paris"), 1.0) is None  # stays at paris
    assert router.set_ready("l1", 10.0) == []  # before the time-out: lyon may not take it
    assert router.next_timer() == pytest.approx(31.0)  # 30 s after its arrival at 1.0
    released = router.advance(31.0)
    assert [(a.site_id, a.transfer) for a in released] == [("lyon", True)]


def test_a_pre_routed_contact_lands_at_the_chosen_site_without_a_transfer() -> None:
    router = router_with(network(margin=0.0, post_route_after=30.0))
    pulse(router, 0.0, paris=90.0, lyon=30.0, nice=60.0)
    # Not landed yet; caller from the north region prefers paris.
    assert router.offer(contact("c1", caller_region="north"), 1.0) is None
    assert router.site_load("q", "lyon").waiting == 1
    served = router.set_ready("l1", 2.0)
    assert [(a.site_id, a.transfer) for a in served] == [("lyon", False)]
    # Queued at lyon, then post-routed to nice: that is a transfer.
    router.offer(contact("c2", caller_region="north"), 3.0)
    assert router.site_load("q", "lyon").waiting == 1
    router.set_ready("n1", 4.0)
    released = router.advance(33.0)
    assert [(a.site_id, a.transfer) for a in released] == [("nice", True)]


def test_least_cost_queue_picks_the_cheapest_site_predicted_within_the_service_level() -> None:
    router = router_with(network(margin=0.0, cost_mode="least_cost"), "l1", "n1")
    pulse(router, 0.0, paris=90.0, lyon=5.0, nice=15.0)
    decision = router.offer(contact("c1", origin_site="paris"), 1.0)
    assert decision is not None and decision.site_id == "nice"  # dearer lyon is faster
    router2 = router_with(network(margin=0.0), "l1", "n1")
    pulse(router2, 0.0, paris=90.0, lyon=5.0, nice=15.0)
    decision2 = router2.offer(contact("c1", origin_site="paris"), 1.0)
    assert decision2 is not None and decision2.site_id == "lyon"  # service: shortest wait


def test_a_site_no_target_admits_is_never_chosen() -> None:
    queue = {
        "id": "q",
        "targets": [{"skills": "billing", "sites": ["paris", "nice"]}],
        "site_selection": {"margin": 0.0},
    }
    net = network_from_dict(network_doc(queue))
    router = router_with(net, "l1", "n1")
    pulse(router, 0.0, paris=90.0, lyon=0.0, nice=40.0)
    decision = router.offer(contact("c1", origin_site="paris"), 1.0)
    assert decision is not None and decision.site_id == "nice"


def test_a_site_where_nobody_works_for_the_contact_is_never_chosen() -> None:
    # n1 speaks no spanish: nice's short pulsed wait is for the queue, not for this caller.
    queue = {"id": "q", "targets": [{"skills": "billing"}], "site_selection": {"margin": 0.0}}
    doc = network_doc(queue)
    doc["skills"] = ["billing", "spanish"]
    doc["agents"] = [
        {"id": "p1", "site": "paris", "skills": {"billing": 5, "spanish": 5}},
        {"id": "l1", "site": "lyon", "skills": {"billing": 5, "spanish": 5}},
        {"id": "n1", "site": "nice", "skills": {"billing": 5}},
    ]
    router = router_with(network_from_dict(doc), "n1")
    pulse(router, 0.0, paris=90.0, lyon=60.0, nice=0.0)
    spanish = contact("c1", origin_site="paris", required_skills={"spanish": 3})
    assert router.offer(spanish, 1.0) is None
    assert router.site_load("q", "lyon").waiting == 1  # the better site that can serve it
    assert router.site_load("q", "nice").waiting == 0
