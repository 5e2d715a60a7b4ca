"""Small hand-built networks for the routing tests.

Tests describe a network in a few lines and get a validated :class:`routing.model.Network` through
the real loader (``routing.config.network_from_dict``), so every engine test also exercises the
configuration path operators use.  The factories are fixtures because pytest conftests are not
importable modules; each returns a plain function.

Defaults: skills ``billing``, ``spanish``, ``sales``, ``trainee``; sites ``paris`` and ``lyon``
(region ``eu``, free labour) ; one voice queue ``q`` targeting ``billing``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pytest

from routing.config import network_from_dict
from routing.engine import Router
from routing.model import Channel, Contact, Network

SKILLS = ("billing", "spanish", "sales", "trainee")
SITES = ({"id": "paris", "region": "eu"}, {"id": "lyon", "region": "eu"})


def agent_config(
    agent_id: str,
    site: str = "paris",
    *,
    capacity: Mapping[str, int] | None = None,
    **skills: int,
) -> dict[str, Any]:
    """``agent_config("a1", "lyon", billing=7, spanish=3)``; no skills given: ``billing=5``."""
    config: dict[str, Any] = {"id": agent_id, "site": site, "skills": skills or {"billing": 5}}
    if capacity is not None:
        config["capacity"] = dict(capacity)
    return config


def target_config(
    skills: str,
    *,
    timeout: float | None = None,
    sites: Sequence[str] | None = None,
    min_proficiency: int | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {"skills": skills}
    if timeout is not None:
        config["timeout"] = timeout
    if sites is not None:
        config["sites"] = list(sites)
    if min_proficiency is not None:
        config["min_proficiency"] = min_proficiency
    return config


def queue_config(
    queue_id: str = "q",
    *targets: str | dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """``queue_config("q", "billing")`` or with :func:`target_config` steps; extra fields
    (``strategy``, ``cost_mode``, ``priority``, ``ageing``, ``wrap_up`` ...) as keywords."""
    steps = [target_config(t) if isinstance(t, str) else t for t in targets or ("billing",)]
    return {"id": queue_id, "targets": steps, **fields}


def network_config(
    *,
    agents: Iterable[dict[str, Any]] = (),
    queues: Iterable[dict[str, Any]] | None = None,
    sites: Iterable[dict[str, Any]] = SITES,
    skills: Iterable[str] = SKILLS,
    tariffs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration document (a dict) the loader takes."""
    document: dict[str, Any] = {
        "skills": list(skills),
        "sites": [dict(s) for s in sites],
        "queues": list(queues) if queues is not None else [queue_config()],
        "agents": list(agents),
    }
    if tariffs is not None:
        document["tariffs"] = tariffs
    return document


def build_network(**parts: Any) -> Network:
    return network_from_dict(network_config(**parts))


def contact(
    contact_id: str,
    queue_id: str = "q",
    arrival: float = 0.0,
    *,
    channel: Channel = Channel.VOICE,
    **fields: Any,
) -> Contact:
    return Contact(id=contact_id, queue_id=queue_id, arrival=arrival, channel=channel, **fields)


def ready_router(network: Network, *agent_ids: str, at: float = 0.0) -> Router:
    """A router with ``agent_ids`` logged in ready one second apart, in that order, so the first
    one named has been idle longest.  No agent named: every agent, at the same instant."""
    router = Router(network)
    if not agent_ids:
        for agent_id in network.agents:
            router.login(agent_id, at, ready=True)
        return router
    for i, agent_id in enumerate(agent_ids):
        router.login(agent_id, at + i, ready=True)
    return router


AgentFactory = Callable[..., dict[str, Any]]
TargetFactory = Callable[..., dict[str, Any]]
QueueFactory = Callable[..., dict[str, Any]]
NetworkFactory = Callable[..., Network]
ConfigFactory = Callable[..., dict[str, Any]]
ContactFactory = Callable[..., Contact]
RouterFactory = Callable[..., Router]


@pytest.fixture
def agent() -> AgentFactory:
    return agent_config


@pytest.fixture
def target() -> TargetFactory:
    return target_config


@pytest.fixture
def queue() -> QueueFactory:
    return queue_config


@pytest.fixture
def make_config() -> ConfigFactory:
    return network_config


@pytest.fixture
def make_network() -> NetworkFactory:
    return build_network


@pytest.fixture
def call() -> ContactFactory:
    return contact


@pytest.fixture
def make_router() -> RouterFactory:
    return ready_router
