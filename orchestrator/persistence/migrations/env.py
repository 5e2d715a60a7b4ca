"""Alembic's entry point: migrate the connection ``upgrade`` hands over, else ``VCC_DATABASE_URL``.

The second case serves Alembic's command line when writing a migration (see ``alembic.ini``).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from orchestrator.persistence.engine import make_engine
from orchestrator.persistence.models import Base, UTCDateTime
from orchestrator.settings import Settings


def render_item(type_: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    """Write columns of vcc's own types as the plain types they store.

    A migration must keep meaning what it meant when written, so it never imports the models.
    """
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters a table by copying it; batch mode writes migrations that do so.
        render_as_batch=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run_migrations(handed_over)
else:
    engine = make_engine(Settings().database_url)
    with engine.begin() as connection:
        run_migrations(connection)
    engine.dispose()
