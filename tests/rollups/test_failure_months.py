"""Month rows of the failures rollup exist only for months that have ended (migration 0006):
folds write them for calls before the watermark, the first fold of a month builds the month
that ended from its daily rows, and readers take the months from the watermark on from the
daily rows."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.db import BEGIN_WRITE, create_engine, driver_connection
from perf_metrics.rollups.fold import FOLD, FOLD_LIMIT, FOLD_LOCK, fold
from perf_metrics.rollups.maintenance import rebuild_rollups
from perf_metrics.settings import Settings
from perf_metrics.zones import THIS_MONTH_SQL, full_months
from tests import reference
from tests.clock import set_clock
from tests.conftest import Admin, bearer, rollups_report, store_records, without_data_as_of
from tests.factories import as_reference, iso, random_log

N = 600


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """No response cache: these tests change the rollups under the service's feet."""
    return settings.model_copy(update={"response_cache_entries": 0})


def this_month() -> date:
    """The month it is on the westernmost clock (UTC-12), which the mark follows: a month has
    ended in every zone only then (the database's clock, not this one's; the two differ only
    in the instant around noon UTC on the 1st)."""
    return (datetime.now(UTC) - timedelta(hours=12)).date().replace(day=1)


def months_back(first: date, n: int) -> date:
    for _ in range(n):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


async def month_totals(engine: AsyncEngine, table: str, column: str) -> dict[date, int]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT date_trunc('month', {column})::date, sum(calls) FROM {table} GROUP BY 1")
        )
        return {r[0]: int(r[1]) for r in result}


async def set_mark(engine: AsyncEngine, first: date) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE rollup_watermarks SET failure_monthly_before = :m"), {"m": first}
        )


async def four_months_of_calls(admin_ops: Admin, engine: AsyncEngine, seed: int) -> tuple[str, str]:
    """An account with N calls from four months back to now, folded; and its key."""
    acct = await admin_ops.account(tier="enterprise")
    key = (await admin_ops.key(acct))["key"]
    start = datetime.combine(months_back(this_month(), 4), datetime.min.time(), UTC)
    calls = random_log(random.Random(seed), [acct], N, start, datetime.now(UTC))
    async with engine.connect() as conn:
        await store_records(conn, calls)
    return acct, str(key)


