"""The contact-center model shared by the routing engine, the simulator and the runtime.

Configuration objects (sites, agent profiles, queues, tariffs) are frozen: they change only by
loading a new configuration, which lets the engine precompute indices from them.  Live state
(agent presence and load, waiting contacts) lives in the engine, keyed by these objects' ids.
Times are seconds on whatever clock the caller uses (simulated or wall-clock); the model never
reads a clock itself, so the same inputs always give the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from routing.calendar import BusinessHours
from routing.conditions import Condition, Value
from routing.skills import SkillExpr


class Channel(StrEnum):
    """Media of a contact; an agent handles contacts of one channel at a time."""

    VOICE = "voice"
    CHAT = "chat"
    CALLBACK = "callback"
    # Deferrable work: a queue of e-mails is usually ``deferrable`` (see :class:`Queue`).
    EMAIL = "email"


class AgentState(StrEnum):
    """The ACD's agent state machine, as reports and supervisors see it."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"
    ON_CONTACT = "on_contact"
    AFTER_CONTACT_WORK = "after_contact_work"


class AgentStrategy(StrEnum):
    """How a queue picks among several free agents that qualify."""

    LONGEST_IDLE = "longest_idle"
    MOST_SKILLED = "most_skilled"
    # Workload balancing: the agent who has handled the fewest contacts since logging in.
    FEWEST_CONTACTS = "fewest_contacts"
    # Each free agent in turn: the one offered a contact least recently (never offered first).
    ROUND_ROBIN = "round_robin"


class CostMode(StrEnum):
    """Whether a queue lets cost decide between sites that can meet its service level."""

    SERVICE = "service"
    LEAST_COST = "least_cost"


@dataclass(frozen=True, slots=True)
class Site:
    """One contact center.  A site of kind ``remote`` is the pool of home agents behind the
    media gateway: it has tariffs and a labour cost like any other site."""

    id: str
    region: str
    timezone: str = "UTC"
    trunk_capacity: int = 1_000
    agent_cost_per_hour: float = 0.0
    remote: bool = False
    # ``None``: always open.  A closed site takes no new contacts (its agents finish theirs).
    hours: BusinessHours | None = None


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """Who an agent is: where they sit, what they can do and how many contacts at once."""

    id: str
    site_id: str
    skills: Mapping[str, int]
    capacity: Mapping[Channel, int] = field(
        default_factory=lambda: {Channel.VOICE: 1, Channel.CALLBACK: 1}
    )

    def capacity_for(self, channel: Channel) -> int:
        return self.capacity.get(channel, 0)


@dataclass(frozen=True, slots=True)
class Target:
    """One step of a queue's routing policy.

    The contact may be given to any agent matching ``expression`` (each skill at least
    ``min_proficiency`` unless the expression sets its own level) at ``sites`` (``None``: all
    sites).  After ``timeout`` seconds in this step the next step also applies: targets widen,
    they never narrow, so an agent who qualified earlier still qualifies later.
    """

    expression: SkillExpr
    min_proficiency: int = 1
    sites: frozenset[str] | None = None
    timeout: float | None = None
    # Checked when the contact reaches this step and whenever it is routed again (a later step,
    # a released hold, a redirect); once met the step stays open to the contact.
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class SiteSelection:
    """Best-service site selection with hysteresis, as multi-site ACDs do it (Avaya's Best
    Service Routing "user adjustment", Cisco's "consider if" margins).

    A contact goes to its preferred site unless no suitable agent is free there and the site's
    predicted wait exceeds the queue's service-level threshold; then another site is chosen
    only if its predicted wait, from the sites' statistics pulses, is shorter by more than
    ``margin`` seconds.  The contact then queues at the chosen site.  Predictions come from
    pulses, seconds old: with no margin every contact of a pulse interval herds to the one
    site that looked best, and load flaps between sites; the margin damps that.
    ``post_route_after`` is the wait (s) after which a contact queued at a site may be taken by
    any site (post-routing, at the transfer cost); ``None`` keeps it at its site.
    """

    margin: float = 0.0
    post_route_after: float | None = None


