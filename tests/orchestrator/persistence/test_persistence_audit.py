"""AuditLog: operator actions outside the configuration, newest first, filtered and paged."""

from __future__ import annotations

from typing import Any

from orchestrator.persistence import Database


def test_operator_actions_are_listed_newest_first_in_pages(db: Database) -> None:
    for n in range(5):
        db.audit.record(
            actor="key:supervisor",
            action="force_not_ready",
            resource_type="agent_state",
            resource_id=f"agent{n}",
            before={"state": "ready"},
            after={"state": "not_ready", "reason": "coaching"},
        )
    db.audit.record(actor="key:admin", action="revoke", resource_type="api_key", resource_id="k1")

    first = db.audit.entries(resource_type="agent_state", limit=3)
    second = db.audit.entries(resource_type="agent_state", limit=3, cursor=first.next_cursor)

    assert [e.resource_id for e in first.items] == ["agent4", "agent3", "agent2"]
    assert [e.resource_id for e in second.items] == ["agent1", "agent0"]
    assert second.next_cursor is None
    entry = second.items[-1]
    assert (entry.actor, entry.action, entry.config_version) == (
        "key:supervisor",
        "force_not_ready",
        None,
    )
    assert entry.after == {"state": "not_ready", "reason": "coaching"}
    assert [e.resource_id for e in db.audit.entries(actor="key:admin").items] == ["k1"]
    assert [e.action for e in db.audit.entries(resource_id="agent3").items] == ["force_not_ready"]


def test_entries_are_stamped_by_the_databases_clock(db: Database, clock: Any) -> None:
    recorded = db.audit.record(actor="a", action="x", resource_type="t", resource_id="1")

    assert recorded.at == clock.now
    assert db.audit.entries().items == [recorded]
