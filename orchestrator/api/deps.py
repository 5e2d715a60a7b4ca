"""What the routes are given: the database's stores and the live router, from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from orchestrator.api.routing import RoutingService
from orchestrator.persistence import Database


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def routing(request: Request) -> RoutingService:
    service: RoutingService = request.app.state.routing
    return service


DatabaseDep = Annotated[Database, Depends(database)]
RoutingDep = Annotated[RoutingService, Depends(routing)]
