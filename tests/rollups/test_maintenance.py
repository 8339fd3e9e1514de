"""`perf-metrics rollups verify` and `rebuild`: the rollups checked against the call log."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.rollups.maintenance import rebuild_rollups
from perf_metrics.rollups.tables import ROLLUP_TABLES, ROLLUPS
from tests.conftest import Admin, rollups_report, store_records
from tests.factories import random_log

# Week rows for these few calls a week too: verify compares them (thin weeks, which have
# none, are tested in tests/metrics/test_breakdown_groups.py).
pytestmark = pytest.mark.usefixtures("every_week_has_rows")

# The rollups of recent time only (tables.py's `keeps`).
RECENT_ONLY = {r.name for r in ROLLUPS if r.keeps is not None}
N = 300
VERSIONS = text("SELECT account_id, environment, version FROM account_data_versions")


def by_table(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["table"]: t for t in report["tables"]}


def exact(example: Any) -> Any:
    """An example row (stored or expected) as Python, its numbers as Decimals."""
    if example is None:
        return None
    return json.loads(orjson.dumps(example), parse_float=Decimal)


async def two_accounts_one_batch_queued(admin_ops: Admin, engine: AsyncEngine) -> tuple[str, str]:
    """Two accounts' calls over a month boundary; the last batch stored but not folded."""
    a, b = await admin_ops.account(), await admin_ops.account()
    start = datetime(2026, 9, 25, tzinfo=UTC)
    log = random_log(random.Random(11), [a, b], 3 * N, start, start + timedelta(days=10))
    async with engine.connect() as conn:
        await store_records(conn, log[:N])
        await store_records(conn, log[N : 2 * N])
        await store_records(conn, log[2 * N :], folded=False)  # queued only
    return a, b


async def test_consistent_rollups_verify_with_calls_still_queued(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    await two_accounts_one_batch_queued(admin_ops, engine)
    report = await rollups_report(engine)
    assert report["ok"] is True
    assert (report["calls"], report["queued"]) == (3 * N, N)
    assert set(by_table(report)) == set(ROLLUP_TABLES)
    for table in report["tables"]:
        assert table["differing_rows"] == 0 and table["examples"] == []
        assert table["rows"] == table["expected_rows"]
        # (rollup_account_5m keeps the last two days only: these calls are older)
        assert table["rows"] > 0 or table["table"] in RECENT_ONLY


async def test_drift_is_named_and_a_rebuild_repairs_it(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    a, b = await two_accounts_one_batch_queued(admin_ops, engine)
    async with engine.begin() as conn:
        # A row counted twice, a call deleted without its rollups, a provider row lost.
        await conn.execute(
            text(
                "UPDATE rollup_account_daily SET calls = calls + 1 WHERE ctid ="
                " (SELECT ctid FROM rollup_account_daily WHERE account_id = :a LIMIT 1)"
            ),
            {"a": a},
        )
        await conn.execute(
            text(
                "DELETE FROM calls WHERE ctid = (SELECT ctid FROM calls WHERE account_id = :b"
                " AND (account_id, call_id) NOT IN (SELECT account_id, call_id FROM calls"
                " ORDER BY ingested_at DESC LIMIT :n) LIMIT 1)"
            ),
            {"b": b, "n": N},
        )
        await conn.execute(
            text(
                "DELETE FROM rollup_provider_hourly WHERE ctid ="
                " (SELECT ctid FROM rollup_provider_hourly LIMIT 1)"
            )
        )
    report = await rollups_report(engine)
    assert report["ok"] is False
    tables = by_table(report)
    account_daily = tables["rollup_account_daily"]
    assert account_daily["differing_rows"] >= 2  # a's doubled row and b's row of the deleted call
    examples = [(exact(e["stored"]), exact(e["expected"])) for e in account_daily["examples"]]
    doubled = [(s, e) for s, e in examples if s and s["account_id"] == a]
    assert [s["calls"] - e["calls"] for s, e in doubled] == [1]
    assert tables["rollup_provider_hourly"]["differing_rows"] >= 1
    # Every call counts in these: b's deleted call is missing from them too.
    for table in ("rollup_model_daily", "rollup_failure_daily", "rollup_failure_monthly"):
        assert tables[table]["differing_rows"] == 1, table
    # Two 5-minute rows when the call fell back from one provider to another.
    assert tables["rollup_provider_5m"]["differing_rows"] >= 1

    # One account's check sees only that account's rows.
    only_a = await rollups_report(engine, a)
    assert only_a["ok"] is False and only_a["account_id"] == a
    assert by_table(only_a)["rollup_account_daily"]["differing_rows"] == 1
    assert "rollup_provider_hourly" not in by_table(only_a)

    async with engine.connect() as conn:
        versions_before = {(r[0], r[1]): r[2] for r in (await conn.execute(VERSIONS)).all()}
        await conn.rollback()
    async with engine.begin() as conn:  # and an account left with no test calls at all
        await conn.execute(
            text("DELETE FROM calls WHERE account_id = :a AND environment = 'test'"), {"a": a}
        )
        logged = await conn.scalar(text("SELECT count(*) FROM calls"))
    async with engine.begin() as conn:
        rebuilt = await rebuild_rollups(conn)
    assert rebuilt["calls"] == logged < 3 * N - 1
    report = await rollups_report(engine)
    assert report["ok"] is True and report["queued"] == 0 and report["calls"] == logged
    async with engine.connect() as conn:
        versions_after = {(r[0], r[1]): r[2] for r in (await conn.execute(VERSIONS)).all()}
    # Cached answers are keyed by these versions: none survives the rebuild, not even those of
    # an account-environment whose calls are all gone.
    assert (a, "test") in versions_before
    assert all(versions_after[k] > v for k, v in versions_before.items())
    async with engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT count(*) FROM rollup_account_daily WHERE account_id = :a"
                 " AND environment = 'test'"), {"a": a},
        )  # fmt: skip
    assert left == 0


