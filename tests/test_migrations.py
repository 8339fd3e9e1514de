"""Every migration has a working downgrade: upgrade, downgrade to nothing, upgrade again."""

from __future__ import annotations

import asyncio

import asyncpg

from perf_metrics.migrate import downgrade, head_revision, upgrade


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
