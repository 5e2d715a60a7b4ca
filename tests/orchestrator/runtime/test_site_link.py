"""The sites' WebSocket links on a real uvicorn server (loopback, ephemeral port) in front of
Ray shard actors, driven by scripted sites speaking the protocol with the `websockets` client;
and `vcc router` as a real process joining this module's Ray.  One Ray session per module."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from typing import Any, TypeVar

import httpx
import pytest
import ray
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from orchestrator.router_actor import RouterFront, RouterMessage, start_ray_shards
from orchestrator.sharding import plan_shards
from orchestrator.site_link import (
    POLICY_VIOLATION,
    REPLACED,
    SiteHub,
    build_app,
    listening_socket,
)
from routing.model import Network
from site_agent.protocol import (
    ROUTER_MESSAGE,
    Ack,
    AgentLoggedIn,
    AgentStatus,
    ContactArrived,
    ContactFinished,
    ContactStatus,
    ContactTransferred,
    Deliver,
    DeliveryConfirmed,
    Delta,
    SnapshotRequest,
    TransferOut,
)
from site_agent.simulation.loading import load_scenario
from tests.orchestrator.prometheus_text import parse, value
from tests.orchestrator.runtime.conftest import (
    SiteScript,
    contact,
    queued,
    ready,
    two_group_network,
    wait_for,
)

T = TypeVar("T")
TOKENS = {"paris": "paris-secret", "lyon": "lyon-secret"}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


class RouterServer:
    """The router's app on uvicorn in a thread with its own event loop, on 127.0.0.1:0."""

    def __init__(self, network: Network, shards: int) -> None:
        plan = plan_shards(network, shards)
        self.front = RouterFront(plan, start_ray_shards(plan, None))
        self.hub = SiteHub(self.front, TOKENS)
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(self.hub), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, what="uvicorn to start")

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve(sockets=[self.sock])

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def on_loop(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self.call(call())

    def connected(self) -> list[str]:
        return self.on_loop(self.hub.connected)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.front.close()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Closes the sites' connections a test leaves open."""
    with ExitStack() as exits:
        yield exits


@pytest.fixture
def server() -> Iterator[RouterServer]:
    running = RouterServer(two_group_network(), shards=2)
    yield running
    running.stop()


class Site:
    """A scripted site agent: numbers its messages and reads the router's answers."""

    def __init__(self, stack: ExitStack, url: str, site_id: str, token: str | None = None) -> None:
        token = TOKENS[site_id] if token is None else token
        self.ws: ClientConnection = stack.enter_context(
            connect(
                f"{url}/sites/{site_id}/stream",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=5,
            )
        )
        # Two small frames in a row (a delta, then the next) must not wait for the first's
        # TCP acknowledgement (Nagle): asyncio clients set this by themselves.
        self.ws.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.script = SiteScript(site_id)
        self.inbox: list[RouterMessage] = []

    def snapshot(
        self, agents: list[AgentStatus] | None = None, contacts: list[ContactStatus] | None = None
    ) -> None:
        self.ws.send(self.script.snapshot(agents, contacts).model_dump_json())

    def send(self, *events: Any) -> int:
        delta = self.script.delta(*events)
        self.ws.send(delta.model_dump_json())
        return delta.seq

    def expect(self, kind: type[T], timeout: float = 10.0, **fields: Any) -> T:
        """The first message of this kind (and field values) received, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.inbox:
                if isinstance(message, kind) and all(
                    getattr(message, name) == value for name, value in fields.items()
                ):
                    self.inbox.remove(message)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {kind.__name__} {fields} within {timeout} s: {self.inbox}"
                )
            self.inbox.append(ROUTER_MESSAGE.validate_json(self.ws.recv(timeout=remaining)))

    def close(self) -> None:
        self.ws.close()


def refusal(url: str, site_id: str, headers: dict[str, str]) -> tuple[int, str]:
    with (
        connect(f"{url}/sites/{site_id}/stream", additional_headers=headers) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_site_without_its_token_is_refused_with_a_policy_violation(server: RouterServer) -> None:
    assert refusal(server.url, "paris", {}) == (
        POLICY_VIOLATION,
        "missing bearer token (Authorization: Bearer <site token>)",
    )
    assert refusal(server.url, "paris", {"Authorization": "Bearer lyon-secret"}) == (
        POLICY_VIOLATION,
        "invalid token for site 'paris'",
    )
    assert refusal(server.url, "rome", {"Authorization": "Bearer paris-secret"}) == (
        POLICY_VIOLATION,
        "unknown site 'rome'",
    )
    assert server.connected() == []


def test_snapshot_deltas_deliver_to_a_ready_agent_and_confirmation(
    server: RouterServer, stack: ExitStack
) -> None:
    paris = Site(stack, server.url, "paris")
    paris.snapshot([ready("p1")])
    paris.send(AgentLoggedIn(agent_id="p2", at=0.0, ready=False))
    paris.expect(Ack, seq=1)
    paris.send(ContactArrived(contact=contact("c1"), at=1.0))
    deliver = paris.expect(Deliver)
    assert (deliver.agent_id, deliver.contact.id, deliver.from_site) == ("p1", "c1", None)
    paris.expect(Ack, seq=2)
    paris.send(DeliveryConfirmed(reservation=deliver.reservation, contact_id="c1", at=2.0))
    paris.expect(Ack, seq=3)
    assert server.call(server.front.contact_state("c1")) == "talking"
    health = server.call(_health(server))
    assert health["sites"]["paris"] == {"connected": True, "in_step": True}
    paris.close()


async def _health(server: RouterServer) -> dict[str, Any]:
    port = server.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/healthz")
    body: dict[str, Any] = response.json()
    return body


def test_a_gap_and_an_invalid_frame_each_bring_a_snapshot_request(
    server: RouterServer, stack: ExitStack
) -> None:
    paris = Site(stack, server.url, "paris")
    paris.snapshot()
    paris.send(AgentLoggedIn(agent_id="p1", at=0.0))
    paris.expect(Ack, seq=1)
    paris.script.seq += 1  # delta 2 never sent
    paris.send(AgentLoggedIn(agent_id="p2", at=0.0))
    assert paris.expect(SnapshotRequest).reason == "expected delta 2, got 3"
    paris.snapshot([AgentStatus(agent_id="p1", logged_in=True)])
    paris.ws.send('{"kind": "delta", "site_id": "paris", "seq": 0, "events": []}')
    request = paris.expect(SnapshotRequest)
    assert request.reason.startswith("invalid message: delta.seq: Input should be greater")
    paris.ws.send("not json")
    assert paris.expect(SnapshotRequest).reason.startswith("invalid message: frame: Invalid JSON")
    paris.ws.send(Delta(site_id="lyon", seq=1, events=[]).model_dump_json())
    assert "site 'lyon' on the link of 'paris'" in paris.expect(SnapshotRequest).reason
    # The link works again from the next snapshot.
    paris.snapshot()
    paris.send(AgentLoggedIn(agent_id="p2", at=0.0))
    paris.expect(Ack, seq=1)
    paris.close()


def test_a_reconnect_with_its_snapshot_restores_the_site(
    server: RouterServer, stack: ExitStack
) -> None:
    paris = Site(stack, server.url, "paris")
    paris.snapshot([ready("p1")], [queued("c1"), queued("c2"), queued("gone")])
    first = paris.expect(Deliver)
    paris.send(DeliveryConfirmed(reservation=first.reservation, contact_id=first.contact.id, at=1))
    paris.expect(Ack, seq=1)
    paris.close()
    wait_for(lambda: server.connected() == [], what="the router to see paris leave")
    assert dict(server.on_loop(lambda: list(server.front.links())))["paris"] is False
    # Meanwhile a lyon contact is routed; nothing for paris can reach it.
    lyon = Site(stack, server.url, "lyon")
    lyon.snapshot([ready("s2")], [queued("c9", "sales")])
    assert lyon.expect(Deliver).agent_id == "s2"
    # Back: p1 still talking to the first contact, p2 now ready, "gone" hung up meanwhile.
    paris = Site(stack, server.url, "paris")
    talking = ContactStatus(contact=first.contact, state="talking", agent_id="p1")
    paris.snapshot([ready("p1"), ready("p2")], [talking, queued("c2")])
    second = paris.expect(Deliver)
    assert (second.contact.id, second.agent_id) == ("c2", "p2")
    assert server.call(server.front.contact_state(first.contact.id)) == "talking"
    assert server.call(server.front.contact_state("gone")) is None
    assert server.call(server.front.contact_state("c9")) == "ringing"
    paris.close()
    lyon.close()


def test_a_second_connection_of_a_site_replaces_the_first(
    server: RouterServer, stack: ExitStack
) -> None:
    old = Site(stack, server.url, "paris")
    old.snapshot()
    old.send(AgentLoggedIn(agent_id="p1", at=0.0))
    old.expect(Ack, seq=1)
    new = Site(stack, server.url, "paris")
    with pytest.raises(ConnectionClosed) as closed:
        old.expect(Ack)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == REPLACED
    new.snapshot([ready("p1")], [queued("c1")])
    assert new.expect(Deliver).agent_id == "p1"
    assert server.connected() == ["paris"]
    new.close()


def test_with_two_shards_a_contact_is_routed_by_its_queues_shard(
    server: RouterServer, stack: ExitStack
) -> None:
    plan = server.front.plan
    sales, billing = plan.shard_of_queue("sales"), plan.shard_of_queue("billing")
    assert sales is not None and billing is not None and sales != billing
    paris, lyon = Site(stack, server.url, "paris"), Site(stack, server.url, "lyon")
    paris.snapshot([ready("p1")])
    lyon.snapshot([ready("s2")])
    paris.send(ContactArrived(contact=contact("c1", "sales"), at=1.0))
    # The only sales agent is at lyon: paris is told to send the call there, then lyon to ring.
    order = paris.expect(TransferOut)
    assert (order.contact_id, order.to_site, order.reservation % 2) == ("c1", "lyon", sales)
    paris.expect(Ack, seq=1)
    paris.send(ContactTransferred(reservation=order.reservation, contact_id="c1", to_site="lyon",
                                  at=1.5))  # fmt: skip
    deliver = lyon.expect(Deliver)
    assert (deliver.agent_id, deliver.from_site, deliver.reservation) == (
        "s2",
        "paris",
        order.reservation,
    )
    paris.expect(Ack, seq=2)
    counters = server.call(server.front.shard_counters())
    assert (counters[sales].deliveries, counters[billing].deliveries) == (1, 0)
    assert counters[billing].events == 0
    paris.close()
    lyon.close()


def test_round_trip_latency_site_to_router_to_deliver(
    server: RouterServer, stack: ExitStack
) -> None:
    paris = Site(stack, server.url, "paris")
    paris.snapshot([ready("p1")])
    rounds = 300
    latencies: list[float] = []
    for n in range(rounds):
        sent = time.perf_counter()
        paris.send(ContactArrived(contact=contact(f"c{n}"), at=float(n)))
        deliver = paris.expect(Deliver)
        latencies.append(time.perf_counter() - sent)
        settled = paris.send(
            DeliveryConfirmed(reservation=deliver.reservation, contact_id=f"c{n}", at=n),
            ContactFinished(contact_id=f"c{n}", at=float(n)),
        )
        paris.expect(Ack, seq=settled)  # the next round starts from an idle router
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(0.99 * rounds) - 1]
    print(f"\nsite -> router -> Deliver over 2 Ray shards: p50 {p50 * 1e3:.2f} ms, "
          f"p99 {p99 * 1e3:.2f} ms ({rounds} rounds)")  # fmt: skip
    assert p99 < 0.5
    paris.close()


def test_vcc_router_serves_the_scenario_on_a_given_ray_cluster(stack: ExitStack) -> None:
    network = load_scenario("three-site-demo").network()
    site_id = next(iter(network.sites))
    agent_id = next(a.id for a in network.agents.values() if a.site_id == site_id)
    gcs_port = ray.get_runtime_context().gcs_address.rsplit(":", 1)[1]
    env = {
        **os.environ,
        "RAY_ADDRESS": f"127.0.0.1:{gcs_port}",
        "VCC_SITE_TOKENS": json.dumps({site_id: "t0ken"}),
    }
    command = [sys.executable, "-c", "from orchestrator.cli import app; app()", "router"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--scenario", "three-site-demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()]).start()
    try:
        banner = lines.get(timeout=60)
        assert "on Ray at 127.0.0.1" in banner and "1 shard(s)" in banner
        url = banner.rsplit("site links on ", 1)[1].split("/sites/")[0]
        site = Site(stack, url, site_id, token="t0ken")
        site.snapshot()
        site.send(AgentLoggedIn(agent_id=agent_id, at=time.time(), ready=True))
        site.expect(Ack, seq=1)
        metrics = httpx.get(banner.rsplit("metrics at ", 1)[1].strip(), timeout=30)
        samples = parse(metrics.raise_for_status().text)
        assert value(samples, "vcc_site_connected", site=site_id) == 1
        assert value(samples, "vcc_site_in_step", site=site_id) == 1
        assert value(samples, "vcc_router_site_messages_total", site=site_id, kind="delta") == 1
        assert value(samples, "vcc_router_site_events_total", kind="agent_logged_in") == 1
        site.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
