"""ConfigStore: resources round-trip, every change is validated whole, versioned and audited."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.persistence import (
    TARIFFS_ID,
    ContactAttributeConfig,
    Database,
    NamedListConfig,
    NotFoundError,
    SkillConfig,
    VersionConflictError,
)
from routing.config import (
    AgentConfig,
    ConfigError,
    NetworkConfig,
    QueueConfig,
    SiteConfig,
    TariffConfig,
    network_from_dict,
)
from routing.model import Channel

StoredState = Callable[[], dict[str, list[tuple[Any, ...]]]]

NETWORK: dict[str, Any] = {
    "skills": ["billing", "spanish", "tech"],
    "sites": [
        {
            "id": "madrid",
            "region": "es",
            "timezone": "Europe/Madrid",
            "agent_cost_per_hour": 20.0,
            "hours": {"weekly": {"mon": ["08:00-20:00"]}, "closed": ["2025-12-25"]},
        },
        {"id": "paris", "region": "fr", "timezone": "Europe/Paris", "agent_cost_per_hour": 30.0},
    ],
    "agents": [
        {"id": "ana", "site": "madrid", "skills": {"billing": 6, "spanish": 9}},
        {"id": "bob", "site": "paris", "skills": {"billing": 8, "tech": 4}},
        {"id": "eve", "site": "paris", "skills": {"tech": 7}, "capacity": {"chat": 3}},
    ],
    "queues": [
        {
            "id": "billing",
            "targets": [
                {"skills": "billing>=7", "sites": ["paris"], "timeout": 20},
                {"skills": "billing", "condition": "contact.tier == 'gold' or customer in vip"},
            ],
            "strategy": "most_skilled",
            "site_selection": {"margin": 10},
        },
        {
            "id": "spanish",
            "targets": [{"skills": "spanish", "timeout": 30}],
            "overflow_to": "billing",
            "sl_threshold": 30,
        },
    ],
    "tariffs": {"per_minute": {"es": {"madrid": 0.01, "paris": 0.03}}, "transfer_fee": 0.05},
    "contact_attributes": {"tier": "string"},
    "lists": {"vip": ["+34600000001", "+33600000002"]},
}


def seed(db: Database) -> int:
    return db.config.replace(NetworkConfig.model_validate(NETWORK), actor="seed")


def agent(agent_id: str, site: str = "paris", **skills: int) -> AgentConfig:
    return AgentConfig(id=agent_id, site=site, skills=skills or {"billing": 5})


def test_a_seeded_network_compiles_to_the_loaders_network(db: Database) -> None:
    assert seed(db) == 1

    snapshot = db.config.snapshot()

    assert snapshot.version == 1
    assert snapshot.network == network_from_dict(NETWORK)
    assert snapshot.config == NetworkConfig.model_validate(NETWORK)


def test_every_kind_of_resource_round_trips(db: Database) -> None:
    seed(db)
    config = NetworkConfig.model_validate(NETWORK)

    assert db.config.list(SkillConfig) == [
        SkillConfig(id=s) for s in ("billing", "spanish", "tech")
    ]
    assert db.config.list(SiteConfig) == config.sites
    assert db.config.get(SiteConfig, "madrid") == config.sites[0]
    assert db.config.get(SiteConfig, "madrid").hours is not None  # type: ignore[union-attr]
    assert db.config.list(AgentConfig) == config.agents
    assert db.config.get(AgentConfig, "eve") == config.agents[2]
    assert db.config.get(AgentConfig, "eve").capacity == {Channel.CHAT: 3}  # type: ignore[union-attr]
    assert db.config.list(QueueConfig) == config.queues
    assert db.config.get(QueueConfig, "spanish") == config.queues[1]
    assert db.config.get(TariffConfig, TARIFFS_ID) == config.tariffs
    assert db.config.list(ContactAttributeConfig) == [
        ContactAttributeConfig(id="tier", type="string")
    ]
    assert db.config.list(NamedListConfig) == [
        NamedListConfig(id="vip", values=["+34600000001", "+33600000002"])
    ]
    assert db.config.get(QueueConfig, "nowhere") is None


def test_each_accepted_change_bumps_the_version_by_one(db: Database) -> None:
    assert db.config.version() == 0
    assert db.config.put(SkillConfig(id="billing"), actor="admin") == 1
    assert db.config.put(SiteConfig(id="paris", region="fr"), actor="admin") == 2
    assert db.config.put(agent("bob"), actor="admin") == 3
    assert db.config.put(SiteConfig(id="paris", region="fr", remote=True), actor="admin") == 4
    assert db.config.delete(AgentConfig, "bob", actor="admin") == 5
    assert db.config.version() == 5
    assert db.config.snapshot().network.sites["paris"].remote


def test_putting_a_resource_as_stored_changes_nothing(
    db: Database, stored_state: StoredState
) -> None:
    seed(db)
    before = stored_state()

    assert db.config.put(agent("bob", billing=8, tech=4), actor="admin") == 1
    assert db.config.replace(NetworkConfig.model_validate(NETWORK), actor="admin") == 1

    assert stored_state() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.put(agent("zoe", klingon=5), actor="admin"), "unknown skill 'klingon'"),
        (lambda c: c.put(agent("zoe", "tokyo"), actor="admin"), "unknown site 'tokyo'"),
        (
            lambda c: c.put(
                QueueConfig.model_validate(
                    {
                        **NETWORK["queues"][0],
                        "overflow_to": "spanish",
                        "targets": [{"skills": "billing", "timeout": 20}],
                    }
                ),
                actor="admin",
            ),
            "overflow cycle billing -> spanish -> billing",
        ),
        (lambda c: c.delete(SkillConfig, "tech", actor="admin"), "unknown skill 'tech'"),
        (lambda c: c.delete(SiteConfig, "madrid", actor="admin"), "unknown site 'madrid'"),
        (lambda c: c.delete(NamedListConfig, "vip", actor="admin"), "unknown list 'vip'"),
        (
            lambda c: c.delete(QueueConfig, "billing", actor="admin"),
            "overflow_to names unknown queue 'billing'",
        ),
        (
            lambda c: c.replace(
                NetworkConfig.model_validate(
                    {**NETWORK, "agents": [*NETWORK["agents"], NETWORK["agents"][0]]}
                ),
                actor="import",
            ),
            "agents: duplicate id 'ana'",
        ),
    ],
    ids=[
        "unknown-skill",
        "unknown-site",
        "overflow-cycle",
        "skill-in-use",
        "site-in-use",
        "list-in-use",
        "overflow-target",
        "duplicate-in-replace",
    ],
)
def test_an_invalid_change_is_refused_with_the_loaders_message_and_stores_nothing(
    db: Database,
    stored_state: StoredState,
    change: Callable[[Any], int],
    message: str,
) -> None:
    seed(db)
    before = stored_state()

    with pytest.raises(ConfigError, match="invalid network configuration") as refused:
        change(db.config)

    assert message in str(refused.value)
    assert stored_state() == before
    assert db.config.version() == 1


def test_deleting_what_is_not_there_is_not_found_and_stores_nothing(
    db: Database, stored_state: StoredState
) -> None:
    seed(db)
    before = stored_state()

    with pytest.raises(NotFoundError, match="no agent 'zoe'"):
        db.config.delete(AgentConfig, "zoe", actor="admin")

    assert stored_state() == before


def test_a_change_made_against_an_old_version_is_a_conflict(
    db: Database, stored_state: StoredState
) -> None:
    seed(db)
    db.config.put(agent("zoe"), actor="alice", expected_version=1)
    before = stored_state()

    with pytest.raises(VersionConflictError) as conflict:
        db.config.put(agent("zoe", tech=9), actor="bob", expected_version=1)

    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert stored_state() == before
    assert db.config.put(agent("zoe", tech=9), actor="bob", expected_version=2) == 3


def test_of_two_racing_writers_of_one_version_exactly_one_wins(db: Database) -> None:
    seed(db)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def write(skill: str) -> None:
        start.wait()
        try:
            db.config.put(agent("zoe", **{skill: 5}), actor=skill, expected_version=1)
            outcomes.append("won")
        except VersionConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(s,)) for s in ("billing", "tech")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict", "won"]
    assert db.config.version() == 2


def test_concurrent_writers_without_a_version_are_applied_one_after_the_other(
    db: Database,
) -> None:
    seed(db)
    names = [f"agent{i}" for i in range(8)]
    threads = [
        threading.Thread(target=db.config.put, args=(agent(name),), kwargs={"actor": name})
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert db.config.version() == 1 + len(names)
    assert set(names) <= set(db.config.snapshot().network.agents)
    versions = [e.config_version for e in db.audit.entries(resource_type="agent").items]
    assert sorted(v for v in versions if v is not None and v > 1) == list(range(2, 10))


def test_every_change_is_audited_with_who_when_and_the_documents(db: Database) -> None:
    db.config.put(SkillConfig(id="billing"), actor="key:alice")
    db.config.put(SiteConfig(id="paris", region="fr"), actor="key:alice")
    db.config.put(SiteConfig(id="paris", region="eu"), actor="key:bob")
    db.config.delete(SiteConfig, "paris", actor="key:carol")

    entries = db.audit.entries(resource_type="site").items

    assert [(e.actor, e.action, e.resource_id, e.config_version) for e in entries] == [
        ("key:carol", "delete", "paris", 4),
        ("key:bob", "update", "paris", 3),
        ("key:alice", "create", "paris", 2),
    ]
    deleted, updated, created = entries
    assert created.before is None
    assert created.after == SiteConfig(id="paris", region="fr").model_dump(mode="json")
    assert (updated.before, updated.after) == (created.after, deleted.before)
    assert deleted.after is None
    assert deleted.before is not None and deleted.before["region"] == "eu"
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)


def test_a_replace_audits_each_resource_it_creates_changes_or_removes(db: Database) -> None:
    seed(db)
    smaller = {
        **NETWORK,
        "agents": [{**NETWORK["agents"][0], "skills": {"billing": 7}}, NETWORK["agents"][1]],
    }

    assert db.config.replace(NetworkConfig.model_validate(smaller), actor="import") == 2

    changes = [(e.action, e.resource_type, e.resource_id) for e in db.audit.entries().items]
    assert changes[:2] == [("delete", "agent", "eve"), ("update", "agent", "ana")]
    seeded = db.audit.entries(actor="seed", limit=100).items
    assert len(seeded) == 3 + 2 + 3 + 2 + 1 + 1 + 1  # skills sites agents queues tariffs attr list
    assert db.config.snapshot().network == network_from_dict(smaller)


def test_agents_are_found_by_site_and_by_skill_level(db: Database) -> None:
    seed(db)

    def ids(agents: Any) -> list[str]:
        return [a.id for a in agents]

    assert ids(db.config.agents(site="paris")) == ["bob", "eve"]
    assert ids(db.config.agents(skill="billing")) == ["ana", "bob"]
    assert ids(db.config.agents(skill="billing", min_level=7)) == ["bob"]
    assert ids(db.config.agents(site="paris", skill="tech", min_level=5)) == ["eve"]

    db.config.put(agent("bob", tech=9), actor="admin")

    assert ids(db.config.agents(skill="billing")) == ["ana"]
    assert ids(db.config.agents(skill="tech", min_level=8)) == ["bob"]


def test_a_network_may_be_built_one_resource_at_a_time(db: Database) -> None:
    assert db.config.snapshot().network.queues == {}

    db.config.put(SkillConfig(id="billing"), actor="admin")
    db.config.put(SiteConfig(id="paris", region="fr"), actor="admin")
    db.config.put(agent("bob"), actor="admin")
    db.config.put(
        QueueConfig(id="q", targets=[{"skills": "billing"}]),  # type: ignore[list-item]
        actor="admin",
    )

    network = db.config.snapshot().network
    assert set(network.agents) == {"bob"}
    assert set(network.queues) == {"q"}