@dataclass(frozen=True, slots=True)
class StickyAgent:
    """Last-agent routing: a returning customer goes to the agent who served them last, if that
    agent qualifies and is logged in, waiting up to ``wait`` seconds for them to be free; the
    agent is remembered for ``remember`` seconds after the previous contact ended."""

    remember: float
    wait: float = 0.0


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue (skill group entry point) and its routing policy, flattened at load time.

    ``targets`` already include any queue this one interflows to, so the engine never follows
    references at decision time.  ``ageing`` is the seconds of waiting worth one priority level;
    ``None`` means strict priority.
    """

    id: str
    channel: Channel
    targets: tuple[Target, ...]
    sl_threshold: float = 20.0
    sl_target: float = 0.8
    strategy: AgentStrategy = AgentStrategy.LONGEST_IDLE
    cost_mode: CostMode = CostMode.SERVICE
    priority: int = 0
    ageing: float | None = None
    expected_handle_time: float = 300.0
    wrap_up: float = 0.0
    site_selection: SiteSelection | None = None
    # Redirect on no answer: a reserved agent who has not answered within this many seconds is
    # made not ready ("no answer") and the contact goes back to the head of its queue.
    answer_timeout: float | None = None
    sticky: StickyAgent | None = None
    # Deferrable work (e-mail): any contact of a queue that is not deferrable goes first, so
    # these reach only agents with nothing else to take.
    deferrable: bool = False

    def activation_times(self) -> tuple[float, ...]:
        """Wait (s) at which each target becomes active: cumulative time-outs."""
        times: list[float] = []
        elapsed = 0.0
        for target in self.targets:
            times.append(elapsed)
            elapsed = math.inf if target.timeout is None else elapsed + target.timeout
        return tuple(times)


@dataclass(frozen=True, slots=True)
class Tariffs:
    """Telephony and labour prices that least-cost routing weighs.

    ``per_minute[(caller_region, site_id)]`` is the trunk price of a minute of a caller from that
    region on that site's trunks; ``transfer_per_minute`` and ``transfer_fee`` price moving a call
    that already landed at one site to another (trunk minutes plus a per-transfer fee).
    """

    per_minute: Mapping[tuple[str, str], float]
    default_per_minute: float = 0.0
    transfer_per_minute: float = 0.0
    transfer_fee: float = 0.0

    def trunk(self, caller_region: str, site_id: str) -> float:
        return self.per_minute.get((caller_region, site_id), self.default_per_minute)


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact asking for an agent.

    ``origin_site`` is where the contact has landed; ``None`` means it is still in the carrier
    network (pre-routing), so whichever site takes it costs no transfer.  ``preferred_site`` is
    where site selection sends it first (from the dialled number or the caller's record); when
    ``None`` it is the landing site, or else the first site of the caller's region.
    ``required_skills`` narrow the queue's targets for this contact (language, customer tier).
    """

    id: str
    queue_id: str
    arrival: float
    channel: Channel = Channel.VOICE
    caller_region: str = ""
    origin_site: str | None = None
    preferred_site: str | None = None
    priority: int | None = None
    required_skills: Mapping[str, int] = field(default_factory=dict)
    patience: float = math.inf
    # Who the customer is (last-agent routing) and what else is known of the contact, for
    # target conditions (``contact.tier == "gold"``, ``contact.dialled in ["800"]``).
    customer_id: str | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Network:
    """The whole virtual contact center's configuration, validated and flattened."""

    sites: Mapping[str, Site]
    skills: frozenset[str]
    agents: Mapping[str, AgentProfile]
    queues: Mapping[str, Queue]
    tariffs: Tariffs
    # Named lists target conditions test membership of (``caller in vip``).
    lists: Mapping[str, frozenset[Value]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignment:
    """The engine's decision: this contact goes to this agent at this site (agent reserved)."""

    contact_id: str
    agent_id: str
    site_id: str
    queue_id: str
    target_index: int
    decided_at: float
    expected_cost: float
    transfer: bool
    # The agent calls the customer back (the caller left the queue and kept its place).
    callback: bool = False


@dataclass(frozen=True, slots=True)
class Redirect:
    """The engine took a contact back from a reserved agent who did not answer in time; the
    agent is not ready and the contact is queued again (or already re-assigned)."""

    contact_id: str
    agent_id: str
    at: float
