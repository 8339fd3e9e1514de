"""The ASGI application: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from perf_metrics import __version__, account_routes, apidocs, dashboard, health, observability
from perf_metrics.alerts import routes as alert_routes
from perf_metrics.calls import router as calls_router
from perf_metrics.cors import CorsMiddleware
from perf_metrics.db import create_engine
from perf_metrics.errors import RequestIdMiddleware, install_error_handlers
from perf_metrics.head_requests import HeadAsGetMiddleware
from perf_metrics.metrics import router as metrics_router
from perf_metrics.metrics.cache import ResponseCache
from perf_metrics.metrics.histogram_cache import HistogramCache
from perf_metrics.observability import AccessLogMiddleware
from perf_metrics.ratelimit import Limiter
from perf_metrics.rollups.folder import Folder, fold_continuously
from perf_metrics.settings import Settings, get_settings
from perf_metrics.webhooks import routes as webhook_routes
from perf_metrics.webhooks.egress import Sender
from perf_metrics.worker import Worker

API_DESCRIPTION = """
The Metrics API of the Perf LLM router: cost, latency, reliability and routing quality of
every call your account made. Authenticate with `Authorization: Bearer pk_live_...`.
Every error has the shape `{"error": {"type", "code", "message", "param", "request_id"}}`.

Fields that can be `null` say when in their description: an average or a rate over zero calls
is `null` (a window with no calls answers 200 with counts and money at 0 and rates at `null`),
as is a mean over a field no call in the window had (`quality_score`, `complexity_score`,
`message_count`). `HEAD` works wherever `GET` does.

**Days, months and hours are the account's own.** Every account has a timezone, an IANA zone
(`GET /v1/account` shows it; default `UTC`). A day of `days`/`end_date` is a calendar day on
that zone's clock, from local midnight to the next (23, 24 or 25 hours around DST changes);
`end_date` is a local date, today there by default, and may not be in the future there. The
customer endpoint's months are local calendar months, `peak_hours` are local wall-clock hours,
and daily's `date` is the local date. Each `period` names the zone (`timezone`) and gives its
instants in RFC 3339 with the zone's offset at that instant (`2026-03-01T00:00:00+01:00`;
`...Z` for a UTC account). providers is platform-wide: its window is absolute and its hours of
day are UTC.
"""

TAGS = [
    {
        "name": "metrics",
        "description": "The six read-only answers about the account's calls (customer keys, "
        "per-tier rate limits, ETags).",
    },
    {"name": "account", "description": "Which account, environment and limit a key has."},
    {
        "name": "ingest",
        "description": "How the router writes the call log (ingest keys, sk_ingest_...).",
    },
    {
        "name": "alerts",
        "description": "Alert rules on budgets, failure rate and provider status, evaluated by "
        "the service (secret keys, sk_live_ or sk_test_).",
    },
    {
        "name": "webhooks",
        "description": "Where alert events are sent: endpoints, signed per Standard Webhooks, "
        "retried for a day, with a delivery log (secret keys).",
    },
    {"name": "health", "description": "Liveness and readiness probes; no key needed."},
    {
        "name": "operations",
        "description": "Prometheus metrics for the operator; no key needed, keep it private.",
    },
]
# Relative: the document describes the server that serves it, wherever it is deployed.
SERVERS = [{"url": "/", "description": "The server that serves this document"}]


def operation_id(route: APIRoute) -> str:
    """The route function's name (`get_overview`): what generated clients name the method."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    # What the routes share is built here and kept on app.state; routes get it through the
    # dependencies of deps.py, which tests override (app.dependency_overrides).
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(settings)
        app.state.limiter = Limiter(settings)
        app.state.histogram_cache = HistogramCache()
        app.state.response_cache = ResponseCache(settings.response_cache_entries)
        app.state.folder = Folder(app.state.engine)
        app.state.sender = Sender(allow_loopback=settings.webhooks_allow_loopback)
        tasks = [asyncio.create_task(fold_continuously(app.state.folder, settings.fold_interval_s))]
        if settings.run_worker:
            worker = Worker(
                app.state.engine, app.state.sender, interval_s=settings.worker_interval_s
            )
            tasks.append(asyncio.create_task(worker.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.sender.close()
            await app.state.limiter.close()
            await app.state.engine.dispose()

    app = FastAPI(
        title="Perf Metrics API",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=TAGS,
        servers=SERVERS,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served offline by apidocs
        redoc_url=None,
        # /v1/metrics/overview/ is a 404 naming the right path, not a redirect to an http://
        # URL that breaks behind a TLS proxy (errors.py).
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Innermost first: the access log (outermost) sees the final status and the request id.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(CorsMiddleware, allow_origins=settings.cors_allow_origins)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.include_router(health.router)
    app.include_router(observability.router)
    app.include_router(account_routes.router)
    app.include_router(calls_router.router)
    app.include_router(metrics_router.router)
    app.include_router(webhook_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(dashboard.router)
    apidocs.install(app)
    _document_bearer_auth(app)
    return app


def _document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer scheme in the OpenAPI schema for every /v1 route, and `security: []`
    on the others (auth itself is the ApiKey dependencies; this only tells clients and
    generators how to send the key)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "pk_live_ or pk_test_ keys; sk_live_ or sk_test_ (secret "
                    "keys) also for /v1/alerts and /v1/webhook-endpoints; sk_ingest_ for POST "
                    "/v1/calls.",
                }
            }
            for path, operations in schema["paths"].items():
                needs_key = path.startswith("/v1/")
                for operation in operations.values():
                    operation["security"] = [{"bearerAuth": []}] if needs_key else []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
