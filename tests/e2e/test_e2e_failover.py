"""The system end to end: the router with the control API and its database (`vcc up
--no-sites`: two shards, on this module's Ray) and three `vcc site-agent` processes on loopback,
all on one network clock, playing the scenario's traffic at a high speed-up
(tests/e2e/e2e_scenario.yaml) while contacts are also created through the API; then a process
killed with SIGKILL mid-stream and brought back.

After the failure is repaired the router's view of each site (its read-only ``/view``
endpoint) must equal the site's own PBX state, mid-stream and again once the sites fall quiet;
every contact, judged from the sites' journals, must have been answered at most once and end
in exactly one place: answered, abandoned, still queued, or gone with the PBX of the site that
was killed (the simulated PBX lives inside the site agent process); and the API's record of
each contact it created must say how it ended.
"""

from __future__ import annotations

import contextlib
import operator
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from e2e_harness import (
    SCENARIO,
    SITES,
    NetworkClock,
    RouterProcess,
    SiteProcess,
    judge,
    quiet,
    stop_all,
    views_agree,
    wait_for,
)

from site_agent.simulated_pbx import run_tag
from site_agent.simulation.loading import load_scenario
from site_agent.simulation.traffic import generate_traffic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One Ray for the module; each router joins it (RAY_ADDRESS), as in production."""
    ray.init(num_cpus=4, include_dashboard=False, logging_level="warning")
    gcs_port = ray.get_runtime_context().gcs_address.rsplit(":", 1)[1]
    yield f"127.0.0.1:{gcs_port}"
    ray.shutdown()


def origins(clock: NetworkClock) -> dict[str, str]:
    """Where each call of the run lands, by the id it has (tagged with the run's clock)."""
    scenario = load_scenario(str(SCENARIO))
    seed = scenario.simulation.seed
    assert seed is not None
    tag = run_tag(clock.origin)
    return {f"{tag}-{c.contact.id}": c.site for c in generate_traffic(scenario, seed)}


RUN_START = load_scenario(str(SCENARIO)).simulation.start
LEAD = 20.0  # seconds from now to the network clock's origin: the processes start meanwhile


def api_contacts(router: RouterProcess, count: int, tag: str) -> list[str]:
    """Contacts created through the control API, landing at each site in turn."""
    ids = []
    for n in range(count):
        contact_id = f"api-{tag}-{n}"
        body = {"id": contact_id, "queue": "billing", "site": SITES[n % len(SITES)]}
        response = router.api.post("/contacts", json=body)
        assert response.status_code == 201, response.text
        ids.append(contact_id)
    return ids


def held_in_transit(router: RouterProcess, final: dict) -> None:
    """Calls a site still lists as sent away at the end (no agent was left to take them) are
    the router's: live, waiting for an agent, not lost."""
    for dump in final.values():
        for contact_id in dump["sent_away"]:
            body = router.api.get(f"/contacts/{contact_id}").raise_for_status().json()
            assert body["live_state"] == "queued", body


def stored_open(router: RouterProcess) -> set[str]:
    """The contacts the database holds as still waiting, ringing or talking."""
    found: set[str] = set()
    for status in ("queued", "reserved", "connected"):
        cursor = None
        while True:
            params = {"status": status, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = router.api.get("/contacts", params=params).raise_for_status().json()
            found |= {item["id"] for item in page["items"]}
            if (cursor := page["next_cursor"]) is None:
                break
    return found


def stored_statuses(router: RouterProcess) -> Counter[str]:
    """How many contacts the database holds in each status."""
    found: Counter[str] = Counter()
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = router.api.get("/contacts", params=params).raise_for_status().json()
        found.update(item["status"] for item in page["items"])
        if (cursor := page["next_cursor"]) is None:
            return found


def offered_and_abandoned(router: RouterProcess) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Offered and abandoned contacts as the router's metrics count them, and as stored."""
    stored = stored_statuses(router)
    counted = (
        router.metric("vcc_contacts_offered_total"),
        router.metric("vcc_contacts_abandoned_total"),
    )
    return counted, (stored.total(), stored["abandoned"])


def metrics_match_the_database(router: RouterProcess) -> None:
    """The history's writes trail the counters by a thread's turn: wait for them, then say
    what differs, if anything."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: operator.eq(*offered_and_abandoned(router)), 10, "the history written")
    counted, stored = offered_and_abandoned(router)
    assert counted == stored, f"metrics (offered, abandoned) {counted}, database {stored}"


def api_outcomes(router: RouterProcess, ids: list[str]) -> dict[str, str]:
    """How the API's record says each contact ended."""
    return {c: router.api.get(f"/contacts/{c}").raise_for_status().json()["status"] for c in ids}


def minutes_in(site: SiteProcess) -> float:
    """Simulated minutes since the run started at the site."""
    return (site.dump()["at"] - RUN_START) / 60


def finish(
    router: RouterProcess,
    sites: dict[str, SiteProcess],
    timeout: float,
    *,
    keep_router: bool = False,
) -> dict:
    """Wait for every site to fall quiet (its run over, calls done), check the router agrees
    with each, and stop the sites (and the router, unless kept) cleanly; returns each site's
    last state by label."""
    dumps = {}
    for name, site in sites.items():
        wait_for(lambda s=site: quiet(s.dump()), timeout, f"{name} to fall quiet", every=0.2)
        dumps[site.incarnation.label] = views_agree(router, site, 30, f"{name} at the end")
    for site in sites.values():
        assert site.stop() == 0, site.tail()
    if not keep_router:
        assert router.stop() == 0, router.tail()
    return dumps


def test_a_site_agent_killed_mid_stream_comes_back_in_step(
    ray_address: str, tmp_path: Path
) -> None:
    # The half-hour run lasts 30 s: slow enough that a loaded machine still kills east mid-run.
    clock = NetworkClock(time.time() + LEAD, speed=60.0)
    router = RouterProcess(ray_address, tmp_path, clock)
    sites: dict[str, SiteProcess] = {}
    incarnations = []
    try:
        for name in SITES:
            sites[name] = SiteProcess(name, router.url, tmp_path, clock)
            incarnations.append(sites[name].incarnation)
        wait_for(lambda: router.in_step(*SITES), 30, "every site in step")
        wait_for(lambda: minutes_in(sites["north"]) >= 2, LEAD + 30, "the run under way")
        created = api_contacts(router, 6, "before")
        # The router's view of a site is the site's to read, with its own token only.
        wrong = {"Authorization": "Bearer south-secret-token"}
        assert router.http.get("/sites/north/view", headers=wrong).status_code == 403
        views_agree(router, sites["north"], 30, "north before any failure")

        # Kill east while calls ring and talk there, a third of the way into its run.
        east = sites["east"]
        wait_for(lambda: minutes_in(east) >= 10, 30, "10 simulated minutes at east")
        wait_for(
            lambda: any(c["state"] != "queued" for c in east.dump()["calls"].values()),
            10,
            "a call ringing or talking at east",
            every=0.01,
        )
        east.kill()
        killed = time.monotonic()
        wait_for(lambda: not router.health()["sites"]["east"]["connected"], 10, "east down")
        assert router.metric("vcc_site_connected", site="east") == 0
        east = sites["east"] = SiteProcess("east", router.url, tmp_path, clock, number=2)
        incarnations.append(east.incarnation)
        wait_for(lambda: router.in_step("east"), 30, "east back in step")
        back = time.monotonic() - killed
        assert router.metric("vcc_site_in_step", site="east") == 1
        assert router.metric("vcc_router_site_messages_total", site="east", kind="snapshot") >= 2
        created += api_contacts(router, 6, "after")

        # Mid-stream (east joined the network's clock where it is now): every view matches.
        for site in sites.values():
            views_agree(router, site, 30, f"{site.site} after east's resync")
        final = finish(router, sites, timeout=40, keep_router=True)
        held_in_transit(router, final)
        outcomes = api_outcomes(router, created)
        # One router all along: its metrics count every contact the database holds, once.
        metrics_match_the_database(router)
        assert router.stop() == 0, router.tail()
    finally:
        stop_all([*sites.values(), router])

    verdict = judge(incarnations, final, origins(clock))
    print(
        f"\nsite agent killed mid-stream, back in step after {back:.1f} s: {verdict.summary()}; "
        f"API contacts: {dict(Counter(outcomes.values()))}"
    )
    assert not verdict.problems, "\n".join(verdict.problems[:20])
    assert verdict.answered and verdict.transfers
    # The API's contacts: held at the API until an agent was free, then taken in by its site;
    # each ended (or went with the killed east's PBX, the API's record then still connected).
    assert set(outcomes.values()) <= {"finished", "abandoned", "connected"}, outcomes
    assert sum(status == "finished" for status in outcomes.values()) >= len(created) // 2


def test_the_router_killed_mid_stream_is_replaced_and_rebuilds_its_view(
    ray_address: str, tmp_path: Path
) -> None:
    # A 30 s run: sites route alone while the router is down, then with it.
    clock = NetworkClock(time.time() + LEAD, speed=60.0)
    router = RouterProcess(ray_address, tmp_path, clock)
    sites: dict[str, SiteProcess] = {}
    try:
        for name in SITES:
            sites[name] = SiteProcess(name, router.url, tmp_path, clock)
        wait_for(lambda: router.in_step(*SITES), 30, "every site in step")
        wait_for(lambda: minutes_in(sites["north"]) >= 5, LEAD + 30, "5 simulated minutes")
        router.kill()
        killed = time.monotonic()
        for site in sites.values():
            wait_for(lambda s=site: s.dump()["mode"] == "local", 10, f"{site.site} alone")
        # A new router on the same port and database: it starts empty and learns everything
        # from the sites' snapshots and their reports of what they routed alone.
        router = RouterProcess(ray_address, tmp_path, clock, port=router.port, name="router-2")
        wait_for(lambda: router.in_step(*SITES), 40, "every site in step with the new router")
        back = time.monotonic() - killed
        late = f"the run ended before the router was back ({back:.1f} s after its death)"
        assert minutes_in(sites["north"]) < 28, late
        for site in sites.values():
            views_agree(router, site, 30, f"{site.site} after the router's restart")
        final = finish(router, sites, timeout=40, keep_router=True)
        held_in_transit(router, final)
        # The database agrees: the new router took up what its predecessor left open, and
        # closed what ended while no router listened (nothing open that no site has).
        live = {c for dump in final.values() for c in [*dump["calls"], *dump["sent_away"]]}
        # (A caller still queued at the last dump may hang up before the query: ended then.)
        assert stored_open(router) <= live
        for contact_id in live:
            router.api.get(f"/contacts/{contact_id}").raise_for_status()
        log = router.log.read_text(errors="replace")
        assert "a write failed" not in log, log[log.index("a write failed") - 200 :][:3000]
        assert router.stop() == 0, router.tail()
    finally:
        stop_all([*sites.values(), router])

    incarnations = [site.incarnation for site in sites.values()]
    verdict = judge(incarnations, final, origins(clock))
    print(f"\nrouter killed mid-stream, every site in step after {back:.1f} s: {verdict.summary()}")
    assert not verdict.problems, "\n".join(verdict.problems[:20])
    assert verdict.died_with_a_site == 0
    assert verdict.answered and verdict.transfers
