"""A scripted router on loopback, a small two-site scenario, and ways to wait on conditions.

The site agent is exercised over a real WebSocket: the fake router is a small ``websockets``
server in the test's own event loop that records every message the site sends, acknowledges
deltas, and sends whatever the test tells it to.  Nothing sleeps and hopes: tests wait for a
condition with a deadline (:func:`eventually`, :meth:`FakeRouter.wait_for`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from site_agent.agent import SiteAgent
from site_agent.aio import stop
from site_agent.pbx import (
    CallAnswered,
    CallArrived,
    CallEnded,
    CallerHungUp,
    CallTransferred,
)
from site_agent.protocol import (
    ROUTER_MESSAGE,
    SITE_MESSAGE,
    Ack,
    Delta,
    RouterMessage,
    Snapshot,
)
from site_agent.service import simulated_site_agent
from site_agent.settings import SiteAgentSettings
from site_agent.simulated_pbx import SimulatedPbx
from site_agent.simulation.scenario import Scenario

T = TypeVar("T")
TOKEN = "north-secret"
# Fast enough that a test sees a few simulated hours in seconds, slow enough that a ring
# (2 simulated seconds) is a few milliseconds of wall-clock time.
SPEED = 600.0


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run a test body on a fresh event loop, failing it if it takes longer than ``timeout``."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def eventually(
    condition: Callable[[], T | bool | None], what: str, timeout: float = 5.0
) -> T:
    """Wait until ``condition()`` is truthy (checked every few milliseconds) and return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)


def fast_settings(**changes: Any) -> SiteAgentSettings:
    defaults: dict[str, Any] = {
        "speed": SPEED,
        "batch_seconds": 0.002,
        "reconnect_initial_seconds": 0.02,
        "reconnect_max_seconds": 0.1,
        "open_timeout_seconds": 1.0,
        "ping_seconds": 1.0,
        "handover_seconds": 2.0,
    }
    return SiteAgentSettings(**(defaults | changes))


def two_sites(
    *,
    agents: int = 3,
    calls_per_hour: float = 90.0,
    mean_handle: float = 120.0,
    mean_patience: float | None = 240.0,
    ring_seconds: float = 2.0,
    wrap_up: float = 10.0,
    answer_timeout: float | None = None,
    no_answer_share: float = 0.0,
    breaks: bool = False,
    hours: float = 8.0,
) -> Scenario:
    """Sites ``north`` (the site under test: ``agents`` agents, one queue's traffic) and
    ``south`` (a transfer partner).  Agents work the whole run unless ``breaks``."""
    group: dict[str, Any] = {"site": "north", "count": agents, "skills": {"general": 5}}
    if breaks:
        group |= {"shift": {"start": 8, "end": 16}, "breaks": {"count": 3, "minutes": 10}}
    queue: dict[str, Any] = {
        "id": "q",
        "targets": [{"skills": "general"}],
        "expected_handle_time": mean_handle,
        "wrap_up": wrap_up,
    }
    if answer_timeout is not None:
        queue["answer_timeout"] = answer_timeout
    return Scenario.model_validate(
        {
            "name": "two-sites",
            "skills": ["general"],
            "sites": [{"id": "north", "region": "n"}, {"id": "south", "region": "s"}],
            "queues": [queue],
            "staffing": [group, {"site": "south", "count": 2, "skills": {"general": 5}}],
            "traffic": [
                {
                    "site": "north",
                    "queue": "q",
                    "calls_per_hour": calls_per_hour,
                    "handle_time": {"distribution": "exponential", "mean": mean_handle},
                    "mean_patience": mean_patience,
                }
            ],
            "simulation": {
                "start_hour": 8,
                "hours": hours,
                "warmup_minutes": 0,
                "ring_seconds": ring_seconds,
                "no_answer_share": no_answer_share,
            },
        }
    )


