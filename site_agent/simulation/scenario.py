"""What a simulation run is about: a network, who staffs it when, what traffic it gets.

The network part (skills, sites, queues, tariffs) is the routing configuration itself
(:mod:`routing.config`), so a scenario's queues are checked exactly like production ones.  Agents
are written as staffing groups ("40 billing agents on the early shift with two breaks") because
that is how planners think, and expanded into the engine's per-agent configuration here.  Every
cross-reference is checked when the model is built, so a :class:`Scenario` that exists can run.

Times of day are hours on one simulation clock: 0 is midnight at the start of the first simulated
day, so a night shift is ``start: 22, end: 30``.  Sites in other time zones give their traffic
profile and shifts on that clock.  A shift happens once; runs longer than a day (steady-state
checks against queueing theory) staff groups without a shift, who work the whole run.
"""

from __future__ import annotations

import math
from datetime import date, datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from routing.calendar import load_zone
from routing.config import (
    AgentConfig,
    ConfigError,
    NetworkConfig,
    QueueConfig,
    SiteConfig,
    TariffConfig,
    check_capacity,
    check_skill_levels,
    compile_network,
)
from routing.estimators import make_estimator
from routing.model import Channel, Network
from site_agent.simulation.distributions import HandleTime

SECONDS_PER_MINUTE = 60.0
MINUTES_PER_HOUR = 60
SECONDS_PER_HOUR = SECONDS_PER_MINUTE * MINUTES_PER_HOUR
HOURS_PER_DAY = 24
# Shifts may run into the next morning (night shifts) but not beyond the second simulated day.
LAST_SHIFT_HOUR = 2 * HOURS_PER_DAY


class ScenarioError(ValueError):
    """A scenario that cannot be loaded or run; the message is one line naming the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShiftConfig(_Strict):
    """Hours on the simulation clock between which the group is logged in."""

    start: float = Field(ge=0, lt=LAST_SHIFT_HOUR)
    end: float = Field(gt=0, le=LAST_SHIFT_HOUR)

    @model_validator(mode="after")
    def _ordered(self) -> ShiftConfig:
        if self.end <= self.start:
            raise ValueError(f"shift ends at {self.end} h, not after its start {self.start} h")
        return self


class BreaksConfig(_Strict):
    """Breaks are spread evenly over the shift, each moved by a random jitter drawn from the
    run's seed, so agents of one group do not all leave the phones at the same minute."""

    count: int = Field(ge=1)
    minutes: float = Field(gt=0)
    jitter_minutes: float = Field(default=10.0, ge=0)


class StaffingGroup(_Strict):
    """``count`` identical agents at one site."""

    site: str
    name: str = Field(default="agents", pattern=r"^[A-Za-z0-9_-]+$")
    count: int = Field(ge=0)
    skills: dict[str, int] = Field(min_length=1)
    capacity: dict[Channel, int] = Field(
        default_factory=lambda: {Channel.VOICE: 1, Channel.CALLBACK: 1}
    )
    shift: ShiftConfig | None = Field(default=None, description="Omitted: the whole run.")
    breaks: BreaksConfig | None = None

    _levels = field_validator("skills")(check_skill_levels)

    _capacity = field_validator("capacity")(check_capacity)

    @property
    def label(self) -> str:
        return f"{self.site}/{self.name}"

    def agent_ids(self) -> list[str]:
        return [f"{self.site}.{self.name}.{n:03d}" for n in range(1, self.count + 1)]


