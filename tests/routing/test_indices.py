"""The free-agent heaps of :class:`routing.indices.AgentGroup` against a plain sorted model.

Removal only forgets an entry and compaction rebuilds a heap now and then; neither may ever
change which agent heads the group, network-wide or at a site, nor the per-site counts.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.indices import AgentGroup, GroupSpec
from routing.model import AgentStrategy, Channel
from routing.skills import parse_skill_expr

SITES = ("a", "b", "c")


def group() -> AgentGroup:
    spec = GroupSpec(
        channel=Channel.VOICE,
        expression=parse_skill_expr("x"),
        min_proficiency=1,
        sites=None,
        strategy=AgentStrategy.LONGEST_IDLE,
    )
    return AgentGroup(spec=spec, number=0)


# An operation: (agent 0-39, idle time 0-9); an agent listed already is removed instead.
operations = st.lists(st.tuples(st.integers(0, 39), st.integers(0, 9)), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_heads_and_counts_match_a_sorted_model(ops: list[tuple[int, int]]) -> None:
    g = group()
    listed: dict[int, tuple[tuple[float | int, ...], str]] = {}
    for agent, idle in ops:
        site = SITES[agent % len(SITES)]
        if agent in listed:
            key, site = listed.pop(agent)
            g.remove_ready(site, key)
        else:
            key = (0, float(idle), agent)
            g.add_ready(site, key)
            listed[agent] = (key, site)
        keys = sorted(k for k, _ in listed.values())
        assert g.best_ready() == (keys[0] if keys else None)
        for s in SITES:
            at_site = sorted(k for k, site_of in listed.values() if site_of == s)
            assert g.best_ready(s) == (at_site[0] if at_site else None)
            assert g.ready_at(s) == len(at_site)
            assert (s in g.free_sites) == bool(at_site)


def test_forgotten_entries_do_not_pile_up() -> None:
    """An agent listed and unlisted many times without ever heading the heap (another agent
    stays ahead of it) leaves stale entries that compaction must clear."""
    g = group()
    g.add_ready("a", (0, 0.0, 0))  # the head, never removed
    for round_ in range(20_000):
        key = (0, float(round_ + 1), 1)
        g.add_ready("a", key)
        g.remove_ready("a", key)
    assert g.best_ready() == (0, 0.0, 0)
    assert len(g.ready) < 2_000 and len(g.ready_by_site["a"]) < 2_000
