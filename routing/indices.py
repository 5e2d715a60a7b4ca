"""Indices that make a routing decision O(log n) instead of a scan of all agents.

An :class:`AgentGroup` is one eligibility class: a channel, a skill expression with a default
minimum level, a set of allowed sites and an agent-selection strategy.  Every queue target (with
a contact's extra skill requirements folded in) maps to one group, and equal targets share it.
A group keeps

* the free agents who qualify, best-first, network-wide and per site, and the set of sites that
  have one (least-cost routing jumps over the sites that have none);
* the contacts waiting for such an agent, sorted highest-priority-then-oldest: open to every
  site, or held for a few cheaper sites (least-cost routing) until a deadline;
* how many qualifying agents are logged in per site, for expected-wait estimates.

Free agents sit in binary heaps with lazy deletion rather than in sorted lists: an agent's state
changes on every contact it takes or ends, in each of its groups, so removal must be cheap; a
heap (``heapq``, in C) pushes in O(log n) and a removal only forgets the entry, which is dropped
when it surfaces.  Entries are tuples ending in the agent's sequence number, so ties break
deterministically and the heads are the same as a sorted list's would be.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from routing.model import AgentStrategy, Channel
from routing.skills import SkillExpr

AgentKey = tuple[float | int, ...]
ContactKey = tuple[float | int, ...]

# A heap is rebuilt without its forgotten entries once it holds more than this many times its
# live ones (plus a floor, so small heaps are never rebuilt): memory stays O(live agents) at an
# amortised O(1) cost per removal.
_COMPACT_FACTOR = 8
_COMPACT_FLOOR = 1024


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
    ready: list[AgentKey] = field(default_factory=list)
    ready_by_site: dict[str, list[AgentKey]] = field(default_factory=dict)
    ready_count: dict[str, int] = field(default_factory=dict)
    free_sites: set[str] = field(default_factory=set)
    live: dict[int, AgentKey] = field(default_factory=dict)
    staffed_by_site: dict[str, int] = field(default_factory=dict)
    staffed_total: int = 0
    waiting_open: SortedList = field(default_factory=SortedList)
    waiting_held: dict[str, SortedList] = field(default_factory=dict)
    _staffed_max: int | None = None
    # Agents configured with what the group needs, per site, logged in or not.
    members_by_site: dict[str, int] = field(default_factory=dict)

    def add_ready(self, site_id: str, key: AgentKey) -> None:
        self.live[int(key[-1])] = key
        heapq.heappush(self.ready, key)
        pool = self.ready_by_site.get(site_id)
        if pool is None:
            pool = self.ready_by_site[site_id] = []
        heapq.heappush(pool, key)
        count = self.ready_count.get(site_id, 0)
        if not count:
            self.free_sites.add(site_id)
        self.ready_count[site_id] = count + 1

    def remove_ready(self, site_id: str, key: AgentKey) -> None:
        del self.live[int(key[-1])]
        count = self.ready_count[site_id] - 1
        self.ready_count[site_id] = count
        if not count:
            self.free_sites.discard(site_id)
        pool = self.ready_by_site[site_id]
        if len(pool) > _COMPACT_FACTOR * count + _COMPACT_FLOOR:
            self.ready_by_site[site_id] = self._compacted(pool)
        if len(self.ready) > _COMPACT_FACTOR * len(self.live) + _COMPACT_FLOOR:
            self.ready = self._compacted(self.ready)

    def best_ready(self, site_id: str | None = None) -> AgentKey | None:
        """Head of the free agents, network-wide or at one site."""
        pool = self.ready if site_id is None else self.ready_by_site.get(site_id)
        if not pool:
            return None
        live = self.live
        while pool:
            head = pool[0]
            if live.get(int(head[-1])) is head:
                return head
            heapq.heappop(pool)
        return None

    def ready_at(self, site_id: str) -> int:
        return self.ready_count.get(site_id, 0)

    def _compacted(self, pool: list[AgentKey]) -> list[AgentKey]:
        live = self.live
        kept = [key for key in pool if live.get(int(key[-1])) is key]
        heapq.heapify(kept)
        return kept

    def staffed_at(self, site_id: str) -> int:
        return self.staffed_by_site.get(site_id, 0)

    def add_staffed(self, site_id: str, delta: int) -> None:
        """Kept as running counts: expected-wait estimates read them on every decision."""
        self.staffed_by_site[site_id] = self.staffed_by_site.get(site_id, 0) + delta
        self.staffed_total += delta
        self._staffed_max = None

    @property
    def staffed_max(self) -> int:
        """The most agents staffed at any one site: bounds what any site can turn around."""
        if self._staffed_max is None:
            self._staffed_max = max(self.staffed_by_site.values(), default=0)
        return self._staffed_max

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
        # Called for each of a freed agent's groups: two heads compared by hand, not min().
        head: ContactKey | None = self.waiting_open[0] if self.waiting_open else None
        held = self.waiting_held.get(site_id)
        if held:
            first: ContactKey = held[0]
            if head is None or first < head:
                return first
        return head