async def test_readers_see_the_old_rollups_until_a_rebuild_commits(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    await two_accounts_one_batch_queued(admin_ops, engine)
    total = text("SELECT sum(calls) FROM rollup_account_daily")
    async with engine.connect() as reader, engine.connect() as rebuilder:
        await reader.execution_options(isolation_level="REPEATABLE READ")
        before = await reader.scalar(total)  # its snapshot: before the rebuild
        await rebuild_rollups(rebuilder)
        # Not blocked, and not shown the rebuild's half-done (or, later, empty) tables.
        assert await asyncio.wait_for(reader.scalar(total), 5) == before == 2 * N
        await rebuilder.commit()
        assert await reader.scalar(total) == 2 * N  # the same snapshot, after the commit
        await reader.rollback()
        assert await reader.scalar(total) == 3 * N  # a new one: the queued batch is in


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perf_metrics.cli", *args],
        env={**os.environ, "DATABASE_URL": database_url.replace("+asyncpg", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_commands_exit_1_on_drift_for_cron(
    admin_ops: Admin, engine: AsyncEngine, database_url: str
) -> None:
    await two_accounts_one_batch_queued(admin_ops, engine)
    ok = run_cli(database_url, "rollups", "verify")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rollup_model_daily SET cost_usd = cost_usd + 1e-12"))
    drift = run_cli(database_url, "rollups", "verify", "--examples", "1")
    assert drift.returncode == 3  # apart from errors (1, 2): cron can tell
    assert "perf-metrics rollups rebuild" in drift.stderr
    model = by_table(json.loads(drift.stdout))["rollup_model_daily"]
    assert model["differing_rows"] > 0 and len(model["examples"]) == 1
    stored, expected = (exact(model["examples"][0][k]) for k in ("stored", "expected"))
    assert stored["cost_usd"] - expected["cost_usd"] == Decimal("1e-12")  # every digit shown
    unknown = run_cli(database_url, "rollups", "verify", "--account", "acct_nope")
    assert unknown.returncode == 1 and "acct_nope" in unknown.stderr
    assert run_cli(database_url, "rollups", "verify", "--examples", "-1").returncode == 2
    rebuilt = run_cli(database_url, "rollups", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["calls"] == 3 * N
    assert run_cli(database_url, "rollups", "verify").returncode == 0
