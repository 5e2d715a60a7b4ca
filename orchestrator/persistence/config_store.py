"""The network configuration as operators edit it: one resource at a time, always loadable.

Every change is applied to a copy of the whole stored configuration and checked by the routing
loader (``routing.config.compile_network``) before anything is written, so the database never
holds a configuration the router would refuse: an agent with an unknown skill, a queue
overflowing into a cycle.  A refused change raises the loader's ``ConfigError`` and writes
nothing.  An accepted one bumps the configuration version and logs one audit entry per resource
it changed, in the same transaction.

A configuration may be incomplete (no site or no queue yet): operators build a network one
resource at a time, and an empty network routes nothing.  Every reference that is there must
resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.persistence.audit import Clock, utc_now
from orchestrator.persistence.errors import NotFoundError, VersionConflictError
from orchestrator.persistence.models import (
    AgentRow,
    AgentSkillRow,
    AuditEntryRow,
    Base,
    ConfigVersionRow,
)
from orchestrator.persistence.resources import (
    KINDS,
    ContactAttributeConfig,
    NamedListConfig,
    R,
    Resource,
    ResourceKind,
    SkillConfig,
    kind_of,
)
from routing.config import (
    AgentConfig,
    NetworkConfig,
    QueueConfig,
    SiteConfig,
    TariffConfig,
    compile_network,
)
from routing.model import Network

# Resources by kind, then by id.
_Resources = dict[ResourceKind, dict[str, Resource]]

_VERSION_ROW = 1
# A snapshot re-reads when a change commits while it loads; this many tries, then it gives up.
_SNAPSHOT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """The configuration at one version, as documents and as the engine's network."""

    version: int
    config: NetworkConfig
    network: Network


@dataclass(frozen=True, slots=True)
class _Change:
    kind: ResourceKind
    id: str
    before: Resource | None
    after: Resource | None

    @property
    def action(self) -> str:
        if self.before is None:
            return "create"
        return "delete" if self.after is None else "update"


