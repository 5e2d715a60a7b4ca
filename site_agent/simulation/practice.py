"""Figures of the routing rules operators switch on: how often agents let offers ring out,
how many callers took a callback, how often a returning customer reached the agent they had
before, and how late agents left after their shift.  Read from the trace alone; contacts and
agents of the warm-up are counted too (the rules act on them as on any other), except where
said."""

from __future__ import annotations

from dataclasses import dataclass

from site_agent.simulation.trace import Trace


@dataclass(frozen=True, slots=True)
class PracticeFigures:
    """``last_agent_share``: of answered contacts whose customer had an earlier answered
    contact in the run, the share answered by that same agent (``None``: no such contact).
    ``overtime_minutes``: mean minutes agents stayed logged in past their shift end."""

    redirects: int
    callbacks: int
    returning: int
    last_agent_share: float | None
    overtime_minutes: float | None


def practice_figures(trace: Trace) -> PracticeFigures:
    returning = same = 0
    for outcome in trace.outcomes:
        if outcome.previous_agent is not None:
            returning += 1
            same += outcome.agent_id == outcome.previous_agent
    overtime = [
        max(record.logout_at - record.shift.end, 0.0)
        for record in trace.agents
        if record.logout_at is not None
    ]
    return PracticeFigures(
        redirects=sum(outcome.redirects for outcome in trace.outcomes),
        callbacks=sum(outcome.callback_at is not None for outcome in trace.outcomes),
        returning=returning,
        last_agent_share=same / returning if returning else None,
        overtime_minutes=sum(overtime) / len(overtime) / 60.0 if overtime else None,
    )
