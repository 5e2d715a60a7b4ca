"""Contact-center measures of a run, per site, per queue and per interval, and network-wide.

Conventions (the ones ACD reports use, stated because each has variants):

* Contacts are counted in the interval, site and queue where they **arrived** (landed), whoever
  served them; agent time is counted at the **agent's** site, in the interval it was spent.
  Contacts arriving during the warm-up, and agent time spent in it, are left out.
* **Service level** = answered within the queue's threshold / offered.  Abandoned contacts count
  against it, short abandons included; contacts still waiting at the end count as offered and not
  answered within the threshold.  Site and network figures use each contact's own threshold.
* **ASA** = mean wait (arrival to answer, ringing included) of answered contacts.
  **AHT** = mean talk + after-contact work of answered contacts.
* **Occupancy** = handling time (reserved/ringing, talk, wrap-up) / (handling + ready idle
  time) of logged-in agents; breaks are neither.
* **Costs** of a contact: trunk = landing site's per-minute tariff for the caller's region x the
  minutes the call held the trunk (landing to hang-up: queueing, ringing and talk); transfer =
  fee + per-minute price x the minutes of the leg to another site (delivery to hang-up), for
  contacts served off their landing site; labour = serving agent's site cost per hour x talk +
  wrap-up (attributed labour).  Contacts are whole: one answered near the end carries its full
  talk time.  Cost per contact = trunk + transfer + labour of all offered contacts / answered
  contacts.  Paid (staffed) labour = agent cost per hour x logged-in time, breaks included, is
  reported beside it: it is what the sites pay whatever the routing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from routing.model import Network
from site_agent.simulation.scenario import SECONDS_PER_HOUR, SECONDS_PER_MINUTE, SimulationConfig
from site_agent.simulation.trace import AgentRecord, ContactOutcome, Trace
from site_agent.simulation.traffic import ScheduledContact


@dataclass(frozen=True, slots=True)
class ContactFigures:
    """One offered contact's contribution to the measures."""

    answered: bool
    abandoned: bool
    answered_within: bool
    transferred: bool
    wait: float
    handle: float
    trunk_cost: float
    transfer_cost: float
    labour_cost: float


@dataclass(frozen=True, slots=True)
class AgentTime:
    """Seconds of one agent in one period, split the way occupancy needs them."""

    staffed: float
    handling: float
    on_break: float
    cost_per_hour: float

    @property
    def available(self) -> float:
        return max(self.staffed - self.handling - self.on_break, 0.0)


