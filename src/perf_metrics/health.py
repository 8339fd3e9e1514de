"""Liveness and readiness. Neither needs a key; neither is rate limited."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from perf_metrics.deps import EngineDep
from perf_metrics.errors import ErrorResponse, ServiceUnavailable, is_database_unavailable
from perf_metrics.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers (no database involved)")
async def get_liveness() -> dict[str, str]:
    """`{"status": "ok"}` whenever the process can answer; touches no database, so a
    database outage never gets a healthy process restarted."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the latest migration",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "Database unreachable, or migrations not at head; see Retry-After.",
        },
        "default": {"model": ErrorResponse, "description": "Any other error (500)."},
    },
)
async def get_readiness(engine: EngineDep) -> JSONResponse:
    """200 when the database answers and its schema is at this version's latest migration;
    503 otherwise, so a load balancer sends no traffic to a process that cannot serve it."""
    try:
        async with engine.connect() as conn:
            revision = await current_revision(conn)
    except Exception as exc:
        if is_database_unavailable(exc):
            raise ServiceUnavailable("The database is unreachable.") from None
        raise
    head = head_revision()
    if revision != head:
        raise ServiceUnavailable(
            f"The database schema is at {revision or 'nothing'}; expected {head}. "
            "Run `perf-metrics migrate`."
        )
    return JSONResponse({"status": "ready", "database": "ok", "migration": revision})