class TrafficStream(_Strict):
    """Contacts landing at one site for one queue: a Poisson process whose hourly rate is
    ``calls_per_hour`` times the profile's multiplier for the hour of day."""

    name: str | None = Field(default=None, description="Needed when a site/queue has two streams.")
    site: str
    queue: str
    calls_per_hour: float = Field(ge=0)
    profile: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        max_length=HOURS_PER_DAY,
        description="Multiplier per hour of day; a shorter list repeats (its length divides 24).",
    )
    caller_region: str | None = Field(default=None, description="Omitted: the site's region.")
    handle_time: HandleTime
    mean_patience: float | None = Field(
        default=None, gt=0, description="Seconds, exponential; omitted: callers never hang up."
    )
    required_skills: dict[str, int] = Field(default_factory=dict)
    customers: int | None = Field(
        default=None,
        gt=0,
        description="Callers come from a pool of this many customers (so some return); "
        "omitted: every caller is new.",
    )
    callback_after: float | None = Field(
        default=None,
        gt=0,
        description="Seconds of waiting after which callers are offered a callback.",
    )
    callback_acceptance: float = Field(
        default=1.0, ge=0, le=1, description="Share of callers offered a callback who take it."
    )
    callback_delay: float | None = Field(
        default=None,
        gt=0,
        description="Callers ask to be called this many seconds after taking the offer; "
        "omitted: when they reach the head of the queue.",
    )

    _levels = field_validator("required_skills")(check_skill_levels)

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: list[float]) -> list[float]:
        if HOURS_PER_DAY % len(value):
            raise ValueError(f"has {len(value)} entries; the length must divide 24")
        if any(m < 0 or not math.isfinite(m) for m in value):
            raise ValueError("multipliers must be finite and >= 0")
        return value

    @property
    def key(self) -> str:
        """Stable identity of the stream: it seeds the stream's random numbers."""
        return self.name or f"{self.site}/{self.queue}"

    def rate_at(self, clock: float) -> float:
        """Arrivals per second at ``clock`` seconds."""
        hour = int(clock // SECONDS_PER_HOUR)
        return self.calls_per_hour * self.profile[hour % len(self.profile)] / SECONDS_PER_HOUR

    def peak_rate(self) -> float:
        return self.calls_per_hour * max(self.profile) / SECONDS_PER_HOUR


class SimulationConfig(_Strict):
    hours: float = Field(default=8.0, gt=0)
    start_hour: float = Field(default=0.0, ge=0, lt=HOURS_PER_DAY)
    warmup_minutes: float = Field(
        default=15.0, ge=0, description="Excluded from statistics: the run starts empty."
    )
    interval_minutes: float = Field(default=15.0, gt=0)
    ring_seconds: float = Field(default=0.0, ge=0, description="Reservation to answer.")
    seed: int | None = Field(default=None, description="Omitted: the caller's default seed.")
    pulse_seconds: float = Field(
        default=5.0, gt=0, description="Sites' statistics pulses to the network router."
    )
    margin_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Predicted wait another site must save, for the policies with a margin.",
    )
    pre_routing: bool = Field(
        default=False,
        description="Network policies route contacts before they land (no transfer cost).",
    )
    post_route_after: float | None = Field(
        default=None,
        gt=0,
        description="Seconds queued at a site before any site may take a contact; omitted: never.",
    )
    ewt_estimator: str = Field(
        default="erlang_a", description="How sites compute the expected wait in their pulses."
    )
    first_day: date = Field(
        default=date(2026, 11, 23),
        description="The first simulated day (a Monday by default), for business hours.",
    )
    timezone: str = Field(
        default="UTC", description="IANA zone of the simulation clock: 0 is midnight there."
    )
    no_answer_share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Share of offers an agent lets ring out (queues need an answer_timeout).",
    )
    no_answer_recovery_seconds: float = Field(
        default=60.0, ge=0, description="Seconds before an agent who did not answer is ready."
    )
    shift_protection_minutes: float | None = Field(
        default=None,
        ge=0,
        description="No new contact this close to an agent's shift end; omitted: none.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("ewt_estimator")
    @classmethod
    def _known_estimator(cls, value: str) -> str:
        make_estimator(value)  # raises with the known names
        return value

    @model_validator(mode="after")
    def _warmup_fits(self) -> SimulationConfig:
        if self.warmup_minutes >= self.hours * MINUTES_PER_HOUR:
            raise ValueError(
                f"warmup_minutes ({self.warmup_minutes}) leaves nothing of a "
                f"{self.hours} h run to measure"
            )
        return self

    @property
    def epoch(self) -> float:
        """Unix time of the simulation clock's zero (midnight of ``first_day`` in ``timezone``)."""
        midnight = datetime.combine(self.first_day, datetime.min.time(), load_zone(self.timezone))
        return midnight.timestamp()

    @property
    def start(self) -> float:
        """Clock second the run starts."""
        return self.start_hour * SECONDS_PER_HOUR

    @property
    def end(self) -> float:
        return self.start + self.hours * SECONDS_PER_HOUR

    @property
    def measured_from(self) -> float:
        return self.start + self.warmup_minutes * SECONDS_PER_MINUTE

    @property
    def interval(self) -> float:
        return self.interval_minutes * SECONDS_PER_MINUTE


class Scenario(_Strict):
    name: str = ""
    description: str = ""
    skills: list[str] = Field(min_length=1)
    sites: list[SiteConfig] = Field(min_length=1)
    queues: list[QueueConfig] = Field(min_length=1)
    tariffs: TariffConfig = Field(default_factory=TariffConfig)
    staffing: list[StaffingGroup] = Field(min_length=1)
    traffic: list[TrafficStream] = Field(min_length=1)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        problems = self._reference_problems()
        if not problems:
            try:
                self.network()
            except ConfigError as error:
                problems = [line.strip() for line in str(error).splitlines()[1:]]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _reference_problems(self) -> list[str]:
        sites = {s.id for s in self.sites}
        queues = {q.id for q in self.queues}
        skills = set(self.skills)
        problems: list[str] = []
        groups: set[str] = set()
        for i, group in enumerate(self.staffing):
            where = f"staffing[{i}] ({group.label})"
            if group.label in groups:
                problems.append(f"{where}: duplicate group name at site {group.site!r}")
            groups.add(group.label)
            if group.site not in sites:
                problems.append(f"{where}.site: unknown site {group.site!r}")
            problems += [
                f"{where}.skills: unknown skill {s!r}" for s in group.skills if s not in skills
            ]
            shift = group.shift
            shift_hours = shift.end - shift.start if shift else self.simulation.hours
            if (
                group.breaks
                and group.breaks.count * group.breaks.minutes >= shift_hours * MINUTES_PER_HOUR
            ):
                problems.append(f"{where}.breaks: breaks take the whole shift")
        ring = self.simulation.ring_seconds
        for q in self.queues:
            if q.answer_timeout is None and self.simulation.no_answer_share > 0:
                problems.append(f"queues ({q.id}): no_answer_share needs an answer_timeout here")
            if q.answer_timeout is not None and q.answer_timeout <= ring:
                problems.append(
                    f"queues ({q.id}): answer_timeout {q.answer_timeout} s is not longer than "
                    f"simulation.ring_seconds {ring} s: every offer would be redirected"
                )
        channels = {q.id: q.channel for q in self.queues}
        streams: set[str] = set()
        for i, stream in enumerate(self.traffic):
            where = f"traffic[{i}] ({stream.key})"
            if stream.key in streams:
                problems.append(f"{where}: two streams for one site and queue need distinct names")
            streams.add(stream.key)
            if stream.site not in sites:
                problems.append(f"{where}.site: unknown site {stream.site!r}")
            if stream.queue not in queues:
                problems.append(f"{where}.queue: unknown queue {stream.queue!r}")
            elif stream.callback_after is not None and channels[stream.queue] is not Channel.VOICE:
                problems.append(f"{where}.callback_after: callbacks are for calls only")
            problems += [
                f"{where}.required_skills: unknown skill {s!r}"
                for s in stream.required_skills
                if s not in skills
            ]
        return problems

    def agent_configs(self) -> list[AgentConfig]:
        return [
            AgentConfig(
                id=agent_id,
                site=group.site,
                skills=dict(group.skills),
                capacity=dict(group.capacity),
            )
            for group in self.staffing
            for agent_id in group.agent_ids()
        ]

    def network(self) -> Network:
        """The engine's network: the routing configuration with the staffing expanded."""
        return compile_network(
            NetworkConfig(
                skills=self.skills,
                sites=self.sites,
                queues=self.queues,
                tariffs=self.tariffs,
                agents=self.agent_configs(),
            )
        )

    def caller_region(self, stream: TrafficStream) -> str:
        if stream.caller_region is not None:
            return stream.caller_region
        return next(s.region for s in self.sites if s.id == stream.site)

    def with_hours(self, hours: float) -> Scenario:
        """The same scenario run for ``hours`` (validated again: the warm-up must still fit)."""
        data = self.model_dump()
        data["simulation"]["hours"] = hours
        return parse_scenario(data, self.name or "scenario")


def parse_scenario(data: object, source: str) -> Scenario:
    """Validate a scenario document; ``source`` (a file or scenario name) prefixes the error."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(f"{source}: {describe_errors(error)}") from None


def describe_errors(error: ValidationError) -> str:
    """All problems on one line, each led by the path of its field (``traffic[2].queue``)."""
    problems = []
    for item in error.errors():
        path = "".join(_path_part(part) for part in item["loc"]).lstrip(".")
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {message}" if path else message)
    return "; ".join(problems)


def _path_part(part: int | str) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f" {part}" if part.startswith("[") else f".{part}"
