"""Initial schema: configuration, contacts and their route history, interval statistics, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=128)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
# Enum values as plain strings (no native enum type to ALTER when a value is added).
ENUM = sa.String(length=16)

CONFIG_TABLES = (
    "skills",
    "sites",
    "queues",
    "tariffs",
    "contact_attributes",
    "named_lists",
)


def upgrade() -> None:
    version = op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_version")),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])

    for table in CONFIG_TABLES:
        op.create_table(
            table,
            sa.Column("id", ID, nullable=False),
            sa.Column("payload", JSON, nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        )
    op.create_table(
        "agents",
        sa.Column("id", ID, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_agents_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index(op.f("ix_agents_site_id"), "agents", ["site_id"])
    op.create_table(
        "agent_skills",
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("skill_id", ID, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_skills_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["skill_id"], ["skills.id"], name=op.f("fk_agent_skills_skill_id_skills")
        ),
        sa.PrimaryKeyConstraint("agent_id", "skill_id", name=op.f("pk_agent_skills")),
    )
    op.create_index("ix_agent_skills_skill_level", "agent_skills", ["skill_id", "level"])

    op.create_table(
        "contacts",
        sa.Column("id", ID, nullable=False),
        sa.Column("queue_id", ID, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("channel", ENUM, nullable=False),
        sa.Column("caller_region", ID, nullable=False),
        sa.Column("landing_site", ID, nullable=False),
        sa.Column("serving_site", ID, nullable=True),
        sa.Column("serving_agent", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("reserved_at", TIME, nullable=True),
        sa.Column("answered_at", TIME, nullable=True),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("abandoned_at", TIME, nullable=True),
        sa.Column("events_recorded", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index("ix_contacts_created", "contacts", ["created_at", "id"])
    op.create_index("ix_contacts_queue_created", "contacts", ["queue_id", "created_at", "id"])
    op.create_index("ix_contacts_status_created", "contacts", ["status", "created_at", "id"])
    op.create_table(
        "route_events",
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("site_id", ID, nullable=True),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_route_events_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "seq", name=op.f("pk_route_events")),
    )

    op.create_table(
        "interval_stats",
        sa.Column("interval_start", TIME, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("queue_id", ID, nullable=False),
        sa.Column("offered", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("abandoned", sa.Integer(), nullable=False),
        sa.Column("answered_within_sl", sa.Integer(), nullable=False),
        sa.Column("wait_seconds", sa.Float(), nullable=False),
        sa.Column("handle_seconds", sa.Float(), nullable=False),
        sa.Column("staffed_seconds", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "interval_start", "site_id", "queue_id", name=op.f("pk_interval_stats")
        ),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", ID, nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=True),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"])
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index("ix_audit_log_resource", "audit_log", ["resource_type", "resource_id", "id"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "interval_stats",
        "route_events",
        "contacts",
        "agent_skills",
        "agents",
        *CONFIG_TABLES,
        "config_version",
    ):
        op.drop_table(table)
