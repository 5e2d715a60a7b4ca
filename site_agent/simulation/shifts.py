"""When each agent works: the staffing groups' shifts and breaks, made concrete per agent.

Break times are drawn here, once per run, from the seed: like the contacts they are common to
every policy compared.  The plan says when an agent *asks* for a break or to leave; the
simulation only lets the agent go once its current contact and wrap-up are done.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from site_agent.simulation.scenario import (
    SECONDS_PER_HOUR,
    SECONDS_PER_MINUTE,
    Scenario,
    StaffingGroup,
)
from site_agent.simulation.traffic import random_stream


@dataclass(frozen=True, slots=True)
class PlannedBreak:
    start: float
    length: float


@dataclass(frozen=True, slots=True)
class AgentShift:
    """One agent's working time within the run (clock seconds), breaks in time order."""

    agent_id: str
    site_id: str
    start: float
    end: float
    breaks: tuple[PlannedBreak, ...]


def plan_shifts(scenario: Scenario, seed: int) -> tuple[AgentShift, ...]:
    """Shifts clipped to the run; agents whose shift misses the run entirely never log in, and
    breaks planned before the run started are not taken."""
    run_start, run_end = scenario.simulation.start, scenario.simulation.end
    shifts: list[AgentShift] = []
    for group in scenario.staffing:
        if group.shift is None:
            start, end = run_start, run_end
        else:
            start = group.shift.start * SECONDS_PER_HOUR
            end = group.shift.end * SECONDS_PER_HOUR
        if end <= run_start or start >= run_end:
            continue
        rng = random_stream(seed, "breaks", group.label)
        for agent_id in group.agent_ids():
            breaks = tuple(
                b for b in _plan_breaks(group, start, end, rng) if run_start <= b.start < run_end
            )
            shifts.append(
                AgentShift(
                    agent_id=agent_id,
                    site_id=group.site,
                    start=max(start, run_start),
                    end=min(end, run_end),
                    breaks=breaks,
                )
            )
    return tuple(shifts)


def _plan_breaks(
    group: StaffingGroup, start: float, end: float, rng: random.Random
) -> list[PlannedBreak]:
    """Evenly spaced over the whole shift, jittered, kept inside it and in order."""
    plan = group.breaks
    if plan is None:
        return []
    length = plan.minutes * SECONDS_PER_MINUTE
    jitter = plan.jitter_minutes * SECONDS_PER_MINUTE
    spacing = (end - start) / (plan.count + 1)
    breaks: list[PlannedBreak] = []
    for number in range(1, plan.count + 1):
        centre = start + number * spacing + rng.uniform(-jitter, jitter)
        begin = min(max(centre - length / 2.0, start), end - length)
        breaks.append(PlannedBreak(start=begin, length=length))
    return sorted(breaks, key=lambda b: b.start)
