"""What happened in a run, as time stamps: the simulation writes it, statistics read it.

Keeping the record separate from the measures means a new report (another service-level
variant, a per-agent view) is a new reader of the same trace, and tests can check invariants
(no contact answered twice, nobody working on a break) on the raw events rather than on totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from site_agent.simulation.shifts import AgentShift
from site_agent.simulation.traffic import ScheduledContact


@dataclass(slots=True)
class ContactOutcome:
    """Filled in as the contact progresses; a field left ``None`` never happened."""

    agent_id: str | None = None
    serving_site: str | None = None
    transfer: bool = False
    reserved_at: float | None = None
    answered_at: float | None = None
    abandoned_at: float | None = None
    # Offers the agent let ring out (redirect on no answer), when the caller took a callback,
    # and who answered the same customer's previous contact in the run.
    redirects: int = 0
    callback_at: float | None = None
    previous_agent: str | None = None

    @property
    def resolved(self) -> bool:
        return self.answered_at is not None or self.abandoned_at is not None


@dataclass(slots=True)
class BreakRecord:
    """A break asked for at ``requested_at``; it starts once the agent is free (``None``: the
    shift or the run ended first) and ends when the agent is ready again or logs out."""

    requested_at: float
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(slots=True)
class AgentRecord:
    shift: AgentShift
    login_at: float | None = None
    logout_requested_at: float | None = None
    logout_at: float | None = None
    breaks: list[BreakRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Trace:
    """A finished run over clock seconds [start, end).  ``outcomes[i]`` belongs to
    ``contacts[i]``; ``engine_waiting`` is what the routers still had queued at the end, so the
    simulation's own bookkeeping can be checked against the engine's."""

    start: float
    end: float
    contacts: tuple[ScheduledContact, ...]
    outcomes: tuple[ContactOutcome, ...]
    agents: tuple[AgentRecord, ...]
    engine_waiting: frozenset[str]
    # How often the network's site selection changed its choice (load flapping), summed over
    # queues; and per EWT estimator, what it predicted for each contact when it arrived, from
    # the live counters of the site it landed at (aligned with ``contacts``).
    site_switches: int = 0
    ewt_predictions: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
