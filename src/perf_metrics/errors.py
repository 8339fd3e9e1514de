"""One error family, one JSON envelope (SPEC §6), installed once by `create_app`.

Every non-2xx response of every route has the shape
`{"error": {"type", "code", "message", "param", "request_id"}}` and carries `X-Request-ID`.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Literal

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("perf_metrics.errors")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


class PerfError(Exception):
    """An error the API answers on purpose. Raise it anywhere below the edge."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


class InvalidParameter(PerfError):
    code = "invalid_parameter"


class InvalidJSON(PerfError):
    code = "invalid_json"


class InvalidCallRecord(PerfError):
    code = "invalid_call_record"


class NotFound(PerfError):
    status = 404
    code = "not_found"


class Conflict(PerfError):
    """The request is well formed, but the thing it acts on is in a state that refuses it."""

    status = 409
    code = "conflict"


class PayloadTooLarge(PerfError):
    status = 413
    code = "payload_too_large"


class AuthenticationError(PerfError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def __init__(self, message: str, *, code: str = "invalid_api_key") -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class PermissionDenied(PerfError):
    status = 403
    type = "permission_error"
    code = "insufficient_scope"


class RateLimited(PerfError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ServiceUnavailable(PerfError):
    status = 503
    type = "api_error"
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ErrorResponse(BaseModel):
    """The one error envelope (SPEC §6), documented in the OpenAPI schema of every route."""

    class ErrorDetail(BaseModel):
        model_config = ConfigDict(extra="forbid")

        type: Literal[
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "rate_limit_error",
            "api_error",
        ] = Field(description="The error family; one per status (SPEC §6).")
        code: str = Field(
            description="Machine-readable reason: invalid_parameter, invalid_json, "
            "invalid_call_record, missing_api_key, invalid_api_key, insufficient_scope, "
            "not_found, conflict, method_not_allowed, payload_too_large, unsupported_media_type, "
            "rate_limit_exceeded, internal_error, service_unavailable."
        )
        message: str = Field(description="A sentence for humans; never echoes a secret.")
        param: str | None = Field(
            description="The parameter or field at fault; null when the error is not about one."
        )
        request_id: str = Field(
            pattern=r"^[A-Za-z0-9_.:-]{8,128}$",
            description="Equal to the X-Request-ID header: req_... or the caller's own id.",
        )
        errors: list[dict[str, Any]] | None = Field(
            None,
            description="invalid_call_record: up to 100 {index, field, message} items; absent "
            "(or null) on other errors.",
        )
        unknown_account_ids: list[str] | None = Field(
            None,
            description="invalid_call_record: the batch's account_ids that do not exist; absent "
            "(or null) on other errors.",
        )
        tracked_metadata_keys: list[str] | None = Field(
            None,
            description="invalid_parameter on `group_by=metadata.<key>` for a key the account "
            "does not track: the keys it tracks; absent (or null) on other errors.",
        )

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def documented_error(description: str, **headers: str) -> dict[str, Any]:
    """A route's `responses` entry for an error: the envelope, a description and the headers
    it carries (`Retry_After="..."` documents `Retry-After`)."""
    return {
        "model": ErrorResponse,
        "description": description,
        "headers": {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        },
    }


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def request_id_of(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        rid = state["request_id"] = new_request_id()
    return str(rid)


class RequestIdMiddleware:
    """Gives every request an id (keeping a sane incoming X-Request-ID) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        state = scope.setdefault("state", {})
        state["request_id"] = (
            incoming if incoming and _SANE_REQUEST_ID.match(incoming) else new_request_id()
        )
        header = (b"x-request-id", state["request_id"].encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append(header)
                # Headers decided along the way (rate-limit state) ride on every answer.
                for name, value in state.get("response_headers", {}).items():
                    headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def error_response(
    scope: Scope,
    status: int,
    type_: str,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    rid = request_id_of(scope)
    body: dict[str, Any] = {
        "type": type_,
        "code": code,
        "message": message,
        "param": param,
        "request_id": rid,
    }
    if extra:
        body.update(extra)
    all_headers = {REQUEST_ID_HEADER: rid, **(headers or {})}
    return Response(
        orjson.dumps({"error": body}),
        status_code=status,
        media_type="application/json",
        headers=all_headers,
    )


def _param_name(loc: tuple[Any, ...]) -> str | None:
    # ("query", "days") -> "days"; ("body", "calls", 3, "model") -> "calls.3.model"
    parts = (
        [str(p) for p in loc[1:]] if loc and loc[0] in {"query", "path", "header", "body"} else []
    )
    return ".".join(parts) or None


async def _perf_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PerfError)
    return error_response(
        request.scope,
        exc.status,
        exc.type,
        exc.code,
        exc.message,
        exc.param,
        exc.headers,
        exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    param = _param_name(tuple(first.get("loc", ())))
    # pydantic's message describes the rule; we never echo the input back.
    detail = str(first.get("msg", "invalid value"))
    message = f"Invalid value for '{param}': {detail}." if param else f"Invalid request: {detail}."
    return error_response(
        request.scope, 400, "invalid_request_error", "invalid_parameter", message, param
    )


def _no_route(request: Request) -> str:
    """Names the right path when the only fault is a trailing slash. No redirect: a 307 built
    from the request's own URL says http:// behind a TLS proxy, and clients that follow it
    resend the key in the clear or drop it."""
    path = request.url.path
    if path.endswith("/") and path != "/":
        bare = path.rstrip("/")
        scope = {**request.scope, "path": bare, "raw_path": bare.encode()}
        if any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
            return f"No such route. Did you mean {bare} (without the trailing slash)?"
    return "No such route."


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route on the request's path (routes of included routers too)."""
    methods: set[str] = set()
    pending = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        inner = getattr(route, "original_router", None)  # FastAPI's included router
        if inner is not None:
            pending.extend(inner.routes)
        elif getattr(route, "methods", None) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(route.methods)
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(
            request.scope, 404, "invalid_request_error", "not_found", _no_route(request)
        )
    if exc.status_code == 405:
        headers = dict(exc.headers or {})
        # Starlette's Allow names the methods of the first route on the path; a path served
        # by several routes (GET and POST /v1/alerts) allows all of theirs.
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        return error_response(
            request.scope,
            405,
            "invalid_request_error",
            "method_not_allowed",
            f"Method {request.method} is not allowed on this route.",
            headers=headers,
        )
    return error_response(
        request.scope,
        exc.status_code,
        "invalid_request_error" if exc.status_code < 500 else "api_error",
        "http_error",
        str(exc.detail),
    )


def _unavailable_state(state: object) -> bool:
    # 57014 query_canceled (statement_timeout), 57P0x admin shutdown/cannot connect now,
    # 08xxx connection exceptions, 53xxx insufficient resources (too many connections),
    # 3D000 no such database and 28xxx authentication failed (a misconfigured deployment).
    return isinstance(state, str) and (
        state in ("57014", "3D000") or state.startswith(("57P", "08", "53", "28"))
    )


def is_database_unavailable(exc: BaseException) -> bool:
    """Connection refused or lost, pool exhausted, statement timeout. Covers SQLAlchemy's
    wrapped errors and asyncpg's own (the bulk write path talks to asyncpg directly)."""
    if isinstance(
        exc,
        PoolTimeoutError
        | OperationalError
        | InterfaceError
        | OSError
        | TimeoutError
        | asyncpg.InterfaceError,
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return _unavailable_state(sqlstate(exc))


def is_statement_timeout(exc: BaseException) -> bool:
    """Postgres cancelled the statement for its timeout (57014), or the driver gave up
    waiting for it."""
    return sqlstate(exc) == "57014" or isinstance(exc, TimeoutError)


def sqlstate(exc: BaseException) -> str | None:
    """Postgres's error code, from asyncpg's own error or one SQLAlchemy wrapped."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return state if isinstance(state, str) else None


async def _unhandled(request: Request, exc: Exception) -> Response:
    if is_database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            request.scope,
            503,
            "api_error",
            "service_unavailable",
            "The service is temporarily unavailable. Retry shortly.",
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled error", extra={"request_id": request_id_of(request.scope)})
    return error_response(
        request.scope, 500, "api_error", "internal_error", "An internal error occurred."
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PerfError, _perf_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Database failures go through ExceptionMiddleware (a 503 is an answer, not a crash);
    # everything else reaches the catch-all 500.
    for exc_class in (
        SQLAlchemyError,
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ):
        app.add_exception_handler(exc_class, _unhandled)
    app.add_exception_handler(Exception, _unhandled)
