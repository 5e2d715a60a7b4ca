"""An agent's state set through the control API over the live router: the command goes to the
agent's site, whose PBX carries it out, and the API answers once the router applied the site's
answer (a refusal is a 409, no answer in time a 504).

The first tests script the site (in-process shards, the front's messages recorded); the last
ones run the real thing on loopback: the API and the sites' links on one uvicorn server,
RayRouting over in-process shards, and a site agent with its simulated PBX."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from orchestrator.api import create_app
from orchestrator.api.routing import (
    AgentLiveState,
    LogoutChange,
    NotReadyChange,
    ReadyChange,
    RoutingConflictError,
    RoutingTimeoutError,
)
from orchestrator.persistence import Database
from orchestrator.ray_routing import RayRouting
from orchestrator.router_actor import LocalShard, RouterFront, RouterMessage, RouterShard
from orchestrator.settings import Settings
from orchestrator.sharding import plan_shards
from orchestrator.site_link import SiteHub, listening_socket, site_link_router
from routing.config import NetworkConfig, compile_network
from routing.model import AgentState
from site_agent.agent import SiteAgent
from site_agent.aio import stop
from site_agent.pbx import PbxAgent
from site_agent.protocol import (
    AgentNotReady,
    AgentStateApplied,
    AgentStateRefused,
    AgentStatus,
    ContactArrived,
    ContactData,
    Deliver,
    SetAgentState,
)
from site_agent.service import simulated_site_agent
from site_agent.simulated_pbx import SimulatedClock, SimulatedPbx
from tests.orchestrator.api.conftest import KEYS, NETWORK, SUPERVISOR, T0
from tests.orchestrator.runtime.conftest import SiteScript
from tests.site_agent.runtime.fake_router import SPEED, fast_settings, two_sites

T = TypeVar("T")
CONFIG = NetworkConfig.model_validate(NETWORK)


@pytest.fixture
def database(empty_database: Database) -> Database:
    return empty_database


async def until(condition: Callable[[], T], what: str, timeout: float = 5.0) -> T:
    """Let the event loop run until ``condition()`` is truthy, failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return value


async def until_async(
    read: Callable[[], Awaitable[T]], check: Callable[[T], bool], what: str, timeout: float = 5.0
) -> T:
    deadline = time.monotonic() + timeout
    while not check(value := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.005)
    return value


# ------------------------------------------------------------------ scripted sites


@dataclass
class Scripted:
    """RayRouting over in-process shards; the sites are scripted, the router's messages kept."""

    front: RouterFront
    routing: RayRouting
    scripts: dict[str, SiteScript]
    sent: list[tuple[str, RouterMessage]] = field(default_factory=list)
    connected: set[str] = field(default_factory=set)

    async def snapshot(self, site: str, *agents: AgentStatus) -> None:
        self.connected.add(site)
        await self.front.receive(site, self.scripts[site].snapshot(list(agents)))

    async def report(self, site: str, *events: Any) -> None:
        await self.front.receive(site, self.scripts[site].delta(*events))

    def commands(self, site: str) -> list[SetAgentState]:
        return [m for s, m in self.sent if s == site and isinstance(m, SetAgentState)]

    async def command(self, site: str, count: int = 1) -> SetAgentState:
        """The ``count``-th command sent to ``site``, once it was sent."""
        await until(lambda: len(self.commands(site)) >= count, "the command")
        return self.commands(site)[count - 1]


def scripted(
    database: Database, body: Callable[[Scripted], Coroutine[Any, Any, None]], timeout: float = 5.0
) -> None:
    network = compile_network(CONFIG)
    plan = plan_shards(network, 1)
    front = RouterFront(
        plan,
        [
            LocalShard(RouterShard(n, None, i, len(plan), freeze=False))
            for i, n in enumerate(plan.networks)
        ],
        clock=lambda: T0,
    )
    harness: Scripted

    def hub(site: str, message: RouterMessage) -> bool:
        if site not in harness.connected:
            return False
        harness.sent.append((site, message))
        return True

    settings = Settings(agent_command_timeout_seconds=timeout)
    routing = RayRouting(front, network, database, downstream=hub, settings=settings)
    harness = Scripted(front, routing, {site: SiteScript(site) for site in network.sites})
    try:
        asyncio.run(asyncio.wait_for(body(harness), 30))
    finally:
        routing.close()


