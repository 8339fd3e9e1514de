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

from perf_metrics.alerts import tables as alert_tables  # noqa: F401  (declares them too)
from perf_metrics.db import metadata
from perf_metrics.migrate import downgrade, head_revision, upgrade
from perf_metrics.rollups import tables  # noqa: F401  (declares the rollup tables in `metadata`)
from perf_metrics.webhooks import tables as webhook_tables  # noqa: F401


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


# Queue call c4 as migrations 0007 and 0008 shape the queue.
QUEUE_C4 = (
    "INSERT INTO calls_pending SELECT account_id, environment, created_at, task_type, model,"
    " provider, initial_model, initial_provider, input_tokens, output_tokens, cost_usd,"
    " latency_ms, status, failure_mode, failure_trigger, recovery, retry_count, fallback_used,"
    " quality_score, complexity_score, message_count, cost_ceiling_hit, call_id"
    " FROM calls WHERE call_id = 'c4'"
)


def test_0008_recounts_model_rows_by_provider_in_each_accounts_zone() -> None:
    """The migration rebuilds rollup_model_daily from the call log: per local day of each
    account's zone, by served provider, with tokens and failures; queued calls are left to the
    next fold."""
    from tests.pg import scratch_database

    with scratch_database() as url:
        upgrade(url, "0007_account_timezone")
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")

        async def old_schema_with_calls() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "INSERT INTO accounts (id, name, tier, timezone) VALUES"
                    " ('acct_a', 'A', 'pro', 'Asia/Kolkata')"
                )
                calls = [
                    # (call_id, created_at, model, provider, failure_mode, tokens in/out, cost)
                    ("c1", "2026-03-01T18:29:59Z", "m", "p1", None, 10, 1, "0.10"),  # 03-01 IST
                    ("c2", "2026-03-01T18:30:00Z", "m", "p1", "refusal", 20, 2, "0.20"),  # 03-02
                    ("c3", "2026-03-01T20:00:00Z", "m", "p2", None, 30, 3, "0.30"),  # 03-02
                    ("c4", "2026-03-01T21:00:00Z", "m", "p2", None, 40, 4, "0.40"),  # queued
                ]
                for cid, at, model, provider, mode, tin, tout, cost in calls:
                    await conn.execute(
                        "INSERT INTO calls (account_id, call_id, environment, created_at,"
                        " task_type, model, provider, input_tokens, output_tokens, cost_usd,"
                        " latency_ms, status, failure_mode, recovery, retry_count)"
                        " VALUES ('acct_a', $1, 'live', $2::text::timestamptz, 'code', $3, $4,"
                        " $5, $6, $7::text::numeric, 100, 'success', $8,"
                        " CASE WHEN $8::text IS NULL THEN NULL ELSE 'retry' END,"
                        " CASE WHEN $8::text IS NULL THEN 0 ELSE 1 END)",
                        cid,
                        at,
                        model,
                        provider,
                        tin,
                        tout,
                        cost,
                        mode,
                    )
                await conn.execute(QUEUE_C4)
                # Whatever the old rows said, they are recounted.
                await conn.execute(
                    "INSERT INTO rollup_model_daily (account_id, environment, day, task_type,"
                    " model, calls) VALUES ('acct_a', 'live', '2026-03-01', 'code', 'm', 99)"
                )
            finally:
                await conn.close()

        async def model_rows() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(
                    "SELECT day::text, provider, calls, successes, cost_usd::text, input_tokens,"
                    " output_tokens, failures FROM rollup_model_daily ORDER BY day, provider"
                )
                return [tuple(r) for r in rows]
            finally:
                await conn.close()

        asyncio.run(old_schema_with_calls())
        upgrade(url)
        assert asyncio.run(model_rows()) == [
            ("2026-03-01", "p1", 1, 1, "0.100000000000", 10, 1, 0),
            ("2026-03-02", "p1", 1, 1, "0.200000000000", 20, 2, 1),
            ("2026-03-02", "p2", 1, 1, "0.300000000000", 30, 3, 0),
        ]


