"""The site agent's link to the router: one WebSocket across the WAN, JSON text frames.

A WebSocket because the link carries both directions at once (the site's deltas up, the
router's deliveries down) with no request per message, passes proxies and load balancers as
HTTPS does, and works from sites behind NAT (the site dials out).  The site proves who it is
with its token in the handshake (``Authorization: Bearer``), so an unauthorised site is refused
before it can send anything.  Pings detect a router that vanished without closing the socket.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from site_agent.protocol import ROUTER_MESSAGE, Delta, RouterMessage, Snapshot
from site_agent.settings import SiteAgentSettings

log = logging.getLogger(__name__)

SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
# A snapshot of a big site (a thousand agents, as many calls) is well under this.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# What a failed or dropped connection raises: the site agent then routes locally and retries.
LINK_ERRORS: tuple[type[Exception], ...] = (OSError, TimeoutError, WebSocketException)


class TransportError(ValueError):
    """A router URL that can never work (the message is one line for the command line)."""


def stream_url(router_url: str, site_id: str) -> str:
    """``{router_url}/sites/{site_id}/stream`` as a ws:// or wss:// URL (http and https map to
    them, since routers are usually given by their HTTP address)."""
    parts = urlsplit(router_url.strip())
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname or not _port_valid(parts):
        raise TransportError(
            f"router URL {router_url!r} is not a ws://, wss://, http:// or https:// URL "
            "with a host and a valid port (e.g. ws://127.0.0.1:8700)"
        )
    if not site_id:
        raise TransportError("site id is empty")
    path = f"{parts.path.rstrip('/')}/sites/{quote(site_id, safe='')}/stream"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class RouterLink:
    """One open connection to the router, speaking :mod:`site_agent.protocol`."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, message: Delta | Snapshot) -> None:
        await self._connection.send(message.model_dump_json())

    async def receive(self) -> RouterMessage | None:
        """The router's next message; ``None`` for one that is not valid (logged and
        skipped: one bad frame must not cost the site its link).  Raises
        :class:`websockets.exceptions.ConnectionClosed` when the link is gone."""
        frame = await self._connection.recv()
        try:
            return ROUTER_MESSAGE.validate_json(frame)
        except ValidationError as error:
            log.warning("ignored an invalid message from the router: %s", _one_line(error))
            return None


@asynccontextmanager
async def open_link(url: str, token: str, settings: SiteAgentSettings) -> AsyncIterator[RouterLink]:
    """Connect (raising one of :data:`LINK_ERRORS` if the router cannot be reached or refuses
    the token) and close the link on the way out."""
    async with connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=settings.open_timeout_seconds,
        ping_interval=settings.ping_seconds,
        ping_timeout=settings.ping_seconds,
        close_timeout=1.0,
        max_size=MAX_MESSAGE_BYTES,
    ) as connection:
        yield RouterLink(connection)


class Backoff:
    """Waits between reconnection attempts: doubling from ``initial`` up to ``maximum``, each
    jittered by up to a fifth so that sites cut off together do not all return together."""

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self._initial = initial
        self._maximum = max(maximum, initial)
        self._rng = rng
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2.0, self._maximum)
        return delay * self._rng.uniform(0.8, 1.0)


def _port_valid(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 (reading it validates it)
    except ValueError:
        return False
    return True


def _one_line(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'message'}: {item['msg']}"
        for item in error.errors()
    )
