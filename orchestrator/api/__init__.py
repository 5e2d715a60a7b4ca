"""The control API (FastAPI): configuration, contacts, agents' state, statistics, reports, audit.

``create_app(settings, database=..., routing=...)`` builds it over a database and a live router
(:class:`RoutingService`); :class:`LocalRouting` is that router in process.
"""

from orchestrator.api.app import create_app
from orchestrator.api.local_routing import LocalRouting
from orchestrator.api.routing import RoutingService

__all__ = ["LocalRouting", "RoutingService", "create_app"]
