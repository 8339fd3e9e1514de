"""Failure behaviour: the database goes away and comes back, queries are too slow, the pool is
exhausted, and SIGTERM arrives mid-request."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics.app import create_app
from perf_metrics.db import create_engine
from perf_metrics.deps import ConnectionDep
from perf_metrics.migrate import upgrade
from perf_metrics.settings import Settings
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import random_log
from tests.factories import review_call as _record
from tests.servers import free_port, wait_until_healthy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[tuple[object, str]]:
    """An embedded Postgres of this module's own (never the shared one)."""
    import pgserver

    datadir = tempfile.mkdtemp(prefix="perf-metrics-resilience-")
    server = pgserver.get_server(datadir, cleanup_mode="stop")  # type: ignore[attr-defined]
    url = server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
    upgrade(url)
    try:
        yield server, url
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


def _stop(server: object) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]


def _start(server: object) -> None:
    server._postmaster_info = None  # type: ignore[attr-defined]
    server.ensure_postgres_running()  # type: ignore[attr-defined]


@pytest.fixture
async def own_app(
    own_postgres: tuple[object, str],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    _, url = own_postgres
    settings = Settings(
        database_url=url,
        rate_limit_enabled=False,
        db_connect_timeout_s=1,
        db_pool_timeout_s=0.5,
        db_statement_timeout_ms=300,
        db_pool_size=2,
        db_max_overflow=0,
    )
    engine = create_engine(settings)
    async with engine.begin() as conn:
        acct = await admin.create_account(conn, name="R", tier="enterprise")
        key = await admin.create_key(conn, account_id=acct["account_id"])
    await engine.dispose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client, key["key"]


async def test_database_outage_is_503_and_recovers_without_restart(
    own_postgres: tuple[object, str], own_app: tuple[FastAPI, httpx.AsyncClient, str]
) -> None:
    server, _ = own_postgres
    _, client, key = own_app
    assert (await client.get("/v1/metrics/overview", headers=bearer(key))).status_code == 200
    _stop(server)
    try:
        for path in ("/v1/metrics/overview", "/v1/metrics/providers", "/v1/account"):
            started = time.monotonic()
            response = await client.get(path, headers=bearer(key))
            assert time.monotonic() - started < 5, "a hung request"
            assert_envelope(response, 503, "service_unavailable")
            assert int(response.headers["retry-after"]) >= 1
        ingest = await client.post("/v1/calls", json={"calls": []}, headers=bearer(key))
        assert ingest.status_code == 503
        assert_envelope(await client.get("/readyz"), 503, "service_unavailable")
        assert (await client.get("/healthz")).status_code == 200
    finally:
        _start(server)
    for _ in range(20):  # the pool notices on its own (pre-ping); no restart of the app
        response = await client.get("/v1/metrics/overview", headers=bearer(key))
        if response.status_code == 200:
            break
        await asyncio.sleep(0.25)
    assert response.status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_a_query_slower_than_the_statement_timeout_is_503(
    own_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, _ = own_app

    @app.get("/slow")
    async def slow(conn: ConnectionDep) -> dict[str, str]:
        await conn.execute(text("SELECT pg_sleep(2)"))
        return {"status": "too late"}

    started = time.monotonic()
    response = await client.get("/slow")
    assert time.monotonic() - started < 1.5
    assert_envelope(response, 503, "service_unavailable")
    assert "retry-after" in response.headers


async def test_an_exhausted_pool_is_503_quickly(
    own_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, key = own_app
    engine = app.state.engine
    held = [await engine.connect() for _ in range(2)]  # the whole pool
    try:
        for conn in held:
            await conn.execute(text("SELECT 1"))
        started = time.monotonic()
        response = await client.get("/v1/metrics/overview", headers=bearer(key))
        assert time.monotonic() - started < 2
        assert_envelope(response, 503, "service_unavailable")
    finally:
        for conn in held:
            await conn.close()
    assert (await client.get("/v1/metrics/overview", headers=bearer(key))).status_code == 200


def test_sigterm_lets_an_in_flight_request_finish(database_url: str) -> None:
    import random

    async def setup() -> tuple[str, str]:
        engine = create_engine(Settings(database_url=database_url))
        async with engine.begin() as conn:
            acct = await admin.create_account(conn, name="S", tier="pro")
            ingest = await admin.create_key(conn, account_id=None, ingest=True)
        await engine.dispose()
        return acct["account_id"], ingest["key"]

    account_id, key = asyncio.run(setup())
    calls = random_log(
        random.Random(3),
        [account_id],
        10_000,
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 10, 20, tzinfo=UTC),
    )
    body = orjson.dumps({"calls": calls})
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "RATE_LIMIT_ENABLED": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "perf_metrics.cli", "serve", "--port", str(port)], env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, proc)
        result: dict[str, object] = {}

        def post() -> None:
            result["response"] = httpx.post(
                f"{base}/v1/calls",
                content=body,
                timeout=60,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )

        thread = threading.Thread(target=post)
        thread.start()
        time.sleep(0.3)  # the batch is being validated and written
        proc.send_signal(signal.SIGTERM)
        thread.join(60)
        # uvicorn re-raises the signal after its graceful shutdown, so the exit reads as SIGTERM.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 10_000


# Found in review: each failed before its fix.


async def test_a_statement_timeout_while_writing_a_batch_is_503(
    settings: Settings, admin_ops: Admin, engine: AsyncEngine
) -> None:
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    app = create_app(settings.model_copy(update={"db_statement_timeout_ms": 300}))
    async with engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE calls_pending IN EXCLUSIVE MODE"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/v1/calls", json={"calls": [_record("t1")]}, headers=bearer(ingest)
                )
        await blocker.rollback()
    assert_envelope(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM calls")) == 0
