"""How the router's state and decisions are split across shards, so that no contact spans two.

A routing decision joins a contact of a queue with an agent who qualifies for one of the
queue's targets.  Draw the **eligibility graph**: a node per queue and per agent, an edge when
the agent qualifies for a target of the queue (the engine's own test: the target's skill
expression ``.matches(skills, min_proficiency)``, the target's site restriction, and a capacity
for the queue's channel), when a target condition of the queue counts agents the agent is one of
(``ready("billing>=5")``), and between two queues when a condition of one reads the other's
length (``waiting("q2")``).  Every decision, and every figure a decision reads, stays inside one
connected component of that graph.  So the plan is:

* the components are packed onto at most N shards by agent count (largest first, each onto the
  least loaded shard);
* each shard is a :class:`routing.model.Network` with only its queues and agents (every site,
  tariff and named list kept), hosted by one :class:`orchestrator.global_router.GlobalRouter`;
* a contact belongs to its queue's shard, an agent to its component's shard.  A contact is only
  ever offered to agents of its own shard, and every agent it could go to is there: **no
  contact spans shards**, no decision needs two shards, and the sharded router decides exactly
  as one router would.  Interflow is no exception: a queue's targets already include the queues
  it overflows to (flattened at load time), so overflow agents are in its component.

The limit: a component cannot be split, so a network whose skills connect everything (one
universal skill, or a chain of overlapping skill groups) is one shard.  That is rarely the
bottleneck: the engine makes about 20,000 decisions a second on one core
(``benchmarks/RESULTS.md``), some 50 times the 400 calls a second of a 48,000-agent centre at
peak.  Sharding buys isolation and headroom for networks that really are several centres (per
language, per line of business), not a way around a hot component.  A contact the site itself
gave to an agent outside its queue's component (local routing beyond the configuration) is
refused by the queue's shard, counted, like any event a router cannot apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from routing.model import AgentProfile, Channel, Network
from routing.rules import QUEUE_FUNCTIONS, SKILL_FUNCTIONS
from routing.skills import SkillExpr, parse_skill_expr


@dataclass(frozen=True, slots=True)
class Component:
    """Queues and agents joined by eligibility; ids in the network's order."""

    queues: tuple[str, ...]
    agents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """The shards' networks and who lives where."""

    networks: tuple[Network, ...]
    queue_shard: Mapping[str, int]
    agent_shard: Mapping[str, int]
    components: tuple[Component, ...]

    def __len__(self) -> int:
        return len(self.networks)

    def shard_of_queue(self, queue_id: str) -> int | None:
        return self.queue_shard.get(queue_id)

    def shard_of_agent(self, agent_id: str) -> int | None:
        return self.agent_shard.get(agent_id)

    @property
    def largest_component(self) -> int:
        """Agents in the biggest component: the floor of the busiest shard's agent count."""
        return max((len(c.agents) for c in self.components), default=0)


@dataclass(frozen=True, slots=True)
class _Requirement:
    """What an agent must have to be counted by, or chosen for, a queue (one engine group)."""

    channel: Channel
    expression: SkillExpr
    min_proficiency: int
    sites: frozenset[str] | None

    def admits(self, profile: AgentProfile) -> bool:
        return (
            (self.sites is None or profile.site_id in self.sites)
            and profile.capacity_for(self.channel) > 0
            and self.expression.matches(profile.skills, self.min_proficiency)
        )


class _Components:
    """Union-find over integer nodes, with path halving and union by size."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))
        self.size = [1] * size

    def find(self, node: int) -> int:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]


def _requirements(network: Network) -> dict[_Requirement, list[int]]:
    """Each distinct requirement with the (indices of the) queues that have it; conditions'
    agent counts use level 1 and every site, as the engine's counting groups do."""
    by_requirement: dict[_Requirement, list[int]] = {}
    for index, queue in enumerate(network.queues.values()):
        for target in queue.targets:
            needed = [_Requirement(queue.channel, target.expression, target.min_proficiency,
                                   target.sites)]  # fmt: skip
            if target.condition is not None:
                for call in target.condition.functions():
                    if call.function in SKILL_FUNCTIONS:
                        expression = parse_skill_expr(str(call.args[0].value), network.skills)
                        needed.append(_Requirement(queue.channel, expression, 1, None))
            for requirement in needed:
                queues = by_requirement.setdefault(requirement, [])
                if not queues or queues[-1] != index:
                    queues.append(index)
    return by_requirement


