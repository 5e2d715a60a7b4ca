"""The control API application: ``create_app(settings, database=..., routing=...)``.

The caller owns the database (migrated with ``persistence.upgrade``) and the live router (any
:class:`~orchestrator.api.routing.RoutingService`); the app only uses them.  One router per
resource under ``routes/``; every error in the shape of :mod:`orchestrator.api.errors`.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from orchestrator.api.auth import KeyRing
from orchestrator.api.errors import install_error_handlers, reject_unstorable_input
from orchestrator.api.routes import agent_state, config, contacts, reports
from orchestrator.api.routing import RoutingService
from orchestrator.persistence import Database
from orchestrator.settings import Settings

DESCRIPTION = """\
Operators' interface to the virtual contact center: the network's configuration (sites,
skills, agents, queues and their routing policies, tariffs), contacts and their route history,
agents' live state, real-time statistics, 15-minute interval reports and the audit log.

**Authentication**: an API key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
Roles: `admin` (configuration, and everything else), `supervisor` (reads everything, changes
any agent's state), `agent` (its own state only), `site` (offers contacts at its own site).

**Errors** all have one shape: `{"error": {"code": ..., "message": ..., "details": ...}}`.

**Concurrency**: configuration responses carry the configuration version as `ETag`; send it
back as `If-Match` to change only what you read (412 otherwise).
"""


def create_app(settings: Settings, *, database: Database, routing: RoutingService) -> FastAPI:
    app = FastAPI(
        title="vcc control API",
        version="1",
        description=DESCRIPTION,
        dependencies=[Depends(reject_unstorable_input)],
    )
    app.state.database = database
    app.state.routing = routing
    app.state.keys = KeyRing(settings.api_keys)
    install_error_handlers(app)
    for module in (config, agent_state, contacts, reports):
        app.include_router(module.router)
    return app
