"""Changing an account's zone (rollups/rezone.py, SPEC §9): retroactive, atomic, exact while
ingest goes on, and refused rather than left in two zones."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics.rollups import rezone
from perf_metrics.rollups.fold import fold
from perf_metrics.rollups.maintenance import rebuild_rollups
from perf_metrics.rollups.rezone import change_zone
from perf_metrics.settings import Settings
from tests import reference
from tests.clock import set_clock
from tests.conftest import Admin, bearer, rollups_report, store_records, without_data_as_of
from tests.factories import as_reference, random_log
from tests.metrics.test_metrics_reference import get

NOW = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)  # two days after New York's 25-hour day
START = NOW - timedelta(days=40)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """No response cache: the tests read answers before and after a change of the rollups."""
    return settings.model_copy(update={"response_cache_entries": 0})


def expected_daily(records: list[dict[str, Any]], zone: str, days: int = 40) -> dict[str, Any]:
    today = NOW.astimezone(ZoneInfo(zone)).date()
    return reference.daily(records, days=days, end_date=today, today=today, zone=zone)


def live(records: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    return [
        as_reference(r)
        for r in records
        if r["account_id"] == account and r["environment"] == "live"
    ]


async def timezone_of(engine: AsyncEngine, account: str) -> str:
    async with engine.connect() as conn:
        return str(
            await conn.scalar(text("SELECT timezone FROM accounts WHERE id = :a"), {"a": account})
        )


async def test_a_change_recounts_every_day_in_the_new_zone(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    set_clock(app, NOW)
    account = await admin_ops.account(account_id="acct_move")
    neighbour = await admin_ops.account(account_id="acct_stay", timezone="Asia/Kolkata")
    key = (await admin_ops.key(account, "live"))["key"]
    records = random_log(random.Random(1), [account, neighbour], 3000, START, NOW, "Asia/Kolkata")
    async with engine.connect() as conn:
        await store_records(conn, records)
    neighbour_before = await rollups_report(engine, neighbour)

    before = await client.get("/v1/metrics/daily", params={"days": 40}, headers=bearer(key))
    assert before.json() == expected_daily(live(records, account), "UTC")
    lines: list[str] = []
    rezone_progress = rezone.PROGRESS_FROM_CALLS
    rezone.PROGRESS_FROM_CALLS = 1  # a progress line per step even for this small account
    try:
        result = await change_zone(engine, account, "asia/kolkata", lines.append)
    finally:
        rezone.PROGRESS_FROM_CALLS = rezone_progress
    mine = [r for r in records if r["account_id"] == account]
    assert result["changed"] is True
    assert result["timezone"] == "Asia/Kolkata"  # canonical spelling
    assert result["previous_timezone"] == "UTC"
    assert result["calls"] == len(mine)
    assert result["queued_meanwhile"] == 0
    # One step per week of the log (168 hours from a Monday 00:00 UTC) and environment.
    monday = datetime(2000, 1, 3, tzinfo=UTC)
    steps = len(
        {
            (r["environment"], (datetime.fromisoformat(r["created_at"]) - monday).days // 7)
            for r in mine
        }
    )
    assert lines[0] == f"acct_move: recounting {len(mine):,} calls in Asia/Kolkata, {steps} steps"
    assert len(lines) == 1 + steps + 1
    assert lines[-2].endswith(f"{len(mine):,} of {len(mine):,} calls (100%)")
    assert lines[-1].startswith(f"acct_move: days now in Asia/Kolkata, {len(mine):,} calls in ")
    assert await timezone_of(engine, account) == "Asia/Kolkata"

    after = await client.get(
        "/v1/metrics/daily",
        params={"days": 40},
        headers={**bearer(key), "If-None-Match": before.headers["etag"]},
    )
    assert after.status_code == 200  # the old ETag no longer matches
    assert after.json() == expected_daily(live(records, account), "Asia/Kolkata")
    account_view = await client.get("/v1/account", headers=bearer(key))
    assert account_view.json()["timezone"] == "Asia/Kolkata"
    report = await rollups_report(engine)
    assert report["ok"], report
    # The neighbour's rows are untouched, and no mark is left behind.
    assert await rollups_report(engine, neighbour) == neighbour_before
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM account_rebuilds")) == 0
    # The same zone again is nothing to do.
    assert (await change_zone(engine, account, "Asia/Kolkata"))["changed"] is False


async def test_ingest_goes_on_during_a_change_and_every_call_counts_once(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    set_clock(app, NOW)
    account = await admin_ops.account(account_id="acct_busy")
    other = await admin_ops.account(account_id="acct_other", timezone="Europe/Berlin")
    key = (await admin_ops.key(account, "live"))["key"]
    rng = random.Random(2)
    history = random_log(rng, [account, other], 6000, START, NOW - timedelta(days=1))
    later = random_log(rng, [account, other], 3000, NOW - timedelta(days=2), NOW, "Etc/GMT+12")
    batches = [later[i : i + 100] for i in range(0, len(later), 100)]
    async with engine.connect() as conn:
        await store_records(conn, history)
    stored = 0
    readings: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def ingest() -> None:
        nonlocal stored
        async with engine.connect() as conn:
            for batch in batches:
                stored += await store_records(conn, batch)
                await asyncio.sleep(0)

    async def read() -> None:
        while not done.is_set():
            readings.append(await get(client, key, "overview", days=1))
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    ingesting = asyncio.create_task(ingest())
    await asyncio.sleep(0.05)
    result = await change_zone(engine, account, "America/New_York")
    await ingesting
    done.set()
    await reader
    async with engine.connect() as conn:
        await fold(conn)
    assert stored == len(later)
    report = await rollups_report(engine)
    assert report["ok"], report
    assert report["calls"] == len(history) + len(later)
    assert result["calls"] + result["queued_meanwhile"] <= len(history) + len(later)
    everything = history + later
    assert await get(client, key, "daily", days=40) == expected_daily(
        live(everything, account), "America/New_York"
    )
    # Every answer read meanwhile was in one zone or the other, never a mix of both.
    zones = {r["period"]["timezone"] for r in readings}
    assert zones <= {"UTC", "America/New_York"} and readings


async def test_calls_queued_when_a_change_begins_are_folded_after_it_once(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    # No service here, so no background fold: what is queued stays queued until told.
    account = await admin_ops.account(account_id="acct_queued", timezone="Australia/Lord_Howe")
    rng = random.Random(6)
    history = random_log(rng, [account], 2000, START, NOW)
    queued = random_log(rng, [account], 300, NOW - timedelta(days=1), NOW)
    async with engine.connect() as conn:
        await store_records(conn, history)
        await store_records(conn, queued, folded=False)
    result = await change_zone(engine, account, "Pacific/Chatham")
    assert result["calls"] == len(history)
    assert result["queued_meanwhile"] == len(queued)
    report = await rollups_report(engine)  # the rollups plus the queue: each call once
    assert report["ok"] and report["queued"] == len(queued), report
    async with engine.connect() as conn:
        await fold(conn)
    report = await rollups_report(engine)  # in the new zone (verify counts in the account's)
    assert report["ok"] and report["queued"] == 0, report


async def test_readers_see_the_old_answer_or_the_new_one(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    set_clock(app, NOW)
    account = await admin_ops.account(account_id="acct_read", timezone="Pacific/Kiritimati")
    key = (await admin_ops.key(account, "live"))["key"]
    records = random_log(random.Random(3), [account], 8000, START, NOW, "Pacific/Kiritimati")
    async with engine.connect() as conn:
        await store_records(conn, records)
    old = expected_daily(live(records, account), "Pacific/Kiritimati", days=30)
    new = expected_daily(live(records, account), "Etc/GMT+12", days=30)
    answers: list[dict[str, Any]] = []
    changing = asyncio.create_task(change_zone(engine, account, "Etc/GMT+12"))
    while not changing.done():
        answers.append(await get(client, key, "daily", days=30))
    await changing
    answers.append(await get(client, key, "daily", days=30))
    assert all(a in (old, new) for a in answers)
    assert answers[-1] == new != old


async def test_folds_leave_a_changing_account_queued_and_the_seal_waits(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    changing = await admin_ops.account(account_id="acct_changing")
    other = await admin_ops.account(account_id="acct_free")
    records = random_log(random.Random(4), [changing, other], 400, START, NOW)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO account_rebuilds VALUES"
                " ('acct_changing', 'Asia/Kolkata', now(), now() + interval '1 hour')"
            )
        )
        mark = await conn.scalar(text("SELECT failure_monthly_before FROM rollup_watermarks"))
        await conn.execute(
            text("UPDATE rollup_watermarks SET failure_monthly_before = '2026-01-01'")
        )
    async with engine.connect() as conn:
        await store_records(conn, records)
        queued = await conn.execute(
            text("SELECT account_id, count(*) FROM calls_pending GROUP BY 1")
        )
        assert dict(queued.all()) == {
            "acct_changing": sum(r["account_id"] == changing for r in records)
        }
        assert (
            str(await conn.scalar(text("SELECT failure_monthly_before FROM rollup_watermarks")))
            == "2026-01-01"
        )
        await conn.execute(text("UPDATE account_rebuilds SET expires_at = now()"))
        await conn.commit()
        # Past its lease, a mark still counts while a recount holds its row lock.
        async with engine.connect() as recount:
            await recount.execute(text("SELECT 1 FROM account_rebuilds FOR UPDATE"))
            await fold(conn)
            assert await conn.scalar(text("SELECT count(*) FROM calls_pending")) > 0
            await recount.rollback()
        # A change that died leaves a mark that expires: then folds take the calls again.
        await fold(conn)
        assert await conn.scalar(text("SELECT count(*) FROM calls_pending")) == 0
        assert (
            await conn.scalar(text("SELECT failure_monthly_before FROM rollup_watermarks")) == mark
        )
    report = await rollups_report(engine)
    assert report["ok"], report


async def test_a_second_change_of_the_same_account_is_refused(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    account = await admin_ops.account(account_id="acct_twice")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO account_rebuilds VALUES"
                " ('acct_twice', 'Asia/Kolkata', now(), now() + interval '1 hour')"
            )
        )
    with pytest.raises(admin.AdminError, match="already running"):
        await change_zone(engine, account, "Europe/Berlin")
    assert await timezone_of(engine, account) == "UTC"
    # An expired mark is a change that died: a new one takes over.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE account_rebuilds SET expires_at = now()"))
    assert (await change_zone(engine, account, "Europe/Berlin"))["changed"]
    assert await timezone_of(engine, account) == "Europe/Berlin"


async def test_a_change_is_refused_when_the_log_has_lost_calls(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    # Raw calls gone (as a retention would drop them) cannot be recounted: the change is
    # refused whole, the days stay in the old zone, and no mark is left.
    set_clock(app, NOW)
    account = await admin_ops.account(account_id="acct_lost", timezone="Asia/Kathmandu")
    key = (await admin_ops.key(account, "live"))["key"]
    records = random_log(random.Random(5), [account], 500, START, NOW)
    async with engine.connect() as conn:
        await store_records(conn, records)
    before = without_data_as_of(await get(client, key, "daily", days=40))
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM calls WHERE created_at < :t"), {"t": START + timedelta(days=5)}
        )
    with pytest.raises(admin.AdminError, match="calls have been dropped from the log"):
        await change_zone(engine, account, "UTC")
    assert await timezone_of(engine, account) == "Asia/Kathmandu"
    assert without_data_as_of(await get(client, key, "daily", days=40)) == before
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM account_rebuilds")) == 0


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("+05:30", "Asia/Kolkata (not +05:30)"),
        ("UTC+5", "five hours west"),
        ("GMT-3", "fixed offset"),
        ("Mars/Olympus", "Unknown timezone 'Mars/Olympus'"),
        ("", "IANA zone name"),
        ("   ", "IANA zone name"),
    ],
)
async def test_refused_zones_say_what_to_write(
    admin_ops: Admin, engine: AsyncEngine, name: str, needle: str
) -> None:
    account = await admin_ops.account(account_id="acct_refuse")
    with pytest.raises(admin.AdminError, match=re.escape(needle)):
        await change_zone(engine, account, name)
    async with engine.begin() as conn:
        with pytest.raises(admin.AdminError, match=r"IANA|offset|Unknown"):
            await admin.create_account(conn, name="X", tier="pro", timezone=name)
    assert await timezone_of(engine, account) == "UTC"


@pytest.mark.parametrize(
    ("name", "stored"),
    [("asia/kolkata", "Asia/Kolkata"), ("EUROPE/BERLIN", "Europe/Berlin"), ("Etc/UTC", "UTC")],
)
async def test_names_are_stored_canonical(engine: AsyncEngine, name: str, stored: str) -> None:
    async with engine.begin() as conn:
        account = await admin.create_account(conn, name="X", tier="pro", timezone=name)
    assert account["timezone"] == stored


async def test_a_full_rebuild_waits_for_a_zone_change(
    admin_ops: Admin, engine: AsyncEngine
) -> None:
    # Both recount the account: together they would count its calls twice.
    await admin_ops.account(account_id="acct_rebuilding")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO account_rebuilds VALUES"
                " ('acct_rebuilding', 'Asia/Kolkata', now(), now() + interval '1 hour')"
            )
        )
    async with engine.connect() as conn:
        with pytest.raises(admin.AdminError, match="acct_rebuilding"):
            await rebuild_rollups(conn)
        await conn.rollback()


async def test_a_failing_step_changes_nothing(
    admin_ops: Admin, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader's statement fails (here: a division by zero in place of the step's SQL): the
    # change rolls back whole and removes its mark.
    account = await admin_ops.account(account_id="acct_fail", timezone="Asia/Kolkata")
    async with engine.connect() as conn:
        await store_records(conn, random_log(random.Random(7), [account], 300, START, NOW))
    before = await rollups_report(engine, account)
    failing = "SELECT $1::text, $2::text, $3::timestamptz, $4::text, $5::text[], 1 / 0"
    monkeypatch.setitem(rezone.RECOUNT_STEP, rezone.ACCOUNT_ROLLUPS, failing)
    with pytest.raises(Exception, match="division by zero"):
        await change_zone(engine, account, "Europe/Berlin")
    assert await timezone_of(engine, account) == "Asia/Kolkata"
    assert await rollups_report(engine, account) == before
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM account_rebuilds")) == 0