def eligibility_components(network: Network) -> list[Component]:
    """The connected components of the eligibility graph, ordered by their first queue (then
    first agent) in the network's order; an agent no queue can use is a component of its own.

    Agents are tested per distinct profile (site, skills, channels), not one by one: a 48,000
    agent centre has a few hundred profiles, so this costs profiles x requirements matches."""
    queue_ids = list(network.queues)
    queue_index = {queue_id: i for i, queue_id in enumerate(queue_ids)}
    agent_ids = list(network.agents)
    graph = _Components(len(queue_ids) + len(agent_ids))
    for index, queue in enumerate(network.queues.values()):
        for target in queue.targets:
            if target.condition is None:
                continue
            for call in target.condition.functions():
                if call.function in QUEUE_FUNCTIONS:
                    other = queue_index.get(str(call.args[0].value))
                    if other is not None:
                        graph.union(index, other)
    requirements = _requirements(network)
    queues_of_kind: dict[tuple[object, ...], list[int]] = {}
    for offset, profile in enumerate(network.agents.values(), start=len(queue_ids)):
        kind = (
            profile.site_id,
            tuple(sorted(profile.skills.items())),
            tuple(sorted(c for c, n in profile.capacity.items() if n > 0)),
        )
        queues = queues_of_kind.get(kind)
        if queues is None:
            queues = queues_of_kind[kind] = sorted(
                {q for req, qs in requirements.items() if req.admits(profile) for q in qs}
            )
            for other in queues[1:]:
                graph.union(queues[0], other)
        if queues:
            graph.union(offset, queues[0])
    members: dict[int, tuple[list[str], list[str]]] = {}
    for node, queue_id in enumerate(queue_ids):
        members.setdefault(graph.find(node), ([], []))[0].append(queue_id)
    for node, agent_id in enumerate(agent_ids, start=len(queue_ids)):
        members.setdefault(graph.find(node), ([], []))[1].append(agent_id)
    return [Component(tuple(queues), tuple(agents)) for queues, agents in members.values()]


def shard_network(network: Network, queues: Iterable[str], agents: Iterable[str]) -> Network:
    """The network with only these queues and agents (sites, skills, tariffs and lists kept)."""
    keep_queues, keep_agents = set(queues), set(agents)
    return Network(
        sites=network.sites,
        skills=network.skills,
        agents={a: p for a, p in network.agents.items() if a in keep_agents},
        queues={q: queue for q, queue in network.queues.items() if q in keep_queues},
        tariffs=network.tariffs,
        lists=network.lists,
    )


def plan_shards(network: Network, max_shards: int) -> ShardPlan:
    """Pack the eligibility components onto at most ``max_shards`` shards, balancing agents
    (longest-processing-time first: the biggest component onto the least loaded shard, ties to
    the shard with fewer queues, then the lower number).  Fewer shards than asked when there
    are fewer components; always at least one shard."""
    if max_shards < 1:
        raise ValueError(f"at least one shard is needed, not {max_shards}")
    components = eligibility_components(network)
    count = max(1, min(max_shards, len(components)))
    order = sorted(
        range(len(components)),
        key=lambda i: (-len(components[i].agents), -len(components[i].queues), i),
    )
    load = [(0, 0)] * count  # (agents, queues) per shard
    placed: list[list[Component]] = [[] for _ in range(count)]
    for i in order:
        shard = min(range(count), key=lambda s: (*load[s], s))
        component = components[i]
        placed[shard].append(component)
        agents, queues = load[shard]
        load[shard] = (agents + len(component.agents), queues + len(component.queues))
    queue_shard: dict[str, int] = {}
    agent_shard: dict[str, int] = {}
    for shard, packed in enumerate(placed):
        for component in packed:
            queue_shard.update(dict.fromkeys(component.queues, shard))
            agent_shard.update(dict.fromkeys(component.agents, shard))
    networks = tuple(
        shard_network(
            network,
            (q for q, s in queue_shard.items() if s == shard),
            (a for a, s in agent_shard.items() if s == shard),
        )
        for shard in range(count)
    )
    return ShardPlan(networks, queue_shard, agent_shard, tuple(components))
