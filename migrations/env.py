"""Alembic environment: runs migrations over the async engine (asyncpg)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from perf_metrics.alerts import tables as alert_tables  # noqa: F401  (declares them too)
from perf_metrics.db import metadata
from perf_metrics.rollups import tables  # noqa: F401  (declares the rollup tables in `metadata`)
from perf_metrics.settings import get_settings
from perf_metrics.webhooks import tables as webhook_tables  # noqa: F401

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
