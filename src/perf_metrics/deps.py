"""The request plumbing, as dependencies: what a route needs from the running service.

`create_app` builds the engine, limiter, caches and folder once (its lifespan) and keeps them
on `app.state`; this module is the one place that reads them there. Routes and other
dependencies ask for them by type (`SettingsDep`, `EngineDep`, ...), and a test that wants
another one (a fixed clock, above all) says so with `app.dependency_overrides[now] = ...`
instead of reaching into the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics.metrics.cache import ResponseCache
from perf_metrics.metrics.histogram_cache import HistogramCache
from perf_metrics.ratelimit import Limiter
from perf_metrics.rollups.folder import Folder
from perf_metrics.settings import Settings


# Dependencies here are `async def` though they never wait: FastAPI runs a plain `def` one in
# its thread pool, a hop per dependency per request (on the 10M-call benchmark, 4-12% of a
# metrics request's median time).
def _from_app_state(attribute: str) -> Callable[[Request], Awaitable[Any]]:
    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, attribute)

    dependency.__name__ = dependency.__qualname__ = f"app_{attribute}"
    return dependency


# Each a function of its own, so that a test can override one (app.dependency_overrides).
app_settings = _from_app_state("settings")
app_engine = _from_app_state("engine")
app_limiter = _from_app_state("limiter")
app_response_cache = _from_app_state("response_cache")
app_histogram_cache = _from_app_state("histogram_cache")
app_folder = _from_app_state("folder")


async def now() -> datetime:
    """The request's clock, read once per request (FastAPI caches a dependency's value for
    the request): every window of an answer is resolved against the same moment."""
    return datetime.now(UTC)


SettingsDep = Annotated[Settings, Depends(app_settings)]
EngineDep = Annotated[AsyncEngine, Depends(app_engine)]
LimiterDep = Annotated[Limiter, Depends(app_limiter)]
ResponseCacheDep = Annotated[ResponseCache, Depends(app_response_cache)]
HistogramCacheDep = Annotated[HistogramCache, Depends(app_histogram_cache)]
FolderDep = Annotated[Folder, Depends(app_folder)]
ClockDep = Annotated[datetime, Depends(now)]


async def get_connection(request: Request, engine: EngineDep) -> AsyncIterator[AsyncConnection]:
    """One connection per request; its open transaction is committed when the handler returns
    (rolled back on error). A handler may also commit earlier and go on (ingest does)."""
    async with engine.connect() as conn:
        yield conn
        if conn.in_transaction():
            await conn.commit()
        touch = getattr(request.state, "touch_key", None)
        if touch is not None:  # at most once a minute per key (auth.py), after the answer
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await touch(conn)


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection)]


async def read_snapshot(conn: ConnectionDep) -> AsyncConnection:
    """The request's connection, reading in one REPEATABLE READ, READ ONLY transaction: every
    query of an answer (the key lookup with its data version included) sees the same snapshot,
    so its numbers agree even while batches are committing. A route (or dependency) that asks
    for it gets it before its first query; the metrics routes' key dependency does."""
    assert not conn.in_transaction(), "the read snapshot is chosen before the first query"
    await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return conn


ReadSnapshotDep = Annotated[AsyncConnection, Depends(read_snapshot)]


def if_none_match(request: Request) -> set[str]:
    """The entity tags of If-None-Match (weak ones as strong: RFC 9110's weak comparison), or
    `*`; empty without the header. A header read the routes share, not a dependency."""
    raw = request.headers.get("if-none-match")
    if not raw:
        return set()
    return {tag.strip().removeprefix("W/") for tag in raw.split(",")}
