"""Loading a network configuration: validation with clear errors, then flattening for the engine.

Operators write queues as workflows (ordered targets with time-outs, and an optional interflow to
another queue).  Everything that can be wrong is caught here, once, with the path of the bad
field: unknown skills or sites, negative prices, empty or cyclic policies, an interflow that can
never happen.  The engine then only sees flat, valid :class:`routing.model.Network` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from routing.calendar import BusinessHours
from routing.conditions import (
    Condition,
    ConditionError,
    ConditionSchema,
    Value,
    ValueType,
    parse_condition,
)
from routing.model import (
    AgentProfile,
    AgentStrategy,
    Channel,
    CostMode,
    Network,
    Queue,
    Site,
    SiteSelection,
    StickyAgent,
    Target,
    Tariffs,
)
from routing.rules import QUEUE_FUNCTIONS, SITE_FUNCTIONS, SKILL_FUNCTIONS, condition_schema
from routing.skills import SkillExprError, parse_skill_expr


class ConfigError(ValueError):
    """A configuration that cannot be loaded; the message lists every problem found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    id: str = Field(min_length=1)
    region: str = Field(min_length=1)
    timezone: str = "UTC"
    trunk_capacity: int = Field(default=1_000, ge=0)
    agent_cost_per_hour: float = Field(default=0.0, ge=0)
    remote: bool = False
    hours: BusinessHours | None = Field(
        default=None,
        description="Business hours and holidays, in the site's time zone; omitted: always open.",
    )

    @model_validator(mode="before")
    @classmethod
    def _hours_in_site_zone(cls, data: Any) -> Any:
        """Opening hours are in the site's own zone unless they say otherwise."""
        if isinstance(data, dict) and isinstance(data.get("hours"), dict):
            hours = {"timezone": data.get("timezone", "UTC"), **data["hours"]}
            data = {**data, "hours": hours}
        return data


class TargetConfig(_Strict):
    skills: str = Field(description="Skill expression, e.g. 'billing>=5 & (spanish | catalan)'.")
    min_proficiency: int = Field(default=1, ge=1, le=10)
    sites: list[str] | None = Field(default=None, description="Allowed sites; omitted: all.")
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds in this step before the next one also applies."
    )
    condition: str | None = Field(
        default=None,
        description="Condition on live figures and contact data, e.g. 'queue_length > 25'.",
    )


class SiteSelectionConfig(_Strict):
    margin: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Seconds of predicted wait another site must save to be chosen.",
    )
    post_route_after: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds queued at a site before any site may take the contact.",
    )


class StickyConfig(_Strict):
    remember: float = Field(
        gt=0, allow_inf_nan=False, description="Seconds a customer's last agent is remembered."
    )
    wait: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Seconds a contact waits for that agent to be free before any agent.",
    )


class QueueConfig(_Strict):
    id: str = Field(min_length=1)
    channel: Channel = Channel.VOICE
    targets: list[TargetConfig]
    overflow_to: str | None = Field(
        default=None, description="Queue whose targets apply after this queue's last time-out."
    )
    sl_threshold: float = Field(default=20.0, gt=0)
    sl_target: float = Field(default=0.8, gt=0, le=1)
    strategy: AgentStrategy = AgentStrategy.LONGEST_IDLE
    cost_mode: CostMode = CostMode.SERVICE
    priority: int = 0
    ageing: float | None = Field(default=None, gt=0)
    expected_handle_time: float = Field(default=300.0, gt=0)
    wrap_up: float = Field(default=0.0, ge=0)
    site_selection: SiteSelectionConfig | None = Field(
        default=None, description="Preferred site first, others by predicted wait and margin."
    )
    answer_timeout: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a reserved agent has to answer before the contact is redirected.",
    )
    sticky: StickyConfig | None = Field(
        default=None, description="Last-agent routing for returning customers."
    )
    deferrable: bool = Field(
        default=False, description="Offered only to agents with nothing else to take (e-mail)."
    )


