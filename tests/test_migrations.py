"""Every migration has a working downgrade: upgrade, downgrade to nothing, upgrade again. And
the schema the code declares is the one the migrations build."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.db import metadata
from perf_metrics.migrate import downgrade, head_revision, upgrade
from perf_metrics.rollups import tables  # noqa: F401  (declares the rollup tables in `metadata`)


def _tables(url: str) -> set[str]:
    async def go() -> set[str]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(go())


def test_round_trip(database_url: str) -> None:
    at_head = _tables(database_url)
    assert {"accounts", "api_keys", "calls", "model_prices"} <= at_head
    downgrade(database_url, "base")
    assert _tables(database_url) <= {"alembic_version"}
    upgrade(database_url)
    assert _tables(database_url) == at_head
    # And one step at a time, down and up again.
    downgrade(database_url, "-1")
    upgrade(database_url)
    assert _tables(database_url) == at_head
    assert head_revision()


def _schema_differences(sync: Connection) -> list[Any]:
    context = MigrationContext.configure(
        sync, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_the_declared_tables_are_the_migrated_schema(engine: AsyncEngine) -> None:
    """`alembic revision --autogenerate` on a migrated database proposes nothing: the tables
    declared for queries (db.py, rollups/tables.py) are all of the schema, with the types,
    nullability, defaults, keys, indexes and comments the migrations give it."""
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_differences) == []


def test_alembic_check_finds_nothing_to_generate(database_url: str) -> None:
    """The same through env.py, as `alembic check` runs it: in a fresh interpreter, so that
    env.py's own imports must declare every table (this module's do not count)."""
    check = (
        "import sys; from alembic import command; from perf_metrics.migrate import alembic_config;"
        " command.check(alembic_config(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, database_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