def status(agent_id: str, *, ready: bool = True, reason: str | None = None) -> AgentStatus:
    return AgentStatus(agent_id=agent_id, logged_in=True, ready=ready, reason=reason)


def test_the_change_goes_to_the_agents_site_and_is_answered_once_the_router_applied_it(
    database: Database,
) -> None:
    async def body(h: Scripted) -> None:
        await h.snapshot("paris", status("bob"))
        change = asyncio.create_task(
            h.routing.change_agent_state(
                "bob", NotReadyChange(state="not_ready", reason="coaching")
            )
        )
        command = await h.command("paris")
        assert (command.agent_id, command.state, command.reason) == ("bob", "not_ready", "coaching")
        # The router itself has not changed bob: the site's PBX has the last word.
        assert (await h.routing.agent_state("bob")).state is AgentState.READY
        assert not change.done()
        await h.report(
            "paris",
            AgentNotReady(agent_id="bob", at=T0, reason="coaching"),
            AgentStateApplied(request_id=command.request_id, agent_id="bob", at=T0),
        )
        changed = await change
        assert (changed.state, changed.reason, changed.site_id) == (
            AgentState.NOT_READY,
            "coaching",
            "paris",
        )
        # Where the router has the agent already, nothing is sent.
        again = await h.routing.change_agent_state(
            "bob", NotReadyChange(state="not_ready", reason="coaching")
        )
        assert again == changed and len(h.commands("paris")) == 1
        assert (
            await h.routing.change_agent_state("ana", LogoutChange(state="logged_out"))
        ).state is (AgentState.LOGGED_OUT)
        assert not h.commands("madrid")

    scripted(database, body)


def test_a_refusal_is_a_conflict_with_the_sites_reason_and_changes_nothing(
    database: Database,
) -> None:
    async def body(h: Scripted) -> None:
        await h.snapshot("paris", status("bob", ready=False, reason="break"))
        change = asyncio.create_task(
            h.routing.change_agent_state("bob", ReadyChange(state="ready"))
        )
        command = await h.command("paris")
        await h.report(
            "paris",
            AgentStateRefused(
                request_id=command.request_id, agent_id="bob", at=T0, reason="agent bob is on break"
            ),
        )
        with pytest.raises(
            RoutingConflictError,
            match="site 'paris' refused to set agent 'bob' ready: agent bob is on break",
        ):
            await change
        state = await h.routing.agent_state("bob")
        assert (state.state, state.reason) == (AgentState.NOT_READY, "break")

    scripted(database, body)


def test_an_answer_the_front_did_not_apply_waits_for_the_snapshot_that_shows_the_change(
    database: Database,
) -> None:
    async def body(h: Scripted) -> None:
        await h.snapshot("paris", status("bob"))
        change = asyncio.create_task(
            h.routing.change_agent_state("bob", NotReadyChange(state="not_ready", reason="lunch"))
        )
        command = await h.command("paris")
        # A delta lost on the way: the next one is out of sequence and ignored (a snapshot is
        # asked for), its answer with it.
        h.scripts["paris"].seq += 1
        await h.report(
            "paris",
            AgentNotReady(agent_id="bob", at=T0, reason="lunch"),
            AgentStateApplied(request_id=command.request_id, agent_id="bob", at=T0),
        )
        with pytest.raises(TimeoutError):  # not settled by it
            await asyncio.wait_for(asyncio.shield(change), 0.1)
        await h.snapshot("paris", status("bob", ready=False, reason="lunch"))
        changed = await change
        assert (changed.state, changed.reason) == (AgentState.NOT_READY, "lunch")

    scripted(database, body)


