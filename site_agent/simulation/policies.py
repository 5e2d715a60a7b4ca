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
from routing.model import CostMode, Network, SiteSelection
from routing.settings import RouterSettings
from site_agent.simulation.scenario import SimulationConfig


class PolicyKey(StrEnum):
    """Names of the shipped policies, as the command line spells them."""

    ISOLATED = "isolated"
    SKILL = "skill"
    SKILL_MARGIN = "skill-margin"
    LEAST_COST = "least-cost"
    LEAST_COST_MARGIN = "least-cost-margin"
    SKILL_POOL = "skill-pool"
    LEAST_COST_POOL = "least-cost-pool"


class Pooling(StrEnum):
    """Which agents a contact may reach, and how the network finds them."""

    SITE = "site"  # only its landing site's: sites run as separate contact centers
    # Any site's, the network choosing a site from the sites' statistics pulses; the contact
    # then queues at that site (multi-site ACDs as operators run them).
    SITES = "sites"
    # Any site's, one virtual queue the router sees whole (no site queues at all).
    POOL = "pool"


class Margin(StrEnum):
    """Hysteresis of site selection: none, or the scenario's ``margin_seconds``."""

    NONE = "none"
    SCENARIO = "scenario"


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
    margin: Margin = Margin.NONE

    @property
    def networked(self) -> bool:
        """Whether contacts may reach other sites' agents (and so be pre-routed)."""
        return self.pooling is not Pooling.SITE

    def deploy(
        self, network: Network, settings: RouterSettings, simulation: SimulationConfig
    ) -> Deployment:
        selection = None
        if self.pooling is Pooling.SITES:
            selection = SiteSelection(
                margin=simulation.margin_seconds if self.margin is Margin.SCENARIO else 0.0,
                post_route_after=simulation.post_route_after,
            )
        queues = {
            queue_id: dataclasses.replace(queue, cost_mode=self.cost_mode, site_selection=selection)
            for queue_id, queue in network.queues.items()
        }
        network = dataclasses.replace(network, queues=queues)
        if self.networked:
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
    title="Skill, no margin",
    summary="local site first, else the site predicted fastest (no margin)",
    pooling=Pooling.SITES,
    cost_mode=CostMode.SERVICE,
)
NETWORK_SKILL_MARGIN = Policy(
    key=PolicyKey.SKILL_MARGIN,
    title="Skill, margin",
    summary="local site first, else a site predicted faster by more than the margin",
    pooling=Pooling.SITES,
    cost_mode=CostMode.SERVICE,
    margin=Margin.SCENARIO,
)
NETWORK_LEAST_COST = Policy(
    key=PolicyKey.LEAST_COST,
    title="Least cost, no margin",
    summary="local site first, else the cheapest site predicted within the service level",
    pooling=Pooling.SITES,
    cost_mode=CostMode.LEAST_COST,
)
NETWORK_LEAST_COST_MARGIN = Policy(
    key=PolicyKey.LEAST_COST_MARGIN,
    title="Least cost, margin",
    summary="as least cost, but only sites predicted faster by more than the margin",
    pooling=Pooling.SITES,
    cost_mode=CostMode.LEAST_COST,
    margin=Margin.SCENARIO,
)
SKILL_POOL = Policy(
    key=PolicyKey.SKILL_POOL,
    title="Skill, one pool",
    summary="one virtual queue: any qualified agent at any site, best service first",
    pooling=Pooling.POOL,
    cost_mode=CostMode.SERVICE,
)
LEAST_COST_POOL = Policy(
    key=PolicyKey.LEAST_COST_POOL,
    title="Least cost, one pool",
    summary="one virtual queue: any site, cheapest first while the service level allows",
    pooling=Pooling.POOL,
    cost_mode=CostMode.LEAST_COST,
)

POLICIES: Mapping[PolicyKey, Policy] = MappingProxyType(
    {
        p.key: p
        for p in (
            ISOLATED,
            NETWORK_SKILL,
            NETWORK_SKILL_MARGIN,
            NETWORK_LEAST_COST,
            NETWORK_LEAST_COST_MARGIN,
            SKILL_POOL,
            LEAST_COST_POOL,
        )
    }
)

# What ``vcc simulate --compare`` puts side by side: sites alone, then the network routing by
# site with and without the margin.  The one-pool policies are the all-seeing ideal, chosen by
# name.
COMPARED: tuple[Policy, ...] = (
    ISOLATED,
    NETWORK_SKILL,
    NETWORK_SKILL_MARGIN,
    NETWORK_LEAST_COST,
    NETWORK_LEAST_COST_MARGIN,
)
