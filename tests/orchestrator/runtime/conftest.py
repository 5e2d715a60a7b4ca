"""Shared pieces of the runtime tests: a two-skill-group network, sites that speak the protocol
to a front in process, and waiting on a condition with a deadline (never a bare sleep).

Importable as ``tests.orchestrator.runtime.conftest`` (like ``tests.routing.conftest``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.router_actor import LocalShard, RouterFront, RouterMessage, RouterShard
from orchestrator.sharding import ShardPlan, plan_shards
from routing.model import Network
from site_agent.protocol import (
    AgentStatus,
    ContactData,
    ContactStatus,
    Delta,
    Snapshot,
)
from tests.routing.conftest import agent_config, build_network, queue_config

T = TypeVar("T")


def two_group_network(**queue_fields: Any) -> Network:
    """Billing (queue ``billing``: p1, p2 at paris, l1 at lyon) and sales (queue ``sales``:
    s1 at paris, s2 at lyon): two components, so two shards."""
    return build_network(
        agents=[
            agent_config("p1", "paris", billing=5),
            agent_config("p2", "paris", billing=5),
            agent_config("l1", "lyon", billing=5),
            agent_config("s1", "paris", sales=5),
            agent_config("s2", "lyon", sales=5),
        ],
        queues=[
            queue_config("billing", "billing", **queue_fields),
            queue_config("sales", "sales", **queue_fields),
        ],
    )


def local_front(
    network: Network, shards: int, clock: Callable[[], float] | None = None
) -> tuple[RouterFront, list[RouterShard], list[tuple[str, RouterMessage]]]:
    """A front over in-process shards whose sink records every message (all sites connected)."""
    plan: ShardPlan = plan_shards(network, shards)
    hosts = [
        RouterShard(net, None, index, len(plan), freeze=False)
        for index, net in enumerate(plan.networks)
    ]
    sent: list[tuple[str, RouterMessage]] = []

    def sink(site_id: str, message: RouterMessage) -> bool:
        sent.append((site_id, message))
        return True

    front = RouterFront(
        plan, [LocalShard(h) for h in hosts], sink=sink, clock=clock or (lambda: 0.0)
    )
    return front, hosts, sent


def contact(contact_id: str, queue_id: str = "billing", arrival: float = 0.0) -> ContactData:
    return ContactData(id=contact_id, queue_id=queue_id, arrival=arrival, caller_region="eu")


def ready(agent_id: str) -> AgentStatus:
    return AgentStatus(agent_id=agent_id, logged_in=True, ready=True)


def queued(contact_id: str, queue_id: str = "billing") -> ContactStatus:
    return ContactStatus(contact=contact(contact_id, queue_id), state="queued")


class SiteScript:
    """A site's numbering of its messages: snapshot (seq restarts), then deltas 1, 2, ..."""

    def __init__(self, site_id: str) -> None:
        self.site_id, self.seq = site_id, 0

    def snapshot(
        self,
        agents: list[AgentStatus] | None = None,
        contacts: list[ContactStatus] | None = None,
        received: list[int] | None = None,
    ) -> Snapshot:
        self.seq = 0
        return Snapshot(
            site_id=self.site_id,
            at=0.0,
            agents=agents or [],
            contacts=contacts or [],
            received=received or [],
        )

    def delta(self, *events: Any) -> Delta:
        self.seq += 1
        return Delta(site_id=self.site_id, seq=self.seq, events=list(events))


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)
