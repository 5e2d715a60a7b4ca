"""Every error the control API returns, in one JSON shape.

``{"error": {"code": "not_found", "message": "no site 'rome'", "details": null}}``: ``code`` is
stable and meant for programs, ``message`` for people, ``details`` (when present) says more,
e.g. the fields a request got wrong.  The handlers below map the stores' and the router's
exceptions to it, and a last handler turns anything unexpected into a 500 of the same shape
(the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from orchestrator.api.routing import (
    RoutingConflictError,
    RoutingRefusedError,
    RoutingTimeoutError,
)
from orchestrator.persistence import (
    DuplicateContactError,
    NotFoundError,
    TransitionError,
    VersionConflictError,
)
from routing.config import ConfigError

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, validation_error ...")
    message: str = Field(description="What went wrong, for people.")
    details: Any = Field(default=None, description="More about it, e.g. the fields at fault.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error the API answers with on purpose."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details
        self.headers = dict(headers or {})


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def invalid(message: str, *, details: Any = None) -> ApiError:
    return ApiError(422, "validation_error", message, details=details)


# For the OpenAPI document: what each status means, all in the one shape.
_DESCRIPTIONS = {
    400: "The body could not be read as JSON text (not UTF-8).",
    401: "No API key, or an unknown one.",
    403: "The key's role may not do this.",
    404: "No such resource.",
    409: "Conflicts with the current state (exists already, in use, busy).",
    412: "If-Match names a configuration version that is no longer current.",
    422: "The request is invalid (fields, or a configuration the router would refuse).",
    500: "Internal error (logged with its id, which the message gives).",
    504: "A site did not carry out the change in time (it may still happen: read it again).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


class ErrorJSONResponse(JSONResponse):
    """ASCII JSON: an error may quote the client's bad text back, lone surrogates included,
    which UTF-8 cannot encode but a JSON escape can."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return ErrorJSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return _response(error.status, error.code, error.message, error.details, error.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
            for item in error.errors()
        ]
        fields = ", ".join(".".join(map(str, d["loc"])) for d in details)
        return _response(422, "validation_error", f"invalid request: {fields}", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        status = error.status_code
        code = _HTTP_CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
        return _response(status, code, str(error.detail), headers=error.headers)

    @app.exception_handler(ConfigError)
    async def config_refused(_: Request, error: ConfigError) -> JSONResponse:
        # The loader's message: a headline, then one indented line per problem.
        problems = str(error).split("\n")[1:]
        details = [line.strip() for line in problems] or None
        return _response(422, "invalid_configuration", str(error), details)

    @app.exception_handler(VersionConflictError)
    async def version_conflict(_: Request, error: VersionConflictError) -> JSONResponse:
        details = {"expected": error.expected, "actual": error.actual}
        return _response(412, "precondition_failed", str(error), details)

    @app.exception_handler(NotFoundError)
    async def missing(_: Request, error: NotFoundError) -> JSONResponse:
        return _response(404, "not_found", str(error))

    @app.exception_handler(DuplicateContactError)
    async def duplicate(_: Request, error: DuplicateContactError) -> JSONResponse:
        return _response(409, "conflict", str(error))

    @app.exception_handler(TransitionError)
    async def transition(_: Request, error: TransitionError) -> JSONResponse:
        return _response(409, "conflict", str(error))

    @app.exception_handler(RoutingConflictError)
    async def routing_conflict(_: Request, error: RoutingConflictError) -> JSONResponse:
        return _response(409, "conflict", str(error))

    @app.exception_handler(RoutingRefusedError)
    async def routing_refused(_: Request, error: RoutingRefusedError) -> JSONResponse:
        return _response(422, "routing_refused", str(error))

    @app.exception_handler(RoutingTimeoutError)
    async def routing_timeout(_: Request, error: RoutingTimeoutError) -> JSONResponse:
        return _response(504, "gateway_timeout", str(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.error(
            "internal error %s on %s %s",
            incident,
            request.method,
            request.url.path,
            exc_info=error,
        )
        return _response(500, "internal_error", f"internal error (incident {incident})")


# ------------------------------------------------------------------ storable input


async def reject_unstorable_input(connection: HTTPConnection) -> None:
    """Refuse text no database keeps and numbers JSON cannot carry, before any handler runs.

    PostgreSQL refuses NUL characters in text and JSON, and neither backend can encode a lone
    UTF-16 surrogate; Python's JSON parser accepts ``NaN`` and ``Infinity``, which are not
    JSON.  Caught here, each is a 422 naming the field, instead of a database error (a 500)
    halfway through a change.  WebSocket routes (the sites' links, when the app serves them)
    check their own frames.
    """
    if not isinstance(connection, Request):
        return
    request = connection
    problems: list[dict[str, Any]] = [
        {"loc": ["path", name], "msg": problem, "type": "unstorable"}
        for name, value in request.path_params.items()
        if (problem := _text_problem(str(value))) is not None
    ]
    problems += [
        {"loc": ["query", name], "msg": problem, "type": "unstorable"}
        for name, value in request.query_params.multi_items()
        if (problem := _text_problem(value) or _text_problem(name)) is not None
    ]
    if request.method in {"POST", "PUT", "PATCH"}:
        body = await request.body()
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None  # not JSON: FastAPI's own validation answers it
        problems += [
            {"loc": ["body", *loc], "msg": problem, "type": "unstorable"}
            for loc, problem in _problems(document, [])
        ]
    if problems:
        fields = ", ".join(".".join(map(str, p["loc"])) for p in problems)
        raise invalid(f"invalid request: {fields}", details=problems)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "NUL characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode text (lone surrogate)"
    return None


def _problems(value: Any, loc: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem is not None:
            yield loc, problem
    elif isinstance(value, float) and not math.isfinite(value):
        yield loc, "numbers must be finite"
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(key)
            if problem is not None:
                yield [*loc, str(key)], f"key: {problem}"
            yield from _problems(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _problems(item, [*loc, index])