class TariffConfig(_Strict):
    per_minute: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="caller region -> site -> price per minute"
    )
    default_per_minute: float = Field(default=0.0, ge=0)
    transfer_per_minute: float = Field(default=0.0, ge=0)
    transfer_fee: float = Field(default=0.0, ge=0)

    @field_validator("per_minute")
    @classmethod
    def _non_negative(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for region, row in value.items():
            for site, price in row.items():
                if price < 0:
                    raise ValueError(f"negative price {price} for region {region!r} at {site!r}")
        return value


def check_skill_levels(skills: dict[str, int]) -> dict[str, int]:
    """Shared by every document that gives an agent or a contact skill levels."""
    for skill, level in skills.items():
        if not 1 <= level <= 10:
            raise ValueError(f"proficiency of {skill!r} is {level}, expected 1-10")
    return skills


def check_capacity(capacity: dict[Channel, int]) -> dict[Channel, int]:
    for channel, count in capacity.items():
        if count < 0:
            raise ValueError(f"negative capacity {count} for {channel}")
    return capacity


class AgentConfig(_Strict):
    id: str = Field(min_length=1)
    site: str
    skills: dict[str, int]
    capacity: dict[Channel, int] = Field(
        default_factory=lambda: {Channel.VOICE: 1, Channel.CALLBACK: 1}
    )

    _levels = field_validator("skills")(check_skill_levels)
    _capacity = field_validator("capacity")(check_capacity)


class NetworkConfig(_Strict):
    skills: list[str] = Field(min_length=1)
    sites: list[SiteConfig] = Field(min_length=1)
    queues: list[QueueConfig] = Field(min_length=1)
    tariffs: TariffConfig = Field(default_factory=TariffConfig)
    agents: list[AgentConfig] = Field(default_factory=list)
    contact_attributes: dict[str, ValueType] = Field(
        default_factory=dict,
        description="Contact data conditions may test, by name and type: contact.NAME.",
    )
    lists: dict[str, list[str] | list[float]] = Field(
        default_factory=dict, description="Named lists conditions test membership of."
    )


def network_from_dict(data: Mapping[str, Any]) -> Network:
    """Validate a configuration document and build the engine's network from it."""
    try:
        config = NetworkConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    return compile_network(config)


def compile_network(config: NetworkConfig) -> Network:
    problems: list[str] = []
    skills = frozenset(config.skills)
    sites = _unique("sites", [s.id for s in config.sites], problems)
    queues = _unique("queues", [q.id for q in config.queues], problems)
    _unique("agents", [a.id for a in config.agents], problems)

    for region, row in config.tariffs.per_minute.items():
        problems += [
            f"tariffs.per_minute.{region}: unknown site {site!r}"
            for site in row
            if site not in sites
        ]
    for i, agent in enumerate(config.agents):
        if agent.site not in sites:
            problems.append(f"agents[{i}] ({agent.id}): unknown site {agent.site!r}")
        problems += [
            f"agents[{i}] ({agent.id}): unknown skill {skill!r}"
            for skill in agent.skills
            if skill not in skills
        ]
    schema = condition_schema(
        config.contact_attributes,
        {name: _list_type(values) for name, values in config.lists.items()},
    )
    targets: dict[str, list[Target]] = {}
    for i, queue in enumerate(config.queues):
        where = f"queues[{i}] ({queue.id})"
        if not queue.targets:
            problems.append(f"{where}: routing policy has no targets")
        if queue.overflow_to is not None and queue.overflow_to not in queues:
            problems.append(f"{where}: overflow_to names unknown queue {queue.overflow_to!r}")
        if queue.overflow_to is not None and queue.targets and queue.targets[-1].timeout is None:
            problems.append(
                f"{where}: overflows to {queue.overflow_to!r} but its last target has no timeout"
            )
        compiled: list[Target] = []
        for j, target in enumerate(queue.targets):
            if target.timeout is None and j + 1 < len(queue.targets):
                problems.append(
                    f"{where}.targets[{j}]: has no timeout, so targets[{j + 1}] can never apply"
                )
            try:
                expression = parse_skill_expr(target.skills, skills)
            except SkillExprError as error:
                problems.append(f"{where}.targets[{j}]: {error}")
                continue
            unknown_sites = [s for s in target.sites or () if s not in sites]
            if unknown_sites:
                problems.append(f"{where}.targets[{j}]: unknown site(s) {unknown_sites}")
            if target.sites is not None and not target.sites:
                problems.append(f"{where}.targets[{j}]: empty site list admits nobody")
            condition = None
            if target.condition is not None:
                try:
                    condition = _condition(target.condition, schema, config)
                except ConditionError as error:
                    problems.append(f"{where}.targets[{j}].condition: {error}")
            compiled.append(
                Target(
                    expression=expression,
                    min_proficiency=target.min_proficiency,
                    sites=None if target.sites is None else frozenset(target.sites),
                    timeout=target.timeout,
                    condition=condition,
                )
            )
        targets[queue.id] = compiled
    chains = {q.id: _overflow_chain(q.id, config.queues, problems) for q in config.queues}
    if problems:
        raise ConfigError("invalid network configuration:\n  " + "\n  ".join(problems))

    return Network(
        sites={
            s.id: Site(
                id=s.id,
                region=s.region,
                timezone=s.timezone,
                trunk_capacity=s.trunk_capacity,
                agent_cost_per_hour=s.agent_cost_per_hour,
                remote=s.remote,
                hours=s.hours,
            )
            for s in config.sites
        },
        skills=skills,
        agents={
            a.id: AgentProfile(
                id=a.id, site_id=a.site, skills=dict(a.skills), capacity=dict(a.capacity)
            )
            for a in config.agents
        },
        queues={
            q.id: Queue(
                id=q.id,
                channel=q.channel,
                targets=tuple(t for queue_id in chains[q.id] for t in targets[queue_id]),
                sl_threshold=q.sl_threshold,
                sl_target=q.sl_target,
                strategy=q.strategy,
                cost_mode=q.cost_mode,
                priority=q.priority,
                ageing=q.ageing,
                expected_handle_time=q.expected_handle_time,
                wrap_up=q.wrap_up,
                site_selection=None
                if q.site_selection is None
                else SiteSelection(
                    margin=q.site_selection.margin,
                    post_route_after=q.site_selection.post_route_after,
                ),
                answer_timeout=q.answer_timeout,
                sticky=None
                if q.sticky is None
                else StickyAgent(remember=q.sticky.remember, wait=q.sticky.wait),
                deferrable=q.deferrable,
            )
            for q in config.queues
        },
        tariffs=Tariffs(
            per_minute={
                (region, site): price
                for region, row in config.tariffs.per_minute.items()
                for site, price in row.items()
            },
            default_per_minute=config.tariffs.default_per_minute,
            transfer_per_minute=config.tariffs.transfer_per_minute,
            transfer_fee=config.tariffs.transfer_fee,
        ),
        lists={name: frozenset[Value](values) for name, values in config.lists.items()},
    )


def _list_type(values: list[str] | list[float]) -> ValueType:
    return ValueType.STRING if all(isinstance(v, str) for v in values) else ValueType.NUMBER


def _condition(text: str, schema: ConditionSchema, config: NetworkConfig) -> Condition:
    """Parse a target condition and check the arguments of its functions: a skill expression
    for agent counts, a known site or queue for the others."""
    condition = parse_condition(text, schema)
    sites = {s.id for s in config.sites}
    queues = {q.id for q in config.queues}
    for call in sorted(condition.functions(), key=str):
        argument = str(call.args[0].value)
        if call.function in SKILL_FUNCTIONS:
            try:
                parse_skill_expr(argument, frozenset(config.skills))
            except SkillExprError as error:
                raise ConditionError(f"{call.function}({argument!r}): {error}") from None
        elif call.function in SITE_FUNCTIONS and argument not in sites:
            raise ConditionError(f"{call.function}({argument!r}): unknown site")
        elif call.function in QUEUE_FUNCTIONS and argument not in queues:
            raise ConditionError(f"{call.function}({argument!r}): unknown queue")
    return condition


def _overflow_chain(start: str, queues: list[QueueConfig], problems: list[str]) -> list[str]:
    by_id = {q.id: q for q in queues}
    chain = [start]
    following = by_id[start].overflow_to
    while following is not None and following in by_id:
        if following in chain:
            cycle = " -> ".join([*chain[chain.index(following) :], following])
            message = f"queues: overflow cycle {cycle}"
            if message not in problems:
                problems.append(message)
            break
        if by_id[following].channel is not by_id[start].channel:
            problems.append(f"queues: {chain[-1]!r} overflows to {following!r} of another channel")
            break
        chain.append(following)
        following = by_id[following].overflow_to
    return chain


def _unique(kind: str, ids: list[str], problems: list[str]) -> set[str]:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            problems.append(f"{kind}: duplicate id {item!r}")
        seen.add(item)
    return seen


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "configuration"
        lines.append(f"{where}: {item['msg']}")
    return "invalid network configuration:\n  " + "\n  ".join(lines)