class ConfigStore:
    """Configuration resources: sites, skills, agents, queues, tariffs, contact attributes, lists.

    Writers take ``expected_version`` for optimistic concurrency across a read-modify-write that
    spans requests (an operator edits what they read a minute ago): the change is refused with
    :class:`VersionConflictError` if anyone changed the configuration since.  Without it a change
    applies to the latest configuration, and is still validated against exactly that: every
    write first bumps the version row, which serialises writers on the one row lock.
    """

    def __init__(self, sessions: sessionmaker[Session], *, clock: Clock = utc_now) -> None:
        self._sessions = sessions
        self._clock = clock

    def version(self) -> int:
        with self._sessions() as session:
            return _read_version(session)

    def get(self, kind: type[R], resource_id: str) -> R | None:
        """``get(TariffConfig, TARIFFS_ID)``: the tariffs, ``None`` while never set."""
        row_type = kind_of(kind).row
        with self._sessions() as session:
            row = session.get(row_type, resource_id)
            return None if row is None else kind.model_validate(row.payload)

    def list(self, kind: type[R]) -> Sequence[R]:
        """All resources of a kind, by id."""
        row_type = kind_of(kind).row
        with self._sessions() as session:
            payloads = session.scalars(select(row_type.payload).order_by(row_type.id)).all()
        return [kind.model_validate(payload) for payload in payloads]

    def agents(
        self, *, site: str | None = None, skill: str | None = None, min_level: int = 1
    ) -> Sequence[AgentConfig]:
        """Agents of a site, or with a skill at ``min_level`` or above, by id."""
        query = select(AgentRow.payload).order_by(AgentRow.id)
        if site is not None:
            query = query.where(AgentRow.site_id == site)
        if skill is not None:
            query = query.join(AgentSkillRow).where(
                AgentSkillRow.skill_id == skill, AgentSkillRow.level >= min_level
            )
        with self._sessions() as session:
            payloads = session.scalars(query).all()
        return [AgentConfig.model_validate(payload) for payload in payloads]

    def snapshot(self) -> ConfigSnapshot:
        """The whole configuration at one version.

        Reads are not one transaction snapshot on every backend, so the version is read before
        and after loading: equal, nothing committed in between.
        """
        for _ in range(_SNAPSHOT_ATTEMPTS):
            with self._sessions() as session:
                version = _read_version(session)
                resources = _load(session)
                if _read_version(session) != version:
                    continue
            config = _assemble(resources)
            return ConfigSnapshot(version, config, compile_network(config))
        raise RuntimeError(f"configuration changed during {_SNAPSHOT_ATTEMPTS} reads in a row")

    def put(self, resource: Resource, *, actor: str, expected_version: int | None = None) -> int:
        """Create or replace a resource; returns the configuration version after it.

        Putting a resource exactly as stored changes nothing and returns the current version.
        """
        kind = kind_of(type(resource))
        key = kind.key(resource)

        def edit(resources: _Resources) -> None:
            resources[kind][key] = resource

        return self._change(edit, actor=actor, expected_version=expected_version)

    def delete(
        self,
        kind: type[Resource],
        resource_id: str,
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> int:
        """Remove a resource nothing else refers to (else ``ConfigError`` says what does)."""
        resource_kind = kind_of(kind)

        def edit(resources: _Resources) -> None:
            if resources[resource_kind].pop(resource_id, None) is None:
                raise NotFoundError(f"no {resource_kind.name} {resource_id!r}")

        return self._change(edit, actor=actor, expected_version=expected_version)

    def replace(
        self, config: NetworkConfig, *, actor: str, expected_version: int | None = None
    ) -> int:
        """Make the stored configuration ``config`` (seeding from a scenario, an import).

        The audit log gets an entry for each resource created, changed or removed.  Resources
        are stored by id, so a duplicate id is refused here, before it could hide in a dict.
        """
        compile_network(config)
        documents: dict[type[Resource], list[Resource]] = {
            SkillConfig: [SkillConfig(id=skill) for skill in config.skills],
            SiteConfig: list(config.sites),
            ContactAttributeConfig: [
                ContactAttributeConfig(id=name, type=value_type)
                for name, value_type in config.contact_attributes.items()
            ],
            NamedListConfig: [
                NamedListConfig(id=name, values=values) for name, values in config.lists.items()
            ],
            # Default tariffs and no tariffs row mean the same; keep the table empty then.
            TariffConfig: [] if config.tariffs == TariffConfig() else [config.tariffs],
            AgentConfig: list(config.agents),
            QueueConfig: list(config.queues),
        }

        def edit(resources: _Resources) -> None:
            for kind in KINDS:
                resources[kind] = {kind.key(item): item for item in documents[kind.model]}

        return self._change(edit, actor=actor, expected_version=expected_version)

    def _change(
        self,
        edit: Callable[[_Resources], None],
        *,
        actor: str,
        expected_version: int | None,
    ) -> int:
        with self._sessions() as session:
            version = _bump_version(session, expected_version)
            current = _load(session)
            proposed = {kind: dict(items) for kind, items in current.items()}
            edit(proposed)
            changes = list(_diff(current, proposed))
            if not changes:
                return version - 1  # leaving without commit undoes the bump
            compile_network(_assemble(proposed))
            _write(session, changes)
            at = self._clock()
            session.add_all(
                AuditEntryRow(
                    at=at,
                    actor=actor,
                    action=change.action,
                    resource_type=change.kind.name,
                    resource_id=change.id,
                    config_version=version,
                    before=_dump(change.before),
                    after=_dump(change.after),
                )
                for change in changes
            )
            session.commit()
            return version


def _read_version(session: Session) -> int:
    version = session.get(ConfigVersionRow, _VERSION_ROW, populate_existing=True)
    if version is None:
        raise RuntimeError("database has no configuration version: run persistence.upgrade(url)")
    return version.version


def _bump_version(session: Session, expected: int | None) -> int:
    """Take the configuration's write lock by bumping its version; the new version."""
    statement = (
        update(ConfigVersionRow)
        .where(ConfigVersionRow.id == _VERSION_ROW)
        .values(version=ConfigVersionRow.version + 1)
        .returning(ConfigVersionRow.version)
    )
    if expected is not None:
        statement = statement.where(ConfigVersionRow.version == expected)
    bumped = session.execute(statement).scalar_one_or_none()
    if bumped is not None:
        return int(bumped)
    actual = _read_version(session)
    raise VersionConflictError(
        f"configuration is at version {actual}, the change was made against {expected}",
        expected=expected if expected is not None else actual,
        actual=actual,
    )


def _load(session: Session) -> _Resources:
    resources: _Resources = {}
    for kind in KINDS:
        rows = session.scalars(select(kind.row).order_by(kind.row.id)).all()
        resources[kind] = {row.id: kind.model.model_validate(row.payload) for row in rows}
    return resources


def _assemble(resources: _Resources) -> NetworkConfig:
    """The network document of the stored resources, each already validated on its own.

    ``model_construct`` skips only NetworkConfig's own checks, which demand at least one site,
    skill and queue; ``compile_network`` checks every reference.
    """

    def documents(model: type[R]) -> list[R]:
        return [item for item in resources[kind_of(model)].values() if isinstance(item, model)]

    tariffs = documents(TariffConfig)
    return NetworkConfig.model_construct(
        skills=[skill.id for skill in documents(SkillConfig)],
        sites=documents(SiteConfig),
        queues=documents(QueueConfig),
        tariffs=tariffs[0] if tariffs else TariffConfig(),
        agents=documents(AgentConfig),
        contact_attributes={item.id: item.type for item in documents(ContactAttributeConfig)},
        lists={item.id: item.values for item in documents(NamedListConfig)},
    )


def _diff(current: _Resources, proposed: _Resources) -> Iterator[_Change]:
    for kind in KINDS:
        before, after = current[kind], proposed[kind]
        for key in sorted(before.keys() | after.keys()):
            if before.get(key) != after.get(key):
                yield _Change(kind, key, before.get(key), after.get(key))


def _write(session: Session, changes: Sequence[_Change]) -> None:
    """Deletes first, dependants before what they depend on; then inserts and updates."""
    for kind in reversed(KINDS):
        gone = [{"key": c.id} for c in changes if c.kind is kind and c.after is None]
        if not gone:
            continue
        table = _table(kind.row)
        if kind.row is AgentRow:
            _delete_agent_skills(session, gone)
        session.execute(delete(table).where(table.c.id == bindparam("key")), gone)
    for kind in KINDS:
        created = [
            _row(c.id, c.after)
            for c in changes
            if c.kind is kind and c.before is None and c.after is not None
        ]
        updated = [
            _row(c.id, c.after)
            for c in changes
            if c.kind is kind and c.before is not None and c.after is not None
        ]
        if created:
            session.execute(insert(kind.row), created)
        if updated:
            session.execute(update(kind.row), updated)
        if kind.row is AgentRow:
            _delete_agent_skills(session, [{"key": row["id"]} for row in updated])
            levels = [
                {"agent_id": agent.id, "skill_id": skill, "level": level}
                for agent in (c.after for c in changes if c.kind is kind)
                if isinstance(agent, AgentConfig)
                for skill, level in agent.skills.items()
            ]
            if levels:
                session.execute(insert(AgentSkillRow), levels)


def _delete_agent_skills(session: Session, agents: list[dict[str, str]]) -> None:
    if agents:
        table = _table(AgentSkillRow)
        session.execute(delete(table).where(table.c.agent_id == bindparam("key")), agents)


def _table(row_type: type[Base]) -> Table:
    """The Core table of a model, for executemany deletes the ORM does not batch."""
    return cast(Table, row_type.__table__)


def _row(key: str, resource: Resource) -> dict[str, Any]:
    row: dict[str, Any] = {"id": key, "payload": _dump(resource)}
    if isinstance(resource, AgentConfig):
        row["site_id"] = resource.site
    return row


def _dump(resource: Resource | None) -> dict[str, Any] | None:
    return None if resource is None else resource.model_dump(mode="json")
