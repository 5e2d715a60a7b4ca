"""The sites' WebSocket endpoint: ``/sites/{site_id}/stream``.

A site agent connects with ``Authorization: Bearer <token>`` (its own token, from the
settings) and then speaks :mod:`site_agent.protocol` in JSON text frames: deltas and snapshots
in, deliveries, transfers, withdrawals, acknowledgements and snapshot requests out.

* An unknown site, a missing or wrong token: the socket is accepted only to be closed with
  code 1008 (policy violation) and a reason saying which (no traceback, no detail of the
  token).
* A frame that is not a valid site message is answered with a snapshot request whose reason
  starts with ``invalid message:`` and says what was wrong; the site's later deltas are ignored
  until its snapshot, since the bad frame may have been one of them.
* One connection per site: a second connection of the same site replaces the first, which is
  closed with code 4000 (:data:`REPLACED`); the router then waits for the new connection's
  snapshot.
* A message for a site that is not connected is dropped, and the router treats the site as
  disconnected: its snapshot on reconnect repairs whatever the message would have done.

:func:`site_link_router` gives the :class:`fastapi.APIRouter` (the control API includes the
same router in its app); :func:`build_app` a minimal app around it, with a health check.

``GET /sites/{site_id}/view`` (read-only, the site's own bearer token) answers what the router
believes of the site: each of its agents' presence and state, and each call there, so that the
site (or an operator, or an end-to-end test) can compare it with the PBX.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from orchestrator.global_router import UnknownSiteError
from orchestrator.router_actor import (
    LocalShard,
    RouterFront,
    RouterMessage,
    RouterShard,
    ShardClient,
)
from site_agent.protocol import SITE_MESSAGE

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
GOING_AWAY = 1001
REPLACED = 4000
"""Close code of a connection replaced by a newer one of the same site."""


@dataclass(eq=False, slots=True)
class _Connection:
    site_id: str
    websocket: WebSocket
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None

    async def send_all(self) -> None:
        """Send queued messages in order until the socket fails or the task is cancelled."""
        while True:
            text = await self.outbox.get()
            await self.websocket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        if self.pump is not None:
            self.pump.cancel()
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the peer may be gone already
                await self.websocket.close(code=code, reason=reason)


class SiteHub:
    """The sites' live connections, and the front's way to reach them (its sink)."""

    def __init__(self, front: RouterFront, tokens: Mapping[str, str]) -> None:
        self.front = front
        self.tokens = dict(tokens)
        self._connections: dict[str, _Connection] = {}
        self._timers: asyncio.Task[None] | None = None
        front.sink = self.send

    # ----------------------------------------------------------------- the front's sink

    def send(self, site_id: str, message: RouterMessage) -> bool:
        connection = self._connections.get(site_id)
        if connection is None:
            return False
        connection.outbox.put_nowait(message.model_dump_json())
        return True

    def connected(self) -> list[str]:
        return sorted(self._connections)

    async def view(self, site_id: str) -> dict[str, Any]:
        """The router's view of one site, merged over the shards (see :func:`site_view`)."""
        parts = await asyncio.gather(*(_shard_view(s, site_id) for s in self.front.shards))
        agents: dict[str, Any] = {}
        contacts: dict[str, Any] = {}
        for part in parts:
            agents.update(part["agents"])
            contacts.update(part["contacts"])
        in_step = dict(self.front.links()).get(site_id, False)
        return {
            "site_id": site_id,
            "connected": site_id in self._connections,
            "in_step": in_step,
            "agents": dict(sorted(agents.items())),
            "contacts": dict(sorted(contacts.items())),
        }

    # ----------------------------------------------------------------- connections

    def refusal(self, site_id: str, authorization: str | None) -> str | None:
        """Why this site may not connect with this ``Authorization`` header, or ``None``."""
        if site_id not in self.front.sites:
            return f"unknown site {site_id!r}"
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing bearer token (Authorization: Bearer <site token>)"
        expected = self.tokens.get(site_id)
        if expected is None:
            return f"no token is configured for site {site_id!r}"
        if not hmac.compare_digest(token.strip().encode(), expected.encode()):
            return f"invalid token for site {site_id!r}"
        return None

    async def serve(self, site_id: str, websocket: WebSocket) -> None:
        """Run one site connection until it closes."""
        await websocket.accept()
        refusal = self.refusal(site_id, websocket.headers.get("authorization"))
        if refusal is not None:
            log.warning("site link refused: %s", refusal)
            await websocket.close(code=POLICY_VIOLATION, reason=refusal)
            return
        connection = self._attach(site_id, websocket)
        try:
            while self._connections.get(site_id) is connection:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                if self._connections.get(site_id) is not connection:
                    break  # replaced while this frame was on its way
                await self._handle(site_id, frame.get("text"))
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("site link of %s failed", site_id)
            await connection.close(INTERNAL_ERROR, "router error; reconnect and send a snapshot")
        finally:
            self._detach(connection)

    async def _handle(self, site_id: str, text: str | None) -> None:
        if text is None:
            self.front.resync(site_id, "invalid message: binary frame; send JSON text frames")
            return
        try:
            message = SITE_MESSAGE.validate_json(text)
        except ValidationError as error:
            self.front.resync(site_id, f"invalid message: {_describe(error)}")
            return
        try:
            await self.front.receive(site_id, message)
        except UnknownSiteError:
            self.front.resync(
                site_id, f"invalid message: site {message.site_id!r} on the link of {site_id!r}"
            )

    def _attach(self, site_id: str, websocket: WebSocket) -> _Connection:
        connection = _Connection(site_id, websocket)
        old = self._connections.get(site_id)
        self._connections[site_id] = connection
        if old is not None:
            log.info("site %s reconnected: the previous connection is closed", site_id)
            self.front.disconnected(site_id)
            asyncio.get_running_loop().create_task(
                old.close(REPLACED, "replaced by a newer connection of this site")
            )
        connection.pump = asyncio.get_running_loop().create_task(connection.send_all())
        connection.pump.add_done_callback(self._pump_done)
        return connection

    def _pump_done(self, pump: asyncio.Task[None]) -> None:
        if not pump.cancelled() and pump.exception() is not None:
            log.info("site link send failed: %s", pump.exception())

    def _detach(self, connection: _Connection) -> None:
        if connection.pump is not None:
            connection.pump.cancel()
        if self._connections.get(connection.site_id) is connection:
            del self._connections[connection.site_id]
            self.front.disconnected(connection.site_id)

    # ----------------------------------------------------------------- lifetime

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Drive the router's timers while open; on exit close every site connection."""
        self._timers = asyncio.get_running_loop().create_task(self.front.run_timers())
        try:
            yield
        finally:
            self.front.stop_timers()
            await asyncio.gather(
                *(c.close(GOING_AWAY, "router shutting down") for c in self._connections.values())
            )
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers


def site_view(shard: RouterShard, site_id: str) -> dict[str, Any]:
    """What one shard believes of a site: its agents (``state`` as the engine has it, presence
    ``ready``, not-ready ``reason``) and the live calls the shard places there (``queued``,
    ``ringing`` or ``talking``, the agent, the current reservation, and ``transfer_to`` while
    a transfer order to that site is unanswered: the call is still queued here then, for an
    agent there).  Calls in transit between two sites are at neither.  Runs where the shard
    lives: inside its Ray actor (through the actor's ``__ray_call__``), read-only."""
    router = shard.router
    engine = router.engine
    agents = {
        agent.id: {
            "state": engine.agent_state(agent.id).value,
            "ready": engine.agent_ready(agent.id),
            "reason": engine.agent_reason(agent.id),
        }
        for agent in router.network.agents.values()
        if agent.site_id == site_id
    }
    contacts: dict[str, Any] = {}
    for contact_id in router.live_contacts():
        live = router._live[contact_id]
        if live.landed_at == site_id:
            contacts[contact_id] = {
                "state": router.contact_state(contact_id),
                "agent_id": engine.delivered_to(contact_id),
                "reservation": live.reservation,
                "transfer_to": live.transfer_to,
            }
    return {"agents": agents, "contacts": contacts}


async def _shard_view(client: ShardClient, site_id: str) -> dict[str, Any]:
    if isinstance(client, LocalShard):
        return site_view(client.shard, site_id)
    view: dict[str, Any] = await client.query("__ray_call__", site_view, site_id)
    return view


def _describe(error: ValidationError) -> str:
    """The first problems of a frame in one line: ``delta.seq: Input should be ...``."""
    problems = [
        f"{'.'.join(str(part) for part in detail['loc']) or 'frame'}: {detail['msg']}"
        for detail in error.errors()[:3]
    ]
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0: any free port), to hand to uvicorn.

    Accepted connections get ``TCP_NODELAY``: a delivery and the acknowledgement after it are
    two small frames, and with Nagle's algorithm the second waits for the peer's delayed ACK
    of the first (40 ms on Linux).  asyncio sets it itself only on sockets created with
    protocol ``IPPROTO_TCP``; the option set on the listening socket is inherited as well."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn, stopping on SIGINT or SIGTERM and then returning to its caller: uvicorn's own
    handling raises the signal again after shutting down, which would end the process (on
    SIGTERM) before the caller releases the router's shards and Ray."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(app: FastAPI, sock: socket.socket, *, log_level: str = "info") -> None:
    """Serve ``app`` on a listening socket until SIGINT or SIGTERM; returns after a graceful
    shutdown (the app's lifespan closes the site links)."""
    server = _Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
    asyncio.run(server.serve(sockets=[sock]))


def site_link_router(hub: SiteHub) -> APIRouter:
    """The WebSocket route of the sites' links, for any app to include."""
    router = APIRouter(tags=["site links"])

    @router.websocket("/sites/{site_id}/stream")
    async def site_stream(websocket: WebSocket, site_id: str) -> None:
        """A site agent's link: ``Authorization: Bearer <site token>``, then JSON frames of
        :mod:`site_agent.protocol` both ways."""
        await hub.serve(site_id, websocket)

    @router.get("/sites/{site_id}/view", tags=["site links"], response_model=None)
    async def site_view_route(site_id: str, request: Request) -> dict[str, Any] | JSONResponse:
        """What the router believes of the site (``Authorization: Bearer <site token>``):
        ``agents`` (``state``, ``ready``, ``reason``), ``contacts`` there (``state``,
        ``agent_id``, ``reservation``), and whether the link is ``connected`` and ``in_step``."""
        refusal = hub.refusal(site_id, request.headers.get("authorization"))
        if refusal is not None:
            return JSONResponse({"detail": refusal}, status_code=403)
        return await hub.view(site_id)

    return router


def build_app(hub: SiteHub) -> FastAPI:
    """An app serving the sites' links and ``GET /healthz``; it drives the router's timers
    while it runs."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with hub.running():
            yield

    app = FastAPI(title="vcc router", lifespan=lifespan)
    app.include_router(site_link_router(hub))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """The router's shards and each site's link: connected, and in step (snapshot
        applied, no gap since)."""
        connected = set(hub.connected())
        return {
            "status": "ok",
            "shards": len(hub.front.shards),
            "sites": {
                site_id: {"connected": site_id in connected, "in_step": in_step}
                for site_id, in_step in hub.front.links()
            },
        }

    return app