async def failures_answer(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    """The answer for the last 90 days, less when it was computed (compared across reads)."""
    response = await client.get("/v1/metrics/failures?days=90", headers=bearer(key))
    assert response.status_code == 200, response.text
    return without_data_as_of(response.json())


async def test_month_rows_only_for_months_that_have_ended(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    acct = await admin_ops.account()
    start = datetime.combine(months_back(this_month(), 2), datetime.min.time(), UTC)
    calls = random_log(random.Random(21), [acct], N, start, datetime.now(UTC))
    async with engine.connect() as conn:
        await store_records(conn, calls)
    daily = await month_totals(engine, "rollup_failure_daily", "day")
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert set(daily) == {months_back(this_month(), k) for k in range(3)}
    assert monthly == {m: n for m, n in daily.items() if m < this_month()}
    assert (await rollups_report(engine))["ok"]


async def test_the_first_fold_of_a_month_builds_the_months_that_ended(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    """As if the mark were two months old: calls of those months folded into daily rows only,
    then the next fold builds their month rows from the daily ones and moves the mark."""
    acct, other = await admin_ops.account(), await admin_ops.account()
    mark = months_back(this_month(), 2)
    await set_mark(engine, mark)
    start = datetime.combine(months_back(this_month(), 3), datetime.min.time(), UTC)
    calls = random_log(random.Random(22), [acct, other], N, start, datetime.now(UTC))
    async with engine.connect() as conn:
        await store_records(conn, calls, folded=False)
        # A fold of those days, without the seal (as folds in those months were).
        await conn.execute(BEGIN_WRITE)
        raw = await driver_connection(conn)
        await raw.execute(FOLD_LOCK)
        assert await raw.fetchval(FOLD, FOLD_LIMIT) == N
        await conn.commit()
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert set(monthly) == {months_back(this_month(), 3)}  # only the one before the mark
    report = await rollups_report(engine)
    assert report["ok"], report  # consistent with the mark where it is

    async with engine.connect() as conn:
        assert await fold(conn) == 0  # nothing queued: the seal alone
        mark_now = await conn.scalar(text("SELECT failure_monthly_before FROM rollup_watermarks"))
    assert mark_now == this_month()
    daily = await month_totals(engine, "rollup_failure_daily", "day")
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert monthly == {m: n for m, n in daily.items() if m < this_month()}
    assert len(monthly) == 3
    assert (await rollups_report(engine))["ok"]


async def test_readers_take_months_past_the_mark_from_the_daily_rows(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    _, key = await four_months_of_calls(admin_ops, engine, seed=23)

    async def failures() -> dict[str, Any]:
        return await failures_answer(client, key)

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


async def test_a_mark_inside_the_windows_full_months_splits_them(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    """Full months before the mark from the month rows, after it from the daily rows; month
    rows from the mark on (strays, as a process on the old code would write) are not read."""
    acct, key = await four_months_of_calls(admin_ops, engine, seed=24)
    before = await failures_answer(client, key)
    today = datetime.now(UTC).date()
    m_lo, m_hi = full_months(today - timedelta(days=89), today)
    mark = (m_lo + timedelta(days=32)).replace(day=1)  # the 2nd full month
    assert m_lo < mark < m_hi
    await set_mark(engine, mark)
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM rollup_failure_monthly WHERE month >= :m"), {"m": mark}
        )
        # A stray month row at the mark and one this month: far too many calls to miss.
        for month in (mark, this_month()):
            await conn.execute(
                text(
                    "INSERT INTO rollup_failure_monthly VALUES"
                    " (:a, 'live', :m, 'extraction', 'gpt-4o', 'timeout', 10000, 0, 0, 10000)"
                ),
                {"a": acct, "m": month},
            )
    assert await failures_answer(client, key) == before
    assert (await rollups_report(engine))["ok"]  # strays are not drift: nothing reads them

    # The next fold seals the months since the mark afresh: the strays go.
    async with engine.connect() as conn:
        await fold(conn)
    daily = await month_totals(engine, "rollup_failure_daily", "day")
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    assert monthly == {m: n for m, n in daily.items() if m < this_month()}
    assert await failures_answer(client, key) == before

    # Sealed again from an earlier mark: the same rows.
    await set_mark(engine, months_back(this_month(), 4))
    async with engine.connect() as conn:
        await fold(conn)
    assert await month_totals(engine, "rollup_failure_monthly", "month") == monthly
    assert (await rollups_report(engine))["ok"]


async def test_a_fold_waits_out_a_long_holder_of_the_fold_lock(
    settings: Settings, admin_ops: Admin
) -> None:
    """Waiting for the lock (another process folding, a month being sealed) is not a
    statement running too long: the fold waits past the statement timeout."""
    quick = settings.model_copy(update={"db_statement_timeout_ms": 500})
    engine = create_engine(quick)
    try:
        acct = await admin_ops.account()
        calls = random_log(random.Random(25), [acct], 50, datetime.now(UTC) - timedelta(days=1),
                           datetime.now(UTC))  # fmt: skip
        async with engine.connect() as holder, engine.connect() as folder:
            await store_records(folder, calls, folded=False)
            await holder.execute(text(FOLD_LOCK))  # held until rollback
            folding = asyncio.ensure_future(fold(folder))
            await asyncio.sleep(1.5)  # three statement timeouts
            assert not folding.done()
            await holder.rollback()
            assert await asyncio.wait_for(folding, 10) == 50
            # And the fold's own statements are back under the short timeout.
            await folder.execute(text("SELECT 1"))
            timeout = await folder.scalar(text("SHOW statement_timeout"))
            assert timeout == "500ms"
    finally:
        await engine.dispose()


async def test_a_lost_mark_stops_folds_loudly_and_a_rebuild_restores_it(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    acct = await admin_ops.account()
    calls = random_log(random.Random(26), [acct], 50, datetime.now(UTC) - timedelta(days=40),
                       datetime.now(UTC))  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM rollup_watermarks"))
    async with engine.connect() as conn:
        await store_records(conn, calls, folded=False)
        with pytest.raises(RuntimeError, match="rollups rebuild"):
            await fold(conn)
    async with engine.begin() as conn:
        await rebuild_rollups(conn)
    async with engine.connect() as conn:
        mark = await conn.scalar(text("SELECT failure_monthly_before FROM rollup_watermarks"))
    assert mark == this_month()
    assert (await rollups_report(engine))["ok"]


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12"])
async def test_the_seal_builds_local_months_at_both_ends_of_the_offsets(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine, zone: str
) -> None:
    """UTC+14 and UTC-12: a month row holds the calls of the account's local month (the first
    and last instants of each pinned), once the seal has built it from the daily rows; and
    failures over full local months answers as the reference does."""
    tz = ZoneInfo(zone)
    acct = await admin_ops.account(account_id="acct_edge", timezone=zone)
    key = (await admin_ops.key(acct))["key"]
    rng = random.Random(24)
    calls = random_log(
        rng, [acct], N, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC), zone
    )
    for month in (2, 3, 4):
        first = datetime(2026, month, 1, tzinfo=tz).astimezone(UTC)
        for i, moment in enumerate((first - timedelta(microseconds=1), first)):
            calls += random_log(rng, [acct], 1, moment, moment + timedelta(microseconds=1), zone)
            calls[-1]["call_id"] = f"edge-{month}-{i}"
            calls[-1]["created_at"] = iso(moment, timespec="microseconds")
    await set_mark(engine, date(2026, 1, 1))
    async with engine.connect() as conn:
        await store_records(conn, calls, folded=False)
        await conn.execute(BEGIN_WRITE)  # folded into daily rows only, as before the seal
        raw = await driver_connection(conn)
        await raw.execute(FOLD_LOCK)
        assert await raw.fetchval(FOLD, FOLD_LIMIT) == len(calls)
        await conn.commit()
        assert await fold(conn) == 0  # the seal alone
    monthly = await month_totals(engine, "rollup_failure_monthly", "month")
    by_local_month: dict[date, int] = {}
    for c in calls:
        local = datetime.fromisoformat(c["created_at"]).astimezone(tz).date().replace(day=1)
        by_local_month[local] = by_local_month.get(local, 0) + 1
    assert monthly == by_local_month
    assert (await rollups_report(engine))["ok"]

    set_clock(app, datetime(2026, 5, 10, 12, tzinfo=UTC))
    response = await client.get(
        "/v1/metrics/failures", params={"days": 90, "end_date": "2026-04-30"}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    records = [as_reference(c) for c in calls if c["environment"] == "live"]
    assert response.json() == reference.failures(
        records, days=90, end_date=date(2026, 4, 30), zone=zone
    )


async def test_a_month_has_ended_everywhere_once_it_has_at_utc_minus_12(
    engine: AsyncEngine,
) -> None:
    # The seal's "this month" (zones.THIS_MONTH_SQL) at a given instant instead of now().
    at_instant = THIS_MONTH_SQL.replace("now()", "CAST(:t AS timestamptz)")
    async with engine.connect() as conn:
        for instant, month in (
            ("2026-12-01T11:59:59.999999Z", date(2026, 11, 1)),  # still November at UTC-12
            ("2026-12-01T12:00:00Z", date(2026, 12, 1)),
            ("2026-11-30T10:00:00Z", date(2026, 11, 1)),  # December already at UTC+14
        ):
            moment = datetime.fromisoformat(instant)
            assert await conn.scalar(text(f"SELECT {at_instant}"), {"t": moment}) == month
