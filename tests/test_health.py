"""Liveness and readiness."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.app import create_app
from perf_metrics.migrate import head_revision
from perf_metrics.settings import Settings
from tests.conftest import assert_envelope


async def test_healthz_needs_no_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_head_migration(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["migration"] == head_revision()


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/none", db_connect_timeout_s=1
    )
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
            assert_envelope(response, 503, "service_unavailable")
            assert response.headers["retry-after"].isdigit()
            assert (await client.get("/healthz")).status_code == 200
            # /metrics too: the webhook queue's gauges are read from the database, the rest
            # of the page is the process's own
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200
            assert "perf_metrics_http_requests_total" in scraped.text


async def test_readyz_is_503_when_migrations_are_behind(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        response = await client.get("/readyz")
        assert_envelope(response, 503, "service_unavailable")
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()}
            )


async def test_readyz_is_503_when_the_database_does_not_exist(database_url: str) -> None:
    import httpx
    from sqlalchemy.engine import make_url

    missing = make_url(database_url).set(database="perf_metrics_no_such_db")
    app: FastAPI = create_app(Settings(database_url=missing.render_as_string(False)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert_envelope(await client.get("/readyz"), 503, "service_unavailable")