@dataclass(frozen=True, slots=True)
class Measures:
    """Sums over one scope; the ratios are properties (``None`` when undefined)."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within: int = 0
    transferred: int = 0
    total_wait: float = 0.0
    total_handle: float = 0.0
    trunk_cost: float = 0.0
    transfer_cost: float = 0.0
    labour_cost: float = 0.0
    handling_seconds: float = 0.0
    available_seconds: float = 0.0
    staffed_seconds: float = 0.0
    staffed_cost: float = 0.0

    @classmethod
    def of(cls, contacts: Sequence[ContactFigures], agents: Sequence[AgentTime]) -> Measures:
        return cls(
            offered=len(contacts),
            answered=sum(c.answered for c in contacts),
            abandoned=sum(c.abandoned for c in contacts),
            answered_within=sum(c.answered_within for c in contacts),
            transferred=sum(c.transferred for c in contacts),
            total_wait=math.fsum(c.wait for c in contacts if c.answered),
            total_handle=math.fsum(c.handle for c in contacts if c.answered),
            trunk_cost=math.fsum(c.trunk_cost for c in contacts),
            transfer_cost=math.fsum(c.transfer_cost for c in contacts),
            labour_cost=math.fsum(c.labour_cost for c in contacts),
            handling_seconds=math.fsum(a.handling for a in agents),
            available_seconds=math.fsum(a.available for a in agents),
            staffed_seconds=math.fsum(a.staffed for a in agents),
            staffed_cost=math.fsum(a.staffed * a.cost_per_hour for a in agents) / SECONDS_PER_HOUR,
        )

    @property
    def waiting_at_end(self) -> int:
        return self.offered - self.answered - self.abandoned

    @property
    def service_level(self) -> float | None:
        return _ratio(self.answered_within, self.offered)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.abandoned, self.offered)

    @property
    def asa(self) -> float | None:
        return _ratio(self.total_wait, self.answered)

    @property
    def aht(self) -> float | None:
        return _ratio(self.total_handle, self.answered)

    @property
    def occupancy(self) -> float | None:
        return _ratio(self.handling_seconds, self.handling_seconds + self.available_seconds)

    @property
    def contact_cost(self) -> float:
        return self.trunk_cost + self.transfer_cost + self.labour_cost

    @property
    def cost_per_contact(self) -> float | None:
        return _ratio(self.contact_cost, self.answered)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


@dataclass(frozen=True, slots=True)
class ScopeStatistics:
    """A site's (or the network's) measures: in total, per queue, per interval."""

    total: Measures
    queues: Mapping[str, Measures]
    intervals: tuple[Measures, ...]


@dataclass(frozen=True, slots=True)
class RunStatistics:
    measured_from: float
    end: float
    interval_starts: tuple[float, ...]
    sites: Mapping[str, ScopeStatistics]
    network: ScopeStatistics


class _Collector:
    """Figures grouped by scope (a site id, or ``None`` for the network) before summing."""

    def __init__(self, intervals: int) -> None:
        self.intervals = intervals
        self.contacts: defaultdict[str | None, list[ContactFigures]] = defaultdict(list)
        self.by_queue: defaultdict[tuple[str | None, str], list[ContactFigures]] = defaultdict(list)
        self.by_interval: defaultdict[tuple[str | None, int], list[ContactFigures]] = defaultdict(
            list
        )
        self.agents: defaultdict[str | None, list[AgentTime]] = defaultdict(list)
        self.agents_by_interval: defaultdict[tuple[str | None, int], list[AgentTime]] = defaultdict(
            list
        )

    def add_contact(self, site: str, queue: str, interval: int, figures: ContactFigures) -> None:
        for scope in (site, None):
            self.contacts[scope].append(figures)
            self.by_queue[scope, queue].append(figures)
            self.by_interval[scope, interval].append(figures)

    def add_agent(self, site: str, interval: int | None, time: AgentTime) -> None:
        for scope in (site, None):
            if interval is None:
                self.agents[scope].append(time)
            else:
                self.agents_by_interval[scope, interval].append(time)

    def scope(self, scope: str | None, queues: Sequence[str]) -> ScopeStatistics:
        return ScopeStatistics(
            total=Measures.of(self.contacts[scope], self.agents[scope]),
            queues={q: Measures.of(self.by_queue[scope, q], ()) for q in queues},
            intervals=tuple(
                Measures.of(self.by_interval[scope, i], self.agents_by_interval[scope, i])
                for i in range(self.intervals)
            ),
        )


def summarize(trace: Trace, network: Network, config: SimulationConfig) -> RunStatistics:
    """Measures of a run from its trace alone, so any run (or a replayed one) reports alike."""
    begin, end = config.measured_from, trace.end
    grid = _Grid(begin, config.interval, math.ceil((end - begin) / config.interval))
    collector = _Collector(grid.count)
    for scheduled, outcome in zip(trace.contacts, trace.outcomes, strict=True):
        arrival = scheduled.contact.arrival
        if arrival < begin:
            continue
        collector.add_contact(
            scheduled.site,
            scheduled.contact.queue_id,
            grid.index(arrival),
            _contact_figures(scheduled, outcome, network, end),
        )
    handling = _handling_by_agent(trace, network)
    for record in trace.agents:
        site = record.shift.site_id
        cost = network.sites[site].agent_cost_per_hour
        spans = handling.get(record.shift.agent_id, [])
        for interval, time in _agent_time(record, spans, cost, trace.end, grid):
            collector.add_agent(site, interval, time)
    queues = list(network.queues)
    return RunStatistics(
        measured_from=begin,
        end=end,
        interval_starts=grid.starts(),
        sites={site: collector.scope(site, queues) for site in network.sites},
        network=collector.scope(None, queues),
    )


def _contact_figures(
    scheduled: ScheduledContact, outcome: ContactOutcome, network: Network, end: float
) -> ContactFigures:
    contact = scheduled.contact
    queue = network.queues[contact.queue_id]
    tariffs = network.tariffs
    answered = outcome.answered_at is not None
    if outcome.answered_at is not None:
        hang_up = outcome.answered_at + scheduled.handle_time
        wait = outcome.answered_at - contact.arrival
    else:
        hang_up = end if outcome.abandoned_at is None else outcome.abandoned_at
        wait = 0.0
    transfer_cost = 0.0
    if outcome.transfer and outcome.reserved_at is not None:
        leg_minutes = (hang_up - outcome.reserved_at) / SECONDS_PER_MINUTE
        transfer_cost = tariffs.transfer_fee + tariffs.transfer_per_minute * leg_minutes
    handle = scheduled.handle_time + queue.wrap_up
    labour_cost = 0.0
    if answered and outcome.serving_site is not None:
        rate = network.sites[outcome.serving_site].agent_cost_per_hour
        labour_cost = rate * handle / SECONDS_PER_HOUR
    trunk_minutes = (hang_up - contact.arrival) / SECONDS_PER_MINUTE
    return ContactFigures(
        answered=answered,
        abandoned=outcome.abandoned_at is not None,
        answered_within=answered and wait <= queue.sl_threshold,
        transferred=outcome.transfer and outcome.reserved_at is not None,
        wait=wait,
        handle=handle if answered else 0.0,
        trunk_cost=tariffs.trunk(contact.caller_region, scheduled.site) * trunk_minutes,
        transfer_cost=transfer_cost,
        labour_cost=labour_cost,
    )


Span = tuple[float, float]


def _handling_by_agent(trace: Trace, network: Network) -> dict[str, list[Span]]:
    """Each agent's busy spans, from reservation to the end of wrap-up (or hang-up while
    ringing), merged so that contacts held at once (chats) count once."""
    spans: defaultdict[str, list[Span]] = defaultdict(list)
    for scheduled, outcome in zip(trace.contacts, trace.outcomes, strict=True):
        if outcome.agent_id is None or outcome.reserved_at is None:
            continue
        if outcome.answered_at is not None:
            wrap_up = network.queues[scheduled.contact.queue_id].wrap_up
            done = outcome.answered_at + scheduled.handle_time + wrap_up
        else:
            done = trace.end if outcome.abandoned_at is None else outcome.abandoned_at
        spans[outcome.agent_id].append((outcome.reserved_at, done))
    return {agent: _merge(agent_spans) for agent, agent_spans in spans.items()}


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _agent_time(
    record: AgentRecord, handling: list[Span], cost_per_hour: float, end: float, grid: _Grid
) -> Iterator[tuple[int | None, AgentTime]]:
    """The agent's time per interval and in total (interval ``None``), within the grid."""
    if record.login_at is None:
        return
    logged_out = end if record.logout_at is None else record.logout_at
    staffed = [(record.login_at, logged_out)]
    breaks = [
        (b.started_at, logged_out if b.ended_at is None else b.ended_at)
        for b in record.breaks
        if b.started_at is not None
    ]
    per_interval = [grid.spread(spans) for spans in (staffed, handling, breaks)]
    for interval in range(grid.count):
        staffed_s, handling_s, break_s = (seconds[interval] for seconds in per_interval)
        if staffed_s > 0:
            yield interval, AgentTime(staffed_s, handling_s, break_s, cost_per_hour)
    totals = [math.fsum(seconds) for seconds in per_interval]
    if totals[0] > 0:
        yield None, AgentTime(totals[0], totals[1], totals[2], cost_per_hour)


@dataclass(frozen=True, slots=True)
class _Grid:
    """The report intervals: ``count`` of ``width`` seconds from ``begin`` (the last one may be
    cut short by the end of the run)."""

    begin: float
    width: float
    count: int

    def index(self, moment: float) -> int:
        return min(int((moment - self.begin) // self.width), self.count - 1)

    def starts(self) -> tuple[float, ...]:
        return tuple(self.begin + i * self.width for i in range(self.count))

    def spread(self, spans: Sequence[Span]) -> list[float]:
        """Seconds of ``spans`` falling in each interval."""
        seconds = [0.0] * self.count
        limit = self.begin + self.count * self.width
        for span_start, span_stop in spans:
            start, stop = max(span_start, self.begin), min(span_stop, limit)
            while start < stop:
                interval = self.index(start)
                boundary = min(self.begin + (interval + 1) * self.width, stop)
                seconds[interval] += boundary - start
                start = boundary
        return seconds
