"""Month rows of the failures rollup exist only for months that have ended (migration 0006):
folds write them for calls before the watermark, the first fold of a month builds the month
that ended from its daily rows, and readers take the months from the watermark on from the
daily rows."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from perf_metrics.calls import store
from perf_metrics.calls.schema import parse_ndjson_lines
from perf_metrics.calls.store import driver_connection, store_batch, store_calls
from tests.conftest import bearer, rollups_report
from tests.factories import random_log

N = 600


@pytest.fixture
def app_settings(settings):
    """No response cache: these tests change the rollups under the service's feet."""
    return settings.model_copy(update={"response_cache_entries": 0})


def this_month() -> date:
    return datetime.now(UTC).date().replace(day=1)


def months_back(first: date, n: int) -> date:
    for _ in range(n):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


def rows(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return parse_ndjson_lines([orjson.dumps(c) for c in calls])


async def month_totals(engine, table: str, column: str) -> dict[date, int]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT date_trunc('month', {column})::date, sum(calls) FROM {table} GROUP BY 1")
        )
        return {r[0]: int(r[1]) for r in result}


async def set_mark(engine, first: date) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE rollup_watermarks SET failure_monthly_before = :m"), {"m": first}
        )


async def test_month_rows_only_for_months_that_have_ended(admin_ops, engine) -> None:
    acct = await admin_ops.account()
    start = datetime.combine(months_back(this_month(), 2), datetime.min.time(), UTC)
    calls = random_log(random.Random(21), [acct], N, start, datetime.now(UTC))
    async with engine.connect() as conn:
        await store_batch(conn, rows(calls))
    daily = await month_totals(engine, "rollup_failure_daily", "day")
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert set(daily) == {months_back(this_month(), k) for k in range(3)}
    assert monthly == {m: n for m, n in daily.items() if m < this_month()}
    assert (await rollups_report(engine))["ok"]


async def test_the_first_fold_of_a_month_builds_the_months_that_ended(admin_ops, engine) -> None:
    """As if the mark were two months old: calls of those months folded into daily rows only,
    then the next fold builds their month rows from the daily ones and moves the mark."""
    acct, other = await admin_ops.account(), await admin_ops.account()
    mark = months_back(this_month(), 2)
    await set_mark(engine, mark)
    start = datetime.combine(months_back(this_month(), 3), datetime.min.time(), UTC)
    calls = random_log(random.Random(22), [acct, other], N, start, datetime.now(UTC))
    async with engine.connect() as conn:
        await store_calls(conn, rows(calls))
        # A fold of those days, without the seal (as folds in those months were).
        await conn.execute(store.BEGIN_WRITE)
        raw = await driver_connection(conn)
        await raw.execute(store.FOLD_LOCK)
        assert await raw.fetchval(store.FOLD) == N
        await conn.commit()
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert set(monthly) == {months_back(this_month(), 3)}  # only the one before the mark
    report = await rollups_report(engine)
    assert report["ok"], report  # consistent with the mark where it is

    async with engine.connect() as conn:
        assert await store.fold(conn) == 0  # nothing queued: the seal alone
        mark_now = await conn.scalar(text("SELECT failure_monthly_before FROM rollup_watermarks"))
    assert mark_now == this_month()
    daily = await month_totals(engine, "rollup_failure_daily", "day")
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert monthly == {m: n for m, n in daily.items() if m < this_month()}
    assert len(monthly) == 3
    assert (await rollups_report(engine))["ok"]
    # Sealing again changes nothing.
    async with engine.connect() as conn:
        await store.fold(conn)
    assert await month_totals(engine, "rollup_failure_monthly", "month") == monthly


async def test_readers_take_months_past_the_mark_from_the_daily_rows(
    client, admin_ops, engine
) -> None:
    acct = await admin_ops.account(tier="enterprise")
    key = (await admin_ops.key(acct))["key"]
    start = datetime.combine(months_back(this_month(), 4), datetime.min.time(), UTC)
    calls = random_log(random.Random(23), [acct], N, start, datetime.now(UTC))
    async with engine.connect() as conn:
        await store_batch(conn, rows(calls))

    async def failures() -> dict[str, Any]:
        response = await client.get("/v1/metrics/failures?days=90", headers=bearer(key))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    before = await failures()
    assert before["summary"]["total_failures"] > 0
    # The two full months inside the window lose their month rows, as if not yet sealed.
    mark = months_back(this_month(), 2)
    await set_mark(engine, mark)
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM rollup_failure_monthly WHERE month >= :m"), {"m": mark}
        )
    assert await failures() == before
