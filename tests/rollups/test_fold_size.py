"""A fold that runs past its statement timeout is rolled back and retried with fewer calls
(rollups/fold.py's FoldSize), down to FOLD_LEAST, and grows back once folds are quick; a
fold that cannot finish even then says what happened, and leaves every call queued. The slow
fold is made so for certain: another session holds the row lock of an account's data
version, which every fold of that account's calls must update."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.cli.common import _database_problem
from perf_metrics.rollups.fold import FOLD_LEAST, FOLD_LIMIT, FoldSize, FoldTimedOut, fold
from perf_metrics.settings import Settings
from tests.conftest import Admin, rollups_report, store_records
from tests.factories import random_log
from tests.pg import _asyncpg_dsn

NOW = datetime.now(UTC)
START = NOW - timedelta(days=3)
QUEUED = text("SELECT account_id, count(*) FROM calls_pending GROUP BY 1 ORDER BY 1")


@asynccontextmanager
async def version_locked(
    settings: Settings, account_id: str, hold_s: float | None = None
) -> AsyncIterator[None]:
    """The account's data versions locked by another session: until the block ends, or for
    `hold_s` seconds (the server ends that session then)."""
    conn = await asyncpg.connect(_asyncpg_dsn(settings.database_url))
    try:
        if hold_s is not None:
            await conn.execute(f"SET idle_in_transaction_session_timeout = '{int(hold_s * 1000)}'")
        await conn.execute("BEGIN")
        await conn.execute(
            "SELECT 1 FROM account_data_versions WHERE account_id = $1 FOR UPDATE", account_id
        )
        yield
    finally:
        conn.terminate()


async def queue(admin_ops: Admin, engine: AsyncEngine, first: int, then: int) -> tuple[str, str]:
    """acct_busy with folded calls (its data versions exist), then `first` queued calls of
    acct_busy and `then` of acct_calm behind them (a fold takes the queue in its order)."""
    busy = await admin_ops.account(account_id="acct_busy")
    calm = await admin_ops.account(account_id="acct_calm")
    rng = random.Random(3)
    async with engine.connect() as conn:
        await store_records(conn, random_log(rng, [busy], 5, START, NOW))
        await store_records(conn, random_log(rng, [busy], first, START, NOW), folded=False)
        await store_records(conn, random_log(rng, [calm], then, START, NOW), folded=False)
        await conn.commit()
    return busy, calm


async def test_a_fold_out_of_time_is_retried_smaller_and_folds_everything(
    admin_ops: Admin, engine: AsyncEngine, settings: Settings
) -> None:
    busy, _ = await queue(admin_ops, engine, 10, 2_000)
    size = FoldSize(timeout_s=1)
    # Locked for 2.5 s: the folds of 50,000 and 25,000 run out of time, a smaller one finishes
    # (a second is plenty for 2,010 calls, even on a busy machine).
    async with version_locked(settings, busy, hold_s=2.5), engine.connect() as conn:
        assert await fold(conn, size) == 2_010
    assert size.shrunk >= 2 and size.calls < FOLD_LIMIT
    report = await rollups_report(engine)
    assert report["ok"] and report["queued"] == 0 and report["calls"] == 2_015


async def test_a_fold_that_cannot_finish_says_so_and_leaves_the_calls_queued(
    admin_ops: Admin, engine: AsyncEngine, settings: Settings
) -> None:
    busy, calm = await queue(admin_ops, engine, 10, 300)
    size = FoldSize(timeout_s=0.5)
    async with version_locked(settings, busy), engine.connect() as conn:
        with pytest.raises(FoldTimedOut, match=r"of 500 calls ran past its 0.5 s statement"):
            await fold(conn, size)
        assert [tuple(r) for r in await conn.execute(QUEUED)] == [(busy, 10), (calm, 300)]
        await conn.rollback()
    assert size.calls == FOLD_LEAST and size.shrunk == 7  # 50,000 halved to 500
    async with engine.connect() as conn:  # the lock gone, the next fold takes them all
        assert await fold(conn, size) == 310
    report = await rollups_report(engine)
    assert report["ok"] and report["queued"] == 0 and report["calls"] == 315


def test_fold_sizes_halve_to_the_least_and_double_back_to_the_limit() -> None:
    size = FoldSize(timeout_s=8)
    for expected in (25_000, 12_500, 6_250, 3_125, 1_562, 781, 500):
        size.timed_out()
        assert size.calls == expected
    with pytest.raises(FoldTimedOut):
        size.timed_out()
    size.took(2.5)  # more than a quarter of the timeout: stays
    assert size.calls == 500
    for expected in (1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 50_000, 50_000):
        size.took(0.1)
        assert size.calls == expected


def test_a_statement_timeout_is_reported_as_one(settings: Settings) -> None:
    message = _database_problem(FoldTimedOut("a fold of 500 calls ran past ..."), settings)
    assert "a fold of 500 calls ran past" in message and "Is Postgres running" not in message
    timeout = asyncpg.QueryCanceledError("canceling statement due to statement timeout")
    message = _database_problem(timeout, settings)
    assert "statement timeout" in message and "DB_STATEMENT_TIMEOUT_MS" in message
    assert "Is Postgres running" not in message
    for unreachable in (ConnectionRefusedError(), TimeoutError()):  # TimeoutError: a connect's
        assert "Is Postgres running" in _database_problem(unreachable, settings)
