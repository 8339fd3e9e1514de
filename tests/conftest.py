"""A migrated database per test session; every test starts from empty tables.

Tests commit for real (ingest is concurrent and idempotent, which a rolled-back outer
transaction would hide), so isolation is by truncating the data tables before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics.app import create_app
from perf_metrics.calls.schema import parse_ndjson_lines
from perf_metrics.calls.store import store_calls
from perf_metrics.db import create_engine
from perf_metrics.metrics import schemas
from perf_metrics.migrate import upgrade
from perf_metrics.rollups.fold import fold
from perf_metrics.rollups.maintenance import verify_rollups
from perf_metrics.rollups.tables import THIN_WEEK_CALLS
from perf_metrics.settings import Settings
from perf_metrics.zones import THIS_MONTH_SQL, THIS_WEEK_SQL
from tests.pg import scratch_database

# The published response model of each metrics endpoint.
RESPONSE_SCHEMAS: dict[str, type[BaseModel]] = {
    "overview": schemas.OverviewResponse,
    "customer": schemas.CustomerResponse,
    "performance": schemas.PerformanceResponse,
    "failures": schemas.FailuresResponse,
    "providers": schemas.ProvidersResponse,
    "daily": schemas.DailyResponse,
}
KEEP_TABLES = {"alembic_version", "model_prices", "rollup_watermarks"}


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Read-your-writes, so that a test can read what it has just ingested; the default (answer
    # at commit, fold in the background) has its own tests in tests/rollups/test_fold.py.
    # No in-process worker: the alert tests run theirs with a test clock (tests/alerts).
    return Settings(
        database_url=database_url,
        rate_limit_enabled=False,
        ingest_waits_for_fold=True,
        run_worker=False,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def clean_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        names = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        ).scalars()
        data_tables = [n for n in names if n not in KEEP_TABLES]
        if data_tables:
            await conn.execute(text(f"TRUNCATE {', '.join(data_tables)} CASCADE"))
        # As the migrations leave them: block rows up to this month, this week; thin weeks.
        await conn.execute(
            text(
                f"UPDATE rollup_watermarks SET failure_monthly_before = {THIS_MONTH_SQL},"
                f" group_weekly_before = {THIS_WEEK_SQL},"
                f" group_weekly_least_calls = {THIN_WEEK_CALLS}"
            )
        )


async def set_thin_week_calls(engine: AsyncEngine, calls: int) -> None:
    """Weeks with fewer calls are thin (rollups/tables.py's THIN_WEEK_CALLS): no week rows."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE rollup_watermarks SET group_weekly_least_calls = :n"), {"n": calls}
        )


@pytest.fixture
async def every_week_has_rows(engine: AsyncEngine, clean_tables: None) -> None:
    """No thin weeks: a test's few calls a week get week rows, for the tests of the week rows
    themselves."""
    await set_thin_week_calls(engine, 0)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """Override in a test module to change settings for its app."""
    return settings


@pytest.fixture
async def app(app_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(app_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # As under uvicorn, an unhandled exception becomes the 500 response, not a test crash.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class Admin:
    """Accounts and keys made through the same code the CLI uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def account(
        self,
        tier: str = "pro",
        account_id: str | None = None,
        timezone: str = "UTC",
        **settings: Any,
    ) -> str:
        async with self.engine.begin() as conn:
            acct = await admin.create_account(
                conn, name="Test Co", tier=tier, account_id=account_id, timezone=timezone
            )
            if settings:
                await admin.update_account(conn, acct["account_id"], **settings)
        return str(acct["account_id"])

    async def key(
        self, account_id: str | None = None, environment: str = "live", secret: bool = False
    ) -> dict[str, Any]:
        async with self.engine.begin() as conn:
            return await admin.create_key(
                conn,
                account_id=account_id,
                environment=environment,
                ingest=account_id is None,
                secret=secret,
            )

    async def revoke(self, key_id: str) -> None:
        async with self.engine.begin() as conn:
            await admin.revoke_key(conn, key_id)


@pytest.fixture
def admin_ops(engine: AsyncEngine) -> Admin:
    return Admin(engine)


async def store_records(
    conn: AsyncConnection, records: list[dict[str, Any]], *, folded: bool = True
) -> int:
    """Store call records through the ingest path's validation and write path (as
    `perf-metrics ingest` does), then fold them unless `folded=False` (left queued)."""
    inserted = await store_calls(conn, parse_ndjson_lines([orjson.dumps(r) for r in records]))
    if folded:
        await fold(conn)
    return inserted


async def rollups_report(engine: AsyncEngine, account_id: str | None = None) -> dict[str, Any]:
    """`perf-metrics rollups verify`: the stored rollups plus the queue against the log's own,
    every table and measure, in one snapshot."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        report = await verify_rollups(conn, account_id)
        await conn.rollback()
    return report


def without_data_as_of(body: dict[str, Any]) -> dict[str, Any]:
    """An answer less its `data_as_of` (SPEC §14: when it was computed, at the latest), for
    comparing two answers of the same data read at different moments."""
    return {k: v for k, v in body.items() if k != "data_as_of"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_envelope(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"type", "code", "message", "param", "request_id"} <= set(error)
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert error["request_id"].startswith("req_") or error["request_id"]
    assert response.headers["x-request-id"] == error["request_id"]
    return dict(error)