def test_no_answer_in_time_is_a_timeout_and_a_site_not_connected_a_conflict(
    database: Database,
) -> None:
    async def body(h: Scripted) -> None:
        await h.snapshot("paris", status("bob"), status("eve"))
        started = time.monotonic()
        with pytest.raises(
            RoutingTimeoutError, match=r"did not confirm agent 'bob' not_ready within 0\.2 s"
        ):
            await h.routing.change_agent_state(
                "bob", NotReadyChange(state="not_ready", reason="lunch")
            )
        assert 0.2 <= time.monotonic() - started < 2.0
        # A late answer changes nothing for the request that gave up.
        [command] = h.commands("paris")
        await h.report(
            "paris",
            AgentNotReady(agent_id="bob", at=T0, reason="lunch"),
            AgentStateApplied(request_id=command.request_id, agent_id="bob", at=T0),
        )
        assert (await h.routing.agent_state("bob")).reason == "lunch"
        with pytest.raises(RoutingConflictError, match="'madrid' is not connected"):
            await h.routing.change_agent_state("ana", ReadyChange(state="ready"))
        # Connected once, then gone without the router noticing: the message cannot be sent.
        h.connected.discard("paris")
        with pytest.raises(RoutingConflictError, match="'paris' is not connected"):
            await h.routing.change_agent_state("eve", LogoutChange(state="logged_out"))
        assert not dict(h.front.links())["paris"]

    scripted(database, body, timeout=0.2)


def test_logging_out_an_agent_with_a_contact_is_refused_without_asking_the_site(
    database: Database,
) -> None:
    async def body(h: Scripted) -> None:
        await h.snapshot("paris", status("bob"))
        data = ContactData(id="c1", queue_id="billing", arrival=T0, caller_region="fr")
        await h.report("paris", ContactArrived(contact=data, at=T0))
        assert [m for _, m in h.sent if isinstance(m, Deliver)]
        with pytest.raises(RoutingConflictError, match="set not ready"):
            await h.routing.change_agent_state("bob", LogoutChange(state="logged_out"))
        assert not h.commands("paris")

    scripted(database, body)


# ------------------------------------------------------------------ the real thing, on loopback

TOKEN = "north-secret"
ONE = "north.agents.001"


