"""Sorted indices that make a routing decision O(log n) instead of a scan of all agents.

An :class:`AgentGroup` is one eligibility class: a channel, a skill expression with a default
minimum level, a set of allowed sites and an agent-selection strategy.  Every queue target (with
a contact's extra skill requirements folded in) maps to one group, and equal targets share it.
A group keeps

* the free agents who qualify, sorted best-first, network-wide and per site;
* the contacts waiting for such an agent, sorted highest-priority-then-oldest: open to every
  site, or held for a few cheaper sites (least-cost routing) until a deadline;
* how many qualifying agents are logged in per site, for expected-wait estimates.

Entries are tuples ending in an integer sequence number, so ties break deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from routing.model import AgentStrategy, Channel
from routing.skills import SkillExpr

AgentKey = tuple[float | int, ...]
ContactKey = tuple[float | int, ...]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    channel: Channel
    expression: SkillExpr
    min_proficiency: int
    sites: frozenset[str] | None
    strategy: AgentStrategy

    def admits_site(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites


@dataclass(slots=True)
class AgentGroup:
    spec: GroupSpec
    number: int
    ready: SortedList = field(default_factory=SortedList)
    ready_by_site: dict[str, SortedList] = field(default_factory=dict)
    staffed_by_site: dict[str, int] = field(default_factory=dict)
    staffed_total: int = 0
    waiting_open: SortedList = field(default_factory=SortedList)
    waiting_held: dict[str, SortedList] = field(default_factory=dict)

    def add_ready(self, site_id: str, key: AgentKey) -> None:
        self.ready.add(key)
        pool = self.ready_by_site.get(site_id)
        if pool is None:
            pool = self.ready_by_site[site_id] = SortedList()
        pool.add(key)

    def remove_ready(self, site_id: str, key: AgentKey) -> None:
        self.ready.remove(key)
        self.ready_by_site[site_id].remove(key)

    def best_ready(self, site_id: str | None = None) -> AgentKey | None:
        """Head of the free agents, network-wide or at one site."""
        pool = self.ready if site_id is None else self.ready_by_site.get(site_id)
        return pool[0] if pool else None

    def ready_at(self, site_id: str) -> int:
        pool = self.ready_by_site.get(site_id)
        return len(pool) if pool else 0

    def staffed_at(self, site_id: str) -> int:
        return self.staffed_by_site.get(site_id, 0)

    def add_staffed(self, site_id: str, delta: int) -> None:
        """Kept as running counts: expected-wait estimates read them on every decision."""
        self.staffed_by_site[site_id] = self.staffed_by_site.get(site_id, 0) + delta
        self.staffed_total += delta

    def held_at(self, site_id: str) -> int:
        pool = self.waiting_held.get(site_id)
        return len(pool) if pool else 0

    def hold_list(self, site_id: str) -> SortedList:
        pool = self.waiting_held.get(site_id)
        if pool is None:
            pool = self.waiting_held[site_id] = SortedList()
        return pool

    def next_contact(self, site_id: str) -> ContactKey | None:
        """The waiting contact an agent at ``site_id`` should take next from this group."""
        heads: Iterator[ContactKey] = (
            pool[0] for pool in (self.waiting_open, self.waiting_held.get(site_id)) if pool
        )
        return min(heads, default=None)
