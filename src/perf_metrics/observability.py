"""Structured logs (one JSON line per request) and Prometheus metrics at GET /metrics.

The access line carries method, route template, status, duration, request id and account id;
never a key, a query string or a body. `/metrics` is unauthenticated and outside `/v1`, meant
for a scraper on the private network; it is per process (with several uvicorn workers, scrape
each, or set PROMETHEUS_MULTIPROC_DIR for prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perf_metrics.deps import EngineDep

access_log = logging.getLogger("perf_metrics.access")

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "perf_metrics_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "perf_metrics_http_request_duration_seconds",
    "HTTP request latency by route template and status.",
    ["route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
INGESTED = Counter(
    "perf_metrics_ingest_calls_total",
    "Call records received by POST /v1/calls, by outcome (inserted or duplicate).",
    ["outcome"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "perf_metrics_rate_limit_rejections_total",
    "Requests answered 429, by bucket kind (account, ingest, unauthenticated).",
    ["bucket"],
    registry=REGISTRY,
)
POOL_IN_USE = Gauge(
    "perf_metrics_db_pool_checked_out", "Database connections in use.", registry=REGISTRY
)
POOL_SIZE = Gauge("perf_metrics_db_pool_size", "Database pool size.", registry=REGISTRY)

# Alerts and webhooks (SPEC §11): counted by the worker of this process (serve's in-process
# one, or `perf-metrics worker --metrics-port`); the queue's figures are read from the
# database at each scrape, so any process shows the whole queue.
WEBHOOK_DELIVERIES = Counter(
    "perf_metrics_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (succeeded, http_4xx, http_5xx, timeout, "
    "connection, refused).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    "perf_metrics_webhook_delivery_seconds",
    "Time from sending a webhook to the receiver's answer (or the attempt's end).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
    registry=REGISTRY,
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "perf_metrics_webhook_queue_depth",
    "Webhook deliveries pending (due now or waiting for a retry).",
    registry=REGISTRY,
)
WEBHOOK_OLDEST_DUE = Gauge(
    "perf_metrics_webhook_oldest_due_seconds",
    "How long the oldest due webhook delivery has waited (0: none due).",
    registry=REGISTRY,
)
FOLD_LAG = Gauge(
    "perf_metrics_fold_lag_seconds",
    "How long the oldest queued call has waited to be folded into the rollups (0: none).",
    registry=REGISTRY,
)
FOLD_CALLS = Gauge(
    "perf_metrics_fold_calls",
    "Calls this process's next fold takes (fewer than 50,000 after folds that ran out of time).",
    registry=REGISTRY,
)
FOLD_TIMEOUTS = Gauge(
    "perf_metrics_fold_timeouts",
    "Folds of this process that ran past their statement timeout and were retried smaller.",
    registry=REGISTRY,
)
ALERT_EVALUATIONS = Counter(
    "perf_metrics_alert_evaluations_total",
    "Alert rules evaluated, by type and outcome (ok, error).",
    ["type", "outcome"],
    registry=REGISTRY,
)
ALERT_EVALUATION_LAG = Histogram(
    "perf_metrics_alert_evaluation_lag_seconds",
    "How long after it was due each alert rule was evaluated.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)


class JsonFormatter(logging.Formatter):
    _SKIP = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """JSON lines on stderr for our loggers and uvicorn's error log."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("perf_metrics", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


class AccessLogMiddleware:
    """One log line and one metrics observation per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            state = scope.get("state", {})
            principal = state.get("principal")
            REQUESTS.labels(template, scope["method"], str(status)).inc()
            LATENCY.labels(template, str(status)).observe(elapsed)
            if status == 429:
                RATE_LIMITED.labels(state.get("rate_limit_bucket", "unknown")).inc()
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": state.get("request_id"),
                    "account_id": getattr(principal, "account_id", None),
                    "key_id": getattr(principal, "key_id", None),
                },
            )


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (unauthenticated; scrape from the private network)",
    response_class=Response,
)
async def get_prometheus_metrics(engine: EngineDep) -> Response:
    """Request counts and latency histograms by route and status, database pool usage,
    ingested calls and rate-limit rejections, webhook deliveries and alert evaluations, in the
    Prometheus text format."""
    from perf_metrics.rollups import fold  # they import this module
    from perf_metrics.webhooks.delivery import queue_depth

    try:
        async with engine.connect() as conn:
            depth, oldest = await queue_depth(conn, datetime.now(UTC))
            lag = (await conn.execute(text(fold.FOLD_LAG))).scalar_one()
    except Exception as exc:  # the rest of the page is this process's own: still answered
        access_log.warning("queues unreadable for /metrics: %s", type(exc).__name__)
    else:
        WEBHOOK_QUEUE_DEPTH.set(depth)
        WEBHOOK_OLDEST_DUE.set(oldest or 0)
        FOLD_LAG.set(lag)
    FOLD_CALLS.set(fold.SIZE.calls)
    FOLD_TIMEOUTS.set(fold.SIZE.shrunk)
    pool = engine.pool
    if isinstance(pool, QueuePool):  # create_engine's pool (a test may run another)
        POOL_IN_USE.set(pool.checkedout())
        POOL_SIZE.set(pool.size())
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