def test_0009_counts_users_per_local_day_and_week_and_fills_the_queue() -> None:
    """The migration counts rollup_group_daily's user rows from the call log in each account's
    zone (no user: ''), builds the week rows of the weeks that have ended, and gives the calls
    still queued their user_id and metadata (left to the next fold)."""
    from tests.pg import scratch_database

    with scratch_database() as url:
        upgrade(url, "0008_model_daily_by_provider")
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")

        async def old_schema_with_calls() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "INSERT INTO accounts (id, name, tier, timezone) VALUES"
                    " ('acct_a', 'A', 'pro', 'Asia/Kolkata')"
                )
                calls = [
                    ("c1", "2026-03-01T18:29:59Z", "u1", "0.10"),  # Sun 03-01 in Kolkata
                    ("c2", "2026-03-01T18:30:00Z", "u1", "0.20"),  # Mon 03-02: a new week
                    ("c3", "2026-03-01T20:00:00Z", None, "0.30"),  # 03-02, no user
                    ("c4", "2026-03-01T21:00:00Z", "u2", "0.40"),  # queued
                ]
                for cid, at, user, cost in calls:
                    await conn.execute(
                        "INSERT INTO calls (account_id, call_id, environment, created_at,"
                        " task_type, model, provider, input_tokens, output_tokens, cost_usd,"
                        " latency_ms, status, user_id, metadata)"
                        " VALUES ('acct_a', $1, 'live', $2::text::timestamptz, 'code', 'm', 'p',"
                        " 1, 1, $3::text::numeric, 100, 'success', $4, '{\"team\": \"x\"}')",
                        cid,
                        at,
                        cost,
                        user,
                    )
                await conn.execute(QUEUE_C4)
            finally:
                await conn.close()

        async def group_rows() -> tuple[list[tuple[Any, ...]], ...]:
            conn = await asyncpg.connect(dsn)
            try:
                days = await conn.fetch(
                    "SELECT dimension, day::text, value, calls, cost_usd::text"
                    " FROM rollup_group_daily ORDER BY day, value"
                )
                weeks = await conn.fetch(
                    "SELECT week::text, value, calls FROM rollup_group_weekly ORDER BY week, value"
                )
                queued = await conn.fetch("SELECT call_id, user_id, metadata FROM calls_pending")
                return (
                    [tuple(r) for r in days],
                    [tuple(r) for r in weeks],
                    [tuple(r) for r in queued],
                )
            finally:
                await conn.close()

        asyncio.run(old_schema_with_calls())
        upgrade(url)
        days, weeks, queued = asyncio.run(group_rows())
        assert days == [
            ("user", "2026-03-01", "u1", 1, "0.100000000000"),
            ("user", "2026-03-02", "", 1, "0.300000000000"),
            ("user", "2026-03-02", "u1", 1, "0.200000000000"),
        ]
        assert weeks == [("2026-02-23", "u1", 1), ("2026-03-02", "", 1), ("2026-03-02", "u1", 1)]
        assert queued == [("c4", "u2", '{"team": "x"}')]


def test_0011_counts_attempts_and_histograms_per_local_day_and_keeps_price_history() -> None:
    """The migration counts the account rollup's attempts and the per-model rows' latency
    histograms from the call log in each account's zone, leaves the queued calls to the next
    fold (their queued_at from when they were ingested), and keys prices by their first day."""
    from tests.pg import scratch_database

    with scratch_database() as url:
        upgrade(url, "0010_stale_blocks")
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        calls = [
            # id, created_at, latency, retries, fallback: Kolkata's 03-01 ends at 18:30Z
            ("c1", "2026-03-01T18:29:59Z", 120, 2, False),
            ("c2", "2026-03-01T18:30:00Z", 80, 0, True),  # 03-02 there
            ("c3", "2026-03-01T20:00:00Z", 80, 1, False),  # 03-02
            ("c4", "2026-03-01T21:00:00Z", 5000, 0, False),  # 03-02, queued
        ]

        async def old_schema_with_calls() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "INSERT INTO accounts (id, name, tier, timezone) VALUES"
                    " ('acct_a', 'A', 'pro', 'Asia/Kolkata')"
                )
                for cid, at, latency, retries, fallback in calls:
                    await conn.execute(
                        "INSERT INTO calls (account_id, call_id, environment, created_at,"
                        " task_type, model, provider, initial_model, input_tokens,"
                        " output_tokens, cost_usd, latency_ms, status, retry_count,"
                        " fallback_used, ingested_at)"
                        " VALUES ('acct_a', $1, 'live', $2::text::timestamptz, 'code', 'm', 'p',"
                        " CASE WHEN $5 THEN 'first' END, 1, 1, 0.1, $3, 'success', $4, $5,"
                        " '2026-03-02T00:00:00Z')",
                        cid,
                        at,
                        latency,
                        retries,
                        fallback,
                    )
                await conn.execute(QUEUE_C4)
                # The rows the fold had made of c1..c3 (their measures do not matter here).
                for day in ("2026-03-01", "2026-03-02"):
                    await conn.execute(
                        "INSERT INTO rollup_account_daily (account_id, environment, day,"
                        " hour_calls) VALUES ('acct_a', 'live', $1::text::date,"
                        " array_fill(0::bigint, ARRAY[24]))",
                        day,
                    )
                    await conn.execute(
                        "INSERT INTO rollup_model_daily (account_id, environment, day,"
                        " task_type, model, provider) VALUES ('acct_a', 'live',"
                        " $1::text::date, 'code', 'm', 'p')",
                        day,
                    )
            finally:
                await conn.close()

        async def rows() -> tuple[list[tuple[Any, ...]], ...]:
            conn = await asyncpg.connect(dsn)
            try:
                account = await conn.fetch(
                    "SELECT day::text, attempts FROM rollup_account_daily ORDER BY day"
                )
                model = await conn.fetch(
                    "SELECT day::text, hist::text FROM rollup_model_daily ORDER BY day"
                )
                queued = await conn.fetch("SELECT call_id, queued_at::text FROM calls_pending")
                prices = await conn.fetch("SELECT DISTINCT effective_from::text FROM model_prices")
                return tuple([tuple(r) for r in x] for x in (account, model, queued, prices))
            finally:
                await conn.close()

        asyncio.run(old_schema_with_calls())
        upgrade(url)
        account, model, queued, prices = asyncio.run(rows())
        # 03-01: c1, 1 + 2 retries; 03-02: c2 (1 + its fallback) and c3 (1 + 1 retry); c4 queued
        assert account == [("2026-03-01", 3), ("2026-03-02", 4)]
        # 120 ms is bin 100 + floor(ln 1.2 / ln(1.01 / 0.99)) = 109; 80 ms is bin 80.
        assert model == [("2026-03-01", "[109:109]={1}"), ("2026-03-02", "[80:80]={2}")]
        assert queued == [("c4", "2026-03-02 00:00:00+00")]
        assert prices == [("2000-01-01",)]
