"""API keys and roles: who is calling, and what they may do.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the keys come from the
settings (``VCC_API_KEYS``), each with a name (the actor in the audit log) and a role:

* ``admin``: edits the configuration, and may do everything else;
* ``supervisor``: reads everything (configuration, contacts, statistics, reports, audit) and
  changes any agent's state;
* ``agent``: reads and changes its own agent's state, nothing else;
* ``site``: asks routes for contacts landing at its own site, and reads those contacts.

Keys are looked up by their SHA-256 digest, so the table in memory holds no secret and a lookup
takes the same time whichever key is tried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.api.errors import ApiError
from orchestrator.settings import ApiKey, ApiRole


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: ApiRole
    agent_id: str | None = None
    site_id: str | None = None

    @property
    def operator(self) -> bool:
        """Admins and supervisors: their changes to live state go to the audit log."""
        return self.role in {ApiRole.ADMIN, ApiRole.SUPERVISOR}


class KeyRing:
    def __init__(self, keys: Mapping[str, ApiKey]) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        for name, key in keys.items():
            digest = _digest(key.key.get_secret_value())
            if digest in self._by_digest:
                raise ValueError(
                    f"API keys {self._by_digest[digest].name!r} and {name!r} are equal"
                )
            self._by_digest[digest] = Principal(name, key.role, key.agent_id, key.site_id)

    def principal(self, key: str) -> Principal | None:
        return self._by_digest.get(_digest(key))


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise unauthorized("an API key is required: Authorization: Bearer <key>, or X-API-Key")
    keys: KeyRing = request.app.state.keys
    principal = keys.principal(key)
    if principal is None:
        raise unauthorized("unknown API key")
    return principal


def allow(*roles: ApiRole) -> Callable[[Principal], Principal]:
    """A dependency admitting these roles (and admins, who may do anything)."""
    admitted = {ApiRole.ADMIN, *roles}

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in admitted:
            names = ", ".join(sorted(admitted))
            raise forbidden(
                f"the {principal.role} key {principal.name!r} may not do this ({names})"
            )
        return principal

    return check


Caller = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(allow())]
Reader = Annotated[Principal, Depends(allow(ApiRole.SUPERVISOR))]