class FakeRouter:
    """A router that only records and obeys the test: one site at a time on loopback."""

    def __init__(self, site_id: str = "north", token: str = TOKEN) -> None:
        self.site_id = site_id
        self.token = token
        self.port = 0
        self.auto_ack = True
        # Every message of every connection, in order.
        self.connections: list[list[Delta | Snapshot]] = []
        self.refused = 0
        self._server: Server | None = None
        self._live: ServerConnection | None = None
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (on the same port as before, after a :meth:`stop`)."""
        self._server = await serve(self._serve, "127.0.0.1", self.port, process_request=self._check)
        self.port = self._server.sockets[0].getsockname()[1] if not self.port else self.port

    async def stop(self) -> None:
        """Go away as a crashed router would: the port closes, live links drop."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self._live = None

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        expected = f"/sites/{self.site_id}/stream"
        headers: Headers = request.headers
        if request.path != expected or headers.get("Authorization") != f"Bearer {self.token}":
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "unknown site or bad token\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        messages: list[Delta | Snapshot] = []
        self.connections.append(messages)
        self._live = connection
        async for frame in connection:
            message = SITE_MESSAGE.validate_json(frame)
            messages.append(message)
            if isinstance(message, Delta) and self.auto_ack:
                await connection.send(Ack(seq=message.seq).model_dump_json())
            async with self._changed:
                self._changed.notify_all()

    async def send(self, message: RouterMessage) -> None:
        assert self._live is not None, "no site connected"
        # Round-trip through the router-side schema, as a real router's message would be.
        text = message.model_dump_json()
        ROUTER_MESSAGE.validate_json(text)
        await self._live.send(text)

    async def wait_for(
        self, condition: Callable[[], T | bool | None], what: str, timeout: float = 5.0
    ) -> T:
        async def satisfied() -> T:
            async with self._changed:
                while not (value := condition()):
                    await self._changed.wait()
                return value  # type: ignore[return-value]

        try:
            return await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None

    # ----------------------------------------------------------------- reading

    @property
    def messages(self) -> list[Delta | Snapshot]:
        return self.connections[-1] if self.connections else []

    def events(self, kind: type[T] | None = None, *, every: bool = False) -> list[T]:
        """Delta events of the current connection (``every``: of all connections)."""
        connections = self.connections if every else self.connections[-1:]
        found: list[Any] = [
            event
            for messages in connections
            for message in messages
            if isinstance(message, Delta)
            for event in message.events
        ]
        return [e for e in found if kind is None or isinstance(e, kind)]


def outcomes(pbx: SimulatedPbx) -> dict[str, str]:
    """Each call that reached the site, by how it ended at the PBX (or where it still is):
    asserting on the way that none ended twice or was answered twice."""
    events = pbx.ledger.events
    answered = Counter(e.contact_id for e in events if isinstance(e, CallAnswered))
    hung_up = Counter(e.contact_id for e in events if isinstance(e, CallerHungUp))
    left = Counter(e.contact_id for e in events if isinstance(e, CallTransferred))
    ended = Counter(e.contact_id for e in events if isinstance(e, CallEnded))
    present = {call.contact.id: str(call.state) for call in pbx.state().calls}
    arrived = [e.contact.id for e in events if isinstance(e, CallArrived)]
    assert len(arrived) == len(set(arrived)), "a call arrived twice"
    result: dict[str, str] = {}
    for contact_id in set(arrived) | set(answered) | set(present):
        ends = answered[contact_id] + hung_up[contact_id] + left[contact_id]
        assert ends <= 1, f"{contact_id} ended {ends} times"
        assert ended[contact_id] <= answered[contact_id], f"{contact_id} ended unanswered"
        if answered[contact_id]:
            result[contact_id] = "finished" if ended[contact_id] else "talking"
        elif hung_up[contact_id]:
            result[contact_id] = "abandoned"
        elif left[contact_id]:
            result[contact_id] = "transferred"
        else:
            assert contact_id in present, f"{contact_id} was lost"
            result[contact_id] = present[contact_id]
    return result


def north_agent(
    router: FakeRouter, scenario: Scenario | None = None, *, seed: int = 11, **settings: Any
) -> tuple[SiteAgent, SimulatedPbx]:
    """The site agent of ``north`` (simulated PBX, keeping its events) for the fake router."""
    agent = simulated_site_agent(
        scenario or two_sites(),
        "north",
        router_url=router.url,
        token=settings.pop("token", TOKEN),
        seed=seed,
        settings=fast_settings(**settings),
        keep_events=True,
    )
    assert isinstance(agent.pbx, SimulatedPbx)
    return agent, agent.pbx


@asynccontextmanager
async def running(agent: SiteAgent) -> AsyncIterator[SiteAgent]:
    """The agent runs inside the block and is stopped (its PBX closed) after it."""
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        await stop(task)
        assert agent.local.mismatches == 0, "the local engine fell out of step with the PBX"
        assert agent.link_faults == 0, "the agent failed handling a connection"
