"""The request plumbing, as dependencies: what a route needs from the running service.

`create_app` builds the engine, limiter, caches and folder once (its lifespan) and keeps them
on `app.state`; this module is the one place that reads them there. Routes and other
dependencies ask for them by type (`SettingsDep`, `EngineDep`, ...), and a test that wants
another one (a fixed clock, above all) says so with `app.dependency_overrides[now] = ...`
instead of reaching into the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics.calls.store import Folder
from perf_metrics.metrics.cache import ResponseCache
from perf_metrics.metrics.histogram_cache import HistogramCache
from perf_metrics.ratelimit import Limiter
from perf_metrics.settings import Settings


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


def get_response_cache(request: Request) -> ResponseCache:
    cache: ResponseCache = request.app.state.response_cache
    return cache


def get_histogram_cache(request: Request) -> HistogramCache:
    cache: HistogramCache = request.app.state.histogram_cache
    return cache


def get_folder(request: Request) -> Folder:
    folder: Folder = request.app.state.folder
    return folder


def now() -> datetime:
    """The request's clock, read once per request (FastAPI caches a dependency's value for
    the request): every window of an answer is resolved against the same moment."""
    return datetime.now(UTC)


SettingsDep = Annotated[Settings, Depends(app_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]
ResponseCacheDep = Annotated[ResponseCache, Depends(get_response_cache)]
HistogramCacheDep = Annotated[HistogramCache, Depends(get_histogram_cache)]
FolderDep = Annotated[Folder, Depends(get_folder)]
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
    await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return conn


ReadSnapshotDep = Annotated[AsyncConnection, Depends(read_snapshot)]