class _Server(uvicorn.Server):
    """uvicorn in the test's event loop, without its signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Stack:
    """The API and the sites' links on one server, the router, and north's site agent."""

    front: RouterFront
    routing: RayRouting
    agent: SiteAgent
    pbx: SimulatedPbx
    api: httpx.AsyncClient
    agent_task: asyncio.Task[None]
    lose_commands: bool = False  # the network loses every command on its way to the site

    def pbx_agent(self, agent_id: str = ONE) -> PbxAgent:
        return next(a for a in self.pbx.state().agents if a.agent_id == agent_id)

    async def router_state(self, agent_id: str = ONE) -> AgentLiveState:
        return await self.routing.agent_state(agent_id)

    async def set_state(self, body: dict[str, str], agent_id: str = ONE) -> httpx.Response:
        return await self.api.post(f"/v1/agents/{agent_id}/state", json=body)


@asynccontextmanager
async def live_stack(database: Database, *, timeout: float = 5.0) -> AsyncIterator[Stack]:
    # Next to no calls: only agents' presence moves.
    scenario = two_sites(calls_per_hour=0.001, mean_patience=None)
    network = scenario.network()
    plan = plan_shards(network, 1)
    clock = SimulatedClock(scenario.simulation.start, SPEED)
    front = RouterFront(
        plan,
        [
            LocalShard(RouterShard(n, None, i, len(plan), freeze=False))
            for i, n in enumerate(plan.networks)
        ],
        clock=clock.now,
        speed=SPEED,
    )
    hub = SiteHub(front, {"north": TOKEN, "south": "south-secret"})
    stack: Stack | None = None

    def downstream(site_id: str, message: RouterMessage) -> bool:
        if stack is not None and stack.lose_commands and isinstance(message, SetAgentState):
            return True  # sent, as far as the router can tell
        return hub.send(site_id, message)

    settings = Settings(api_keys=KEYS, agent_command_timeout_seconds=timeout)
    routing = RayRouting(
        front,
        network,
        database,
        downstream=downstream,
        epoch=scenario.simulation.epoch,
        settings=settings,
    )
    app = create_app(settings, database=database, routing=routing)
    app.include_router(site_link_router(hub))
    sock = listening_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        async with hub.running():
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                await until(lambda: server.started, "the server")
                agent = simulated_site_agent(
                    scenario,
                    "north",
                    router_url=url,
                    token=TOKEN,
                    seed=11,
                    settings=fast_settings(),
                    keep_events=True,
                )
                assert isinstance(agent.pbx, SimulatedPbx) and not agent.pbx.contacts
                clock.restart()
                task = asyncio.create_task(agent.run())
                async with httpx.AsyncClient(base_url=url, headers=SUPERVISOR) as api:
                    stack = Stack(front, routing, agent, agent.pbx, api, task)
                    try:
                        await until_async(
                            stack.router_state,
                            lambda s: s.state is AgentState.READY,
                            "north's agent ready in the router",
                        )
                        yield stack
                    finally:
                        await stop(task)
                assert agent.link_faults == 0 and agent.local.mismatches == 0
            finally:
                server.should_exit = True
                await serving
    finally:
        routing.close()


def live(
    database: Database, body: Callable[[Stack], Coroutine[Any, Any, None]], timeout: float = 5.0
) -> None:
    async def main() -> None:
        async with live_stack(database, timeout=timeout) as stack:
            await body(stack)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_supervisor_sets_an_agent_not_ready_and_the_pbx_the_router_and_snapshots_agree(
    database: Database,
) -> None:
    async def body(s: Stack) -> None:
        response = await s.set_state({"state": "not_ready", "reason": "coaching"})
        assert response.status_code == 200, response.text
        assert (response.json()["state"], response.json()["reason"]) == ("not_ready", "coaching")
        # The PBX has it, and the router with it.
        assert (s.pbx_agent().ready, s.pbx_agent().reason) == (False, "coaching")
        state = await s.router_state()
        assert (state.state, state.reason) == (AgentState.NOT_READY, "coaching")
        # The site's next snapshot (asked for here) is the PBX's truth: it agrees.
        snapshots = s.front.counters.snapshots
        s.front.resync("north", "test: send a snapshot")
        await until(
            lambda: s.front.counters.snapshots > snapshots and dict(s.front.links())["north"],
            "north's snapshot",
        )
        state = await s.router_state()
        assert (state.state, state.reason) == (AgentState.NOT_READY, "coaching")
        read = await s.api.get(f"/v1/agents/{ONE}/state")
        assert (read.json()["state"], read.json()["reason"]) == ("not_ready", "coaching")

        response = await s.set_state({"state": "ready"})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "ready" and s.pbx_agent().ready
        # Other agents untouched.
        assert s.pbx_agent("north.agents.002").ready

    live(database, body)
    actions = [e.action for e in database.audit.entries(resource_id=ONE).items]
    assert actions == ["set_state", "set_state"]


def test_a_change_the_pbx_refuses_is_a_409_with_its_reason(database: Database) -> None:
    async def body(s: Stack) -> None:
        response = await s.set_state({"state": "logged_out"})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "logged_out" and not s.pbx_agent().logged_in
        # Logging an agent in takes the agent at a phone: the PBX refuses it.
        response = await s.set_state({"state": "ready"})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "conflict"
        assert error["message"] == (
            f"site 'north' refused to set agent '{ONE}' ready: agent {ONE} is not logged in at "
            "north"
        )
        assert (await s.router_state()).state is AgentState.LOGGED_OUT
        assert not s.pbx_agent().logged_in

    live(database, body)


def test_a_site_that_does_not_answer_is_a_504_within_the_timeout_and_one_gone_a_409(
    database: Database,
) -> None:
    async def body(s: Stack) -> None:
        s.lose_commands = True
        started = time.monotonic()
        response = await s.set_state({"state": "not_ready", "reason": "lunch"})
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        error = response.json()["error"]
        assert error["code"] == "gateway_timeout"
        assert error["message"].startswith(
            f"site 'north' did not confirm agent '{ONE}' not_ready within 0.3 s"
        )
        assert 0.3 <= elapsed < 3.0
        assert s.pbx_agent().ready and (await s.router_state()).state is AgentState.READY

        await stop(s.agent_task)  # the site goes away
        await until(lambda: not dict(s.front.links())["north"], "the router to see north leave")
        response = await s.set_state({"state": "not_ready", "reason": "lunch"})
        assert response.status_code == 409
        assert "'north' is not connected" in response.json()["error"]["message"]

    live(database, body, timeout=0.3)
