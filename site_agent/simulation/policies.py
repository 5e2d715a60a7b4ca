"""Network policies the simulator compares, each a small object that turns the scenario's
network into the routers that serve it.

The event loop only asks a :class:`Deployment` which router serves a site; whether that router
is the site's own or the whole network's, and what its queues optimise, is the policy's business.
A new policy (a wait margin before leaving the local site, pre-routing in the carrier network) is
another instance or subclass here, not a flag in the loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from routing.engine import Router
from routing.model import CostMode, Network
from routing.settings import RouterSettings


class PolicyKey(StrEnum):
    """Names of the shipped policies, as the command line spells them."""

    ISOLATED = "isolated"
    SKILL = "skill"
    LEAST_COST = "least-cost"


class Pooling(StrEnum):
    """Which agents a contact may reach."""

    SITE = "site"  # only its landing site's: sites run as separate contact centers
    NETWORK = "network"  # any site's: one virtual contact center


@dataclass(frozen=True, slots=True)
class Deployment:
    """The routers of one run and which one serves each site's contacts and agents."""

    routers: tuple[Router, ...]
    by_site: Mapping[str, Router]

    def router_for(self, site_id: str) -> Router:
        return self.by_site[site_id]


@dataclass(frozen=True, slots=True)
class Policy:
    key: PolicyKey
    title: str
    summary: str
    pooling: Pooling
    cost_mode: CostMode

    def deploy(self, network: Network, settings: RouterSettings) -> Deployment:
        queues = {
            queue_id: dataclasses.replace(queue, cost_mode=self.cost_mode)
            for queue_id, queue in network.queues.items()
        }
        network = dataclasses.replace(network, queues=queues)
        if self.pooling is Pooling.NETWORK:
            router = Router(network, settings)
            return Deployment(routers=(router,), by_site=dict.fromkeys(network.sites, router))
        by_site = {
            site_id: Router(_agents_of(network, site_id), settings) for site_id in network.sites
        }
        return Deployment(routers=tuple(by_site.values()), by_site=by_site)


def _agents_of(network: Network, site_id: str) -> Network:
    """The network seen by a stand-alone site: every site still exists (tariffs name them), but
    only this site's agents do."""
    agents = {a.id: a for a in network.agents.values() if a.site_id == site_id}
    return dataclasses.replace(network, agents=agents)


ISOLATED = Policy(
    key=PolicyKey.ISOLATED,
    title="Isolated sites",
    summary="each site serves only the contacts that land there",
    pooling=Pooling.SITE,
    cost_mode=CostMode.SERVICE,
)
NETWORK_SKILL = Policy(
    key=PolicyKey.SKILL,
    title="Network skill routing",
    summary="any qualified agent at any site; best service first",
    pooling=Pooling.NETWORK,
    cost_mode=CostMode.SERVICE,
)
NETWORK_LEAST_COST = Policy(
    key=PolicyKey.LEAST_COST,
    title="Network least-cost routing",
    summary="any site, cheapest first while the service-level budget allows",
    pooling=Pooling.NETWORK,
    cost_mode=CostMode.LEAST_COST,
)

POLICIES: Mapping[PolicyKey, Policy] = MappingProxyType(
    {p.key: p for p in (ISOLATED, NETWORK_SKILL, NETWORK_LEAST_COST)}
)
